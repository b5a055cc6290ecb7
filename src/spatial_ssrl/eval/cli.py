"""``ssrl infer`` and ``ssrl eval`` with its subcommands.

``ssrl eval`` has one subcommand per job: ``dataset`` (held-out pretext accuracy on a dataset
of ours), ``benchmark`` (one spatial benchmark), ``suite`` (a named set of benchmarks),
``predictions`` (score responses made elsewhere), ``compare`` (results side by side),
``list`` and ``lmms-eval`` (general skills through lmms-eval). The flag form of earlier
releases (``ssrl eval --bench NAME ...``) still works for a release, with a note saying the
new spelling.
"""

from __future__ import annotations

import inspect
import os
import sys
from dataclasses import dataclass, field

import click

from ..interrupt import exit_interrupted
from .suites import SUITES

SETTINGS = {"help_option_names": ["-h", "--help"], "show_default": True}


def _parse_options(pairs: tuple[str, ...]) -> dict:
    import yaml

    out = {}
    for text in pairs:
        if "=" not in text:
            raise click.BadParameter(f"{text!r}: expected key=value", param_hint="--option")
        key, raw = text.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip().replace("-", "_")] = raw
    return out


# --- what is evaluated, and where the responses come from ----------------------------------

@dataclass
class Target:
    """A benchmark (``pretext`` for a dataset of ours) and its files (None: the Hub's copy)."""

    benchmark: str
    path: str | None
    options: dict = field(default_factory=dict)
    circular: bool = False
    path_hint: str = "--bench-path"


@dataclass
class Run:
    """How one evaluation runs: the responses' source (a backend, or a predictions file), the
    decoding, and the results folder."""

    out: str
    backend: object | None = None  # a backends.BackendSpec
    predictions: str | None = None
    decoding: object | None = None
    limit: int | None = None
    quiet: bool = False
    overwrite: bool = False


