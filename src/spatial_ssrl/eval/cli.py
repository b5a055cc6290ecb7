"""``ssrl infer`` and ``ssrl eval``."""

from __future__ import annotations

import inspect
import os
import sys

import click

from ..interrupt import exit_interrupted
from .suites import SUITES

EVAL_EXTRA_HINT = "running a model needs the train extra: pip install 'spatial-ssrl[train]'"


def _transformers_generate(model_path: str, batch_size: int, decoding, min_pixels=None, max_pixels=None):
    """A GenerateFn running ``model_path`` in-process (bf16 + device_map auto on a GPU, float32 on the CPU)."""
    try:
        import torch
    except ImportError:
        raise click.ClickException(EVAL_EXTRA_HINT) from None
    from ..backends.transformers_backend import generate
    from ..training.models import (
        ModelError,
        check_model_folder,
        load_model,
        load_processor,
    )

    try:
        check_model_folder(model_path)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    loaded: dict = {}

    def run(items, on_result):
        if not loaded:  # loaded on first use: a resumed run with nothing left to do loads nothing
            try:
                loaded["processor"] = load_processor(model_path, min_pixels, max_pixels)
                device_map = "auto" if torch.cuda.is_available() else None
                loaded["model"] = load_model(model_path, "auto", device_map=device_map, training=False)
            except ModelError as exc:
                raise click.ClickException(str(exc)) from None
        model, processor = loaded["model"], loaded["processor"]
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            texts = generate(model, processor, batch, max_new_tokens=decoding.max_new_tokens,
                             temperature=decoding.temperature, top_p=decoding.top_p, batch_size=batch_size)
            for i, text in enumerate(texts):
                on_result(start + i, text, None)

    return run


def _openai_generate(api_base: str, api_model: str, in_flight: int, decoding, timeout: float, retries: int,
                     request_deadline: float | None = None, max_response_bytes: int | None = None):
    try:
        from ..backends.openai_backend import OpenAIBackend
    except ImportError as exc:
        raise click.ClickException(f"the OpenAI-compatible backend needs httpx: pip install httpx ({exc})") from None
    limits = {"request_deadline": request_deadline}
    if max_response_bytes is not None:
        limits["max_response_bytes"] = max_response_bytes
    backend = OpenAIBackend(api_base, api_model, max_in_flight=in_flight, timeout=timeout, retries=retries,
                            max_tokens=decoding.max_new_tokens, temperature=decoding.temperature, top_p=decoding.top_p,
                            **limits)

    def run(items, on_result):
        backend.generate(items, on_result=lambda i, r: on_result(i, r.text, r.error))

    run.chunk = 4096  # the backend keeps its requests in flight across items; no batch barrier
    return run


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


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "-m", default=None, help="Checkpoint to evaluate in-process (transformers, or vLLM with --backend vllm).")
@click.option("--api-base", default=None, help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1.")
@click.option("--api-model", default=None, help="Model name the endpoint serves.")
@click.option("--predictions", "-p", "predictions_file", default=None, type=click.Path(),
              help="Score these predictions (JSON lines id/response) instead of generating; with --suite, a "
                   "folder of <benchmark>.jsonl (or <benchmark>/predictions.jsonl) files.")
@click.option("--data", "-d", default=None, help="A dataset of ours: held-out pretext accuracy (split --split).")
@click.option("--split", "split_name", default="test", show_default=True, help="Split of --data.")
@click.option("--bench", default=None, help="Benchmark name (ssrl eval --list-benchmarks).")
@click.option("--bench-path", default=None,
              help="The benchmark's files, as distributed (default: its official Hugging Face Hub dataset, cached).")
@click.option("--suite", default=None, type=click.Choice(sorted(SUITES)),
              help="Run each benchmark of a suite (paper: the Spatial-SSRL paper's seven; easi: the EASI set) "
                   "into OUT/<benchmark>/ and compare them in OUT/suite.md.")
@click.option("--bench-root", default=None, type=click.Path(exists=True, file_okay=False),
              help="With --suite: the folder holding each benchmark's files as <benchmark>/ (default: the Hub).")
@click.option("--option", "bench_options", multiple=True, metavar="KEY=VALUE",
              help="Benchmark loader option, e.g. --option frames=32, --option circular=true. Repeatable.")
@click.option("--frames", default=None, type=click.IntRange(1, 128),
              help="Video benchmarks (VSI-Bench): frames sampled uniformly per video (default 32, at most 128).")
@click.option("--circular", is_flag=True, default=None,
              help="What'sUp: ask every rotation of the options; a question counts when all are right.")
@click.option("--out", "-o", default=None, type=click.Path(file_okay=False), help="Results folder.")
@click.option("--backend", type=click.Choice(["transformers", "vllm"]), default="transformers", show_default=True)
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--in-flight", default=8, show_default=True, type=click.IntRange(min=1),
              help="Requests in flight (--api-base).")
