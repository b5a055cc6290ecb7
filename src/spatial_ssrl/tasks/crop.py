"""Cropped patch inpainting.

A square of side ``s = min(H, W) // 2`` is blacked out. Four options A-D: the true crop
and three distinct distractors drawn from five kinds (rotated 90 degrees either way, the
central half enlarged, the region grown by s/4 or s/2 on each side and shrunk back to
s x s). The correct letter is uniform over A-D. Five images: the masked image, then the
options in letter order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from ..checks import mad, thumbnail
from ..prompts import get_prompt_set
from ..sources.base import Item
from .base import PretextTask, Rendered

LETTERS = ("A", "B", "C", "D")
DISTRACTOR_KINDS = ("rot90_cw", "rot90_ccw", "interior", "grown_0.25", "grown_0.5")


def _resize(a: np.ndarray, side: int) -> np.ndarray:
    if a.shape[0] == side and a.shape[1] == side:
        return np.ascontiguousarray(a)
    return np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((side, side), Image.Resampling.BILINEAR))


def _grown_bounds(x: int, y: int, s: int, h: int, w: int, grow: int) -> tuple[int, int, int, int]:
    return max(0, y - grow), min(h, y + s + grow), max(0, x - grow), min(w, x + s + grow)


def _option_source(rgb: np.ndarray, x: int, y: int, s: int, kind: str) -> np.ndarray:
    """The pixels an option is made from, before resizing to s x s."""
    h, w = rgb.shape[:2]
    crop = rgb[y:y + s, x:x + s]
    if kind == "true":
        return crop
    if kind == "rot90_cw":
        return np.rot90(crop, k=-1)
    if kind == "rot90_ccw":
        return np.rot90(crop, k=1)
    if kind == "interior":
        return crop[s // 4: 3 * s // 4, s // 4: 3 * s // 4]
    if kind in ("grown_0.25", "grown_0.5"):
        grow = s // 4 if kind == "grown_0.25" else s // 2
        y0, y1, x0, x1 = _grown_bounds(x, y, s, h, w, grow)
        return rgb[y0:y1, x0:x1]
    raise ValueError(f"unknown option kind {kind!r}")


class CropTask(PretextTask):
    name = "crop"
    answer_type = "choice"
    paper_counts = {"4-options": 20200}

    def __init__(self, variant: str | None = None, **kwargs: Any):
        super().__init__(variant, **kwargs)
        if self.variant != "4-options":
            raise ValueError(f"crop has one variant, '4-options'; got {self.variant!r}")

    def make_params(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        h, w = item.height, item.width
        s = min(h, w) // 2
        x = int(rng.integers(0, w - s + 1))
        y = int(rng.integers(0, h - s + 1))
        correct = int(rng.integers(4))
        kinds = [str(k) for k in rng.choice(DISTRACTOR_KINDS, size=3, replace=False)]
        option_kinds = {}
        for i, letter in enumerate(LETTERS):
            option_kinds[letter] = "true" if i == correct else kinds.pop(0)
        return {"side": s, "box": [x, y, s, s], "correct": LETTERS[correct], "option_kinds": option_kinds}

    def check(self, item: Item, params: dict[str, Any]) -> str | None:
        x, y, s, _ = params["box"]
        truth = thumbnail(_option_source(item.rgb, x, y, s, "true"))
        for kind in params["option_kinds"].values():
            if kind == "true":
                continue
            if kind == "rot90_cw":
                t = np.rot90(truth, k=-1)
            elif kind == "rot90_ccw":
                t = np.rot90(truth, k=1)
            else:
                t = thumbnail(_option_source(item.rgb, x, y, s, kind))
            if mad(truth, t) < self.thresholds.crop_distractor:
                return "crop_near_identical_distractor"
        return None

    def render(self, item: Item, params: dict[str, Any]) -> Rendered:
        x, y, s, _ = params["box"]
        masked = np.array(item.rgb)
        masked[y:y + s, x:x + s] = 0
        options = [_resize(_option_source(item.rgb, x, y, s, params["option_kinds"][L]), s) for L in LETTERS]
        extra: dict[str, Any] = {}
        resize = item.info.get("resize")
        if resize:
            sx, sy = resize["scale"]
            extra["box_in_file"] = [x / sx, y / sy, s / sx, s / sy]
        return Rendered(
            images=[masked, *options],
            problem=get_prompt_set(self.prompt_set).crop(),
            options=list(LETTERS),
            extra_meta=extra,
        )

    def answer(self, params: dict[str, Any]) -> str:
        return params["correct"]
