"""``ssrl validate DATASET``: re-derive every answer from the source and the images."""

from __future__ import annotations

import os
import sys

import click

from ..cliutil import dataset_option, pick_dataset
from ..readers import DatasetError


@click.command("validate")
@dataset_option()
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False),
              help="Write the full report (per-sample results included) as JSON.")
@click.option("--overwrite", is_flag=True, help="Let --out replace a file that an earlier validate did not write.")
@click.option("--num", "-n", default=None, type=click.IntRange(min=1),
              help="Validate a seeded random sample of N records instead of all.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the --num sample.")
@click.option("--source-root", "source_roots", multiple=True, metavar="LABEL=DIR",
              help="Where an input root of the dataset lives now (its sources are stored as LABEL/path; "
                   "the manifest's source_roots say where they were). Repeatable.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def validate_command(dataset: str | None, data_option: str | None, out_path: str | None, overwrite: bool,
                     num: int | None, seed: int, source_roots: tuple[str, ...], quiet: bool) -> None:
    """Re-derive every sample's answer from its source image (or depth) and its rendered
    images, through code separate from the generator's, and re-check the ambiguity rules.
    Exits 1 when any sample fails."""
    dataset = pick_dataset(dataset, data_option)
    from ..outfiles import (
        OutFileError,
        check_out_file,
        json_marker,
        json_report,
        write_out_file,
    )
    from .runner import validate_dataset

    out_rules = {"markers": [json_marker("validate")], "overwrite": overwrite, "datasets": [dataset]}
    if out_path:
        try:
            check_out_file(out_path, **out_rules)
        except OutFileError as exc:
            raise click.ClickException(str(exc)) from None

    moved = {}
    for given in source_roots:
        label, sep, folder = given.partition("=")
        if not sep or not label or not folder:
            raise click.BadParameter(f"{given!r} is not LABEL=DIR", param_hint="--source-root")
        if not os.path.isdir(folder):
            raise click.BadParameter(f"{folder} is not a folder", param_hint="--source-root")
        moved[label] = os.path.abspath(folder)

    bar = None

    def on_total(n: int) -> None:
        nonlocal bar
        if not quiet:
            from tqdm import tqdm

            bar = tqdm(total=n, unit="sample", desc="validate", file=sys.stderr, dynamic_ncols=True)

    try:
        report = validate_dataset(dataset, num=num, seed=seed, on_total=on_total, source_roots=moved,
                                  progress=(lambda k: bar.update(k)) if not quiet else None)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if bar is not None:
            bar.close()
    click.echo(f"{report['dataset']} ({report['format']}): validated {report['validated']} of "
               f"{report['records']} records in {report['seconds']:.1f} s")
    click.echo(f"{'task':<10} {'checked':>8} {'passed':>8} {'failed':>8} {'n/a':>6} {'ms/sample':>10}")
    for task, t in report["tasks"].items():
        click.echo(f"{task:<10} {t['checked']:>8} {t['passed']:>8} {t['failed']:>8} {t['not_checkable']:>6} "
                   f"{t['ms_per_sample']:>10}")
        for reason, count in t["not_checkable_reasons"].items():
            click.echo(f"  not checkable ({count}): {reason}")
    for note in report["notes"]:
        click.echo(f"note: {note}")
    if report["failures"]:
        click.echo(f"{len(report['failures'])} failing sample(s):")
        for f in report["failures"]:
            click.echo(f"  {f['id']}: {f['reason']}")
    else:
        click.echo("all checked samples pass")
    if out_path:
        try:
            write_out_file(out_path, json_report("validate", report), **out_rules)
        except OutFileError as exc:
            raise click.ClickException(str(exc)) from None
    if report["failures"]:
        sys.exit(1)
