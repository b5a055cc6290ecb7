"""The ``ssrl`` command line."""

from __future__ import annotations

import json
import os
import sys

import click

from . import __version__
from .cliutil import dataset_option, pick_dataset
from .interrupt import exit_interrupted

OUTPUT_ENTRIES = (
    "data", "images", "manifest.json", "train.jsonl", "dataset_info.json", "format_prompt.jinja",
)


def _prepare_out_dir(out: str, overwrite: bool, fmt: str = "canonical", resume: bool = False):
    """Check --out and open a staging folder in it (see ``engine.outdir``): nothing in OUT is
    touched until the run has finished, and then only files this program wrote."""
    from .engine.outdir import OutDirError, Staging

    try:
        return Staging(out, fmt, overwrite, resume=resume)
    except OutDirError as exc:
        raise click.UsageError(str(exc)) from None


def _no_samples_reason(m: dict) -> str:
    parts = []
    if m.get("skips"):
        every = "every input was skipped" if not (m.get("sources") or {}).get("used") else "skipped"
        parts.append(f"{every} (" + ", ".join(f"{k} {v}" for k, v in m["skips"].items()) + ")")
    if m.get("rejections"):
        parts.append("rejected draws: " + ", ".join(f"{k} {v}" for k, v in m["rejections"].items()))
    if not parts and m.get("unfilled"):
        parts.append("could not fill: " + ", ".join(f"{k} {v}" for k, v in m["unfilled"].items()))
    return "; ".join(parts) or "no input gave a usable sample"


def _os_error_text(exc: OSError) -> str:
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return f"{exc.strerror or exc}{where}"