@click.option("--timeout", default=300.0, show_default=True, type=float, help="Seconds per request (--api-base).")
@click.option("--retries", default=4, show_default=True, type=click.IntRange(min=0), help="Retries per request.")
@click.option("--request-deadline", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds one request may take in all, however the server trickles its answer "
                   "(--api-base; default: twice --timeout).")
@click.option("--max-response-bytes", type=click.IntRange(min=1), default=None,
              help="Largest answer body accepted from the server, in bytes (--api-base; default 8 MiB).")
@click.option("--max-new-tokens", default=4096, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=0.0, show_default=True, type=click.FloatRange(min=0.0), help="0: greedy.")
@click.option("--top-p", default=1.0, show_default=True, type=click.FloatRange(0.0, 1.0))
@click.option("--no-format-prompt", is_flag=True, help="Do not append the training format suffix.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Evaluate the first N items only.")
@click.option("--min-pixels", default=None, type=click.IntRange(min=1), help="Image processor lower bound.")
@click.option("--max-pixels", default=None, type=click.IntRange(min=1), help="Image processor upper bound.")
@click.option("--compare", "compare_files", multiple=True, type=click.Path(),
              help="results.json files (or their folders, or a quoted glob) to show side by side with the "
                   "paper's numbers; several may follow one --compare. Each run is labelled by its folder.")
@click.option("--harness", type=click.Choice(["native", "lmms-eval"]), default="native", show_default=True,
              help="lmms-eval: run its tasks (--tasks) on --model for general skills (the lmms extra).")
@click.option("--harness-tasks", "harness_tasks", default=None,
              help="lmms-eval tasks, comma-separated (with --harness lmms-eval).")
@click.option("--tasks", "harness_tasks_old", default=None, hidden=True)  # the old spelling of --harness-tasks
@click.option("--include-path", default=None, type=click.Path(exists=True, file_okay=False),
              help="A folder of lmms-eval task YAMLs of your own (with --harness lmms-eval).")
