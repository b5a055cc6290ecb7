"""Rotation recognition (issue 24; not one of the paper's five tasks).

A square cut from the image, or one square patch of a labelled grid, is shown turned
clockwise by 0, 90, 180 or 270 degrees; the question asks which turn, as a choice among
option texts ("rotated 90 degrees clockwise", ...) listed in a random order. The answer is
the letter of the true turn.

Variants (easy to hard):

- ``2-way``: the whole square, turned by 0 or 180 degrees (two options);
- ``4-way``: the whole square, any of the four turns;
- ``patch-2x2``, ``patch-3x3`` (any ``patch-MxN`` with M, N in 2..4): a grid of square
  cells cut from the image; the question names one cell by its label, which may be turned
  in place (four options). The neighbours keep their orientation, so continuity across
  the cell borders is a clue, but the cell holds less of the scene.

The whole-image variants crop to the largest square first, at a random offset along the
longer side, so the frame's aspect ratio says nothing about the turn. A square that looks
nearly the same turned by 90 or 180 degrees (180 only for ``2-way``) is rejected
(``rotation_near_symmetric``), as is one too small to read (``rotation_too_small``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from ..checks import mad, thumbnail
from ..prompts import get_prompt_set
from ..rendering import draw_grid_overlay
from ..rendering.grid import GridGeometry
from ..sources.base import Item
from .base import PretextTask, Rendered

LETTERS = "ABCD"
TURNS = (0, 90, 180, 270)
MIN_SIDE = 32
"""Smallest square (whole image or patch side, in pixels) a question is asked about."""
_PATCH = re.compile(r"^patch-(\d)x(\d)$")


def turn_clockwise(a: np.ndarray, degrees: int) -> np.ndarray:
    """``a`` turned clockwise by a multiple of 90 degrees."""
    return np.rot90(a, k=-(degrees // 90) % 4)


class RotationTask(PretextTask):
    name = "rotation"
    answer_type = "choice"
    # Not a paper task: no paper counts, so it stays out of the default mix and comes in by
    # ``--tasks rotation`` (the first variant) or ``--tasks all``.
    paper_counts: ClassVar[dict[str, float]] = {}
    VARIANTS = ("4-way", "2-way", "patch-2x2", "patch-3x3")

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        return cls.VARIANTS

    def __init__(self, variant: str | None = None, **kwargs: Any):
        super().__init__(variant, **kwargs)
        self.grid: tuple[int, int] | None = None
        if self.variant in ("2-way", "4-way"):
            self.turns = (0, 180) if self.variant == "2-way" else TURNS
            return
        m = _PATCH.match(self.variant)
        if not m or not (2 <= int(m.group(1)) <= 4 and 2 <= int(m.group(2)) <= 4):
            raise ValueError("rotation variant must be '2-way', '4-way' or 'patch-MxN' with M and N in 2..4; "
                             f"got {self.variant!r}")
        self.grid = (int(m.group(1)), int(m.group(2)))
        self.turns = TURNS

    # -- geometry ------------------------------------------------------------------------
    def _square(self, params: dict[str, Any]) -> tuple[slice, slice]:
        """Rows and columns of the source pixels the question is about (the turned square)."""
        x0, y0 = params["origin"]
        s = params["side"]
        if self.grid is not None:
            i, j = divmod(params["patch"], self.grid[1])
            x0, y0 = x0 + j * s, y0 + i * s
        return slice(y0, y0 + s), slice(x0, x0 + s)

    def make_params(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        h, w = item.height, item.width
        if self.grid is None:
            side = min(h, w)
            cover_h = cover_w = side
        else:
            rows, cols = self.grid
            side = min(h // rows, w // cols)
            cover_h, cover_w = rows * side, cols * side
        params: dict[str, Any] = {
            "origin": [int(rng.integers(w - cover_w + 1)), int(rng.integers(h - cover_h + 1))],
            "side": int(side),
        }
        if self.grid is not None:
            params["grid"] = list(self.grid)
            params["patch"] = int(rng.integers(self.grid[0] * self.grid[1]))
        params["turn"] = int(self.turns[int(rng.integers(len(self.turns)))])
        params["order"] = [int(self.turns[i]) for i in rng.permutation(len(self.turns))]
        return params

    def check(self, item: Item, params: dict[str, Any]) -> str | None:
        if params["side"] < MIN_SIDE:
            return "rotation_too_small"
        t = thumbnail(item.rgb[self._square(params)])
        # turning by 270 looks as alike as turning by 90 (the same pair of images, swapped)
        others = (180,) if self.variant == "2-way" else (90, 180)
        if min(mad(t, turn_clockwise(t, d)) for d in others) < self.thresholds.rotation_symmetry:
            return "rotation_near_symmetric"
        return None

    def render(self, item: Item, params: dict[str, Any]) -> Rendered:
        prompts = get_prompt_set(self.prompt_set)
        options = [prompts.rotation_option(t) for t in params["order"]]
        x0, y0 = params["origin"]
        s = params["side"]
        if self.grid is None:
            out = np.ascontiguousarray(turn_clockwise(item.rgb[y0:y0 + s, x0:x0 + s], params["turn"]))
            return Rendered(images=[out], problem=prompts.rotation(options), options=options,
                            extra_meta={"output_size": [s, s]})
        rows, cols = self.grid
        geom = GridGeometry(rows=rows, cols=cols, ph=s, pw=s)
        canvas = np.array(item.rgb[y0:y0 + rows * s, x0:x0 + cols * s])
        cell = geom.cell(params["patch"])
        canvas[cell] = turn_clockwise(canvas[cell], params["turn"])
        out, boxes = draw_grid_overlay(canvas, geom, [str(k) for k in range(geom.n)])
        return Rendered(
            images=[out],
            problem=prompts.rotation(options, patch=params["patch"], rows=rows, cols=cols),
            options=options,
            extra_meta={"output_size": [geom.width, geom.height], "label_boxes": [list(b) for b in boxes]},
        )

    def answer(self, params: dict[str, Any]) -> str:
        return LETTERS[params["order"].index(params["turn"])]
