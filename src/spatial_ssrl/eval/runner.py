"""Running an evaluation: items -> a generation backend -> predictions.jsonl -> results.

Predictions are appended to ``OUT/predictions.jsonl`` as they come (one JSON object a line:
``id``, ``response``, and ``error`` when the backend gave up on the item), so an interrupted
run loses nothing finished; a re-run skips every item that already has a response and retries
the ones that errored. A last line cut short (a kill or a full disk mid-write) is cut off
before a re-run appends (counted as ``predictions_tail_repaired``). Predictions files, ours
and the user's (``--predictions``), are read by :func:`spatial_ssrl.reward.cli.read_predictions`,
the rule ``ssrl score`` uses too. ``OUT/eval_run.json`` records what the run is (benchmark,
data, model, decoding, prompt): a re-run into the same folder must be the same evaluation.

OUT may hold only files of ours: a file named like ours that we did not write (a user's
``results.json``, say) is never replaced; every file is written through a temporary
``.tmp-ssrl-eval-*`` name and renamed.

When generation is done: ``results.json`` (top-level ``accuracy`` in percent, the benchmark's
report, skipped items and backend errors by reason, decoding settings, model, data and prompt
versions), ``results.md`` (a table) and ``results.png`` (a bar chart per category).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .. import __version__
from ..prompts import with_format_suffix
from ..reward.cli import read_predictions as read_prediction_file
from ..writers.base import current_umask
from .base import Benchmark, EvalItem, Skipped

PREDICTIONS = "predictions.jsonl"
RUN_FILE = "eval_run.json"
RESULT_FILES = ("results.json", "results.md", "results.png")
OWN_FILES = (PREDICTIONS, RUN_FILE, *RESULT_FILES)
TMP_PREFIX = ".tmp-ssrl-eval-"
ALIAS_KEYS = ("qid",)  # meta keys an item may also be found under (3DSRBench's qid beside its index)

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
    """id -> kept prediction of a predictions file (absent file: none), and the count of
    malformed lines; the rule of :func:`spatial_ssrl.reward.cli.read_predictions`."""
    if not os.path.isfile(path):
        return {}, 0
    read = read_prediction_file(path)
    return read.records, len(read.malformed)


def repair_tail(path: str) -> bool:
    """End ``path`` on a newline before appending: a last line without one that is a whole
    JSON object gets its newline; one that is not (a write cut short) is cut off. True when
    a line was cut."""
    if not os.path.isfile(path):
        return False
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return False
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return False
        start = size
        while start > 0:
            begin = max(0, start - 65536)
            fh.seek(begin)
            i = fh.read(start - begin).rfind(b"\n")
            if i >= 0:
                start = begin + i + 1
                break
            start = begin
        fh.seek(start)
        try:
            whole = isinstance(json.loads(fh.read().decode("utf-8")), dict)
        except ValueError:
            whole = False
        if whole:
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")
            return False
        fh.truncate(start)
        return True


def write_file(path: str, data: bytes) -> None:
    """Write ``path`` through a ``.tmp-ssrl-eval-*`` file beside it and a rename."""
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=TMP_PREFIX, suffix="-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str, obj: Any) -> None:
    write_file(path, (json.dumps(obj, indent=2) + "\n").encode())


def _json_keys(path: str) -> set[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except (OSError, ValueError):
        return set()
    return set(obj) if isinstance(obj, dict) else set()


def not_ours(out: str, names: Sequence[str] = OWN_FILES) -> list[str]:
    """Those of ``names`` present in ``out`` that this program did not write: ``eval_run.json``
    and ``results.json`` are ours when they hold our keys, ``predictions.jsonl`` when our
    ``eval_run.json`` is beside it, ``results.md`` and ``results.png`` when our
    ``results.json`` or ``eval_run.json`` is."""
    run_ok = {"benchmark", "data", "decoding", "prompt"} <= _json_keys(os.path.join(out, RUN_FILE))
    res_ok = {"benchmark", "spatial_ssrl_version"} <= _json_keys(os.path.join(out, "results.json"))
    ours = {RUN_FILE: run_ok, "results.json": res_ok, PREDICTIONS: run_ok,
            "results.md": run_ok or res_ok, "results.png": run_ok or res_ok}
    return [n for n in names if os.path.lexists(os.path.join(out, n)) and not ours.get(n, False)]


def check_out_dir(out: str, run_info: dict[str, Any] | None, writes: Sequence[str] = OWN_FILES) -> None:
    """Refuse a folder holding files we did not write (among ``writes``, the files this run
    writes, or under other names), or, given ``run_info``, another evaluation's predictions."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise EvalError(f"--out {out} exists and is not a folder")
    if not os.path.isdir(out):
        return
    foreign = sorted(n for n in os.listdir(out) if n not in OWN_FILES and not n.startswith(".tmp-"))
    foreign += not_ours(out, writes)
    if foreign:
        raise EvalError(f"--out {out} holds files this program did not write ({', '.join(foreign[:3])}); "
                        "choose another folder")
    path = os.path.join(out, RUN_FILE)
    if run_info is not None and os.path.isfile(path):
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
                   run_info: dict[str, Any], chunk: int = 64, progress=None,
                   reading: dict[str, Any] | None = None) -> dict[str, dict]:
    """Generate responses for the items without one in ``out``; returns id -> prediction.
    ``reading`` (a dict) receives what reading the earlier predictions met:
    ``malformed_prediction_lines`` and ``predictions_tail_repaired`` (0 or 1)."""
    from ..locking import FolderBusy, FolderLock

    check_out_dir(out, run_info)
    os.makedirs(out, exist_ok=True)
    lock = FolderLock(out)
    try:
        lock.acquire()  # one evaluation writes its predictions here at a time
    except FolderBusy as exc:
        raise EvalError(str(exc)) from None
    try:
        return _generate_into(items, generate, out, decoding, run_info, chunk, progress,
                              {} if reading is None else reading)
    finally:
        lock.release()


