"""Held-out pretext tasks: a dataset folder of ours (any format ``ssrl generate`` writes),
its ``test`` split by default, scored exactly as ``ssrl score`` and the GRPO reward score.

These are our own tasks: their official rule is the strict one (the reward's parser, boxed
answers only, hedges refused), so ``accuracy`` = ``strict`` and ``parse_failures`` =
``strict_parse_failures``."""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Mapping
from typing import Any

from ...readers import DatasetError, image_problem, open_dataset
from ...reward.cli import build_report
from ..base import Benchmark, BenchmarkError, EvalItem, Skipped


class Pretext(Benchmark):
    name = "pretext"
    default_path_hint = "a dataset folder written by ssrl generate (split by ssrl split)"

    def load(self, path: str, split: str = "test", images: bool = True,
             **options: Any) -> tuple[list[EvalItem], list[Skipped]]:
        """Items of ``split``; ``images=False`` skips the image bytes (scoring predictions)."""
        if options:
            raise BenchmarkError(f"pretext takes no option {', '.join(sorted(options))}")
        try:
            reader = open_dataset(path)
            if split not in reader.splits:
                have = ", ".join(sorted(reader.splits))
                raise BenchmarkError(f"{path} has no '{split}' split (it has: {have}); run `ssrl split {path}` "
                                     "to hold out source images, or pass --split train")
            records = list(reader.records(split, with_images=images))
        except DatasetError as exc:
            raise BenchmarkError(str(exc)) from None
        items, skipped = [], []
        for r in records:
            problems = list(r.image_errors) if any(r.image_errors) else (
                [image_problem(im) for im in r.images] if images else [])
            at = next((i for i, p in enumerate(problems) if p), None)
            bad = None if at is None else problems[at]
            if bad or not r.answer or r.problem is None:
                if bad:
                    name = r.image_names[at] if at < len(r.image_names) else f"image {at + 1}"
                    skipped.append(Skipped(r.id, "undecodable_image" if bad.startswith("undecodable")
                                           else "unreadable_image", f"{name}: {bad}"))
                else:
                    skipped.append(Skipped(r.id, "no_answer"))
                continue
            items.append(EvalItem(id=r.id, question=r.problem, images=list(r.images), answer=r.answer,
                                  options=r.options, category=r.task,
                                  meta={"variant": r.variant, "answer_type": r.answer_type}))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str], **settings: Any) -> dict[str, Any]:
        samples = OrderedDict((it.id, {"task": it.category, "variant": it.meta.get("variant") or "",
                                       "answer": str(it.answer), "answer_type": it.meta.get("answer_type"),
                                       "options": it.options}) for it in items)
        preds = [(i, it.id, responses[it.id]) for i, it in enumerate(items, 1) if responses.get(it.id) is not None]
        report = build_report(samples, preds, [], **settings)
        missing = report["missing_predictions"]["count"]
        total = report["scored"] + missing  # an unanswered item counts as wrong, as in every benchmark
        right = (report["accuracy"] or 0.0) * report["scored"] / 100.0
        return {
            "accuracy": 100.0 * right / total if total else None,
            "n": total,
            "parse_failures": report["parse_failures"],
            "format_rate": report["format_rate"],
            "per_category": _with_unanswered(report["per_task"], Counter(it.category for it in items)),
            "per_variant": {k: {"n": v["n"], "accuracy": v["accuracy"]} for k, v in report["per_variant"].items()},
            "failure_reasons": report["failure_reasons"],
            "missing": missing,
            "metric": "exact answer after canonicalisation (the GRPO reward's accuracy, our own rule: official = "
                      "strict); unanswered items wrong",
            "strict": 100.0 * right / total if total else None,
            "strict_parse_failures": report["parse_failures"],
            "metrics": {"strict_failure_reasons": dict(sorted(report["failure_reasons"].items()))},
        }


def _with_unanswered(scored: dict, totals: Counter) -> dict:
    """Per-task figures over every item of the task, an unanswered item counting as wrong."""
    out = {}
    for task, total in sorted(totals.items()):
        b = scored.get(task, {"n": 0, "accuracy": None, "format_rate": None, "parse_failures": 0})
        right = (b["accuracy"] or 0.0) * b["n"] / 100.0
        out[task] = {"n": total, "accuracy": 100.0 * right / total, "answered": b["n"],
                     "format_rate": b["format_rate"], "parse_failures": b["parse_failures"]}
    return out


BENCHMARK = Pretext()
