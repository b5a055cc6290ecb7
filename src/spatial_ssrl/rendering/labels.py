from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from PIL import ImageDraw, ImageFont

LABEL_FILL = (255, 255, 255)
LABEL_OUTLINE = (0, 0, 0)
# Glyph height as a share of the shorter side of the patch the label belongs to.
LABEL_HEIGHT_SHARE = 0.11


@lru_cache(maxsize=256)
def font_for_glyph_height(glyph_px: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled FreeType font at the smallest size whose digits are at least
    ``glyph_px`` pixels tall."""
    glyph_px = max(6, int(glyph_px))
    size = max(8, math.ceil(glyph_px / 0.75))
    while True:
        font = ImageFont.load_default(size=size)
        top, bottom = _digit_extent(font)
        if bottom - top >= glyph_px:
            return font
        size += 1


def _digit_extent(font: ImageFont.FreeTypeFont) -> tuple[int, int]:
    top, bottom = 10**9, -(10**9)
    for ch in "0123456789":
        _, t, _, b = font.getbbox(ch)
        top, bottom = min(top, t), max(bottom, b)
    return top, bottom


@dataclass(frozen=True)
class LabelStyle:
    glyph_px: int
    stroke: int
    margin: int

    @property
    def font(self) -> ImageFont.FreeTypeFont:
        return font_for_glyph_height(self.glyph_px)


def label_style(patch_short_side: int, border: int = 0) -> LabelStyle:
    glyph = max(6, math.ceil(LABEL_HEIGHT_SHARE * patch_short_side))
    stroke = max(1, round(glyph / 9))
    margin = border + max(2, round(0.03 * patch_short_side))
    return LabelStyle(glyph_px=glyph, stroke=stroke, margin=margin)


def draw_label(
    draw: ImageDraw.ImageDraw,
    xy: tuple[int, int],
    text: str,
    style: LabelStyle,
    fill: tuple[int, int, int] = LABEL_FILL,
    outline: tuple[int, int, int] = LABEL_OUTLINE,
    anchor: str = "la",
) -> tuple[int, int, int, int]:
    """Draw ``text`` outlined (white on a black stroke reads on any background) and return
    its bounding box. ``xy`` is the top-left corner of the glyph box (``anchor='la'`` is
    Pillow's left/ascender anchor, shifted so the digits' top sits at ``xy``)."""
    font = style.font
    x, y = xy
    if anchor == "la":
        top, _ = _digit_extent(font)
        y -= top
        x += style.stroke
        y += style.stroke
    draw.text((x, y), text, font=font, fill=fill, stroke_width=style.stroke, stroke_fill=outline, anchor=anchor)
    return draw.textbbox((x, y), text, font=font, stroke_width=style.stroke, anchor=anchor)
