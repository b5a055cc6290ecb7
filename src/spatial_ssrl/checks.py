"""Ambiguity measures: is an answer readable from the pixels?

All comparisons work on small box-filtered thumbnails (mean absolute difference on the
0-255 scale), which ignores sensor noise and JPEG artefacts but not content.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

THUMB = 24


@dataclass(frozen=True)
class AmbiguityThresholds:
    """Mean absolute difference (0-255 scale, on thumbnails) below which two images count
    as the same to a viewer, and the luminance spread below which an image is blank."""

    near_identical: float = 4.0
    """Two shuffle patches closer than this cannot be told apart."""
    flip_symmetry: float = 6.0
    """A patch this close to its own mirror image does not show its flip."""
    rotation_symmetry: float = 6.0
    """A square (image or patch) this close to itself turned by 90 or 180 degrees does not
    show its rotation."""
    crop_distractor: float = 6.0
    """A crop option this close to the true crop is a second right answer."""
    uniform_std: float = 6.0
    """An image whose luminance standard deviation is below this is blank."""
    temporal_frame_distance: float = 2.0
    """temporal: two frames of a clip closer than this (on thumbnails) cannot be put in
    order; when every pair is, the clip is near-static."""
    camera_min_overlap: float = 0.4
    """camera_motion: least share of the first view's pixels the second view must also see."""
    camera_min_flow: float = 0.015
    """camera_motion: least median image motion, as a share of the image width."""
    camera_confusion: float = 0.01
    """camera_motion: a distractor whose predicted image motion comes this close to the true
    one (mean difference, as a share of the image width) makes the question ambiguous."""
    counting_contrast: float = 48.0
    """counting: a photo pixel within this of a drawn shape's fill colour in every channel
    (0-255) hides that pixel of the shape; a shape with more than 1% of its pixels hidden is
    rejected."""


def thumbnail(rgb: np.ndarray, width: int = THUMB, height: int | None = None) -> np.ndarray:
    height = width if height is None else height
    img = Image.fromarray(np.ascontiguousarray(rgb))
    return np.asarray(img.resize((width, height), Image.Resampling.BOX), dtype=np.float32)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.float32) - b.astype(np.float32))))


def grid_thumbnails(rgb: np.ndarray, rows: int, cols: int, size: int = THUMB) -> list[np.ndarray]:
    """Thumbnails of each cell of a rows x cols grid, from one resize of the whole image."""
    t = thumbnail(rgb, cols * size, rows * size)
    return [t[i * size:(i + 1) * size, j * size:(j + 1) * size] for i in range(rows) for j in range(cols)]


def min_pairwise_mad(thumbs: list[np.ndarray]) -> float:
    if len(thumbs) < 2:
        return float("inf")
    stack = np.stack([t.reshape(-1) for t in thumbs])
    diff = np.abs(stack[:, None, :] - stack[None, :, :]).mean(axis=2)
    iu = np.triu_indices(len(thumbs), k=1)
    return float(diff[iu].min())


def luminance_std(rgb: np.ndarray) -> float:
    step = max(1, min(rgb.shape[0], rgb.shape[1]) // 256)  # subsample big images before the resize
    t = thumbnail(rgb[::step, ::step], 64)
    lum = t @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return float(lum.std())


def is_near_uniform(rgb: np.ndarray, thresholds: AmbiguityThresholds = AmbiguityThresholds()) -> bool:
    return luminance_std(rgb) < thresholds.uniform_std
