"""``ssrl score``: score a predictions file against a generated dataset.

The dataset is a folder written by ``ssrl generate`` (or ``ssrl split`` / ``ssrl
coldstart``) in any format, read through :func:`spatial_ssrl.readers.open_dataset`: every
split's ids, tasks, variants, answers, answer types and options; images are never loaded.

Predictions are JSON lines ``{"id": ..., "response": ...}``, read by
:func:`read_predictions`, the one rule ``ssrl score`` and ``ssrl eval predictions`` share:
lines that are not such an object are *malformed* (counted and reported by line number); a
line ``{"id", "response": null, "error"}`` is a request that failed (``ssrl eval`` writes
them); an id given a second answer is a *duplicate* (counted; the first answer is kept). Ids
absent from the dataset are *unknown*. None of these stop the run. Dataset samples without an
answer are counted as *missing* and left out of the accuracy, which is over the scored
samples.

The command object is :data:`score_command`; the ``ssrl`` group registers it as ``score``.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import click

from spatial_ssrl.readers import DatasetError, open_dataset
from spatial_ssrl.reward.canon import ANSWER_TYPES
from spatial_ssrl.reward.scoring import DEFAULT_FORMAT_WEIGHT, score


def load_answers(data: str) -> OrderedDict[str, dict[str, Any]]:
    """id -> {task, variant, answer, answer_type, options} for every sample of a dataset
    folder. Raises ``click.ClickException`` when the folder holds no usable dataset."""
    samples: OrderedDict[str, dict[str, Any]] = OrderedDict()
    try:
        for rec in open_dataset(data).records(with_images=False):  # streamed: one batch in memory
            if rec.id and rec.answer is not None:
                samples[rec.id] = {
                    "task": rec.task,
                    "variant": rec.variant or "unknown",
                    "answer": rec.answer,
                    "answer_type": rec.answer_type or None,
                    "options": rec.options,
                }
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    if not samples:
        raise click.ClickException(f"{data} holds no samples with an id and an answer")
    return samples


@dataclass
class Predictions:
    """A predictions file as :func:`read_predictions` reads it.

    ``records``: id -> the prediction kept for it (the JSON object), in the order ids first
    appear; ``lines``: id -> the line number of that prediction; ``malformed``: line numbers
    of the lines that are not predictions; ``duplicates``: ids given an answer again (one
    entry per extra answer); ``torn_tail``: the last line has no newline and is not a
    prediction (a write cut short; it is among ``malformed`` too)."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    malformed: list[int] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    torn_tail: bool = False

    def answers(self) -> list[tuple[int, str, str]]:
        """``(line number, id, response)`` of every id whose kept prediction has a response."""
        return [(self.lines[sid], sid, r["response"]) for sid, r in self.records.items()
                if isinstance(r.get("response"), str)]

    def failed(self) -> list[str]:
        """Ids whose only predictions are failed requests."""
        return [sid for sid, r in self.records.items() if not isinstance(r.get("response"), str)]


def read_predictions(path: str) -> Predictions:
    """The predictions of a JSON lines file, by the rule ``ssrl score`` and ``ssrl eval``
    share. Blank lines are skipped; line numbers start at 1. A prediction is a JSON object
    with an ``id`` (a string or an integer, compared as text) and either a string
    ``response`` or ``"response": null`` with a string ``error`` (a request that failed).
    Any other line is malformed. An id's first answer is kept and later answers for it are
    duplicates; a failed request never replaces an answer, and an answer replaces a failed
    request (a retry). Raises ``OSError`` when the file cannot be read."""
    out = Predictions()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            sid = obj.get("id") if isinstance(obj, dict) else None
            response = obj.get("response") if isinstance(obj, dict) else None
            answer = isinstance(response, str)
            failed = response is None and isinstance(obj, dict) and isinstance(obj.get("error"), str)
            if isinstance(sid, bool) or not isinstance(sid, (str, int)) or str(sid) == "" or not (answer or failed):
                out.malformed.append(number)
                out.torn_tail = not line.endswith("\n")
                continue
            sid = str(sid)
            kept = out.records.get(sid)
            if kept is not None and isinstance(kept.get("response"), str):
                if answer:
                    out.duplicates.append(sid)
                continue
            out.records[sid] = obj
            out.lines[sid] = number
    return out


