"""Shuffled patch reordering.

The image is cut into an M x N grid (M rows, N columns; ``1x3`` is three side-by-side
pieces, ``3x1`` three stacked ones). Displayed cell ``k`` shows original patch
``permutation[k]`` and carries the label ``k``. The answer is the inverse permutation:
for each original position in row-major order, the label shown on the patch that belongs
there, joined with hyphens (``0-2-3-1``). The ``-masked`` variants paint one patch white
so edge matching alone cannot solve the puzzle.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..checks import grid_thumbnails, min_pairwise_mad
from ..prompts import get_prompt_set
from ..rendering import draw_grid_overlay, grid_geometry
from ..sources.base import Item
from .base import PretextTask, Rendered

_VARIANT = re.compile(r"^(\d+)x(\d+)(-masked)?$")
WHITE = 255


class ShuffleTask(PretextTask):
    name = "shuffle"
    answer_type = "permutation"
    # Released 81k set: 2x2 4,000; 2x2 masked 4,028; 1x3/1x4 4,991; 3x1/4x1 3,009.
    paper_counts = {
        "2x2": 4000,
        "2x2-masked": 4028,
        "1x3": 4991 / 2,
        "1x4": 4991 / 2,
        "3x1": 3009 / 2,
        "4x1": 3009 / 2,
    }

    def __init__(self, variant: str | None = None, **kwargs: Any):
        super().__init__(variant, **kwargs)
        m = _VARIANT.match(self.variant)
        if not m:
            raise ValueError(f"shuffle variant must look like 'MxN' or 'MxN-masked', got {self.variant!r}")
        self.rows, self.cols = int(m.group(1)), int(m.group(2))
        self.masked = bool(m.group(3))
        if self.rows * self.cols < 2:
            raise ValueError("a shuffle grid needs at least two patches")

    def make_params(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        n = self.rows * self.cols
        perm = rng.permutation(n)
        while np.array_equal(perm, np.arange(n)):  # a 'shuffled' image must be shuffled
            perm = rng.permutation(n)
        geom = grid_geometry(item.height, item.width, self.rows, self.cols)
        return {
            **geom.as_meta(),
            "permutation": [int(p) for p in perm],
            "masked_patch": int(rng.integers(n)) if self.masked else None,
        }

    def check(self, item: Item, params: dict[str, Any]) -> str | None:
        geom = grid_geometry(item.height, item.width, self.rows, self.cols)
        thumbs = grid_thumbnails(item.rgb[: geom.height, : geom.width], self.rows, self.cols)
        if params["masked_patch"] is not None:
            thumbs[params["masked_patch"]] = np.full_like(thumbs[0], WHITE)
        if min_pairwise_mad(thumbs) < self.thresholds.near_identical:
            return "shuffle_near_identical_patches"
        return None

    def render(self, item: Item, params: dict[str, Any]) -> Rendered:
        geom = grid_geometry(item.height, item.width, self.rows, self.cols)
        src = item.rgb
        canvas = np.empty((geom.height, geom.width, 3), dtype=np.uint8)
        masked = params["masked_patch"]
        for k, p in enumerate(params["permutation"]):
            if p == masked:
                canvas[geom.cell(k)] = WHITE
            else:
                canvas[geom.cell(k)] = src[geom.cell(p)]
        out, boxes = draw_grid_overlay(canvas, geom, [str(k) for k in range(geom.n)])
        problem = get_prompt_set(self.prompt_set).shuffle(self.rows, self.cols, self.masked)
        return Rendered(
            images=[out],
            problem=problem,
            extra_meta={"output_size": [geom.width, geom.height], "label_boxes": [list(b) for b in boxes]},
        )

    def answer(self, params: dict[str, Any]) -> str:
        inverse = np.argsort(params["permutation"])
        return "-".join(str(int(k)) for k in inverse)
