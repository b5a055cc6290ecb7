"""Counting: find the drawn shapes in the pixels and count the asked ones again.

Works from the image, the source, the question (which names the colour and the kind) and
the options, so it needs no meta and serves every export format. A drawn shape is where
the image differs from the source *and* has one of the four fill colours; each connected
region of one colour is one shape (shapes never touch: a black outline and a gap part
them). Its kind comes from how much of its bounding box the fill covers: about half for a
triangle, about three quarters for a circle, all of it for a square. Tolerances allow JPEG.
"""

from __future__ import annotations

import re

import numpy as np

from .common import Context, Fail, NotCheckable

LETTERS = "ABCD"
# the fill colours, written out again here: the validator reads the pixels with no code of
# the generator's, so a change of colour there fails validation instead of passing silently
PALETTE = {"red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 70, 230), "yellow": (245, 210, 20)}
_ASKED = re.compile(r"how many (\w+) (circle|square|triangle)s have been drawn")
CHANGED = 40  # a pixel the drawing changed differs from the source by more than this in some channel
NEAR = 45  # a fill pixel is within this of its colour in every channel
MIN_AREA = 30  # smaller regions are specks, not shapes


def kind_of(area: int, box_h: int, box_w: int) -> str:
    fill = area / float(box_h * box_w)
    if fill < 0.64:
        return "triangle"
    return "circle" if fill < 0.9 else "square"


def drawn_shapes(shown: np.ndarray, src: np.ndarray) -> list[tuple[str, str, float]]:
    """``(colour, kind, contrast)`` of every drawn shape: contrast is the mean absolute
    difference per channel between its fill and the source beneath it."""
    from scipy import ndimage  # here: importing the validators must stay light

    img = shown.astype(np.int16)
    base = src.astype(np.int16)
    changed = np.abs(img - base).max(axis=2) > CHANGED
    found = []
    for name, rgb in PALETTE.items():
        mask = changed & (np.abs(img - np.asarray(rgb, dtype=np.int16)).max(axis=2) <= NEAR)
        labels, _ = ndimage.label(mask)
        for k, box in enumerate(ndimage.find_objects(labels), start=1):
            region = labels[box] == k
            area = int(region.sum())
            if area < MIN_AREA:
                continue
            under = base[box][region].mean(axis=0)
            contrast = float(np.abs(under - np.asarray(rgb)).mean())
            found.append((name, kind_of(area, region.shape[0], region.shape[1]), contrast))
    return found


def validate(ctx: Context) -> str:
    rec = ctx.record
    m = _ASKED.search(rec.problem or "")
    if not m or m.group(1) not in PALETTE:
        raise NotCheckable("the question names no colour and kind of shape")
    options = list(rec.options or [])
    if len(options) != len(LETTERS) or not all(str(o).strip().isdigit() for o in options):
        raise NotCheckable("the options are not four counts")
    shown = ctx.image(0)
    src = ctx.item().rgb[..., :3]
    if shown.shape != src.shape:
        raise Fail(f"image is {shown.shape[1]}x{shown.shape[0]}, the source {src.shape[1]}x{src.shape[0]}")
    shapes = drawn_shapes(shown, src)
    if not shapes:
        raise Fail("no drawn shape found")
    # the generator's rule, on the fill it drew (a margin for the other region it measures)
    faint = [s for s in shapes if s[2] < 0.5 * ctx.thresholds.counting_contrast]
    if faint:
        raise Fail(f"ambiguity rule: {len(faint)} drawn shapes hardly differ from the photo beneath")
    count = sum(1 for c, k, _ in shapes if (c, k) == (m.group(1), m.group(2)))
    counts = [int(str(o).strip()) for o in options]
    if count not in counts:
        raise Fail(f"{count} {m.group(1)} {m.group(2)}s drawn, not among the options {counts}")
    return LETTERS[counts.index(count)]
