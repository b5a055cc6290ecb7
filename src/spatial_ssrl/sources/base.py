from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .posed import PosedPair


@dataclass(frozen=True)
class PairRef:
    """The second view of a posed pair (an RGB-D manifest line's ``pair``, see
    :mod:`.posed`): its RGB file, optional depth file (read like the first view's), its
    camera-to-world pose and, when they differ from the first view's, its intrinsics."""

    rgb: str
    pose: tuple[float, ...]
    """16 numbers: the 4x4 camera-to-world matrix, row-major (metres, OpenCV camera axes)."""
    depth: str | None = None
    intrinsics: tuple[float, float, float, float] | None = None
    """(fx, fy, cx, cy) in pixels of this view's RGB file; None: the first view's."""
    name: str | None = None
    """Where a dataset stores the RGB file (as ``SourceRef.name``)."""
    depth_name: str | None = None



@dataclass(frozen=True)
class SourceRef:
    """A planned input: a stable id, the path to read it from and, for RGB-D inputs, where
    its depth lives and how to read it.

    ``kind`` is ``image`` (RGB only), ``rgbd`` (RGB + a depth file) or ``procedural`` (a
    scene rendered in memory from ``path``, which then names the scene, e.g.
    ``procedural:17``).
    """

    id: str
    path: str
    kind: str = "image"
    depth: str | None = None
    """Depth file (``.npy``, ``.h5``, 16-bit ``.png``, disparity ``.npz``/``.png``/``.pfm``)."""
    mask: str | None = None
    """Optional validity mask file (1 = valid)."""
    depth_format: str | None = None
    """How to read ``depth``: ``diode``, ``megadepth``, ``png16``, ``disparity``, ``npy``;
    None = decided from the file."""
    depth_scale: float | None = None
    """Multiplier from stored values to metres (e.g. 0.001 for millimetre PNGs)."""
    intrinsics: tuple[float, float, float, float] | None = None
    """Pinhole intrinsics (fx, fy, cx, cy) in pixels of the RGB file."""
    baseline: float | None = None
    """Stereo baseline in metres, for disparity inputs."""
    disparity_offset: float | None = None
    """Stereo rig's disparity offset ``doffs`` in pixels of the RGB file (the x-difference of
    the two principal points): depth = fx * baseline / (disparity + doffs)."""
    name: str | None = None
    """Where the source is stored in a dataset: ``<root label>/<path inside the root>``
    (:mod:`spatial_ssrl.sources.naming`); None: the path itself."""
    depth_name: str | None = None
    """The same for the depth file."""
    pose: tuple[float, ...] | None = None
    """Camera-to-world pose of this view (16 numbers, a row-major 4x4), for posed pairs."""
    pair: PairRef | None = None
    """The second view of a posed pair (:mod:`.posed`), or None."""


@dataclass
class Item:
    """One input, ready for a task: RGB pixels plus optional geometry.

    Depth contract (RGB-D items): ``depth`` is float32 HxW on the RGB grid, positive where
    ``mask`` (bool HxW) is True; invalid pixels hold NaN and are False in ``mask``.
    ``intrinsics`` are (fx, fy, cx, cy) in pixels of ``rgb`` (scaled with any resize).
    ``depth_kind`` says what the numbers mean: ``metric`` (metres), ``relative`` (true depth
    up to an unknown scale, e.g. MegaDepth) or ``order`` (only the order is meaningful,
    e.g. inverted disparity without calibration).

    ``info`` records what loading did to the file (mode conversion, EXIF orientation,
    resize, depth resampling) so a sample can say exactly how its pixels relate to the
    files on disk.
    """

    id: str
    rgb: np.ndarray
    path: str | None = None
    depth: np.ndarray | None = None
    mask: np.ndarray | None = None
    intrinsics: tuple[float, float, float, float] | None = None
    depth_kind: str | None = None
    depth_path: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    file: str | None = None
    """The file the pixels were read from, as this machine names it (``path`` is the portable
    name a dataset stores): for tasks that read a sibling file, as the other view of a stereo
    pair. Never stored in a dataset."""
    pair: PosedPair | None = None
    """The second view of a posed pair with both poses (:class:`.posed.PosedPair`), loaded
    on first use; never stored in a dataset (tasks store its portable names)."""

    @property
    def has_depth(self) -> bool:
        return self.depth is not None

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def display_path(path: str | None) -> str | None:
    """``path`` as valid UTF-8 text for datasets and reports.

    File names are bytes on Linux; Python hands an undecodable byte over as a lone
    surrogate (``surrogateescape``: ``b"caf\\xe9.png"`` becomes ``"caf\\udce9.png"``),
    which cannot be written to Parquet or UTF-8 JSON. Each such byte is written as the
    four characters ``\\xNN`` instead (``caf\\xe9.png``), Python's ``backslashreplace``
    form. A valid UTF-8 name is returned unchanged. Only the text shown or stored is
    escaped: files are still opened, and seeds still hashed, from the real bytes.
    """
    if path is None:
        return None
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that did not come from a file-name byte
        return path.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


class SourceSkip(Exception):
    """An input that cannot be used, with a short machine-readable reason."""

    def __init__(self, reason: str, path: str, detail: str = ""):
        self.reason = reason
        self.path = path
        self.detail = detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))
