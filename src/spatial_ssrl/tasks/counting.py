"""Counting drawn shapes (issue 24, point 6; not one of the paper's five tasks).

Flat shapes (circles, squares, triangles in four colours, each with a black outline) are
drawn over the image at random places, none touching another; the question asks how many
shapes of one colour and one kind there are, as a choice among four counts listed in a
random order. The answer is the letter of the true count. The idea is VideoSSR's synthetic
counting; here on a still photo, so the scene is clutter the model must look past.

Variants (easy to hard):

- ``few``: 1-4 shapes, all of the asked colour and kind, large;
- ``distractors``: 2-6 asked shapes among 2-5 others, each of another colour *and* kind;
- ``many``: 4-9 asked shapes among 4-8 others sharing the colour *or* the kind (the closest
  confusions), smaller.

A shape over photo pixels close to its colour (more than 1% of its pixels within
``counting_contrast`` in every channel) is rejected (``counting_low_contrast``), as is an image with no room for the shapes apart
(``counting_no_room``) or too small to hold readable ones (``counting_too_small``). The
images are PNG, so ``ssrl validate`` finds each drawn shape in the pixels (where they differ
from the source) and counts again.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from PIL import Image, ImageDraw

from ..prompts import get_prompt_set
from ..sources.base import Item
from .base import PretextTask, Rendered

LETTERS = "ABCD"
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 230),
    "yellow": (245, 210, 20),
}
SHAPES = ("circle", "square", "triangle")
MIN_SIZE = 10
"""Smallest shape size in pixels (a circle's radius); an image that cannot hold shapes this
big at its variant's scale is too small."""
PLACEMENT_TRIES = 400
MAX_HIDDEN = 0.01
"""Most share of a shape's pixels that may lie on photo pixels close to its fill colour."""
# per variant: (asked shapes, other shapes, size as a share of the image's shorter side)
_PLAN = {
    "few": ((1, 4), (0, 0), (0.06, 0.09)),
    "distractors": ((2, 6), (2, 5), (0.045, 0.07)),
    "many": ((4, 9), (4, 8), (0.035, 0.055)),
}


def extent(size: float) -> float:
    """How far a shape of ``size`` reaches from its centre, outline included."""
    return 1.25 * size


def outline_width(size: float) -> int:
    return max(1, round(size / 12))


def shape_points(kind: str, cx: float, cy: float, size: float) -> list[tuple[float, float]] | None:
    """The corners of a square or an upright triangle of ``size`` around (cx, cy); None for
    a circle (of radius ``size``)."""
    if kind == "square":
        a = 0.85 * size
        return [(cx - a, cy - a), (cx + a, cy - a), (cx + a, cy + a), (cx - a, cy + a)]
    if kind == "triangle":
        r = 1.15 * size
        h = r * math.sqrt(3) / 2
        return [(cx, cy - r), (cx + h, cy + r / 2), (cx - h, cy + r / 2)]
    return None


def _draw(draw: ImageDraw.ImageDraw, o: dict[str, Any], dx: float, dy: float, fill, outline) -> None:
    """Draw shape ``o`` shifted by (-dx, -dy)."""
    cx, cy, size = o["center"][0] - dx, o["center"][1] - dy, o["size"]
    points = shape_points(o["shape"], cx, cy, size)
    width = outline_width(size)
    if points is None:
        draw.ellipse([cx - size, cy - size, cx + size, cy + size], fill=fill, outline=outline, width=width)
    else:
        draw.polygon(points, fill=fill, outline=outline, width=width)


def shape_mask(o: dict[str, Any]) -> tuple[tuple[int, int], np.ndarray]:
    """The pixels shape ``o`` covers, outline included: ((x0, y0), boolean mask from there)."""
    reach = extent(o["size"])
    x0, y0 = int(o["center"][0] - reach), int(o["center"][1] - reach)
    side = int(2 * reach) + 3
    canvas = Image.new("L", (side, side), 0)
    _draw(ImageDraw.Draw(canvas), o, x0, y0, fill=255, outline=255)
    return (x0, y0), np.asarray(canvas) > 0


def _asked(shapes: list[dict[str, Any]], color: str, shape: str) -> int:
    """How many of ``shapes`` have the asked colour and kind."""
    return sum(1 for o in shapes if (o["color"], o["shape"]) == (color, shape))


class CountingTask(PretextTask):
    name = "counting"
    answer_type = "choice"
    paper_counts: ClassVar[dict[str, float]] = {}
    VARIANTS = ("few", "distractors", "many")

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        return cls.VARIANTS

    def __init__(self, variant: str | None = None, **kwargs: Any):
        super().__init__(variant, **kwargs)
        if self.variant not in _PLAN:
            raise ValueError(f"counting variant must be one of {', '.join(self.VARIANTS)}; got {self.variant!r}")

    def _other_kind(self, rng: np.random.Generator, color: str, shape: str) -> tuple[str, str]:
        """A shape that is not an asked one: another colour and kind (``distractors``), or
        the same colour or the same kind, one of the two (``many``)."""
        colors = [c for c in COLORS if c != color]
        shapes = [s for s in SHAPES if s != shape]
        if self.variant == "many" and rng.random() < 0.5:
            return color, shapes[int(rng.integers(len(shapes)))]
        if self.variant == "many":
            return colors[int(rng.integers(len(colors)))], shape
        return colors[int(rng.integers(len(colors)))], shapes[int(rng.integers(len(shapes)))]

    def make_params(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        h, w = item.height, item.width
        (lo_n, hi_n), (lo_d, hi_d), (lo_s, hi_s) = _PLAN[self.variant]
        color = list(COLORS)[int(rng.integers(len(COLORS)))]
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        n = int(rng.integers(lo_n, hi_n + 1))
        kinds = [(color, shape)] * n + [self._other_kind(rng, color, shape)
                                        for _ in range(int(rng.integers(lo_d, hi_d + 1)))]
        side = min(h, w)
        placed: list[dict[str, Any]] = []
        for c, s in (kinds[i] for i in rng.permutation(len(kinds))):
            size = round(float(rng.uniform(lo_s, hi_s)) * side, 1)
            reach, gap = extent(size), max(4.0, 0.3 * size)
            if w < 2 * reach + 2 or h < 2 * reach + 2:
                continue
            for _ in range(PLACEMENT_TRIES):
                cx = round(float(rng.uniform(reach + 1, w - reach - 1)), 1)
                cy = round(float(rng.uniform(reach + 1, h - reach - 1)), 1)
                if all(math.hypot(cx - o["center"][0], cy - o["center"][1]) > reach + extent(o["size"]) + gap
                       for o in placed):
                    placed.append({"color": c, "shape": s, "center": [cx, cy], "size": size})
                    break
        truth = _asked(placed, color, shape)
        others = [k for k in range(max(0, truth - 3), truth + 4) if k != truth]
        picked = [others[i] for i in rng.choice(len(others), size=3, replace=False)]
        options = [truth, *picked]
        return {
            "color": color,
            "shape": shape,
            "wanted": len(kinds),
            "shapes": placed,
            "options": [int(options[i]) for i in rng.permutation(4)],
        }

    def check(self, item: Item, params: dict[str, Any]) -> str | None:
        lo_s = _PLAN[self.variant][2][0]
        if lo_s * min(item.height, item.width) < MIN_SIZE:
            return "counting_too_small"
        if len(params["shapes"]) < params["wanted"]:
            return "counting_no_room"
        for o in params["shapes"]:
            (x0, y0), mask = shape_mask(o)
            patch = item.rgb[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1], :3]
            under = patch[mask[:patch.shape[0], :patch.shape[1]]].astype(np.int16)
            near = np.abs(under - np.asarray(COLORS[o["color"]], dtype=np.int16)).max(axis=1) \
                <= self.thresholds.counting_contrast
            if near.mean() > MAX_HIDDEN:
                return "counting_low_contrast"
        return None

    def render(self, item: Item, params: dict[str, Any]) -> Rendered:
        canvas = Image.fromarray(np.ascontiguousarray(item.rgb[..., :3]))
        draw = ImageDraw.Draw(canvas)
        for o in params["shapes"]:
            _draw(draw, o, 0, 0, fill=COLORS[o["color"]], outline=(0, 0, 0))
        options = [str(k) for k in params["options"]]
        problem = get_prompt_set(self.prompt_set).counting(params["color"], params["shape"], params["options"])
        return Rendered(images=[np.asarray(canvas)], problem=problem, options=options,
                        extra_meta={"output_size": [item.width, item.height]})

    def answer(self, params: dict[str, Any]) -> str:
        return LETTERS[params["options"].index(_asked(params["shapes"], params["color"], params["shape"]))]
