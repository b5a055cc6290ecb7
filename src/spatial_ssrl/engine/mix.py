"""The task mix: which tasks and variants a run draws, with what weights, and how a
requested number of samples is split among them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..tasks import available_tasks, get_task_class


class MixError(ValueError):
    """A malformed ``--tasks`` specification."""


@dataclass(frozen=True)
class MixEntry:
    task: str
    variant: str
    weight: float

    @property
    def key(self) -> str:
        return f"{self.task}/{self.variant}"


_ITEM = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*(?::\s*([\w.-]+))?\s*(?:=\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?))?\s*$")


def _expand(task: str, variant: str | None, weight: float | None) -> list[MixEntry]:
    """One task (all its paper variants, weighted by the paper counts) or one variant."""
    cls = get_task_class(task)
    if variant is not None:
        cls(variant)  # validates the variant name
        return [MixEntry(task, variant, 1.0 if weight is None else weight)]
    counts = cls.paper_counts or {cls.default_variant(): 1.0}
    total = float(sum(counts.values()))
    scale = total if weight is None else weight
    return [MixEntry(task, v, scale * c / total) for v, c in counts.items()]


def default_mix(with_depth: bool = False) -> list[MixEntry]:
    """Every registered task that the inputs can feed, weighted by the paper's counts."""
    entries: list[MixEntry] = []
    for name, cls in available_tasks().items():
        if cls.requires_depth and not with_depth:
            continue
        entries.extend(_expand(name, None, None))
    return entries


def parse_mix(spec: str | None, with_depth: bool = False) -> list[MixEntry]:
    """Parse ``--tasks``: a comma list of ``task[:variant][=weight]``.

    With no weights, tasks keep the paper's proportions (``shuffle,flip`` is 16,028 :
    4,005). With weights on every entry, the weights are used as given (normalised). A
    task named without a variant spreads its weight over its paper variants.
    """
    if spec is None or not spec.strip():
        return default_mix(with_depth)
    parsed = []
    for raw in spec.split(","):
        if not raw.strip():
            continue
        m = _ITEM.match(raw)
        if not m:
            raise MixError(f"cannot read task entry {raw.strip()!r}; expected task[:variant][=weight]")
        name, variant, weight = m.group(1), m.group(2), m.group(3)
        parsed.append((name, variant, None if weight is None else float(weight)))
    if not parsed:
        raise MixError("--tasks names no task")
    weighted = [w is not None for _, _, w in parsed]
    if any(weighted) and not all(weighted):
        raise MixError("give a weight to every task in --tasks or to none")
    entries: list[MixEntry] = []
    for name, variant, weight in parsed:
        try:
            entries.extend(_expand(name, variant, weight))
        except KeyError as exc:
            raise MixError(str(exc.args[0])) from None
        except ValueError as exc:
            raise MixError(str(exc)) from None
    seen = set()
    for e in entries:
        if e.key in seen:
            raise MixError(f"{e.key} appears twice in --tasks")
        seen.add(e.key)
    if sum(e.weight for e in entries) <= 0:
        raise MixError("task weights must not all be zero")
    return entries


def allocate(num: int, entries: list[MixEntry]) -> list[int]:
    """Split ``num`` samples over the entries in proportion to their weights (largest
    remainder, ties to the earlier entry), so the counts always add up to ``num``."""
    total = sum(e.weight for e in entries)
    quotas = [num * e.weight / total for e in entries]
    counts = [math.floor(q) for q in quotas]
    left = num - sum(counts)
    order = sorted(range(len(entries)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[:left]:
        counts[i] += 1
    return counts
