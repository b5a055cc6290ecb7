"""Flipped patch recognition.

An M x N grid (the paper: 2x2, labelled 0-3) labelled in place, row by row; one patch is
flipped vertically (direction 0: upside down) or horizontally (direction 1: mirrored
left-right). Answer ``Label-Direction``, e.g. ``3-0``. The variant is the grid (``2x2``,
``3x3``, ``4x4``...): more patches mean smaller ones, a harder question.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..checks import grid_thumbnails, mad
from ..prompts import get_prompt_set
from ..rendering import draw_grid_overlay, grid_geometry
from ..sources.base import Item
from .base import PretextTask, Rendered

VERTICAL, HORIZONTAL = 0, 1
_VARIANT = re.compile(r"^(\d)x(\d)$")


def flip_patch(patch: np.ndarray, direction: int) -> np.ndarray:
    """Direction 0 flips top-bottom (vertical flip), 1 flips left-right (horizontal)."""
    return patch[::-1] if direction == VERTICAL else patch[:, ::-1]


class FlipTask(PretextTask):
    name = "flip"
    answer_type = "flip"
    paper_counts = {"2x2": 4005}

    def __init__(self, variant: str | None = None, **kwargs: Any):
        super().__init__(variant, **kwargs)
        m = _VARIANT.match(self.variant)
        if not m or not (2 <= int(m.group(1)) <= 6 and 2 <= int(m.group(2)) <= 6):
            raise ValueError(f"flip variant must be a grid 'MxN' with M and N in 2..6 (the paper: '2x2'); "
                             f"got {self.variant!r}")
        self.rows, self.cols = int(m.group(1)), int(m.group(2))

    def make_params(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        geom = grid_geometry(item.height, item.width, self.rows, self.cols)
        return {
            **geom.as_meta(),
            "flipped_label": int(rng.integers(geom.n)),
            "direction": int(rng.integers(2)),
        }

    def check(self, item: Item, params: dict[str, Any]) -> str | None:
        geom = grid_geometry(item.height, item.width, self.rows, self.cols)
        thumbs = grid_thumbnails(item.rgb[: geom.height, : geom.width], self.rows, self.cols)
        t = thumbs[params["flipped_label"]]
        if mad(t, flip_patch(t, params["direction"])) < self.thresholds.flip_symmetry:
            return "flip_near_symmetric_patch"
        return None

    def render(self, item: Item, params: dict[str, Any]) -> Rendered:
        geom = grid_geometry(item.height, item.width, self.rows, self.cols)
        canvas = np.array(item.rgb[: geom.height, : geom.width])
        cell = geom.cell(params["flipped_label"])
        canvas[cell] = flip_patch(canvas[cell], params["direction"])
        out, boxes = draw_grid_overlay(canvas, geom, [str(k) for k in range(geom.n)])
        return Rendered(
            images=[out],
            problem=get_prompt_set(self.prompt_set).flip(self.rows, self.cols),
            extra_meta={"output_size": [geom.width, geom.height], "label_boxes": [list(b) for b in boxes]},
        )

    def answer(self, params: dict[str, Any]) -> str:
        return f"{params['flipped_label']}-{params['direction']}"