def _new_bucket() -> dict[str, Any]:
    return {"n": 0, "correct": 0, "accuracy_sum": 0.0, "well_formed": 0, "parse_failures": 0, "reward_sum": 0.0}


def _finish(bucket: dict[str, Any]) -> dict[str, Any]:
    n = bucket["n"]
    return {
        "n": n,
        "correct": bucket["correct"],
        "accuracy": (100.0 * bucket["accuracy_sum"] / n) if n else None,
        "format_rate": (100.0 * bucket["well_formed"] / n) if n else None,
        "parse_failures": bucket["parse_failures"],
        "mean_reward": (bucket["reward_sum"] / n) if n else None,
    }


def build_report(
    samples: OrderedDict[str, dict[str, Any]],
    predictions: list[tuple[int, str, str]],
    malformed: list[int],
    **settings: Any,
) -> dict[str, Any]:
    """Score every prediction and aggregate. ``settings`` go to :func:`score`."""
    total = _new_bucket()
    per_task: dict[str, dict[str, Any]] = {}
    per_variant: dict[str, dict[str, Any]] = {}
    reasons: dict[str, int] = {}
    seen: set[str] = set()
    unknown: list[str] = []
    duplicates: list[str] = []
    for _number, sid, response in predictions:
        sample = samples.get(sid)
        if sample is None:
            unknown.append(sid)
            continue
        if sid in seen:
            duplicates.append(sid)
            continue
        seen.add(sid)
        result = score(
            response,
            sample["answer"],
            sample["answer_type"] if sample["answer_type"] in ANSWER_TYPES else None,
            options=sample["options"],
            **settings,
        )
        task = sample["task"]
        variant = f"{task}/{sample['variant']}"
        for bucket in (total, per_task.setdefault(task, _new_bucket()), per_variant.setdefault(variant, _new_bucket())):
            bucket["n"] += 1
            bucket["correct"] += result["accuracy"] == 1.0
            bucket["accuracy_sum"] += result["accuracy"]
            bucket["well_formed"] += result["format"] == 1.0
            bucket["parse_failures"] += result["prediction"] is None
            bucket["reward_sum"] += result["overall"]
        if result["reason"] is not None:
            reasons[result["reason"]] = reasons.get(result["reason"], 0) + 1

    missing = [sid for sid in samples if sid not in seen]
    summary = _finish(total)
    return {
        "accuracy": summary["accuracy"],
        "format_rate": summary["format_rate"],
        "mean_reward": summary["mean_reward"],
        "scored": summary["n"],
        "correct": summary["correct"],
        "parse_failures": summary["parse_failures"],
        "dataset_samples": len(samples),
        "per_task": {k: _finish(v) for k, v in sorted(per_task.items())},
        "per_variant": {k: _finish(v) for k, v in sorted(per_variant.items())},
        "failure_reasons": dict(sorted(reasons.items())),
        "unknown_ids": {"count": len(unknown), "ids": unknown},
        "malformed_lines": {"count": len(malformed), "lines": malformed},
        "duplicate_ids": {"count": len(duplicates), "ids": duplicates},
        "missing_predictions": {"count": len(missing), "ids": missing},
        "settings": {k: v for k, v in settings.items()},
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(report: dict[str, Any]) -> str:
    rows = [("group", "n", "accuracy %", "format %", "parse failures")]
    for section in ("per_task", "per_variant"):
        for name, b in report[section].items():
            rows.append((name, str(b["n"]), _pct(b["accuracy"]), _pct(b["format_rate"]), str(b["parse_failures"])))
        rows.append(("", "", "", "", ""))
    rows.append(
        ("all", str(report["scored"]), _pct(report["accuracy"]), _pct(report["format_rate"]), str(report["parse_failures"]))
    )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join([r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, 5)]).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _notes(report: dict[str, Any]) -> list[str]:
    out = []

    def listed(items: list, limit: int = 10) -> str:
        shown = ", ".join(str(x) for x in items[:limit])
        return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")

    if report["malformed_lines"]["count"]:
        out.append(f"malformed lines: {report['malformed_lines']['count']} (line {listed(report['malformed_lines']['lines'])})")
    if report["unknown_ids"]["count"]:
        out.append(f"unknown ids: {report['unknown_ids']['count']} ({listed(report['unknown_ids']['ids'])})")
    if report["duplicate_ids"]["count"]:
        out.append(f"duplicate ids (first prediction kept): {report['duplicate_ids']['count']} ({listed(report['duplicate_ids']['ids'])})")
    if report.get("failed_requests", {}).get("count"):
        out.append(f"failed requests (no response): {report['failed_requests']['count']} ({listed(report['failed_requests']['ids'])})")
    if report["missing_predictions"]["count"]:
        out.append(f"dataset samples without a prediction: {report['missing_predictions']['count']}")
    return out


