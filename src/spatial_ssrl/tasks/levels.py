"""Difficulty levels: for each task, an ordered list of named levels, easiest first.

A level is a distribution over the task's variants (most levels are a single variant), so
a sample drawn at a level is an ordinary sample of one variant: its ``variant`` and
``meta.params`` hold every knob (grid shape, masking, number of regions...) and it can be
re-derived and re-rendered like any other. The paper's own setting is one named level per
task (:data:`PAPER_LEVEL`); for shuffle that level is the paper's mix of grids.

What each task's knob is:

- shuffle: the number of pieces and their layout (strips ``1xN`` / ``Nx1``, grids ``MxN``)
  and masking (one piece painted white so edge matching alone cannot solve it);
- flip: the grid (2x2, 3x3, 4x4): more, smaller patches to search;
- crop: the number of options (2..5) and the kinds of distractors, from rotations only
  (``-rot``: easy to reject) through the paper's five kinds to ``-fine`` (the region grown by
  s/8, s/4 or s/2, or its interior enlarged: the right content at a slightly wrong scale);
- depth: the number of marked regions to order (2..5) and the least normalised depth gap
  between consecutive ones (``-gap0.2``: far apart, easier; the paper's 0.05 otherwise);
- position: the margins: ``auto-x2`` / ``auto-x1.5`` scale every lateral and depth
  threshold, so an offset counts only far beyond the paper's margin (easier), ``auto`` is
  the paper's;
- rotation (not a paper task): two turns (0/180), four turns, then one patch of a 2x2 /
  3x3 grid turned in place (less of the scene to read the turn from);
- distance (not a paper task): one point's distance from the camera, then two points at
  about the same depth (``pair-lateral``), any two points, two points mostly one behind
  the other (``pair-depth``: the length must be read from depth cues);
- temporal (not a paper task): the number of frames to order (3..6) and how far apart
  they are (``-close``: small steps, small changes between frames), interleaved;
- camera_motion (not a paper task): one motion (a step or a turn), large then small, then
  a step combined with a turn (both parts must be read), large then small;
- correspondence (not a paper task): the number of candidates in the second view (3, 4, 6)
  and how they lie (``far``: spread over the view; ``near``: a tight cluster of neighbours
  around the true point, harder);
- counting (not a paper task): a few big shapes, all of the asked kind; then among others
  of another colour and kind; then more, smaller shapes among others sharing the colour or
  the kind.

``ssrl tasks`` lists the levels.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import get_task_class


@dataclass(frozen=True)
class Level:
    name: str
    variants: tuple[tuple[str, float], ...]
    """(variant, weight) pairs; one pair for a plain level."""

    @property
    def single(self) -> str | None:
        return self.variants[0][0] if len(self.variants) == 1 else None


def _plain(*names: str) -> list[Level]:
    return [Level(n, ((n, 1.0),)) for n in names]


def _paper(task: str) -> Level:
    counts = get_task_class(task).paper_counts
    return Level("paper", tuple((v, float(c)) for v, c in counts.items()))


def _table() -> dict[str, list[Level]]:
    return {
        "shuffle": [*_plain("1x3", "3x1", "2x2", "1x4", "4x1"), _paper("shuffle"),
                    *_plain("2x2-masked", "1x5", "2x3", "1x6", "3x3", "3x3-masked", "4x4")],
        "flip": _plain("2x2", "3x3", "4x4"),
        "crop": _plain("2-options-rot", "3-options-rot", "4-options-rot", "3-options", "4-options", "5-options",
                       "4-options-fine", "5-options-fine"),
        "depth": _plain("2-regions-gap0.2", "2-regions", "3-regions-gap0.2", "3-regions", "4-regions-gap0.1",
                        "4-regions", "5-regions"),
        "position": _plain("auto-x2", "auto-x1.5", "auto"),
        "rotation": _plain("2-way", "4-way", "patch-2x2", "patch-3x3"),
        "counting": _plain("few", "distractors", "many"),
        "distance": _plain("camera", "pair-lateral", "pair", "pair-depth"),
        "temporal": _plain("3-frames", "4-frames", "3-frames-close", "5-frames", "4-frames-close", "6-frames",
                           "5-frames-close", "6-frames-close"),
        "camera_motion": _plain("single-large", "single-small", "combined-large", "combined-small"),
        "correspondence": _plain("3-candidates-far", "4-candidates-far", "6-candidates-far", "4-candidates-near",
                                 "6-candidates-near"),
    }


PAPER_LEVEL = {"shuffle": "paper", "flip": "2x2", "crop": "4-options", "depth": "3-regions", "position": "auto"}


def task_levels(task: str) -> list[Level]:
    """The ordered levels of ``task`` (a task without a table entry has one level per
    variant, in the order the task lists them)."""
    table = _table()
    if task in table:
        return table[task]
    return _plain(*get_task_class(task).variants())


def paper_level(task: str) -> str:
    return PAPER_LEVEL.get(task, task_levels(task)[0].name)


def level_by_name(task: str, name: str) -> Level:
    for lv in task_levels(task):
        if lv.name == name:
            return lv
    names = ", ".join(lv.name for lv in task_levels(task))
    raise KeyError(f"{task} has no difficulty level {name!r}; its levels: {names}")
