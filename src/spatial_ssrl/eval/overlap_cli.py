"""``ssrl overlap``: list training sources that a benchmark also shows (near duplicates).

The command object is :data:`overlap_command`; ``spatial_ssrl.cli`` registers it. The
exclusion helpers (:func:`overlapping_sources`, :func:`read_exclude_list`) are re-exported
here for ``ssrl generate --exclude-overlap-with``.
"""

from __future__ import annotations

import json
import os

import click

from .overlap import (
    DEFAULT_MAX_DHASH_DISTANCE,
    DEFAULT_MAX_DISTANCE,
    HashSet,
    OverlapError,
    find_overlaps,
    hash_benchmark,
    hash_dataset_sources,
    hash_folder,
    overlapping_sources,
    read_exclude_list,
)

__all__ = ["overlap_command", "overlapping_sources", "read_exclude_list"]

PAIRS_FORMAT = "spatial-ssrl-overlap/1"


def _n(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _skips(hs: HashSet) -> str:
    counts = hs.skip_counts()
    if not counts:
        return ""
    return f"; {len(hs.skipped)} skipped ({', '.join(f'{k}: {v}' for k, v in counts.items())})"


def _pairs_document(pairs, train: HashSet, bench: HashSet, args: dict) -> dict:
    return {
        "format": PAIRS_FORMAT,
        **args,
        "num_pairs": len(pairs),
        "num_train_sources": len(overlapping_sources(pairs)),
        "num_bench_images": len({p.bench for p in pairs}),
        "train_hashed": len(train),
        "bench_hashed": len(bench),
        "train_skipped": [{"name": n, "reason": r} for n, r in train.skipped],
        "bench_skipped": [{"name": n, "reason": r} for n, r in bench.skipped],
        "pairs": [p.to_dict() for p in pairs],
    }


@click.command("overlap")
@click.option("--train", "train_dataset", type=click.Path(), default=None, metavar="DATASET",
              help="A dataset written by `ssrl generate`: its source images (each distinct file once; "
                   "procedural scenes left out) are the training side.")
@click.option("--train-images", type=click.Path(), default=None, metavar="FOLDER",
              help="Or a folder of training images (searched recursively), e.g. the --input of a "
                   "dataset not generated yet.")
@click.option("--bench", "bench_name", default=None, metavar="NAME",
              help="Benchmark name (as `ssrl eval` knows it); needs --bench-path.")
@click.option("--bench-path", type=click.Path(), default=None, metavar="PATH",
              help="The benchmark's files, as its loader expects them.")
@click.option("--bench-images", type=click.Path(), default=None, metavar="FOLDER",
              help="Or a folder of benchmark images (searched recursively).")
@click.option("--max-distance", default=DEFAULT_MAX_DISTANCE, show_default=True, type=click.IntRange(0, 64),
              help="Largest pHash Hamming distance (of 64 bits) reported.")
@click.option("--max-dhash-distance", default=DEFAULT_MAX_DHASH_DISTANCE, show_default=True,
              type=click.IntRange(0, 64), help="Largest difference-hash distance a pair must also be within.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None, metavar="PAIRS.json",
              help="Write the pairs (and what was skipped) as JSON; `ssrl generate "
                   "--exclude-overlap-with` reads it.")
@click.option("--overwrite", is_flag=True, help="Let --out replace a file that an earlier overlap did not write.")
@click.option("--workers", "-w", default=None, type=click.IntRange(min=1),
              help="Processes that decode images (default: the CPU count, at most 8).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the count line.")
def overlap_command(train_dataset, train_images, bench_name, bench_path, bench_images, max_distance,
                    max_dhash_distance, out_path, overwrite, workers, quiet) -> None:
    """Find benchmark images that are near duplicates of training sources.

    Both sides are hashed (64-bit DCT pHash and difference hash; resized and re-encoded
    copies stay within a few bits). Each pair within both distances is printed as its
    pHash distance, the training source and the benchmark item (<id>#<k> for the k-th image
    of an item with several), then a count."""
    if (train_dataset is None) == (train_images is None):
        raise click.UsageError("give one of --train DATASET or --train-images FOLDER")
    if (bench_name is None) == (bench_images is None):
        raise click.UsageError("give one of --bench NAME (with --bench-path) or --bench-images FOLDER")
    if bench_name is not None and bench_path is None:
        raise click.UsageError("--bench needs --bench-path PATH (the benchmark's files)")
    if bench_path is not None and bench_name is None:
        raise click.UsageError("--bench-path goes with --bench NAME")
    if workers is None:
        workers = max(1, min(8, os.cpu_count() or 1))
    from ..outfiles import OutFileError, check_out_file, write_out_file

    # a pairs file of ours starts with its format key
    out_rules = {"markers": [f'"format": "{PAIRS_FORMAT}"'],
                 "overwrite": overwrite, "datasets": [train_dataset] if train_dataset else [],
                 "inputs": [bench_path] if bench_path else []}
    if out_path:
        try:
            check_out_file(out_path, **out_rules)
        except OutFileError as exc:
            raise click.ClickException(str(exc)) from None

    from ..readers import DatasetError
    from .base import BenchmarkError

    try:
        if train_dataset is not None:
            train = hash_dataset_sources(train_dataset, workers=workers, progress=not quiet)
            train_label = f"dataset {train_dataset}"
        else:
            train = hash_folder(train_images, workers=workers, progress=not quiet)
            train_label = f"folder {train_images}"
        if bench_name is not None:
            bench = hash_benchmark(bench_name, bench_path, workers=workers, progress=not quiet)
            bench_label = f"benchmark {bench_name} ({bench_path})"
        else:
            bench = hash_folder(bench_images, workers=workers, progress=not quiet)
            bench_label = f"folder {bench_images}"
    except (DatasetError, BenchmarkError, OverlapError) as exc:
        raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from None

    if not quiet:
        click.echo(f"training: {_n(len(train), 'image')} hashed from {train_label}{_skips(train)}")
        click.echo(f"benchmark: {_n(len(bench), 'image')} hashed from {bench_label}{_skips(bench)}")
    pairs = find_overlaps(train, bench, max_distance=max_distance, max_dhash_distance=max_dhash_distance)
    if not quiet:
        for p in pairs:
            click.echo(f"{p.distance:3d}  {p.train}  ~  {p.bench}  (dhash {p.dhash_distance})")
    n_src = len(overlapping_sources(pairs))
    n_bench = len({p.bench for p in pairs})
    click.echo(f"{_n(len(pairs), 'overlapping pair')}: {_n(n_src, 'training source')}, "
               f"{_n(n_bench, 'benchmark image')} (pHash distance <= {max_distance}, dhash <= {max_dhash_distance})")
    if out_path:
        args = {"train": train_dataset or train_images, "bench": bench_name or bench_images,
                "bench_path": bench_path, "max_distance": max_distance, "max_dhash_distance": max_dhash_distance}
        data = json.dumps(_pairs_document(pairs, train, bench, args), indent=1) + "\n"
        try:
            write_out_file(out_path, data.encode(), **out_rules)
        except OutFileError as exc:
            raise click.ClickException(str(exc)) from None
        if not quiet:
            click.echo(f"pairs written to {out_path}")