@click.command("score", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data", "-d", required=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset folder written by `ssrl generate`.")
@click.option("--predictions", "-p", required=True, type=click.Path(exists=True, dir_okay=False),
              help='JSON lines {"id": ..., "response": ...}.')
@click.option("--out", "-o", default=None, type=click.Path(dir_okay=False),
              help="Write the JSON report here.")
@click.option("--overwrite", is_flag=True, help="Let --out replace a file that an earlier score did not write.")
@click.option("--allow-hedging", is_flag=True,
              help="Score only the last box even when earlier boxes disagree (the paper's rule).")
@click.option("--require-format", is_flag=True, help="Count an answer only when the format check passes.")
@click.option("--format-weight", default=DEFAULT_FORMAT_WEIGHT, show_default=True,
              type=click.FloatRange(0.0, 1.0), help="Weight of the format part in the mean reward.")
def score_command(data, predictions, out, overwrite, allow_hedging, require_format, format_weight):
    """Score model responses against a dataset's answers.

    Prints accuracy, format rate and parse failures per task and per variant; --out writes
    the full report (top-level `accuracy` in percent over the scored samples).
    """
    from spatial_ssrl.outfiles import (
        OutFileError,
        check_out_file,
        json_marker,
        json_report,
        write_out_file,
    )

    out_rules = {"markers": [json_marker("score")], "overwrite": overwrite, "datasets": [data],
                 "inputs": [predictions]}
    if out:
        try:
            check_out_file(out, **out_rules)
        except OutFileError as exc:
            raise click.ClickException(str(exc)) from None
    samples = load_answers(data)
    try:
        read = read_predictions(predictions)
    except OSError as exc:
        raise click.ClickException(f"cannot read {predictions}: {exc}") from exc
    settings: dict[str, Any] = {"format_weight": format_weight}
    if allow_hedging:
        settings["allow_hedging"] = True
    if require_format:
        settings["require_format"] = True
    report = build_report(samples, read.answers(), read.malformed, **settings)
    report["duplicate_ids"] = {"count": len(read.duplicates), "ids": read.duplicates}
    report["failed_requests"] = {"count": len(read.failed()), "ids": read.failed()}
    report["dataset"] = os.path.abspath(data)
    report["predictions_file"] = os.path.abspath(predictions)

    click.echo(format_table(report))
    for note in _notes(report):
        click.echo(note)
    if out:
        try:
            write_out_file(out, json_report("score", report, indent=2), **out_rules)
        except OutFileError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"report written to {out}")


__all__ = ["Predictions", "build_report", "format_table", "load_answers", "read_predictions", "score_command"]
