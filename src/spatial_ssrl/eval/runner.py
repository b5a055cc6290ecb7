"""Running an evaluation: items -> a generation backend -> predictions.jsonl -> results.

Predictions are appended to ``OUT/predictions.jsonl`` as they come (one JSON object a line:
``id``, ``response``, and ``error`` when the backend gave up on the item), so an interrupted
run loses nothing finished; a re-run skips every item that already has a response and retries
the ones that errored. ``OUT/eval_run.json`` records what the run is (benchmark, data, model,
decoding, prompt): a re-run into the same folder must be the same evaluation.

When generation is done: ``results.json`` (top-level ``accuracy`` in percent, the benchmark's
report, skipped items and backend errors by reason, decoding settings, model, data and prompt
versions), ``results.md`` (a table) and ``results.png`` (a bar chart per category).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .. import __version__
from ..prompts import with_format_suffix
from ..writers.base import atomic_write_bytes, atomic_write_json
from .base import Benchmark, EvalItem, Skipped

PREDICTIONS = "predictions.jsonl"
RUN_FILE = "eval_run.json"
RESULT_FILES = ("results.json", "results.md", "results.png")
OWN_FILES = (PREDICTIONS, RUN_FILE, *RESULT_FILES)

# on_result(index in the batch given, response or None, error or None)
OnResult = Callable[[int, str | None, str | None], None]
GenerateFn = Callable[[Sequence[Any], OnResult], None]


class EvalError(ValueError):
    """An evaluation that cannot run as asked (the message says why)."""


@dataclass
class Decoding:
    max_new_tokens: int = 4096
    temperature: float = 0.0
    top_p: float = 1.0
    format_prompt: bool = True  # append the training format suffix (think + \boxed{})


def prompt_text(item: EvalItem, decoding: Decoding) -> str:
    return with_format_suffix(item.question) if decoding.format_prompt else item.question


def read_predictions(path: str) -> tuple[dict[str, dict], int]:
    """id -> last prediction object of a predictions file, and the count of unreadable lines
    (a line cut short by a kill, say)."""
    done: dict[str, dict] = {}
    bad = 0
    if not os.path.isfile(path):
        return done, 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("id"), (str, int)):
                bad += 1
                continue
            sid = str(obj["id"])
            if sid in done and done[sid].get("response") is not None and obj.get("response") is None:
                continue  # a later error never replaces an answer
            done[sid] = obj
    return done, bad


def check_out_dir(out: str, run_info: dict[str, Any]) -> None:
    """Refuse a folder holding files we did not write, or another evaluation's predictions."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise EvalError(f"--out {out} exists and is not a folder")
    if not os.path.isdir(out):
        return
    foreign = [n for n in os.listdir(out) if n not in OWN_FILES and not n.startswith(".tmp-")]
    if foreign:
        raise EvalError(f"--out {out} holds files this program did not write ({', '.join(sorted(foreign)[:3])}); "
                        "choose another folder")
    path = os.path.join(out, RUN_FILE)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as fh:
                previous = json.load(fh)
        except (OSError, ValueError):
            previous = None
        keys = ("benchmark", "data", "model", "decoding", "prompt", "options")
        if isinstance(previous, dict):
            differ = [k for k in keys if previous.get(k) != run_info.get(k)]
            if differ:
                raise EvalError(f"--out {out} holds another evaluation (its {', '.join(differ)} differ); "
                                "choose another folder to keep both")


def run_generation(items: list[EvalItem], generate: GenerateFn, out: str, decoding: Decoding,
                   run_info: dict[str, Any], chunk: int = 64, progress=None) -> dict[str, dict]:
    """Generate responses for the items without one in ``out``; returns id -> prediction."""
    from ..locking import FolderBusy, FolderLock

    check_out_dir(out, run_info)
    os.makedirs(out, exist_ok=True)
    lock = FolderLock(out)
    try:
        lock.acquire()  # one evaluation writes its predictions here at a time
    except FolderBusy as exc:
        raise EvalError(str(exc)) from None
    try:
        return _generate_into(items, generate, out, decoding, run_info, chunk, progress)
    finally:
        lock.release()


def _generate_into(items, generate, out, decoding, run_info, chunk, progress) -> dict[str, dict]:
    from ..backends.transformers_backend import Item

    atomic_write_json(os.path.join(out, RUN_FILE), run_info)
    path = os.path.join(out, PREDICTIONS)
    done, _bad = read_predictions(path)
    pending = [it for it in items if done.get(it.id, {}).get("response") is None]
    if progress is not None:
        progress.total = len(items)
        progress.update(len(items) - len(pending))
    chunk = getattr(generate, "chunk", None) or chunk
    with open(path, "a", encoding="utf-8") as fh:
        for start in range(0, len(pending), chunk):
            batch = pending[start:start + chunk]

            def on_result(i: int, text: str | None, error: str | None, batch=batch) -> None:
                obj: dict[str, Any] = {"id": batch[i].id, "response": text}
                if error:
                    obj["error"] = error
                fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
                fh.flush()
                done[batch[i].id] = obj
                if progress is not None:
                    progress.update(1)

            generate([Item(prompt_text(it, decoding), it.images) for it in batch], on_result)
    return done