def _generate_into(items, generate, out, decoding, run_info, chunk, progress, reading) -> dict[str, dict]:
    from ..backends.transformers_backend import Item

    write_json(os.path.join(out, RUN_FILE), run_info)
    path = os.path.join(out, PREDICTIONS)
    reading["predictions_tail_repaired"] = int(repair_tail(path))
    done, reading["malformed_prediction_lines"] = read_predictions(path)
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
                if error or text is None:
                    obj["error"] = error or "no response"
                fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
                fh.flush()
                done[batch[i].id] = obj
                if progress is not None:
                    progress.update(1)

            generate([Item(prompt_text(it, decoding), it.images) for it in batch], on_result)
    return done


def match_predictions(records: Mapping[str, dict], items: Sequence[EvalItem], others: Sequence[str] = ()
                      ) -> tuple[dict[str, dict], list[str]]:
    """Predictions by item id, and the ids of ``records`` that name no item. A prediction
    finds its item by the item's id, else by an alternative id in the item's meta
    (:data:`ALIAS_KEYS`: a 3DSRBench question by its ``qid`` as well as its ``index``);
    ``others`` are ids that match no item to score but are no mistake (skipped items, items
    left out by ``--limit``; a ``#rot<k>`` suffix is ignored for them)."""
    ids = {it.id for it in items}
    alias: dict[str, str | None] = {}
    for it in items:
        if "base_id" in it.meta:  # a rotation --circular added: found by its own id only
            continue
        for key in ALIAS_KEYS:
            value = it.meta.get(key)
            if value is not None and str(value) not in ids:
                alias[str(value)] = None if str(value) in alias else it.id  # ambiguous: none
    known = set(others)
    matched: dict[str, dict] = {}
    unmatched: list[str] = []
    for sid, rec in records.items():
        target = sid if sid in ids else alias.get(sid)
        if target is not None:
            if target not in matched or (not isinstance(matched[target].get("response"), str)
                                         and isinstance(rec.get("response"), str)):
                matched[target] = rec
        elif re.sub(r"#rot\d+$", "", sid) not in known:
            unmatched.append(sid)
    return matched, unmatched