def _evaluate(target: Target, run: Run, echo=click.echo) -> dict:
    """Load the benchmark's items, get a response per item (generate, or read ``run.predictions``),
    score them by the official and the strict rule, write OUT/results.*, print a summary; the
    results. User errors are one-line ``ClickException``s."""
    from ..backends import BackendError, build
    from .base import BenchmarkError
    from .benchmarks import get_benchmark
    from .circular import base_items as circular_bases
    from .runner import (
        RESULT_FILES,
        EvalError,
        check_out_dir,
        clear_own,
        results,
        run_generation,
        write_results,
    )

    read = None
    if run.predictions:
        read = _read_predictions_file(run.predictions)
    try:
        if run.overwrite:
            clear_own(run.out)
        if run.predictions:
            check_out_dir(run.out, None, RESULT_FILES)  # before the benchmark loads
    except EvalError as exc:
        raise click.ClickException(str(exc)) from None
    options = dict(target.options)
    try:
        benchmark = get_benchmark(target.benchmark)
        path = target.path
        if not path:
            from .hub import fetch

            scores_only = bool(run.predictions) and "images" in inspect.signature(benchmark.load).parameters
            path = fetch(benchmark, questions_only=scores_only)  # one line when it cannot be had
        if not os.path.exists(path):
            raise click.BadParameter(f"{path} does not exist", param_hint=target.path_hint)
        generic_circular = target.circular and not benchmark.native_circular
        if target.circular and benchmark.native_circular:
            options["circular"] = True
        if generic_circular:
            options["circular_rotations"] = True  # recorded in eval_run.json; not a loader option
        load_kwargs = {k: v for k, v in options.items() if k != "circular_rotations"}
        if run.predictions and "images" in inspect.signature(benchmark.load).parameters:
            load_kwargs["images"] = False  # scoring reads no image
        items, skipped = benchmark.load(path, **load_kwargs)
    except (BenchmarkError, TypeError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    loaded_ids = [it.id for it in items]
    if run.limit:
        items = items[:run.limit]
    not_rotatable = 0
    if generic_circular:
        from .circular import expand

        items, not_rotatable = expand(items)
        if not_rotatable == len(circular_bases(items)):
            raise click.ClickException(f"--circular: no {benchmark.name} item lists its options as 'A. ...' lines "
                                       "with a letter answer, so none can be rotated")
    if not items:
        raise click.ClickException(f"{path}: no items to evaluate" + (f"; {_skip_note(skipped)}" if skipped else ""))
    decoding = run.decoding
    spec = run.backend
    model = getattr(spec, "model", None)
    run_info = {
        "benchmark": benchmark.name,
        "data": os.path.abspath(path),
        "model": os.path.abspath(model) if model and os.path.exists(model) else (model or getattr(spec, "api_model", None)),
        "backend": "predictions" if run.predictions else spec.kind,
        "decoding": vars(decoding).copy(),
        "prompt": {"format_suffix": decoding.format_prompt, "prompt_set": "paper"},
        "options": options,
    }
    try:
        if run.predictions:
            predictions, reading = _match(read, benchmark.name, items, loaded_ids, skipped, run.predictions)
            run_info["model"] = None
            run_info["predictions_file"] = os.path.abspath(run.predictions)
        else:
            try:
                generate = build(spec, decoding)
            except BackendError as exc:
                raise click.ClickException(str(exc)) from None
            bar = None
            if not run.quiet:
                from tqdm import tqdm

                bar = tqdm(total=len(items), unit="item", desc=benchmark.name, file=sys.stderr, dynamic_ncols=True)
            reading = {}
            try:
                predictions = run_generation(items, generate, run.out, decoding, run_info, progress=bar, reading=reading)
            except BackendError as exc:  # the model failed to load on first use
                raise click.ClickException(str(exc)) from None
            finally:
                if bar is not None:
                    bar.close()
            if reading.get("predictions_tail_repaired"):
                echo(f"note: cut a torn last line off {os.path.join(run.out, 'predictions.jsonl')} "
                     "(a run stopped mid-write) before continuing", err=True)
            _check_some_answered(items, predictions, run.out)
        res = results(benchmark, items, skipped, predictions, run_info, reading=reading)
        if not_rotatable:
            res.setdefault("metrics", {})["circular_not_rotatable"] = not_rotatable
        write_results(run.out, res)
    except EvalError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        echo(f"\ninterrupted; the predictions so far are in {os.path.join(run.out, 'predictions.jsonl')} "
             "(run the same command again to continue)", err=True)
        exit_interrupted()
    _summary(benchmark.name, res, skipped, run.out, echo)
    return res


def _summary(name: str, res: dict, skipped, out: str, echo) -> None:
    acc = res.get("accuracy")
    strict = "" if res.get("strict") is None else f" (strict {res['strict']:.2f}%)"
    echo(f"{name}: accuracy {acc:.2f}%{strict} over {res.get('n')} items" if acc is not None
         else f"{name}: no item scored")
    for cat, b in (res.get("per_category") or {}).items():
        a = b.get("accuracy")
        echo(f"  {cat:<28} {b.get('n', ''):>6}  {'-' if a is None else f'{a:.2f}'}")
    audit = res.get("letter_audit")
    if audit:
        echo("  right answers by letter: " + ", ".join(f"{k} {v:.0f}%" for k, v in audit["answer_letters"].items())
             + "; predictions: " + ", ".join(f"{k} {v:.0f}%" for k, v in audit["predicted_letters"].items()))
    if (res.get("metrics") or {}).get("circular_questions"):
        echo(f"  circular: {res['metrics']['circular']:.2f}% over {res['metrics']['circular_questions']} questions")
    notes = []
    if res.get("parse_failures"):
        notes.append(f"{res['parse_failures']} answers could not be read"
                     + (f" ({res.get('strict_parse_failures', 0)} by the strict rule)" if "strict" in res else ""))
    if skipped:
        notes.append(_skip_note(skipped))
    for key, what in (("malformed_prediction_lines", "malformed prediction lines"),
                      ("duplicate_prediction_ids", "duplicate prediction ids (first kept)")):
        if res.get(key):
            notes.append(f"{res[key]} {what}")
    if res["backend_errors"]["count"]:
        notes.append(f"{res['backend_errors']['count']} backend errors")
    if notes:
        echo("  " + "; ".join(notes))
    echo(f"results in {out}")


def _suite(suite: str, bench_root: str | None, run: Run, options: dict, circular: bool) -> None:
    """Each benchmark of ``suite`` evaluated as ``ssrl eval benchmark`` would, into
    OUT/<benchmark>/; see :mod:`spatial_ssrl.eval.suites`."""
    from dataclasses import replace

    from .suites import run_suite

    if run.predictions and not os.path.isdir(run.predictions):
        raise click.BadParameter(f"{run.predictions}: with a suite, give the folder holding <benchmark>.jsonl files",
                                 param_hint="PREDICTIONS")

    def run_one(name, path, sub, preds):
        return _evaluate(Target(name, path, dict(options), circular), replace(run, out=sub, predictions=preds))

    summary = run_suite(suite, run.out, run_one, bench_root=bench_root, predictions=run.predictions, echo=click.echo)
    click.echo(f"suite {suite}: {len(summary['results'])} benchmarks run, {len(summary['skipped'])} skipped; "
               f"table in {os.path.join(run.out, 'suite.md')}")


def _compare(files) -> None:
    """Results (results.json files, their folders, globs; or suite folders) side by side."""
    paths, out = files
    if paths and all(os.path.isfile(os.path.join(f, "suite.json")) for f in paths):
        from .suites import compare_suites

        try:
            click.echo(compare_suites(list(paths), out))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        return
    from .compare import compare

    click.echo(compare(list(paths), out))


def _list_benchmarks() -> None:
    from .benchmarks import available

    for name, b in available().items():
        click.echo(f"{name:<14} {b.modality:<6} {b.default_path_hint}")
    click.echo("suites: " + ", ".join(f"{name} ({len(entries)})" for name, entries in SUITES.items()))


def _run_lmms(model, names, include_path, out, batch_size, limit, decoding, min_pixels, max_pixels, quiet) -> None:
    from .base import BenchmarkError
    from .harness_lmms import run_lmms_eval
    from .runner import EvalError

    model_args = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
    try:
        results = run_lmms_eval(model, names, out, decoding, include_path=include_path, batch_size=batch_size,
                                limit=limit, model_args=model_args or None, echo=not quiet)
    except (BenchmarkError, EvalError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
        exit_interrupted()
    for res in results:
        acc = res.get("accuracy")
        click.echo(f"{res['benchmark']}: {'-' if acc is None else f'{acc:.2f}'} ({res.get('metric')})")
    click.echo(f"results in {out}")


# --- options shared by the subcommands -------------------------------------------------------

def _stack(*decorators):
    def apply(fn):
        for d in reversed(decorators):
            fn = d(fn)
        return fn
    return apply


model_options = _stack(
    click.option("--model", "-m", default=None, help="Checkpoint to run in-process (a folder or a Hub id)."),
    click.option("--backend", type=click.Choice(["transformers", "vllm"]), default="transformers",
                 help="How --model runs."),
    click.option("--api-base", default=None,
                 help="An OpenAI-compatible endpoint instead of --model, e.g. http://localhost:8000/v1."),
    click.option("--api-model", default=None, help="The model name the endpoint serves (with --api-base)."),
    click.option("--batch-size", default=8, type=click.IntRange(min=1), help="Items per batch (--model)."),
    click.option("--in-flight", default=8, type=click.IntRange(min=1), help="Requests in flight (--api-base)."),
    click.option("--timeout", default=300.0, type=float, help="Seconds per request (--api-base)."),
    click.option("--retries", default=4, type=click.IntRange(min=0), help="Retries per request (--api-base)."),
    click.option("--request-deadline", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Seconds one request may take in all, however the server trickles its answer "
                      "(--api-base; default: twice --timeout)."),
    click.option("--max-response-bytes", type=click.IntRange(min=1), default=None,
                 help="Largest answer body accepted from the server, in bytes (--api-base; default 8 MiB)."),
    click.option("--min-pixels", default=None, type=click.IntRange(min=1), help="Image processor lower bound."),
    click.option("--max-pixels", default=None, type=click.IntRange(min=1), help="Image processor upper bound."),
)

decoding_options = _stack(
    click.option("--max-new-tokens", default=4096, type=click.IntRange(min=1)),
    click.option("--temperature", default=0.0, type=click.FloatRange(min=0.0), help="0: greedy."),
    click.option("--top-p", default=1.0, type=click.FloatRange(0.0, 1.0)),
    click.option("--no-format-prompt", is_flag=True, help="Do not append the training format suffix."),
)

run_options = _stack(
    click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Results folder."),
    click.option("--limit", default=None, type=click.IntRange(min=1), help="Evaluate the first N items only."),
    click.option("--overwrite", is_flag=True,
                 help="Start afresh in --out: remove the predictions and results an earlier evaluation wrote "
                      "there (only files this program wrote). Without it, the same command continues a "
                      "stopped run."),
    click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
)

bench_options = _stack(
    click.option("--option", "bench_options", multiple=True, metavar="KEY=VALUE",
                 help="Benchmark loader option, e.g. --option frames=32. Repeatable."),
    click.option("--frames", default=None, type=click.IntRange(1, 128),
                 help="Video benchmarks (VSI-Bench): frames sampled uniformly per video (default 32, at most 128)."),
    click.option("--circular", is_flag=True,
                 help="Ask every rotation of a question's options; a question counts when all are right."),
)


def _decoding(max_new_tokens=4096, temperature=0.0, top_p=1.0, no_format_prompt=False):
    from .runner import Decoding

    return Decoding(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                    format_prompt=not no_format_prompt)


def _backend(model, backend, api_base, api_model, batch_size, in_flight, timeout, retries, request_deadline,
             max_response_bytes, min_pixels, max_pixels):
    """The responses' source from the model options: exactly one of --model / --api-base."""
    from ..backends import BackendSpec

    if bool(model) == bool(api_base):
        raise click.UsageError("give one of --model CHECKPOINT or --api-base URL (with --api-model)")
    if api_base and not api_model:
        raise click.UsageError("--api-base needs --api-model")
    if timeout <= 0:
        raise click.ClickException(f"--timeout must be more than 0 seconds (got {timeout:g})")
    return BackendSpec(kind="openai" if api_base else backend, model=model, api_base=api_base, api_model=api_model,
                       batch_size=batch_size, in_flight=in_flight, timeout=timeout, retries=retries,
                       request_deadline=request_deadline, max_response_bytes=max_response_bytes,
                       min_pixels=min_pixels, max_pixels=max_pixels)


_MODEL_KEYS = ("model", "backend", "api_base", "api_model", "batch_size", "in_flight", "timeout", "retries",
               "request_deadline", "max_response_bytes", "min_pixels", "max_pixels")
_DECODING_KEYS = ("max_new_tokens", "temperature", "top_p", "no_format_prompt")


def _take(kw: dict, keys) -> dict:
    return {k: kw.pop(k) for k in keys if k in kw}


def _loader_options(bench_options, frames) -> dict:
    options = _parse_options(bench_options)
    if frames is not None:
        options["frames"] = frames
    return options


def _run(kw: dict, predictions: str | None = None) -> Run:
    backend = None if predictions else _backend(**_take(kw, _MODEL_KEYS))
    return Run(out=kw.pop("out"), backend=backend, predictions=predictions,
               decoding=_decoding(**_take(kw, _DECODING_KEYS)), limit=kw.pop("limit", None),
               quiet=kw.pop("quiet", False), overwrite=kw.pop("overwrite", False))


# --- the commands ----------------------------------------------------------------------------

class _EvalGroup(click.Group):
    """``ssrl eval SUBCOMMAND``; an argument list that starts with an option of the old flag
    form (``ssrl eval --bench ...``) goes to the hidden ``legacy`` command."""

    def parse_args(self, ctx, args):
        if args and args[0].startswith("-") and args[0] not in ("-h", "--help"):
            args = ["legacy", *args]
        return super().parse_args(ctx, args)


@click.group("eval", cls=_EvalGroup, context_settings=SETTINGS, no_args_is_help=True)
def eval_command():
    """Evaluate a model: held-out pretext tasks, spatial benchmarks, general skills; score and
    compare results.

    \b
    ssrl eval dataset --data data --model runs/grpo --out eval/pretext
    ssrl eval benchmark 3dsrbench --model runs/grpo --out eval/3dsr
    ssrl eval benchmark viewspatial --api-base http://localhost:8000/v1 --api-model m --out eval/vs
    ssrl eval suite paper --model runs/grpo --out eval/paper
    ssrl eval predictions preds.jsonl --bench 3dsrbench --out eval/scored
    ssrl eval compare eval/base eval/grpo
    ssrl eval lmms-eval mmmu_val --model runs/grpo --out eval/general
    """


@eval_command.command("dataset", context_settings=SETTINGS)
@click.option("--data", "-d", required=True, help="A dataset folder of ours (made by ssrl generate, split by ssrl split).")
@click.option("--split", "split_name", default="test", help="Which split of --data.")
@model_options
@decoding_options
@run_options
def eval_dataset(data, split_name, **kw):
    """Held-out pretext accuracy: a model answers the questions of a dataset of ours."""
    _evaluate(Target("pretext", data, {"split": split_name}, path_hint="--data"), _run(kw))


@eval_command.command("benchmark", context_settings=SETTINGS)
@click.argument("name")
@click.option("--bench-path", default=None,
              help="The benchmark's files, as distributed (default: its official Hugging Face Hub dataset, cached).")
@bench_options
@model_options
@decoding_options
@run_options
def eval_benchmark(name, bench_path, bench_options, frames, circular, **kw):
    """Evaluate a model on one spatial benchmark (names: ssrl eval list)."""
    run = _run(kw)
    _evaluate(Target(name, bench_path, _loader_options(bench_options, frames), circular), run)


@eval_command.command("suite", context_settings=SETTINGS)
@click.argument("name", type=click.Choice(sorted(SUITES)))
@click.option("--bench-root", default=None, type=click.Path(exists=True, file_okay=False),
              help="The folder holding each benchmark's files as <benchmark>/ (default: the Hub).")
@bench_options
@model_options
@decoding_options
@run_options
def eval_suite(name, bench_root, bench_options, frames, circular, **kw):
    """Evaluate a model on each benchmark of a suite (paper: the Spatial-SSRL paper's seven; easi:
    the EASI set) into OUT/<benchmark>/, with a table in OUT/suite.md."""
    _suite(name, bench_root, _run(kw), _loader_options(bench_options, frames), circular)


@eval_command.command("predictions", context_settings=SETTINGS)
@click.argument("predictions", type=click.Path())
@click.option("--data", "-d", default=None, help="Score against a dataset of ours (held-out pretext).")
@click.option("--split", "split_name", default="test", help="Which split of --data.")
@click.option("--bench", default=None, help="Score against this benchmark (names: ssrl eval list).")
@click.option("--bench-path", default=None, help="The benchmark's files (default: the Hub's copy).")
@click.option("--suite", default=None, type=click.Choice(sorted(SUITES)),
              help="Score a folder of <benchmark>.jsonl files against each benchmark of a suite.")
@click.option("--bench-root", default=None, type=click.Path(exists=True, file_okay=False),
              help="With --suite: the folder holding each benchmark's files as <benchmark>/.")
@bench_options
@click.option("--no-format-prompt", is_flag=True, help="Record that the responses were made without the format suffix.")
@run_options
def eval_predictions(predictions, data, split_name, bench, bench_path, suite, bench_root, bench_options, frames,
                     circular, **kw):
    """Score responses made elsewhere: PREDICTIONS holds JSON lines {"id": ..., "response": ...}
    (with --suite, a folder of <benchmark>.jsonl or <benchmark>/predictions.jsonl files)."""
    if sum(x is not None for x in (data, bench, suite)) != 1:
        raise click.UsageError("give one of --data DATASET, --bench NAME or --suite NAME")
    if bench_root and not suite:
        raise click.UsageError("--bench-root goes with --suite (for one benchmark, give --bench-path)")
    if bench_path and not bench:
        raise click.UsageError("--bench-path goes with --bench")
    run = _run(kw, predictions=predictions)
    options = _loader_options(bench_options, frames)
    if suite:
        _suite(suite, bench_root, run, options, circular)
    elif data is not None:
        _evaluate(Target("pretext", data, {"split": split_name, **options}, path_hint="--data"), run)
    else:
        _evaluate(Target(bench, bench_path, options, circular), run)


@eval_command.command("compare", context_settings=SETTINGS)
@click.argument("results", nargs=-1, required=True, type=click.Path(), metavar="RESULTS...")
@click.option("--out", "-o", default=None, type=click.Path(file_okay=False),
              help="Also write the table (compare.md, compare.json) here.")
def eval_compare(results, out):
    """Show results side by side with the paper's numbers: results.json files, their folders,
    quoted globs, or suite folders. Each run is labelled by its folder."""
    _compare((results, out))


@eval_command.command("list", context_settings=SETTINGS)
def eval_list():
    """List the benchmarks (name, modality, where their files come from) and the suites."""
    _list_benchmarks()


@eval_command.command("lmms-eval", context_settings=SETTINGS)
@click.argument("tasks", nargs=-1, required=True)
@click.option("--model", "-m", required=True, help="Checkpoint to evaluate.")
@click.option("--include-path", default=None, type=click.Path(exists=True, file_okay=False),
              help="A folder of lmms-eval task YAMLs of your own.")
@click.option("--batch-size", default=8, type=click.IntRange(min=1))
@click.option("--min-pixels", default=None, type=click.IntRange(min=1), help="Image processor lower bound.")
@click.option("--max-pixels", default=None, type=click.IntRange(min=1), help="Image processor upper bound.")
@click.option("--max-new-tokens", default=4096, type=click.IntRange(min=1))
@click.option("--temperature", default=0.0, type=click.FloatRange(min=0.0), help="0: greedy.")
@click.option("--top-p", default=1.0, type=click.FloatRange(0.0, 1.0))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Results folder.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="The first N items of each task only.")
@click.option("--quiet", "-q", is_flag=True, help="Less output.")
def eval_lmms(tasks, model, include_path, batch_size, min_pixels, max_pixels, max_new_tokens, temperature, top_p,
              out, limit, quiet):
    """General skills through lmms-eval (the lmms extra): TASKS are lmms-eval task names
    (several, or comma-separated)."""
    names = [t.strip() for arg in tasks for t in arg.split(",") if t.strip()]
    if not names:
        raise click.UsageError("name at least one lmms-eval task")
    decoding = _decoding(max_new_tokens, temperature, top_p, no_format_prompt=True)
    _run_lmms(model, names, include_path, out, batch_size, limit, decoding, min_pixels, max_pixels, quiet)


# --- the flag form of earlier releases ----------------------------------------------------------

_NEW_SPELLING = {
    "list_benchmarks": "ssrl eval list", "compare": "ssrl eval compare RESULTS...",
    "lmms": "ssrl eval lmms-eval TASKS --model M --out O", "suite": "ssrl eval suite NAME ...",
    "predictions": "ssrl eval predictions FILE --bench NAME|--data D|--suite NAME ...",
    "data": "ssrl eval dataset --data D ...", "bench": "ssrl eval benchmark NAME ...",
}


@eval_command.command("legacy", hidden=True, context_settings=SETTINGS)
@click.option("--model", "-m", default=None)
@click.option("--api-base", default=None)
@click.option("--api-model", default=None)
@click.option("--predictions", "-p", "predictions_file", default=None, type=click.Path())
@click.option("--data", "-d", default=None)
@click.option("--split", "split_name", default="test")
@click.option("--bench", default=None)
@click.option("--bench-path", default=None)
@click.option("--suite", default=None, type=click.Choice(sorted(SUITES)))
@click.option("--bench-root", default=None, type=click.Path(exists=True, file_okay=False))
@click.option("--option", "bench_options", multiple=True)
@click.option("--frames", default=None, type=click.IntRange(1, 128))
@click.option("--circular", is_flag=True)
@click.option("--out", "-o", default=None, type=click.Path(file_okay=False))
@click.option("--backend", type=click.Choice(["transformers", "vllm"]), default="transformers")
@click.option("--batch-size", default=8, type=click.IntRange(min=1))
@click.option("--in-flight", default=8, type=click.IntRange(min=1))
@click.option("--timeout", default=300.0, type=float)
@click.option("--retries", default=4, type=click.IntRange(min=0))
@click.option("--request-deadline", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--max-response-bytes", type=click.IntRange(min=1), default=None)
@click.option("--max-new-tokens", default=4096, type=click.IntRange(min=1))
@click.option("--temperature", default=0.0, type=click.FloatRange(min=0.0))
@click.option("--top-p", default=1.0, type=click.FloatRange(0.0, 1.0))
@click.option("--no-format-prompt", is_flag=True)
@click.option("--limit", default=None, type=click.IntRange(min=1))
@click.option("--min-pixels", default=None, type=click.IntRange(min=1))
@click.option("--max-pixels", default=None, type=click.IntRange(min=1))
@click.option("--compare", "compare_files", multiple=True, type=click.Path())
@click.option("--harness", type=click.Choice(["native", "lmms-eval"]), default="native")
@click.option("--harness-tasks", "harness_tasks", default=None)
@click.option("--tasks", "harness_tasks_old", default=None)
@click.option("--include-path", default=None, type=click.Path(exists=True, file_okay=False))
@click.option("--list-benchmarks", is_flag=True)
@click.option("--quiet", "-q", is_flag=True)
@click.argument("more_compare_files", nargs=-1, type=click.Path())
def eval_legacy(predictions_file, data, split_name, bench, bench_path, suite, bench_root, bench_options, frames,
                circular, compare_files, harness, harness_tasks, harness_tasks_old, include_path, list_benchmarks,
                more_compare_files, **kw):
    """The flag form of ``ssrl eval`` from earlier releases, mapped onto the subcommands."""
    mode = ("list_benchmarks" if list_benchmarks else "compare" if compare_files else
            "lmms" if harness == "lmms-eval" else "suite" if suite else
            "predictions" if predictions_file else "data" if data is not None else "bench")
    click.echo(f"note: the flag form of ssrl eval is deprecated; this is now: {_NEW_SPELLING[mode]}", err=True)
    if more_compare_files and not compare_files:
        raise click.UsageError(f"unexpected extra argument {more_compare_files[0]!r} "
                               "(only --compare takes several files)")
    if list_benchmarks:
        _list_benchmarks()
        return
    if compare_files:
        _compare(([*compare_files, *more_compare_files], kw["out"]))
        return
    if kw["out"] is None:
        raise click.UsageError("--out is required")
    if kw["timeout"] <= 0:
        raise click.ClickException(f"--timeout must be more than 0 seconds (got {kw['timeout']:g})")
    if harness == "lmms-eval":
        tasks = harness_tasks or harness_tasks_old
        if not kw["model"] or not tasks:
            raise click.UsageError("--harness lmms-eval needs --model and --harness-tasks")
        if any((data, bench, predictions_file, kw["api_base"])):
            raise click.UsageError("--harness lmms-eval runs lmms-eval's own tasks: drop --data, --bench, "
                                   "--predictions and --api-base")
        names = [t.strip() for t in tasks.split(",") if t.strip()]
        decoding = _decoding(kw["max_new_tokens"], kw["temperature"], kw["top_p"], no_format_prompt=True)
        _run_lmms(kw["model"], names, include_path, kw["out"], kw["batch_size"], kw["limit"], decoding,
                  kw["min_pixels"], kw["max_pixels"], kw["quiet"])
        return
    if suite is None and (data is None) == (bench is None):
        raise click.UsageError("give either --data DATASET (pretext hold-out), --bench NAME [--bench-path PATH] "
                               "or --suite NAME")
    if sum(bool(x) for x in (kw["model"], kw["api_base"], predictions_file)) != 1:
        raise click.UsageError("give exactly one of --model, --api-base (with --api-model) or --predictions")
    if kw["api_base"] and not kw["api_model"]:
        raise click.UsageError("--api-base needs --api-model")
    if suite is not None and any((data, bench, bench_path)):
        raise click.UsageError("--suite runs its own benchmarks: drop --data, --bench and --bench-path")
    if bench_root and suite is None:
        raise click.UsageError("--bench-root goes with --suite (for one benchmark, give --bench-path)")
    if predictions_file:
        _take(kw, _MODEL_KEYS)
    run = _run(kw, predictions=predictions_file)
    options = _loader_options(bench_options, frames)
    if suite is not None:
        _suite(suite, bench_root, run, options, circular)
    elif data is not None:
        _evaluate(Target("pretext", data, {"split": split_name, **options}, path_hint="--data"), run)
    else:
        _evaluate(Target(bench, bench_path, options, circular), run)


def _read_predictions_file(path: str):
    """The predictions of ``--predictions`` (the rule ``ssrl score`` shares); a missing,
    unreadable or prediction-less file is a one-line error."""
    from ..reward.cli import read_predictions

    if not os.path.isfile(path):
        raise click.ClickException(f"predictions {path}: no such file")
    try:
        read = read_predictions(path)
    except OSError as exc:
        raise click.ClickException(f"predictions {path}: cannot read ({exc.strerror or exc})") from None
    if not read.records:
        where = f"; line {read.malformed[0]} is not one" if read.malformed else " (the file is empty)"
        raise click.ClickException(f'predictions {path}: no prediction in it (JSON lines {{"id": ..., '
                                   f'"response": ...}}){where}')
    return read


def _match(read, bench_name: str, items, loaded_ids, skipped, path: str) -> tuple[dict, dict]:
    """Predictions by item id (an item found by its id or an alternative one), and what
    reading them met; none matching is a one-line error, some a warning."""
    from .runner import ALIAS_KEYS, match_predictions

    matched, unmatched = match_predictions(read.records, items, [*loaded_ids, *(s.id for s in skipped)])
    if not matched:
        aliases = sorted({str(it.meta[k]) for it in items for k in ALIAS_KEYS if it.meta.get(k) is not None})
        also = f" (or its {', '.join(k for k in ALIAS_KEYS if aliases)}, e.g. {aliases[0]!r})" if aliases else ""
        raise click.ClickException(
            f"predictions {path}: no prediction matches a {bench_name} item by its \"id\": the predictions' ids "
            f"look like {next(iter(read.records))!r}, the benchmark's like {items[0].id!r}{also}")
    if unmatched:
        click.echo(f"warning: {len(unmatched)} of {len(read.records)} predictions match no {bench_name} item "
                   f"(e.g. id {unmatched[0]!r}); they are not scored", err=True)
    reading = {"malformed_prediction_lines": len(read.malformed), "duplicate_prediction_ids": len(read.duplicates),
               "unmatched_predictions": len(unmatched)}
    return matched, reading


def _check_some_answered(items, predictions: dict, out: str) -> None:
    """A run where no item got a response (the server down, a wrong URL) is an error naming
    the failures by reason, not a score of 0."""
    from collections import Counter

    if not items or any(isinstance(predictions.get(it.id, {}).get("response"), str) for it in items):
        return
    errors = Counter(str(predictions.get(it.id, {}).get("error") or "no response") for it in items)
    reasons = ", ".join(f"{k} {v}" for k, v in errors.most_common(3)) + (", ..." if len(errors) > 3 else "")
    raise click.ClickException(f"no item got a response: {len(items)} requests failed ({reasons}); "
                               f"the same command retries them (failures in {os.path.join(out, 'predictions.jsonl')})")


def _skip_note(skipped) -> str:
    """``N items skipped (reason count, ...)``, with the first missing file when the loader names it."""
    from collections import Counter

    reasons = Counter(s.reason for s in skipped)
    note = f"{len(skipped)} items skipped ({', '.join(f'{k} {v}' for k, v in sorted(reasons.items()))})"
    first = next((s for s in skipped if getattr(s, "detail", None)), None)
    return note + (f"; first: {first.id} ({first.reason}: {first.detail})" if first is not None else "")

@click.command("infer", context_settings=SETTINGS)
@click.option("--model", "-m", required=True, help="Qwen2.5-VL / Qwen3-VL checkpoint.")
@click.option("--image", "-i", "images", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="Image file (repeatable; in order).")
@click.option("--question", "-Q", default=None,
              help="The question; <image> marks where each image goes (default: all first).  [required]")
@click.option("-q", "question_old", default=None, hidden=True)  # the old short spelling of --question
@click.option("--no-format-prompt", is_flag=True, help="Do not append the training format suffix.")
@click.option("--max-new-tokens", default=1024, show_default=True, type=click.IntRange(min=1))
@click.option("--max-pixels", default=None, type=click.IntRange(min=1), help="Image processor upper bound.")
def infer_command(model, images, question, question_old, no_format_prompt, max_new_tokens, max_pixels):
    """Answer one question about one or more images, greedily; print the reasoning and the parsed answer."""
    question = question if question is not None else question_old
    if question is None:
        raise click.UsageError("Missing option '--question' / '-Q'.")
    from PIL import Image, UnidentifiedImageError

    from ..prompts import IMAGE_TOKEN, with_format_suffix
    from ..reward.parsing import parse_response
    from .runner import Decoding

    n = question.count(IMAGE_TOKEN)
    if n == 0:
        question = IMAGE_TOKEN * len(images) + question
    elif n != len(images):
        raise click.UsageError(f"the question has {n} <image> placeholder(s) but {len(images)} --image given")
    pics = []
    for path in images:
        try:
            with Image.open(path) as im:
                pics.append(im.convert("RGB"))
        except Image.DecompressionBombError:
            raise click.BadParameter(f"{path}: refused, it declares more pixels than an image should have "
                                     f"(over {Image.MAX_IMAGE_PIXELS:,}): a decompression bomb?",
                                     param_hint="--image") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise click.BadParameter(f"{path}: not a readable image ({exc.__class__.__name__})", param_hint="--image") from None
    text = question if no_format_prompt else with_format_suffix(question)
    decoding = Decoding(max_new_tokens=max_new_tokens)
    from ..backends import BackendError, BackendSpec, build
    from ..backends.transformers_backend import Item

    got: list[str | None] = [None]
    try:
        generate = build(BackendSpec(model=model, batch_size=1, max_pixels=max_pixels), decoding)
        generate([Item(text, pics)], lambda i, t, e: got.__setitem__(0, t))
    except BackendError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
        exit_interrupted()
    response = got[0] or ""
    parsed = parse_response(response)
    click.echo(response)
    click.echo("-" * 40)
    think = _think_text(response)
    if think is not None:
        click.echo(f"reasoning: {think}")
    answer = parsed.final_box
    click.echo(f"answer: {answer}" if answer is not None else
               f"answer: none ({parsed.box_problem or parsed.region_reason or 'no_box'})")


def _think_text(response: str) -> str | None:
    import re

    m = re.search(r"<\s{0,16}think\s{0,16}>(.*?)<\s{0,16}/\s{0,16}think\s{0,16}>", response, re.DOTALL)
    return m.group(1).strip() if m else None