def results(bench: Benchmark, items: list[EvalItem], skipped: list[Skipped], predictions: Mapping[str, dict],
            run_info: dict[str, Any], malformed_lines: int = 0, **score_settings: Any) -> dict[str, Any]:
    from . import circular

    responses = {sid: p.get("response") for sid, p in predictions.items() if isinstance(p.get("response"), str)}
    base = circular.base_items(items)  # without the rotations --circular added
    report = bench.score(base, responses, **score_settings) if score_settings else bench.score(base, responses)
    if len(base) != len(items):
        report["metrics"] = {**(report.get("metrics") or {}), **circular.score(items, responses)}
    audit = circular.letter_audit(base, responses)
    item_ids = {it.id for it in items}
    errors = Counter(p.get("error") for sid, p in predictions.items() if sid in item_ids and p.get("error")
                     and sid not in responses)
    skip_reasons = Counter(s.reason for s in skipped)
    out = {
        "benchmark": bench.name,
        "accuracy": report.get("accuracy"),
        **{k: v for k, v in report.items() if k != "accuracy"},
        "items": len(base),
        "skipped": {"count": len(skipped), "by_reason": dict(sorted(skip_reasons.items())),
                    "ids": [s.id for s in skipped][:1000]},
        "backend_errors": {"count": sum(errors.values()), "by_reason": dict(sorted(errors.items()))},
        "malformed_prediction_lines": malformed_lines,
        "letter_audit": audit,
        **{k: run_info.get(k) for k in ("model", "data", "decoding", "prompt", "options", "backend")},
        "spatial_ssrl_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return out


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def results_markdown(res: dict[str, Any]) -> str:
    lines = [f"# {res['benchmark']}", "",
             f"Model: `{res.get('model')}`  ", f"Data: `{res.get('data')}`  ",
             f"Metric: {res.get('metric', 'accuracy')}", "",
             "| category | n | accuracy % |", "| --- | --- | --- |"]
    for name, b in (res.get("per_category") or {}).items():
        lines.append(f"| {name} | {b.get('n', '')} | {_pct(b.get('accuracy'))} |")
    lines.append(f"| **overall** | {res.get('n', '')} | **{_pct(res.get('accuracy'))}** |")
    extra = res.get("metrics") or {}
    if extra:
        lines += ["", "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {_pct(v) if isinstance(v, (int, float)) else v} |" for k, v in extra.items()]
    audit = res.get("letter_audit")
    if audit:
        shares = ", ".join(f"{k} {v:.1f}%" for k, v in audit["answer_letters"].items())
        picked = ", ".join(f"{k} {v:.1f}%" for k, v in audit["predicted_letters"].items())
        lines += ["", f"Right answers by letter: {shares}. Predictions by letter: {picked}."]
    counts = (f"Parse failures: {res.get('parse_failures', 0)}; skipped items: {res['skipped']['count']}; "
              f"backend errors: {res['backend_errors']['count']}.")
    lines += ["", counts]
    return "\n".join(lines) + "\n"


def bar_chart(path: str, title: str, bars: Mapping[str, float | None], reference: Mapping[str, float] | None = None) -> None:
    """A PNG bar chart (matplotlib, headless)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(bars)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(names) + 2), 3.6), dpi=110)
    ax.bar(names, [bars[n] or 0.0 for n in names], color="#4C72B0")
    if reference:
        ax.scatter([n for n in names if n in reference], [reference[n] for n in names if n in reference],
                   marker="_", s=400, color="#C44E52", label="reference", zorder=3)
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylabel("accuracy %")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_results(out: str, res: dict[str, Any]) -> None:
    os.makedirs(out, exist_ok=True)
    atomic_write_json(os.path.join(out, "results.json"), res)
    atomic_write_bytes(os.path.join(out, "results.md"), results_markdown(res).encode())
    bars = {k: v.get("accuracy") for k, v in (res.get("per_category") or {}).items()}
    bars["overall"] = res.get("accuracy")
    try:
        bar_chart(os.path.join(out, "results.png"), f"{res['benchmark']}: {os.path.basename(str(res.get('model')))}", bars)
    except ImportError:
        pass  # matplotlib is in the eval extra; the JSON and the table are written regardless
    _fix_modes(out)


def _fix_modes(out: str) -> None:
    mask = os.umask(0)
    os.umask(mask)
    for name in OWN_FILES:
        p = os.path.join(out, name)
        if os.path.isfile(p):
            os.chmod(p, 0o666 & ~mask)


def decoding_dict(d: Decoding) -> dict[str, Any]:
    return asdict(d)