class _Commands(click.Group):
    """The ``ssrl`` group: Ctrl-C in any command that does not handle it itself leaves with
    status 130 and one line, instead of click's "Aborted!" and status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            exit_interrupted()


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="ssrl")
def main() -> None:
    """Spatial-SSRL: self-supervised spatial pretext tasks for vision-language models."""


@main.command()
@click.option("--input", "-i", "inputs", multiple=True, metavar="PATH",
              help="Image folder (searched recursively; RGB-D pairs found by DIODE, MegaDepth, NYU and "
                   "disparity naming), image file, list file (.txt, one path per line) or RGB-D manifest "
                   "(.jsonl). Repeatable. Default: the built-in photos, Middlebury pair and procedural scenes.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--num", "-n", default=100, show_default=True, type=click.IntRange(min=1),
              help="Number of samples to write.")
@click.option("--tasks", "-t", "tasks_spec", default=None, metavar="SPEC",
              help="Comma list of task[:variant][=weight], e.g. 'shuffle,flip' or 'shuffle=0.5,crop=0.5' "
                   "or 'shuffle:1x3=1,crop=1'. Default: the paper's five tasks, those the inputs allow, in the "
                   "paper's proportions. 'all': those five and the tasks beyond the paper, in equal shares "
                   "(ssrl tasks lists them).")
@click.option("--seed", default=0, show_default=True, type=int, help="Run seed.")
@click.option("--workers", "-w", default=None, type=click.IntRange(min=1),
              help="Worker processes (default: the CPU count).")
@click.option("--format", "-f", "fmt", default="canonical", show_default=True,
              type=click.Choice(["canonical", "trl", "easyr1", "verl", "llamafactory"]),
              help="Output format.")
@click.option("--strict", is_flag=True, help="Stop at the first unusable input file instead of skipping it.")
@click.option("--min-side", default=112, show_default=True, type=click.IntRange(min=16),
              help="Skip images whose shorter side is smaller (pixels).")
@click.option("--max-pixels", default=100_000_000, show_default=True, type=click.IntRange(min=1),
              help="Skip files whose header claims more pixels (decompression-bomb guard).")
@click.option("--resize-max-pixels", default=4_194_304, show_default=True, type=click.IntRange(min=0),
              help="Downscale larger images to this many pixels (0 keeps every image's own size).")
@click.option("--prompt-set", default="paper", show_default=True, type=click.Choice(["paper"]),
              help="Question templates.")
@click.option("--max-attempts", default=12, show_default=True, type=click.IntRange(min=1),
              help="Random draws per sample before an ambiguous source/task pair is given up.")
@click.option("--image-format", default="auto", show_default=True, type=click.Choice(["auto", "png", "jpeg"]),
              help="Image encoding: auto = PNG (lossless) for shuffle/flip/crop, whose answers are checked "
                   "pixel for pixel, JPEG for depth/position.")
@click.option("--jpeg-quality", default=95, show_default=True, type=click.IntRange(1, 100), help="JPEG quality.")
@click.option("--facing-weights", default=None, type=click.Choice(["uniform", "public"]),
              help="position: how often the imagined camera faces left/right/toward/away: uniform as in "
                   "the paper (default) or the public code's 30/30/30/10.")
@click.option("--absolute-thresholds", is_flag=True,
              help="position, image-plane mode: use 150 px as is instead of 150 px per 1600 px of width.")
@click.option("--shard-rows", default=1000, show_default=True, type=click.IntRange(min=1),
              help="The most rows a parquet shard holds (a shard is a batch's part: see --batch-samples).")
@click.option("--batch-samples", default=None, type=click.IntRange(min=1), metavar="N",
              help="Samples a batch holds at most: the work a worker process or Ray task does at a time and "
                   "writes as one shard. Default: --num / 64, at least 64, at most --shard-rows. The files depend "
                   "on it (and on the other options), never on --workers or --engine.")
@click.option("--exclude-overlap-with", "exclude_overlap", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Leave out the source images listed here: a pairs file of `ssrl overlap --out` (its train side) "
                   "or a text file of paths, one per line (benchmark near-duplicates).")
@click.option("--overwrite", is_flag=True, help="Replace a dataset already in --out.")
@click.option("--resume", is_flag=True,
              help="Continue a run in --out that was killed, interrupted or failed, after its last finished "
                   "batch; give the same inputs and options (the worker count and the engine may change). "
                   "The result equals an uninterrupted run's.")
@click.option("--engine", default="local", show_default=True, type=click.Choice(["local", "ray"]),
              help="Where the batches run: local worker processes, or Ray Data (a local Ray, or the "
                   "cluster at --ray-address; needs the ray extra). Same seed, inputs and options, same files.")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="--engine ray: the Ray cluster to run on (auto, HOST:PORT or ray://HOST:PORT); default: "
                   "start a local Ray with --workers CPUs. Every node writes into --out, so on several "
                   "machines --out must be on a file system they all share.")
@click.option("--ray-batch-samples", default=None, type=click.IntRange(min=1), metavar="N", hidden=True,
              help="The former name of --batch-samples.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
def generate(**kwargs):
    """Generate a pretext-task dataset from images."""
    try:
        with _engine_session(kwargs):
            _generate(**kwargs)
    except KeyboardInterrupt:  # before the run started (discovery, imports) or after it
        click.echo("\ninterrupted; no dataset was written", err=True)
        exit_interrupted()


def _finished_already(out: str, num: int, seed: int, fmt: str, mix) -> bool:
    """``--resume`` on a dataset that finished: nothing to do when it was made with these
    settings (said in a line, exit 0: a job script resuming after each preemption must not
    fail once the work is done); made with others, a one-line error. False when OUT holds an
    interrupted run (or no dataset), which ``--resume`` goes on with."""
    from .engine.journal import read_journal
    from .engine.outdir import RUN_DIR, read_ownership

    if not os.path.isdir(out) or not read_ownership(out).manifest_ours:
        return False
    staging = os.path.join(out, RUN_DIR)
    if os.path.isdir(staging) and read_journal(staging).resumable:
        return False
    try:
        with open(os.path.join(out, "manifest.json"), encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        return False
    planned = [[e.task, e.variant, float(e.weight)] for e in mix]
    made = [[e.get("task"), e.get("variant"), float(e.get("weight", 0))] for e in manifest.get("mix") or []]
    diffs = [f"{name} {was} (now {now})" for name, was, now in (
        ("--num", manifest.get("num_requested"), num), ("--seed", manifest.get("seed"), seed),
        ("--format", manifest.get("format"), fmt)) if was != now]
    if made != planned:
        diffs.append("another --tasks mix")
    if diffs:
        raise click.ClickException(f"--resume: {out} holds a finished dataset made with {', '.join(diffs)}; "
                                   "pass --overwrite to replace it or choose another --out")
    click.echo(f"--resume: {out} already holds this finished dataset ({manifest.get('num_written')} samples); "
               "nothing to do")
    return True


def _generate(inputs, out, num, tasks_spec, seed, workers, fmt, strict, min_side, max_pixels,
              resize_max_pixels, prompt_set, max_attempts, image_format, jpeg_quality, facing_weights,
              absolute_thresholds, shard_rows, batch_samples, exclude_overlap, overwrite, resume, engine,
              ray_address, ray_batch_samples, quiet):
    from .engine import (
        GenerateConfig,
        MixError,
        StrictModeError,
        parse_mix,
        run_generation,
    )
    from .sources import LoadOptions, default_refs, discover_rgbd
    from .sources.files import InputError

    try:
        if inputs:
            refs, ignored = discover_rgbd(list(inputs))
        else:
            refs, ignored = default_refs(), {}
    except InputError as exc:
        raise click.BadParameter(str(exc), param_hint="--input") from None
    if exclude_overlap:
        refs, dropped = _exclude_overlapping(refs, exclude_overlap)
        if dropped:
            ignored = ignored if hasattr(ignored, "details") else dict(ignored)
            ignored["excluded_overlap"] = ignored.get("excluded_overlap", 0) + dropped
    if not refs:
        raise click.BadParameter("no image files found in the given inputs", param_hint="--input")
    from .engine.run import DEPTH_KINDS

    with_depth = any(r.kind in DEPTH_KINDS for r in refs)  # (a video has no depth)
    try:
        mix = parse_mix(tasks_spec, with_depth=with_depth)
    except MixError as exc:
        raise click.BadParameter(str(exc), param_hint="--tasks") from None
    needs_depth = sorted({e.task for e in mix if _requires_depth(e.task)})
    if needs_depth and not with_depth:
        raise click.BadParameter(
            f"{', '.join(needs_depth)} need RGB-D inputs (an image with a depth file); none were found",
            param_hint="--tasks",
        )
    if resume and not overwrite and _finished_already(out, num, seed, fmt, mix):
        return
    staging = _prepare_out_dir(out, overwrite, fmt, resume)
    kept_old = "; the dataset already in --out is unchanged" if staging.replaces else ""

    config = GenerateConfig(
        num=num, seed=seed, mix=mix, format=fmt, workers=workers or _usable_cpus(), strict=strict,
        prompt_set=prompt_set, max_attempts=max_attempts, rows_per_shard=shard_rows,
        batch_samples=batch_samples or ray_batch_samples,
        image_format=image_format, jpeg_quality=jpeg_quality,
        task_options=_position_options(facing_weights, absolute_thresholds),
        load=LoadOptions(min_side=min_side, max_pixels=max_pixels, resize_max_pixels=resize_max_pixels or None),
    )
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=num, unit="sample", desc="generate", file=sys.stderr, dynamic_ncols=True)
    committed = False
    kept_for_resume = False
    from .engine.journal import ResumeError
    from .engine.run import resumable_rows

    def keep_note() -> str:
        """Keep an interrupted run's durable rows for --resume; the note that says so."""
        nonlocal kept_for_resume
        rows = resumable_rows(staging.path)
        if not rows:
            return ""
        kept_for_resume = True
        staging.keep()
        return f"; {rows} finished samples are kept: run the same command with --resume to continue"

    run_inputs = [os.path.abspath(p) for p in inputs] or ["<built-in photos>"]
    try:
        try:
            from .engine.ray_engine import RayEngineError

            try:
                result = run_generation(
                    refs, staging.path, config, progress=bar.update if bar else None, inputs=run_inputs,
                    extra_skips=ignored, extra_skipped_files=getattr(ignored, "details", None),
                    resume=bool(staging.resumable_rows), engine=engine, ray_address=ray_address,
                )
            except RayEngineError as exc:
                raise click.ClickException(f"{exc}; no dataset was written{kept_old}{keep_note()}") from None
        finally:
            if bar:
                bar.close()
        if result.manifest["num_written"] == 0:
            raise click.ClickException(
                f"no samples were written: {_no_samples_reason(result.manifest)}{kept_old}"
            )
        from .engine.outdir import OutDirError
        from .writers.card import CARD, write_card

        card_notes: list[str] = []

        def card() -> None:  # written before the folder's lock is let go: no other run in between
            try:
                if not write_card(out, result.manifest):
                    card_notes.append(f"kept {os.path.join(out, CARD)} (not written by ssrl): no dataset card written")
            except OSError as exc:  # the dataset is in place; the card is a courtesy
                card_notes.append(f"could not write the dataset card {os.path.join(out, CARD)}: {_os_error_text(exc)}")

        try:
            kept = staging.commit(finish=card)
        except OutDirError as exc:
            raise click.ClickException(f"{exc}{kept_old}") from None
        committed = True
    except StrictModeError as exc:
        raise click.ClickException(f"--strict: unusable input {exc.path}: {exc.reason}"
                                   + (f" ({exc.detail})" if exc.detail else "") + kept_old) from None
    except ResumeError as exc:
        staging.keep()
        kept_for_resume = True
        raise click.ClickException(f"cannot resume: {exc}") from None
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; no dataset was written{kept_old}{keep_note()}", err=True)
        exit_interrupted()
    except OSError as exc:
        raise click.ClickException(
            f"could not write the dataset to {out}: {_os_error_text(exc)}; no dataset was written{kept_old}"
            f"{keep_note()}"
        ) from None
    except click.ClickException:
        raise
    except Exception:  # a bug, or a Ray failure: its traceback follows; finished samples stay
        note = keep_note()
        if note:
            click.echo(f"the run failed; no dataset was written{kept_old}{note}", err=True)
        raise
    finally:
        if not committed and not kept_for_resume:
            staging.discard()
    for path in kept:
        click.echo(f"kept {path} (not written by ssrl)", err=True)
    for note in card_notes:
        click.echo(note, err=True)
    if not quiet:
        _print_summary(result.manifest, out)


