"""The shape every benchmark takes: items in, a report out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class BenchmarkError(ValueError):
    """Benchmark files that cannot be read (the message names the file and the problem)."""


@dataclass
class EvalItem:
    """One question of a benchmark.

    ``question`` holds one ``<image>`` placeholder per entry of ``images`` (in order) and no
    format suffix: the runner appends the training suffix unless told not to. ``images``
    entries are encoded bytes, PIL images or file paths. ``answer`` is the ground truth in the
    benchmark's own terms (a letter, a number, a text); ``options`` the option texts of a
    multiple-choice question (letter order). ``category`` is what results are broken down
    by; ``meta`` anything the benchmark's scorer needs (circular group, unit, ...)."""

    id: str
    question: str
    images: list = field(default_factory=list)
    answer: Any = None
    options: list[str] | None = None
    category: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Skipped:
    """An item that could not be loaded (undecodable image, missing video ...): counted and
    named in the report, never silently dropped."""

    id: str
    reason: str


class Benchmark:
    """A benchmark: ``load`` reads its files as distributed, ``score`` turns responses into
    a report. Subclasses set ``name`` and implement both.

    ``score(items, responses)`` gets every loaded item and ``responses`` (id -> response
    text; missing ids are unanswered) and returns a dict with at least ``accuracy`` (percent,
    the benchmark's official overall figure), ``n`` (items scored), ``parse_failures``
    (responses whose answer could not be read: counted wrong, never guessed),
    ``per_category`` ({name: {"n", "accuracy"}}) and ``metric`` (what ``accuracy`` means)."""

    name = ""
    modality = "image"
    default_path_hint = ""
    native_circular = False  # True: the loader's ``circular`` option does circular evaluation itself

    def load(self, path: str, **options: Any) -> tuple[list[EvalItem], list[Skipped]]:
        raise NotImplementedError

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        raise NotImplementedError


def mean_report(rows: Iterable[tuple[str | None, float, bool]], metric: str = "accuracy") -> dict[str, Any]:
    """A report from ``(category, score in [0, 1], parsed)`` per item: item means overall and
    per category, in percent."""
    total = n = failures = 0
    per: dict[str, list[float]] = {}
    for category, value, parsed in rows:
        n += 1
        total += value
        failures += not parsed
        if category is not None:
            per.setdefault(category, []).append(value)
    return {
        "accuracy": 100.0 * total / n if n else None,
        "n": n,
        "parse_failures": failures,
        "per_category": {c: {"n": len(v), "accuracy": 100.0 * sum(v) / len(v)} for c, v in sorted(per.items())},
        "metric": metric,
    }
