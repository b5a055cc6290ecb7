"""The shape every benchmark takes: items in, a report out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    by; ``meta`` anything the benchmark's scorer needs (circular group, unit, ...).

    Loaded with ``images=False`` (scoring a predictions file), ``images`` holds no media:
    the media's references as the benchmark's files name them (paths, never opened or
    checked), or nothing where the media are embedded in the table; ``question`` still has
    one placeholder per medium, and no scorer reads ``images``."""

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
    named in the report, never silently dropped. ``detail`` names what was missing or could
    not be decoded: the file looked for, or the table, row and column of an embedded image."""

    id: str
    reason: str
    detail: str | None = None


class Benchmark:
    """A benchmark: ``load`` reads its files as distributed, ``score`` turns responses into
    a report. Subclasses set ``name`` and implement both.

    ``score(items, responses)`` gets every loaded item and ``responses`` (id -> response
    text; missing ids are unanswered) and returns a dict with at least ``accuracy`` (percent,
    the benchmark's official overall figure), ``n`` (items scored), ``parse_failures``
    (responses whose answer could not be read: counted wrong, never guessed),
    ``per_category`` ({name: {"n", "accuracy"}}) and ``metric`` (what ``accuracy`` means).

    Two rules score every response. ``accuracy`` (the headline) applies the benchmark's
    official extraction and matching rule, written from its own scoring code (file and commit
    named in the module's docstring), to :func:`spatial_ssrl.eval.answers.final_answer`;
    ``parse_failures`` counts the responses that rule reads nothing from. ``strict`` is ours:
    boxed answers only, read by the reward's parser, hedges refused; ``strict_parse_failures``
    counts its failures (their reasons in ``metrics["strict_failure_reasons"]``)."""

    name = ""
    aliases: tuple[str, ...] = ()  # other names users know it by (lmms-eval tasks, VLMEvalKit datasets)
    modality = "image"
    default_path_hint = ""
    native_circular = False  # True: the loader's ``circular`` option does circular evaluation itself

    def load(self, path: str, images: bool = True, **options: Any) -> tuple[list[EvalItem], list[Skipped]]:
        """The items of the files at ``path`` and the ones that could not be loaded.
        ``images=False`` reads the same items (ids, questions, answers, options, categories,
        in the same order) without opening, decoding or looking for any image or video, so no
        item is skipped for its media; that is all scoring a predictions file needs."""
        raise NotImplementedError

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        raise NotImplementedError


class Tally:
    """What reading the responses met, for the report: ``missing`` (items without a response),
    ``parse_failures`` (responses whose answer could not be read: counted wrong, never guessed)
    and ``reasons`` (parse failures by the reader's reason)."""

    def __init__(self) -> None:
        self.missing = 0
        self.parse_failures = 0
        self.reasons: Counter[str] = Counter()

    def read(self, response: str | None, reader: Callable[..., tuple[Any, str | None]], *args: Any,
             fallback_reason: str = "unparseable", **kwargs: Any) -> Any:
        """``reader(response, *args, **kwargs)``'s value, or None for a missing response or an
        answer that could not be read (counted; a failure without a reason counts under
        ``fallback_reason``)."""
        if response is None:
            self.missing += 1
            return None
        value, reason = reader(response, *args, **kwargs)
        if value is None:
            self.parse_failures += 1
            self.reasons[reason or fallback_reason] += 1
        return value

    def failure_reasons(self, sort: bool = False) -> dict[str, int]:
        """``reasons`` as a plain dict, in the order first met (by name with ``sort``)."""
        return dict(sorted(self.reasons.items())) if sort else dict(self.reasons)


def pct(hits: Sequence[float]) -> float | None:
    """The mean of ``hits`` (bools or scores in [0, 1]) in percent; None when empty."""
    return 100.0 * sum(hits) / len(hits) if hits else None


def breakdown(groups: Mapping[str, Sequence[float]]) -> dict[str, dict[str, Any]]:
    """``{name: {"n", "accuracy"}}`` per group of hits, by name."""
    return {k: {"n": len(v), "accuracy": pct(v)} for k, v in sorted(groups.items())}


def mean_report(rows: Iterable[tuple[str | None, float, bool]], metric: str = "accuracy") -> dict[str, Any]:
    """A report from ``(category, score in [0, 1], parsed)`` per item: item means overall and
    per category, in percent."""
    values: list[float] = []
    failures = 0
    per: dict[str, list[float]] = {}
    for category, value, parsed in rows:
        values.append(value)
        failures += not parsed
        if category is not None:
            per.setdefault(category, []).append(value)
    return {
        "accuracy": pct(values),
        "n": len(values),
        "parse_failures": failures,
        "per_category": breakdown(per),
        "metric": metric,
    }


def with_strict(report: dict[str, Any], strict: float | None, tally: Tally) -> dict[str, Any]:
    """``report`` with our strict rule's figures beside the official ones: ``strict`` (percent),
    ``strict_parse_failures`` and ``metrics["strict_failure_reasons"]`` (by name)."""
    report["strict"] = strict
    report["strict_parse_failures"] = tally.parse_failures
    report.setdefault("metrics", {})["strict_failure_reasons"] = tally.failure_reasons(sort=True)
    return report

