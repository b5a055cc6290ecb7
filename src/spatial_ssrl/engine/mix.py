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


PAPER_TASKS = ("shuffle", "flip", "crop", "depth", "position")
"""The paper's five tasks: the default mix (with any plugin task that carries paper counts)."""

ALL_TASKS = (*PAPER_TASKS, "rotation", "temporal", "distance", "camera_motion", "correspondence", "counting")
"""The eleven tasks of issue 24, in a fixed order; ``--tasks all`` mixes those registered."""

PRESETS = {"all": ALL_TASKS}
"""Named mixes for ``--tasks NAME`` (alone): each listed task that is registered and that the
inputs can feed (depth tasks only with depth), every task with the same share."""

_ITEM = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*(?::\s*([\w.-]+))?\s*(?:=\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?))?\s*$")


def _expand(task: str, variant: str | None, weight: float | None) -> list[MixEntry]:
    """One task (all its paper variants, weighted by the paper counts) or one variant."""
    cls = get_task_class(task)
    if variant is not None:
        cls(variant)  # validates the variant name
        if weight is None:  # a paper task's variant: 1 as before; another task's: see _unweighted
            weight = _unweighted(cls) if not cls.paper_counts else 1.0
        return [MixEntry(task, variant, weight)]
    counts = cls.paper_counts or {cls.default_variant(): 1.0}
    total = float(sum(counts.values()))
    scale = (total if cls.paper_counts else _unweighted(cls)) if weight is None else weight
    return [MixEntry(task, v, scale * c / total) for v, c in counts.items()]


def _unweighted(cls) -> float:
    """The weight of a task named without one: its paper count, or for a task outside the
    paper (no paper counts) the mean count of a paper task, so ``shuffle,rotation`` gives
    rotation about the share of an average paper task rather than next to nothing."""
    if cls.paper_counts:
        return float(sum(cls.paper_counts.values()))
    totals = []
    for name in PAPER_TASKS:
        try:
            counts = get_task_class(name).paper_counts
        except KeyError:
            continue
        totals.append(float(sum(counts.values())))
    return sum(totals) / len(totals) if totals else 1.0


def default_mix(with_depth: bool = False) -> list[MixEntry]:
    """Every registered task with paper counts that the inputs can feed, weighted by the
    paper's counts. Tasks without paper counts (``rotation`` and the other tasks of issue
    24) come in only when ``--tasks`` names them."""
    entries: list[MixEntry] = []
    for name, cls in available_tasks().items():
        if (cls.requires_depth and not with_depth) or not cls.paper_counts:
            continue
        entries.extend(_expand(name, None, None))
    return entries


def preset_mix(name: str, with_depth: bool = False) -> list[MixEntry]:
    """The named preset (see :data:`PRESETS`): its registered tasks that the inputs can
    feed, one equal share each, spread over each task's default variants."""
    registered = available_tasks()
    entries: list[MixEntry] = []
    for task in PRESETS[name]:
        cls = registered.get(task)
        if cls is None or (cls.requires_depth and not with_depth):
            continue
        entries.extend(_expand(task, None, 1.0))
    if not entries:
        raise MixError(f"preset {name!r}: none of its tasks can be fed by these inputs")
    return entries


def parse_mix(spec: str | None, with_depth: bool = False) -> list[MixEntry]:
    """Parse ``--tasks``: a comma list of ``task[:variant][=weight]``, or a preset name
    alone (``all``: the eleven tasks of issue 24 that are registered, equal shares).

    With no weights, tasks keep the paper's proportions (``shuffle,flip`` is 16,028 :
    4,005). With weights on every entry, the weights are used as given (normalised). A
    task named without a variant spreads its weight over its paper variants.
    """
    if spec is None or not spec.strip():
        return default_mix(with_depth)
    if spec.strip() in PRESETS and spec.strip() not in available_tasks():
        return preset_mix(spec.strip(), with_depth)
    parsed = []
    for raw in spec.split(","):
        if not raw.strip():
            continue
        m = _ITEM.match(raw)
        if not m:
            raise MixError(f"cannot read task entry {raw.strip()!r}; expected task[:variant][=weight]")
        name, variant, weight = m.group(1), m.group(2), m.group(3)
        if name in PRESETS and name not in available_tasks():
            raise MixError(f"preset {name!r} stands alone in --tasks (it cannot be combined with other entries)")
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
