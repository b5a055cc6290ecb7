"""Drawing on images: patch grids with borders, outlined text labels, markers.

Everything here scales with the image so labels stay legible from thumbnails up to
multi-megapixel photos (the public scripts used a fixed-size font that is unreadable on
large images).
"""

from .grid import GridGeometry, draw_grid_overlay, grid_geometry
from .labels import draw_label, font_for_glyph_height, label_style

__all__ = [
    "GridGeometry",
    "draw_grid_overlay",
    "draw_label",
    "font_for_glyph_height",
    "grid_geometry",
    "label_style",
]
