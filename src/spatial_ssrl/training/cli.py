"""``ssrl split``, ``ssrl coldstart``, ``ssrl train sft`` and ``ssrl train grpo``."""

from __future__ import annotations

import os

import click

from ..cliutil import dataset_option, pick_dataset
from ..interrupt import exit_interrupted

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
TRAIN_EXTRA_HINT = "training needs the train extra: pip install 'spatial-ssrl[train]'"


def shipped_configs(folder: str = CONFIG_DIR) -> dict[str, str]:
    """name -> path of the YAML configs shipped with the package (training configs; with
    ``folder`` another folder of them, such as the accelerate configs)."""
    if not os.path.isdir(folder):
        return {}
    return {n[:-5]: os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".yaml")}


def resolve_config(value: str | None) -> str | None:
    """A config file path, or the name of a shipped config (``tiny``, ``qwen2_5_vl_3b_grpo``...)."""
    if value is None or os.path.exists(value):
        return value
    configs = shipped_configs()
    name = value.removesuffix(".yaml")
    if name in configs:
        return configs[name]
    raise click.BadParameter(f"{value} is neither a file nor a shipped config ({', '.join(configs)})",
                             param_hint="--config")


@click.command("split", context_settings={"help_option_names": ["-h", "--help"]})
@dataset_option()
@click.option("--test-fraction", default=0.05, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Share of source images held out for validation and `ssrl eval` (split 'test').")
@click.option("--coldstart-fraction", default=0.0, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Share of source images kept for the SFT cold start (split 'coldstart'), never seen by GRPO.")
@click.option("--seed", default=0, show_default=True, type=int, help="Which sources go where.")
@click.option("--shard-rows", default=1000, show_default=True, type=click.IntRange(min=1), help="Rows per shard.")
def split_command(dataset, data_option, test_fraction, coldstart_fraction, seed, shard_rows):
    """Split a dataset in place by source image into train / test (/ coldstart).

    No source image is in two splits. Shards become data/<split>-XXXXX-of-YYYYY.parquet
    (llamafactory: <split>.jsonl), which datasets.load_dataset reads as splits."""
    dataset = pick_dataset(dataset, data_option)
    from .split import SplitError, split_dataset

    try:
        result = split_dataset(dataset, test_fraction, coldstart_fraction, seed=seed, rows_per_shard=shard_rows)
    except SplitError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt as exc:
        click.echo("\n" + getattr(exc, "message", "interrupted; the dataset is as it was"), err=True)
        exit_interrupted()
    for name in sorted(result.rows):
        click.echo(f"{name:<10} {result.rows[name]:>7} samples from {result.sources.get(name, 0):>6} source images")


@click.command("coldstart", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "-d", required=True, type=click.Path(file_okay=False), help="Dataset folder.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="New folder to write.")
@click.option("--num", "-n", default=3600, show_default=True, type=click.IntRange(min=1),
              help="Samples, spread evenly over tasks and variants.")
@click.option("--split", "split_name", default="coldstart", show_default=True,
              help="Split to draw from (`ssrl split --coldstart-fraction` makes 'coldstart').")
@click.option("--seed", default=0, show_default=True, type=int, help="Which samples are picked.")
@click.option("--overwrite", is_flag=True,
              help="Replace a cold-start folder this command wrote in --out (once the new one is complete).")
def coldstart_command(data, out, num, split_name, seed, overwrite):
    """Write SFT cold-start data: question + format suffix, a short <think> rationale, the boxed answer.

    OUT/data/*.parquet is a TRL SFT dataset (messages + images), OUT/llamafactory/ the
    same in LLaMA-Factory's layout (dataset spatial_ssrl_coldstart)."""
    from .coldstart import ColdStartError, make_coldstart

    try:
        manifest = make_coldstart(data, out, num=num, split=split_name, seed=seed, overwrite=overwrite)
    except ColdStartError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted; nothing was written", err=True)
        exit_interrupted()
    if split_name == "train":
        click.echo("note: drawn from a train split; keep these source images out of the GRPO data", err=True)
    written, skipped = manifest["num_written"], manifest.get("skipped_undecodable_image") or []
    click.echo(f"wrote {written} cold-start samples to {out}")
    if skipped:
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        click.echo(f"skipped {len(skipped)} samples with an undecodable image: {', '.join(skipped[:3])}{more}", err=True)
    if written < num:
        why = [f"the {split_name} split has {manifest.get('available', written)} samples"]
        if skipped:
            why.append(f"{len(skipped)} had an undecodable image")
        click.echo(f"note: {num} were asked for and {written} written: {'; '.join(why)}", err=True)
    for task, variants in manifest["counts"].items():
        click.echo(f"  {task:<8} {sum(variants.values()):>5}  (" + ", ".join(f"{v} {n}" for v, n in variants.items()) + ")")


@click.group("train", context_settings={"help_option_names": ["-h", "--help"]})
def train_group():
    """Train a vision-language model: SFT cold start, then GRPO (TRL)."""


def _common(f):
    """The options every training command takes, listed in --help in this order."""
    options = [
        click.option("--config", "-c", "config", default=None, show_default="the built-in defaults, docs/config.md",
                     help="YAML config (TRL config fields + ours), or a shipped config name (`ssrl train configs`)."),
        click.option("--model", "-m", default=None, show_default="the config's",
                     help="Checkpoint folder or hub id."),
        click.option("--data", "-d", default=None, show_default="the config's", help="Dataset folder."),
        click.option("--out", "-o", "output", default=None, show_default="the config's",
                     help="Run folder (checkpoints, logs, final model)."),
        click.option("--output", "output_old", default=None, hidden=True),  # the old spelling of --out
        click.option("--max-steps", default=None, type=click.IntRange(min=1), show_default="the config's",
                     help="Stop after this many steps."),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its last complete checkpoint."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Override any config key (YAML value), e.g. --set beta=0.02. Repeatable."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _out(output, output_old):
    if output and output_old and output != output_old:
        raise click.UsageError("--out and --output (its old spelling) name different folders")
    return output or output_old


def _run(kind: str, config, model, data, output, max_steps, resume, sets, **extra) -> None:
    try:
        from .config import ConfigError, build_config
    except ImportError:  # pragma: no cover - PyYAML missing
        raise click.ClickException(TRAIN_EXTRA_HINT) from None
    try:
        import torch  # noqa: F401
        import trl  # noqa: F401
    except ImportError:
        raise click.ClickException(TRAIN_EXTRA_HINT) from None
    import warnings

    from ..models import ModelError
    from .data import DataError
    from .grpo import ColdStartRequired
    from .online import OnlineError
    from .runs import RunFolderError, last_checkpoint

    # transformers 5 renames gradient_checkpointing; TRL still sets the old name. Not the user's doing.
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning)
    overrides = {"model": model, "data": data, "output": output, "max_steps": max_steps,
                 "online": extra.get("online") or None, "curriculum": extra.get("curriculum")}
    try:
        cfg = build_config(kind, resolve_config(config), overrides, sets)
        if kind == "sft":
            from .sft import run_sft

            outcome = run_sft(cfg, resume=resume)
        else:
            from .grpo import run_grpo

            outcome = run_grpo(cfg, resume=resume, no_coldstart=extra.get("no_coldstart", False))
    except (ConfigError, DataError, ModelError, RunFolderError, ColdStartRequired, OnlineError) as exc:
        raise click.ClickException(str(exc)) from None
    except (OSError, RuntimeError) as exc:  # disk full or a read-only folder while saving
        out = cfg.opts["output"] if "cfg" in locals() else output
        why = _write_failure(exc, out)
        if why is None:
            raise
        last = last_checkpoint(out) if out and os.path.isdir(out) else None
        kept = f"; last complete checkpoint: {last} (continue with --resume)" if last else ""
        raise click.ClickException(f"{why}{kept}") from None
    except KeyboardInterrupt:
        out = cfg.opts["output"] if "cfg" in locals() else output
        last = last_checkpoint(out) if out else None
        where = f"last complete checkpoint: {last} (continue with --resume)" if last else "no checkpoint was completed"
        click.echo(f"\ninterrupted; {where}", err=True)
        exit_interrupted()
    from .runs import is_main_process

    if not is_main_process():
        return  # the main process of a launch reports for the run
    if outcome.already_complete:
        click.echo(f"{kind}: the run in {outcome.output} is already complete ({outcome.steps} steps); nothing to do")
        return
    resumed = f", resumed from {os.path.basename(outcome.resumed_from)}" if outcome.resumed_from else ""
    click.echo(f"{kind}: {outcome.steps} steps{resumed}; final model in {outcome.final_model}")


def _write_failure(exc: BaseException, out: str | None) -> str | None:
    """A one-line reason when ``exc`` is a failed write (an OSError, or torch.save's
    RuntimeError from its zip writer), else None (a bug: the traceback is worth having)."""
    if isinstance(exc, OSError):
        return f"cannot write {exc.filename or out}: {exc.strerror or exc}"
    text = str(exc)
    if "PytorchStreamWriter" not in text and "inline_container" not in text:
        return None
    free = getattr(exc, "ssrl_free_bytes", None)
    reason = "No space left on device" if free is not None and free < (1 << 20) else "torch.save failed"
    return f"cannot write a checkpoint in {out}: {reason}"


@train_group.command("sft")
@_common
def sft_command(config, model, data, output, output_old, max_steps, resume, sets):
    """SFT cold start (LoRA by default), merged into a plain checkpoint in --out."""
    _run("sft", config, model, data, _out(output, output_old), max_steps, resume, sets)


@train_group.command("grpo")
@_common
@click.option("--no-coldstart", is_flag=True, help="Allow a model that has not had the SFT cold start.")
@click.option("--online", is_flag=True,
              help="Generate the pretext samples while training (from online_inputs, default the built-in "
                   "inputs) instead of reading --data; needs --max-steps.")
@click.option("--curriculum", type=click.Choice(["fixed", "schedule", "adaptive"]), default=None,
              help="With --online: fixed = the paper's plan; schedule = one level up every "
                   "curriculum_schedule_every steps; adaptive = levels and task weights steered toward "
                   "curriculum_target pass rate. Default: fixed.")
def grpo_command(config, model, data, output, output_old, max_steps, resume, sets, no_coldstart, online,
                 curriculum):
    """GRPO with the verifiable reward (per-task accuracy logged)."""
    if curriculum and curriculum != "fixed" and not online and not any(s.startswith("online=") for s in sets):
        raise click.UsageError("--curriculum schedule/adaptive needs --online (levels apply to samples made live)")
    _run("grpo", config, model, data, _out(output, output_old), max_steps, resume, sets, no_coldstart=no_coldstart,
         online=online, curriculum=curriculum)


@train_group.command("configs")
def configs_command():
    """List the shipped configs: training configs (for -c) and accelerate configs (for
    `accelerate launch --config_file`)."""
    for name, path in shipped_configs().items():
        click.echo(f"{name:<28} {path}")
    for name, path in shipped_configs(os.path.join(CONFIG_DIR, "accelerate")).items():
        click.echo(f"{'accelerate/' + name:<28} {path}")


@click.command("pixel-bounds", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--min-pixels", type=click.IntRange(min=1), default=None, help="New smallest image area in pixels.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None, help="New largest image area in pixels.")
def pixel_bounds_command(folder, min_pixels, max_pixels):
    """Show, or set, the image pixel bounds a model folder's processor carries: what frameworks
    that read them from the folder (verl; EasyR1 and vLLM within their own settings) size
    images by. Training folders of ours keep their base model's bounds."""
    from ..models import ModelError, folder_pixel_bounds, set_folder_pixel_bounds

    if not os.path.isdir(folder):
        raise click.ClickException(f"{folder}: no such folder")
    try:
        before = folder_pixel_bounds(folder)
        if not before:
            raise ModelError(f"{folder} has no image processor settings (processor_config.json or "
                             "preprocessor_config.json): not a vision-language model folder")
        low = min_pixels if min_pixels is not None else min((b[0] for b in before.values() if b[0]), default=None)
        high = max_pixels if max_pixels is not None else max((b[1] for b in before.values() if b[1]), default=None)
        if (min_pixels or max_pixels) and low and high and low > high:
            raise ModelError(f"the smallest area {low} would be above the largest {high}")
        if min_pixels or max_pixels:
            set_folder_pixel_bounds(folder, min_pixels, max_pixels)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    for name, (lo, hi) in folder_pixel_bounds(folder).items():
        old = before.get(name)
        was = f" (was {old[0]} to {old[1]})" if old and old != (lo, hi) else ""
        click.echo(f"{name}: {lo} to {hi} pixels{was}")


@click.command("stats", context_settings={"help_option_names": ["-h", "--help"]})
@dataset_option()
@click.option("--model", "-m", required=True,
              help="The model you will train (checkpoint folder or hub id): its processor counts the tokens.")
@click.option("--split", "split_name", default="train", show_default=True, help="Which split to count.")
@click.option("--min-pixels", type=click.IntRange(min=1), default=None,
              help="Smallest image area in pixels, as the framework is set (default: the processor's own; "
                   "the paper's GRPO runs use 262144).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None,
              help="Largest image area in pixels, as the framework is set (default: the processor's own; "
                   "the paper's GRPO runs use 4194304).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def stats_command(dataset, data_option, model, split_name, min_pixels, max_pixels, as_json):
    """Prompt token lengths of a dataset (text and images through the model's processor) and
    the EasyR1, verl and LLaMA-Factory settings that keep every row whole."""
    dataset = pick_dataset(dataset, data_option)
    import json

    from ..readers import DatasetError, open_dataset

    try:
        reader = open_dataset(dataset)
        reader.files(split_name)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    if min_pixels and max_pixels and min_pixels > max_pixels:
        raise click.ClickException(f"--min-pixels {min_pixels} is above --max-pixels {max_pixels}")
    try:
        from ..models import ModelError, check_model_folder, load_processor
    except ImportError:
        raise click.ClickException(TRAIN_EXTRA_HINT) from None
    from .stats import report_lines, token_lengths

    try:
        check_model_folder(model)
        processor = load_processor(model, min_pixels, max_pixels)
        own = load_processor(model)  # its own bounds: EasyR1 and LLaMA-Factory scale images before it
        counted = token_lengths(reader, split_name, processor, min_pixels, max_pixels, own_processor=own)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        exit_interrupted()
    summary = counted.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo("\n".join(report_lines(summary)))