def results(bench: Benchmark, items: list[EvalItem], skipped: list[Skipped], predictions: Mapping[str, dict],
            run_info: dict[str, Any], malformed_lines: int = 0, reading: Mapping[str, Any] | None = None,
            **score_settings: Any) -> dict[str, Any]:
    """The results.json of a run. ``reading``: what reading the predictions met (counts of
    ``malformed_prediction_lines``, ``duplicate_prediction_ids``, ``unmatched_predictions``,
    ``predictions_tail_repaired``), copied in."""
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
        **({"strict": report["strict"]} if "strict" in report else {}),
        **{k: v for k, v in report.items() if k not in ("accuracy", "strict")},
        "items": len(base),
        "skipped": {"count": len(skipped), "by_reason": dict(sorted(skip_reasons.items())),
                    "ids": [s.id for s in skipped][:1000],
                    "first": next(({"id": s.id, "reason": s.reason, "detail": s.detail} for s in skipped
                                   if getattr(s, "detail", None)), None)},
        "backend_errors": {"count": sum(errors.values()), "by_reason": dict(sorted(errors.items()))},
        "malformed_prediction_lines": malformed_lines,
        "duplicate_prediction_ids": 0,
        "unmatched_predictions": 0,
        **dict(reading or {}),
        "letter_audit": audit,
        **{k: run_info.get(k) for k in ("model", "data", "decoding", "prompt", "options", "backend")},
        "spatial_ssrl_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return out


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def results_markdown(res: dict[str, Any]) -> str:
    strict = "strict" in res  # our boxed-only rule beside the official one
    lines = [f"# {res['benchmark']}", "",
             f"Model: `{res.get('model')}`  ", f"Data: `{res.get('data')}`  ",
             f"Metric: {res.get('metric', 'accuracy')}", "",
             "| category | n | accuracy % |" + (" strict % |" if strict else ""),
             "| --- | --- | --- |" + (" --- |" if strict else "")]
    for name, b in (res.get("per_category") or {}).items():
        lines.append(f"| {name} | {b.get('n', '')} | {_pct(b.get('accuracy'))} |"
                     + (f" {_pct(b.get('strict'))} |" if strict else ""))
    lines.append(f"| **overall** | {res.get('n', '')} | **{_pct(res.get('accuracy'))}** |"
                 + (f" **{_pct(res.get('strict'))}** |" if strict else ""))
    extra = res.get("metrics") or {}
    if extra:
        lines += ["", "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {_pct(v) if isinstance(v, (int, float)) else v} |" for k, v in extra.items()]
    audit = res.get("letter_audit")
    if audit:
        shares = ", ".join(f"{k} {v:.1f}%" for k, v in audit["answer_letters"].items())
        picked = ", ".join(f"{k} {v:.1f}%" for k, v in audit["predicted_letters"].items())
        lines += ["", f"Right answers by letter: {shares}. Predictions by letter: {picked}."]
    counts = (f"Parse failures: {res.get('parse_failures', 0)}"
              + (f" (strict rule: {res.get('strict_parse_failures', 0)})" if strict else "")
              + f"; skipped items: {res['skipped']['count']}; backend errors: {res['backend_errors']['count']}.")
    reading = [f"{what}: {res[key]}" for key, what in (
        ("malformed_prediction_lines", "malformed prediction lines"),
        ("duplicate_prediction_ids", "duplicate prediction ids (first kept)"),
        ("unmatched_predictions", "predictions matching no item"),
        ("predictions_tail_repaired", "torn last prediction lines cut")) if res.get(key)]
    if reading:
        counts += " " + "; ".join(reading).capitalize() + "."
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
    write_file(path, buf.getvalue())


def write_results(out: str, res: dict[str, Any]) -> None:
    """results.json, results.md and results.png in ``out``; refused (:class:`EvalError`) when
    one of them is there and not ours."""
    check_out_dir(out, None, RESULT_FILES)
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "results.json"), res)
    write_file(os.path.join(out, "results.md"), results_markdown(res).encode())
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


def clear_own(out: str) -> list[str]:
    """``--overwrite``: remove the predictions and results an earlier evaluation of ours left
    in ``out`` (under the folder's lock, so not while another run writes there); a folder
    holding anything we did not write is refused as before. Returns the names removed."""
    from ..locking import FolderBusy, FolderLock

    if not os.path.isdir(out):
        return []
    check_out_dir(out, None)
    lock = FolderLock(out)
    try:
        lock.acquire()
    except FolderBusy as exc:
        raise EvalError(str(exc)) from None
    try:
        removed = [n for n in OWN_FILES if os.path.lexists(os.path.join(out, n))]
        for name in removed:
            os.unlink(os.path.join(out, name))
        return removed
    finally:
        lock.release()
