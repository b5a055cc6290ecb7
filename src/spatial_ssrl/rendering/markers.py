"""Circled-number markers for the depth-based tasks.

A marker labels a small square region of the image. It is drawn as a hollow ring centred
on the region, wide enough that the whole square lies inside the ring's opening, with the
label digit in the middle:

- the ring is a white band between two dark edges, and the digit is white with a dark
  outline, so both read on bright, dark and busy backgrounds alike;
- the inside of the ring is left transparent: apart from the strokes of the digit (about
  a fifth of the square) the labelled pixels stay visible, so the model can still see
  what the region shows (the public scripts drew an opaque disc over the region);
- every size follows the region side, which itself follows the image size, so markers
  keep the same look from thumbnails to multi-megapixel photos.

Geometry rules used by the tasks (and checked again before rendering): a marker's
bounding square ``[x - R, x + R] x [y - R, y + R]`` lies inside the image, and two marker
centres are more than ``2 R + gap`` apart, so markers never touch each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .labels import font_for_glyph_height

RING_LIGHT = (255, 255, 255)
RING_DARK = (0, 0, 0)


@dataclass(frozen=True)
class MarkerStyle:
    """Sizes of one marker, in pixels."""

    radius: int
    """Outer radius R of the ring (the marker's whole extent)."""
    inner: int
    """Radius of the clear opening; the labelled square fits inside it."""
    edge: int
    """Width of each dark edge of the ring."""
    glyph_px: int
    """Height of the digit."""
    stroke: int
    """Outline width of the digit."""
    gap: int
    """Extra clearance between two markers, beyond touching rings."""

    @property
    def min_spacing(self) -> int:
        """Two marker centres must be strictly farther apart than this."""
        return 2 * self.radius + self.gap

    def as_meta(self) -> dict:
        return {"radius": self.radius, "inner_radius": self.inner, "min_spacing": self.min_spacing}


def marker_style(region_side: int) -> MarkerStyle:
    """Marker sizes for a labelled square of ``region_side`` pixels.

    The opening's radius is the square's half-diagonal plus a little clearance; the ring
    is about a fifth of that wide (at least 4 px: dark, light, dark).
    """
    side = max(1, int(region_side))
    inner = math.ceil(side / math.sqrt(2)) + max(1, side // 12)
    band = max(4, round(0.2 * inner))
    edge = max(1, band // 4)
    glyph = max(7, round(0.72 * inner))
    stroke = max(1, round(glyph / 10))
    radius = inner + band
    gap = max(2, round(0.25 * radius))
    return MarkerStyle(radius=radius, inner=inner, edge=edge, glyph_px=glyph, stroke=stroke, gap=gap)


def marker_fits(x: int, y: int, radius: int, width: int, height: int) -> bool:
    """True when the marker's bounding square lies inside a ``width`` x ``height`` image."""
    return radius <= x <= width - 1 - radius and radius <= y <= height - 1 - radius


def marker_layout_problem(markers: dict[str, list[int]], style: MarkerStyle, width: int, height: int) -> str | None:
    """A named reason when markers leave the image or come too close to each other."""
    pts = list(markers.values())
    for x, y in pts:
        if not marker_fits(int(x), int(y), style.radius, width, height):
            return "marker_outside_image"
    limit = style.min_spacing
    for i in range(len(pts)):
        for j in range(i + 1, len(pts)):
            dx, dy = pts[i][0] - pts[j][0], pts[i][1] - pts[j][1]
            if dx * dx + dy * dy <= limit * limit:
                return "markers_overlap"
    return None


@lru_cache(maxsize=64)
def _digit_box(text: str, glyph_px: int, stroke: int) -> tuple[ImageFont.FreeTypeFont, tuple[int, int, int, int]]:
    font = font_for_glyph_height(glyph_px)
    return font, font.getbbox(text, stroke_width=stroke)


def _draw_one(draw: ImageDraw.ImageDraw, x: int, y: int, text: str, style: MarkerStyle) -> None:
    r, e = style.radius, style.edge
    # The ring: a dark band, then a light band inset by one edge width on both sides.
    draw.ellipse([x - r, y - r, x + r, y + r], outline=RING_DARK, width=r - style.inner)
    light = r - style.inner - 2 * e
    if light > 0:
        draw.ellipse([x - r + e, y - r + e, x + r - e, y + r - e], outline=RING_LIGHT, width=light)
    font, (l, t, rr, b) = _digit_box(text, style.glyph_px, style.stroke)
    # Centre the digit's ink box (not the font's line box) on the marker centre.
    ox = x - (l + rr) / 2
    oy = y - (t + b) / 2
    draw.text((round(ox), round(oy)), text, font=font, fill=RING_LIGHT,
              stroke_width=style.stroke, stroke_fill=RING_DARK)


def draw_markers(rgb: np.ndarray, markers: dict[str, list[int]], style: MarkerStyle) -> np.ndarray:
    """A copy of ``rgb`` (same size) with one circled label per ``markers`` entry
    (label text -> [x, y] centre in pixels). Only the square around each marker goes
    through Pillow; the rest of the image is a plain array copy."""
    out = np.array(rgb, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    pad = style.radius + 2
    for text, (x, y) in markers.items():
        x, y = int(x), int(y)
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(w, x + pad + 1), min(h, y + pad + 1)
        tile = Image.fromarray(np.ascontiguousarray(out[y0:y1, x0:x1]))
        _draw_one(ImageDraw.Draw(tile), x - x0, y - y0, str(text), style)
        out[y0:y1, x0:x1] = np.asarray(tile)
    return out