@click.option("--list-benchmarks", is_flag=True, help="List the benchmarks and exit.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.argument("more_compare_files", nargs=-1, type=click.Path(), metavar="[RESULTS.json]...")
def eval_command(model, api_base, api_model, predictions_file, data, split_name, bench, bench_path, bench_options,
                 frames, circular, out, backend, batch_size, in_flight, timeout, retries, request_deadline, max_response_bytes,
                 max_new_tokens, temperature, top_p,
                 no_format_prompt, limit, min_pixels, max_pixels, compare_files, harness, harness_tasks,
                 harness_tasks_old, include_path,
                 list_benchmarks, quiet, more_compare_files, suite=None, bench_root=None):
    """Evaluate a model on held-out pretext tasks or a spatial benchmark, or score predictions.

    \b
    ssrl eval --model runs/grpo --data data --out eval/pretext
    ssrl eval --model runs/grpo --bench 3dsrbench --bench-path 3dsr/ --out eval/3dsr
    ssrl eval --api-base http://localhost:8000/v1 --api-model m --bench viewspatial --bench-path vs/ --out eval/vs
    ssrl eval --predictions preds.jsonl --data data --out eval/scored
    ssrl eval --compare eval/*/results.json --out eval/compare
    ssrl eval --model runs/grpo --suite paper --out eval/paper
    """
    if more_compare_files and not compare_files:
        raise click.UsageError(f"unexpected extra argument {more_compare_files[0]!r} "
                               "(only --compare takes several files)")
    from .base import BenchmarkError
    from .benchmarks import available, get_benchmark
    from .circular import base_items as circular_bases
    from .runner import (
        RESULT_FILES,
        Decoding,
        EvalError,
        check_out_dir,
        results,
        run_generation,
        write_results,
    )

    if list_benchmarks:
        for name, b in available().items():
            click.echo(f"{name:<14} {b.modality:<6} {b.default_path_hint}")
        return
    if compare_files and all(os.path.isfile(os.path.join(f, "suite.json")) for f in (*compare_files, *more_compare_files)):
        from .suites import compare_suites

        try:
            click.echo(compare_suites([*compare_files, *more_compare_files], out))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        return
    if compare_files:
        from .compare import compare

        text = compare([*compare_files, *more_compare_files], out)
        click.echo(text)
        return
    if out is None:
        raise click.UsageError("--out is required")
    if timeout <= 0:
        raise click.ClickException(f"--timeout must be more than 0 seconds (got {timeout:g})")
    harness_tasks = harness_tasks or harness_tasks_old
    if harness == "lmms-eval":
        _run_lmms(model, harness_tasks, include_path, out, batch_size, limit, max_new_tokens, temperature, top_p,
                  min_pixels, max_pixels, quiet, others=(data, bench, predictions_file, api_base))
        return
    if suite is None and (data is None) == (bench is None):
        raise click.UsageError("give either --data DATASET (pretext hold-out), --bench NAME [--bench-path PATH] "
                               "or --suite NAME")
    sources = [x for x in (model, api_base, predictions_file) if x]
    if len(sources) != 1:
        raise click.UsageError("give exactly one of --model, --api-base (with --api-model) or --predictions")
    if api_base and not api_model:
        raise click.UsageError("--api-base needs --api-model")
    if suite is not None:
        _run_suite(suite, bench_root, out, predictions_file, others=(data, bench, bench_path))
        return
    if bench_root:
        raise click.UsageError("--bench-root goes with --suite (for one benchmark, give --bench-path)")
    read = None
    if predictions_file:
        read = _read_predictions_file(predictions_file)
        try:
            check_out_dir(out, None, RESULT_FILES)  # before the benchmark loads
        except EvalError as exc:
            raise click.ClickException(str(exc)) from None
    options = _parse_options(bench_options)
    if frames is not None:
        options["frames"] = frames

    try:
        if data is not None:
            benchmark = get_benchmark("pretext")
            path = data
            options = {"split": split_name, **options}
        else:
            benchmark = get_benchmark(bench)
            if not bench_path:
                from .hub import fetch

                scores_only = bool(predictions_file) and "images" in inspect.signature(benchmark.load).parameters
                bench_path = fetch(benchmark, questions_only=scores_only)  # one line when it cannot be had
            path = bench_path
        if not os.path.exists(path):
            raise click.BadParameter(f"{path} does not exist", param_hint="--data" if data else "--bench-path")
        generic_circular = bool(circular) and not benchmark.native_circular
        if circular and benchmark.native_circular:
            options["circular"] = True
        if generic_circular:
            options["circular_rotations"] = True  # recorded in eval_run.json; not a loader option
        load_kwargs = {k: v for k, v in options.items() if k != "circular_rotations"}
        if predictions_file and "images" in inspect.signature(benchmark.load).parameters:
            load_kwargs["images"] = False  # scoring reads no image
        items, skipped = benchmark.load(path, **load_kwargs)
    except (BenchmarkError, TypeError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    loaded_ids = [it.id for it in items]
    if limit:
        items = items[:limit]
    not_rotatable = 0
    if generic_circular:
        from .circular import expand

        items, not_rotatable = expand(items)
        if not_rotatable == len(circular_bases(items)):
            raise click.ClickException(f"--circular: no {benchmark.name} item lists its options as 'A. ...' lines "
                                       "with a letter answer, so none can be rotated")
    if not items:
        raise click.ClickException(f"{path}: no items to evaluate" + (f"; {_skip_note(skipped)}" if skipped else ""))
    decoding = Decoding(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                        format_prompt=not no_format_prompt)
    run_info = {
        "benchmark": benchmark.name,
        "data": os.path.abspath(path),
        "model": os.path.abspath(model) if model and os.path.exists(model) else (model or api_model or None),
        "backend": "predictions" if predictions_file else ("openai" if api_base else backend),
        "decoding": vars(decoding).copy(),
        "prompt": {"format_suffix": decoding.format_prompt, "prompt_set": "paper"},
        "options": options,
    }
    try:
        if predictions_file:
            predictions, reading = _match(read, benchmark.name, items, loaded_ids, skipped, predictions_file)
            run_info["model"] = None
            run_info["predictions_file"] = os.path.abspath(predictions_file)
        else:
            if api_base:
                generate = _openai_generate(api_base, api_model, in_flight, decoding, timeout, retries,
                                            request_deadline, max_response_bytes)
            elif backend == "vllm":
                from ..backends.vllm_backend import vllm_generate

                generate = vllm_generate(model, decoding, min_pixels, max_pixels)
            else:
                generate = _transformers_generate(model, batch_size, decoding, min_pixels, max_pixels)
            bar = None
            if not quiet:
                from tqdm import tqdm

                bar = tqdm(total=len(items), unit="item", desc=benchmark.name, file=sys.stderr, dynamic_ncols=True)
            reading = {}
            try:
                predictions = run_generation(items, generate, out, decoding, run_info, progress=bar, reading=reading)
            finally:
                if bar is not None:
                    bar.close()
            if reading.get("predictions_tail_repaired"):
                click.echo(f"note: cut a torn last line off {os.path.join(out, 'predictions.jsonl')} "
                           "(a run stopped mid-write) before continuing", err=True)
            _check_some_answered(items, predictions, out)
        res = results(benchmark, items, skipped, predictions, run_info, reading=reading)
        if not_rotatable:
            res.setdefault("metrics", {})["circular_not_rotatable"] = not_rotatable
        write_results(out, res)
    except EvalError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; the predictions so far are in {os.path.join(out, 'predictions.jsonl')} "
                   "(run the same command again to continue)", err=True)
        exit_interrupted()
    acc = res.get("accuracy")
    strict = "" if res.get("strict") is None else f" (strict {res['strict']:.2f}%)"
    click.echo(f"{benchmark.name}: accuracy {acc:.2f}%{strict} over {res.get('n')} items" if acc is not None
               else f"{benchmark.name}: no item scored")
    for name, b in (res.get("per_category") or {}).items():
        a = b.get("accuracy")
        click.echo(f"  {name:<28} {b.get('n', ''):>6}  {'-' if a is None else f'{a:.2f}'}")
    audit = res.get("letter_audit")
    if audit:
        click.echo("  right answers by letter: " + ", ".join(f"{k} {v:.0f}%" for k, v in audit["answer_letters"].items())
                   + "; predictions: " + ", ".join(f"{k} {v:.0f}%" for k, v in audit["predicted_letters"].items()))
    if (res.get("metrics") or {}).get("circular_questions"):
        click.echo(f"  circular: {res['metrics']['circular']:.2f}% over {res['metrics']['circular_questions']} questions")
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
        click.echo("  " + "; ".join(notes))
    click.echo(f"results in {out}")



def _read_predictions_file(path: str):
    """The predictions of ``--predictions`` (the rule ``ssrl score`` shares); a missing,
    unreadable or prediction-less file is a one-line error."""
    from ..reward.cli import read_predictions

    if not os.path.isfile(path):
        raise click.ClickException(f"--predictions {path}: no such file")
    try:
        read = read_predictions(path)
    except OSError as exc:
        raise click.ClickException(f"--predictions {path}: cannot read ({exc.strerror or exc})") from None
    if not read.records:
        where = f"; line {read.malformed[0]} is not one" if read.malformed else " (the file is empty)"
        raise click.ClickException(f'--predictions {path}: no prediction in it (JSON lines {{"id": ..., '
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
            f"--predictions {path}: no prediction matches a {bench_name} item by its \"id\": the predictions' ids "
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

def _run_suite(suite, bench_root, out, predictions, others) -> None:
    """``--suite``: each benchmark run as ``--bench`` would (this command, invoked again), into
    OUT/<benchmark>/; see :mod:`spatial_ssrl.eval.suites`."""
    import json

    from .suites import run_suite

    if any(others):
        raise click.UsageError("--suite runs its own benchmarks: drop --data, --bench and --bench-path")
    if predictions and not os.path.isdir(predictions):
        raise click.BadParameter(f"{predictions}: with --suite, give the folder holding <benchmark>.jsonl files",
                                 param_hint="--predictions")
    ctx = click.get_current_context()

    def run_one(name, path, sub, preds):
        ctx.invoke(eval_command, **{**ctx.params, "suite": None, "bench_root": None, "bench": name,
                                    "bench_path": path, "out": sub, "predictions_file": preds})
        with open(os.path.join(sub, "results.json"), encoding="utf-8") as fh:
            return json.load(fh)

    summary = run_suite(suite, out, run_one, bench_root=bench_root, predictions=predictions, echo=click.echo)
    click.echo(f"suite {suite}: {len(summary['results'])} benchmarks run, {len(summary['skipped'])} skipped; "
               f"table in {os.path.join(out, 'suite.md')}")


def _run_lmms(model, tasks, include_path, out, batch_size, limit, max_new_tokens, temperature, top_p,
              min_pixels, max_pixels, quiet, others) -> None:
    from .base import BenchmarkError
    from .harness_lmms import run_lmms_eval
    from .runner import Decoding, EvalError

    if not model or not tasks:
        raise click.UsageError("--harness lmms-eval needs --model and --harness-tasks")
    if any(others):
        raise click.UsageError("--harness lmms-eval runs lmms-eval's own tasks: drop --data, --bench, "
                               "--predictions and --api-base")
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    model_args = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
    decoding = Decoding(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, format_prompt=False)
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


@click.command("infer", context_settings={"help_option_names": ["-h", "--help"]})
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
    generate = _transformers_generate(model, 1, decoding, None, max_pixels)
    from ..backends.transformers_backend import Item

    got: list[str | None] = [None]
    try:
        generate([Item(text, pics)], lambda i, t, e: got.__setitem__(0, t))
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
