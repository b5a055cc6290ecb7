from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .labels import draw_label, label_style

BORDER_COLOR = (255, 0, 0)


@dataclass(frozen=True)
class GridGeometry:
    """An M x N grid (M rows, N columns) over an image cropped to a multiple of the cell
    size. Cell ``k`` (row-major, ``k = i * cols + j``) spans rows ``i*ph:(i+1)*ph`` and
    columns ``j*pw:(j+1)*pw``."""

    rows: int
    cols: int
    ph: int
    pw: int

    @property
    def height(self) -> int:
        return self.rows * self.ph

    @property
    def width(self) -> int:
        return self.cols * self.pw

    @property
    def n(self) -> int:
        return self.rows * self.cols

    @property
    def border(self) -> int:
        return max(2, round(min(self.ph, self.pw) / 200))

    def cell(self, k: int) -> tuple[slice, slice]:
        i, j = divmod(k, self.cols)
        return slice(i * self.ph, (i + 1) * self.ph), slice(j * self.pw, (j + 1) * self.pw)

    def origin(self, k: int) -> tuple[int, int]:
        i, j = divmod(k, self.cols)
        return j * self.pw, i * self.ph

    def as_meta(self) -> dict:
        return {"grid": [self.rows, self.cols], "patch_size": [self.ph, self.pw], "border": self.border}


def grid_geometry(height: int, width: int, rows: int, cols: int) -> GridGeometry:
    return GridGeometry(rows=rows, cols=cols, ph=height // rows, pw=width // cols)


def draw_grid_overlay(canvas: np.ndarray, geom: GridGeometry, labels: list[str]) -> tuple[np.ndarray, list]:
    """Draw a border around every cell and ``labels[k]`` in the top-left corner of cell
    ``k``. Returns the new array and the label boxes (x0, y0, x1, y1) in image pixels."""
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    b = geom.border
    style = label_style(min(geom.ph, geom.pw), border=b)
    boxes = []
    for k in range(geom.n):
        x0, y0 = geom.origin(k)
        draw.rectangle([x0, y0, x0 + geom.pw - 1, y0 + geom.ph - 1], outline=BORDER_COLOR, width=b)
        boxes.append(draw_label(draw, (x0 + style.margin, y0 + style.margin), labels[k], style))
    return np.asarray(img), boxes
