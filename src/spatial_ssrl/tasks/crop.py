"""Cropped patch inpainting.

A square of side ``s = min(H, W) // 2`` is blacked out. Four options A-D (the paper): the
true crop and three distinct distractors drawn from five kinds (rotated 90 degrees either
way, the central half enlarged, the region grown by s/4 or s/2 on each side and shrunk
back to s x s). The correct letter is uniform over the letters. Images: the masked image,
then the options in letter order.

The variant sets the difficulty: ``N-options`` (N = 2..5 letters, the paper's five kinds),
``N-options-rot`` (rotations only: 90 degrees either way and 180, the easiest to tell apart)
and ``N-options-fine`` (the hardest: the region grown by s/8, s/4 or s/2, or its interior
enlarged, all of which keep the right content at a slightly wrong scale).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from PIL import Image

from ..checks import mad, thumbnail
from ..prompts import get_prompt_set
from ..sources.base import Item
from .base import PretextTask, Rendered

LETTERS = ("A", "B", "C", "D", "E")
DISTRACTOR_KINDS = ("rot90_cw", "rot90_ccw", "interior", "grown_0.25", "grown_0.5")
KIND_FAMILIES = {
    "": DISTRACTOR_KINDS,  # the paper's
    "rot": ("rot90_cw", "rot90_ccw", "rot180"),
    "fine": ("grown_0.125", "grown_0.25", "grown_0.5", "interior"),
}
_ROTATIONS = {"rot90_cw": -1, "rot90_ccw": 1, "rot180": 2}
_GROWTH = {"grown_0.125": 8, "grown_0.25": 4, "grown_0.5": 2}
_VARIANT = re.compile(r"^(\d)-options(?:-(rot|fine))?$")


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
    if kind in _ROTATIONS:
        return np.rot90(crop, k=_ROTATIONS[kind])
    if kind == "interior":
        return crop[s // 4: 3 * s // 4, s // 4: 3 * s // 4]
    if kind in _GROWTH:
        y0, y1, x0, x1 = _grown_bounds(x, y, s, h, w, s // _GROWTH[kind])
        return rgb[y0:y1, x0:x1]
    raise ValueError(f"unknown option kind {kind!r}")


class CropTask(PretextTask):
    name = "crop"
    answer_type = "choice"
    paper_counts = {"4-options": 20200}

    def __init__(self, variant: str | None = None, **kwargs: Any):
        super().__init__(variant, **kwargs)
        m = _VARIANT.match(self.variant)
        if not m:
            raise ValueError(f"crop variant must be 'N-options', 'N-options-rot' or 'N-options-fine' "
                             f"(the paper: '4-options'); got {self.variant!r}")
        self.n_options = int(m.group(1))
        self.kinds = KIND_FAMILIES[m.group(2) or ""]
        if not 2 <= self.n_options <= len(self.kinds) + 1:
            raise ValueError(f"crop variant {self.variant!r}: 2..{len(self.kinds) + 1} options with these "
                             "distractor kinds")
        self.letters = LETTERS[: self.n_options]

    def make_params(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        h, w = item.height, item.width
        s = min(h, w) // 2
        x = int(rng.integers(0, w - s + 1))
        y = int(rng.integers(0, h - s + 1))
        correct = int(rng.integers(self.n_options))
        kinds = [str(k) for k in rng.choice(self.kinds, size=self.n_options - 1, replace=False)]
        option_kinds = {}
        for i, letter in enumerate(self.letters):
            option_kinds[letter] = "true" if i == correct else kinds.pop(0)
        return {"side": s, "box": [x, y, s, s], "correct": self.letters[correct], "option_kinds": option_kinds}

    def check(self, item: Item, params: dict[str, Any]) -> str | None:
        x, y, s, _ = params["box"]
        truth = thumbnail(_option_source(item.rgb, x, y, s, "true"))
        for kind in params["option_kinds"].values():
            if kind == "true":
                continue
            if kind in _ROTATIONS:
                t = np.rot90(truth, k=_ROTATIONS[kind])
            else:
                t = thumbnail(_option_source(item.rgb, x, y, s, kind))
            if mad(truth, t) < self.thresholds.crop_distractor:
                return "crop_near_identical_distractor"
        return None

    def render(self, item: Item, params: dict[str, Any]) -> Rendered:
        x, y, s, _ = params["box"]
        masked = np.array(item.rgb)
        masked[y:y + s, x:x + s] = 0
        options = [_resize(_option_source(item.rgb, x, y, s, params["option_kinds"][L]), s) for L in self.letters]
        extra: dict[str, Any] = {}
        resize = item.info.get("resize")
        if resize:
            sx, sy = resize["scale"]
            extra["box_in_file"] = [x / sx, y / sy, s / sx, s / sy]
        return Rendered(
            images=[masked, *options],
            problem=get_prompt_set(self.prompt_set).crop(self.n_options),
            options=list(self.letters),
            extra_meta=extra,
        )

    def answer(self, params: dict[str, Any]) -> str:
        return params["correct"]