def _engine_session(kw: dict):
    """--engine ray: check the options and connect to Ray before anything is read or written
    (a one-line error when Ray is missing or the cluster unreachable); the session, when it
    was started here, ends with the command. --engine local: nothing."""
    import contextlib

    if kw["engine"] != "ray":
        if kw["ray_address"]:
            raise click.UsageError("--ray-address needs --engine ray")
        return contextlib.nullcontext()
    from .engine.ray_engine import RayEngineError, import_ray, session

    stack = contextlib.ExitStack()
    try:
        import_ray()
        stack.enter_context(session(kw["ray_address"], kw["workers"] or _usable_cpus()))
    except RayEngineError as exc:
        raise click.ClickException(str(exc)) from None
    return stack


def _exclude_overlapping(refs, path: str):
    """Drop the sources a contamination list names; returns (kept refs, number dropped)."""
    from .eval.overlap_cli import OverlapError, read_exclude_list

    try:
        excluded = read_exclude_list(path)
    except OverlapError as exc:
        raise click.BadParameter(str(exc), param_hint="--exclude-overlap-with") from None
    kept = [r for r in refs if r.kind == "procedural" or os.path.abspath(r.path) not in excluded]
    return kept, len(refs) - len(kept)


def _usable_cpus() -> int:
    """CPUs this process may run on (respects affinity masks, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _position_options(facing_weights: str | None, absolute_thresholds: bool) -> dict:
    opts: dict = {}
    if facing_weights:
        opts["facing_weights"] = facing_weights
    if absolute_thresholds:
        opts["absolute_thresholds"] = True
    return {"position": opts} if opts else {}


def _requires_depth(task: str) -> bool:
    from .tasks import get_task_class

    return bool(getattr(get_task_class(task), "requires_depth", False))


def _print_summary(m: dict, out: str) -> None:
    t = m["timing"]
    click.echo(f"wrote {m['num_written']} of {m['num_requested']} samples to {out} "
               f"({m['format']}) in {t['seconds']:.1f} s")
    for task, variants in m["counts"].items():
        parts = ", ".join(f"{v} {n}" for v, n in variants.items())
        click.echo(f"  {task:<8} {sum(variants.values()):>6}  ({parts})")
    if m["rejections"]:
        click.echo("  rejected draws: " + ", ".join(f"{k} {v}" for k, v in m["rejections"].items()))
    if m["skips"]:
        click.echo("  skipped: " + ", ".join(f"{k} {v}" for k, v in m["skips"].items()))
    if m["unfilled"]:
        click.echo("  could not fill: " + ", ".join(f"{k} {v}" for k, v in m["unfilled"].items()), err=True)


@main.command("tasks")
def list_tasks():
    """List the registered pretext tasks, their paper variants and their difficulty levels."""
    from .tasks import available_tasks
    from .tasks.levels import paper_level, task_levels

    for name, cls in available_tasks().items():
        counts = cls.paper_counts
        variants = ", ".join(f"{v} ({c:g})" for v, c in counts.items())
        if not counts:  # a task outside the paper: its variants, and how it joins a mix
            variants = ", ".join(cls.variants()) + f" (not in the default mix: --tasks {name} or --tasks all)"
        click.echo(f"{name:<8} answer_type={cls.answer_type:<12} variants: {variants}")
        paper = paper_level(name) if counts else None
        names = [f"[{lv.name}]" if lv.name == paper else lv.name for lv in task_levels(name)]
        marked = " ([paper])" if paper else ""
        click.echo(f"{'':<8} levels, easy to hard{marked}: {' < '.join(names)}")
    from .engine.mix import PRESETS

    registered = available_tasks()
    for preset, members in PRESETS.items():
        click.echo(f"preset --tasks {preset}: {', '.join(t for t in members if t in registered)} (equal shares)")


@main.command()
@dataset_option(exists=True)
@click.option("--out", "-o", default=None, type=click.Path(dir_okay=False),
              help="HTML file to write (default: DATASET/preview.html).")
@click.option("--num", "-n", default=50, show_default=True, type=click.IntRange(min=1),
              help="Samples to show, spread over the tasks.")
@click.option("--seed", default=0, show_default=True, type=int, help="Which samples are picked.")
@click.option("--max-side", default=512, show_default=True, type=click.IntRange(min=0), metavar="PX",
              help="Images whose longer side exceeds PX pixels are shown downscaled (embedded as JPEG) "
                   "to keep the page small; captions still give the stored size. 0 embeds every "
                   "image's original bytes.")
@click.option("--overwrite", is_flag=True, help="Let --out replace a file that an earlier preview did not write.")
def preview(dataset, data_option, out, num, seed, max_side, overwrite):
    """Write one self-contained HTML page showing samples of a dataset."""
    dataset = pick_dataset(dataset, data_option)
    from .preview import PreviewError, write_preview

    out = out or os.path.join(dataset, "preview.html")
    try:
        shown = write_preview(dataset, out, num=num, seed=seed, max_side=max_side, overwrite=overwrite)
    except PreviewError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {out} ({shown} samples)")


def _register_commands() -> None:
    from .demo.cli import demo_command
    from .eval.cli import eval_command, infer_command
    from .eval.overlap_cli import overlap_command
    from .reward.cli import score_command
    from .tiny.cli import tiny_model_command
    from .training.cli import (
        coldstart_command,
        pixel_bounds_command,
        split_command,
        stats_command,
        train_group,
    )
    from .validate.cli import validate_command

    main.add_command(score_command, name="score")
    main.add_command(eval_command, name="eval")
    main.add_command(infer_command, name="infer")
    main.add_command(overlap_command, name="overlap")
    main.add_command(validate_command, name="validate")
    main.add_command(split_command, name="split")
    main.add_command(coldstart_command, name="coldstart")
    main.add_command(stats_command, name="stats")
    main.add_command(pixel_bounds_command, name="pixel-bounds")
    main.add_command(train_group, name="train")
    main.add_command(tiny_model_command, name="tiny-model")
    main.add_command(demo_command, name="demo")


_register_commands()


def entry() -> None:
    """The ``ssrl`` program."""
    from . import interrupt

    interrupt.AS_PROGRAM = True
    main()


if __name__ == "__main__":
    entry()
