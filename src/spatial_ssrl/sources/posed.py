"""Posed pairs: two views of one scene with their camera poses, given in an RGB-D manifest.

A manifest line (see :func:`.rgbd.discover_rgbd`) describes its first view as usual and adds
``pose`` (that view's camera) and ``pair`` (the second view)::

    {"rgb": "seq/frame-000000.color.png", "depth": "seq/frame-000000.depth.png",
     "depth_scale": 0.001, "intrinsics": [585, 585, 320, 240],
     "pose": "seq/frame-000000.pose.txt",
     "pair": {"rgb": "seq/frame-000040.color.png", "depth": "seq/frame-000040.depth.png",
              "pose": "seq/frame-000040.pose.txt"}}

The first view needs ``depth`` and ``intrinsics`` (its depth must be metric for the two-view
tasks). ``pair`` holds ``rgb`` and ``pose`` (required), ``depth`` (optional: read with the
line's ``depth_format`` and ``depth_scale``) and ``intrinsics`` (optional: the first view's
otherwise). Paths are relative to the manifest's folder.

Poses
-----
A pose is the camera-to-world transform of its view: ``p_world = R @ p_camera + t`` with
the camera axes of OpenCV (x right, y down, z forward along the optical axis), in metres.
ScanNet, 7-Scenes and TUM RGB-D give their poses this way. The world frame is any
right-handed frame; only the pose of one view relative to the other is used. Accepted forms:

- a 4x4 matrix as four rows ``[[r00, r01, r02, tx], ..., [0, 0, 0, 1]]``, or a 3x4 matrix
  as three rows;
- the same flattened, row-major: 16 or 12 numbers;
- a path (a string) to a text file holding those 16 or 12 numbers (ScanNet's
  ``pose/N.txt``, 7-Scenes' ``frame-N.pose.txt``);
- ``{"position": [tx, ty, tz], "quaternion": [qx, qy, qz, qw]}`` (TUM's order).

A pose that cannot be used is a named skip, counted in the run's manifest with its line;
the line still serves as an RGB-D source without its pair: ``pose_not_found`` (no such
file), ``pose_unreadable`` (the file cannot be read or holds other than numbers),
``pose_bad_shape`` (not 12 or 16 numbers, a matrix with rows of other lengths, a malformed
position or quaternion), ``pose_not_finite`` (NaN or infinity: ScanNet marks frames
without tracking with ``-inf``), ``pose_bad_last_row`` (a 4x4 whose last row is not
``0 0 0 1``), ``pose_not_rotation`` (the 3x3 part is not a rotation: its columns are not
orthonormal within :data:`ROTATION_TOL`, or it mirrors, determinant below zero; a
quaternion's norm is not within :data:`QUATERNION_TOL` of 1).
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import Item, PairRef, SourceRef, SourceSkip, display_path

ROTATION_TOL = 1e-3
"""Largest entry of ``R^T R - I`` accepted (poses written with 6 decimals are within 1e-5)."""
LAST_ROW_TOL = 1e-6
QUATERNION_TOL = 1e-2
"""A quaternion's norm must lie within this of 1 (it is normalised then)."""
POSE_FILE_MAX_BYTES = 4096

PAIR_KEYS = frozenset({"rgb", "depth", "pose", "intrinsics"})


class PoseProblem(Exception):
    """A pose that cannot be used: ``reason`` (``pose_...``) and a detail."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason} ({detail})")


def _numbers(values: Any, what: str) -> list[float]:
    if not isinstance(values, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise PoseProblem("pose_bad_shape", f"{what} must be a list of numbers")
    return [float(v) for v in values]


def _from_quaternion(data: dict) -> list[float]:
    unknown = set(data) - {"position", "quaternion"}
    if unknown or "position" not in data or "quaternion" not in data:
        raise PoseProblem("pose_bad_shape", "a pose object holds exactly 'position' [tx, ty, tz] and "
                          "'quaternion' [qx, qy, qz, qw]")
    t = _numbers(data["position"], "position")
    q = _numbers(data["quaternion"], "quaternion")
    if len(t) != 3 or len(q) != 4:
        raise PoseProblem("pose_bad_shape", "position needs 3 numbers and quaternion 4 (qx, qy, qz, qw)")
    if not all(math.isfinite(v) for v in (*t, *q)):
        raise PoseProblem("pose_not_finite", "the position or quaternion holds NaN or infinity")
    norm = math.sqrt(sum(v * v for v in q))
    if abs(norm - 1.0) > QUATERNION_TOL:
        raise PoseProblem("pose_not_rotation", f"the quaternion's norm is {norm:.4f}, not 1")
    x, y, z, w = (v / norm for v in q)
    rot = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return [*rot[0], t[0], *rot[1], t[1], *rot[2], t[2], 0.0, 0.0, 0.0, 1.0]


def _read_pose_file(path: str) -> list[float]:
    if not os.path.isfile(path):
        raise PoseProblem("pose_not_found", display_path(path) or path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(POSE_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise PoseProblem("pose_unreadable", f"{display_path(path)}: {exc.strerror or exc}") from None
    if len(raw) > POSE_FILE_MAX_BYTES:
        raise PoseProblem("pose_unreadable", f"{display_path(path)} is larger than a pose file")
    try:
        return [float(tok) for tok in raw.decode("ascii").replace(",", " ").split()]
    except (UnicodeDecodeError, ValueError):
        raise PoseProblem("pose_unreadable", f"{display_path(path)} holds other than numbers") from None


def parse_pose(value: Any, base: Path | str) -> tuple[float, ...]:
    """A manifest ``pose`` as 16 floats (the row-major 4x4 camera-to-world matrix), checked;
    :class:`PoseProblem` names what is wrong. ``base``: the folder relative paths start from."""
    if isinstance(value, str):
        p = Path(os.path.expanduser(value))
        flat = _read_pose_file(os.path.abspath(p if p.is_absolute() else Path(base) / p))
    elif isinstance(value, dict):
        flat = _from_quaternion(value)
    elif isinstance(value, list) and value and all(isinstance(r, list) for r in value):
        if len(value) not in (3, 4) or any(len(r) != 4 for r in value):
            raise PoseProblem("pose_bad_shape", "a matrix pose has 3 or 4 rows of 4 numbers")
        flat = [v for r in value for v in _numbers(r, "a matrix row")]
    else:
        flat = _numbers(value, "pose")
    if len(flat) not in (12, 16):
        raise PoseProblem("pose_bad_shape", f"{len(flat)} numbers; a pose has 16 (4x4) or 12 (3x4)")
    if len(flat) == 12:
        flat = [*flat, 0.0, 0.0, 0.0, 1.0]
    m = np.array(flat, dtype=np.float64).reshape(4, 4)
    why = pose_problem(m)
    if why:
        raise PoseProblem(*why)
    return tuple(float(v) for v in flat)


def pose_problem(m: np.ndarray) -> tuple[str, str] | None:
    """(reason, detail) when the 4x4 ``m`` is not a rigid camera-to-world transform."""
    if not np.isfinite(m).all():
        return "pose_not_finite", "the matrix holds NaN or infinity"
    if np.abs(m[3] - (0.0, 0.0, 0.0, 1.0)).max() > LAST_ROW_TOL:
        return "pose_bad_last_row", f"last row {m[3].tolist()}, not [0, 0, 0, 1]"
    rot = m[:3, :3]
    err = float(np.abs(rot.T @ rot - np.eye(3)).max())
    if err > ROTATION_TOL:
        return "pose_not_rotation", f"the 3x3 part is not orthonormal (R^T R differs from I by {err:.2g})"
    if np.linalg.det(rot) < 0:
        return "pose_not_rotation", "the 3x3 part mirrors (determinant -1)"
    return None


def parse_pair(entry: dict, base: Path, resolve) -> tuple[tuple[float, ...] | None, PairRef | None, list[str]]:
    """The ``pose`` and ``pair`` of a manifest object: (first pose, second view, unknown
    ``pair.*`` keys). ValueError for a malformed ``pair`` (the line is bad);
    :class:`PoseProblem` for a pose that cannot be used (the line stays, without its pair).
    ``resolve`` turns a path as written into an absolute one."""
    pair = entry.get("pair")
    if pair is None:
        return (parse_pose(entry["pose"], base) if entry.get("pose") is not None else None), None, []
    if not isinstance(pair, dict):
        raise ValueError(  # noqa: TRY004 (the caller reports ValueErrors as bad lines)
            "'pair' must be an object with rgb, pose and optional depth, intrinsics")
    rgb = pair.get("rgb")
    if not isinstance(rgb, str) or not rgb.strip():
        raise ValueError("'pair.rgb' must be a non-empty path string")
    depth = pair.get("depth")
    if depth is not None and (not isinstance(depth, str) or not depth.strip()):
        raise ValueError("'pair.depth' must be a path string or null")
    intr = pair.get("intrinsics")
    if intr is not None:
        if (not isinstance(intr, list) or len(intr) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in intr)
                or intr[0] <= 0 or intr[1] <= 0):
            raise ValueError("pair.intrinsics must be [fx, fy, cx, cy] with fx, fy > 0")
        intr = tuple(float(v) for v in intr)
    if entry.get("depth") is None or entry.get("intrinsics") is None:
        raise ValueError("a line with 'pair' needs the first view's 'depth' and 'intrinsics'")
    if entry.get("pose") is None or pair.get("pose") is None:
        raise ValueError("a line with 'pair' needs 'pose' and 'pair.pose'")
    unknown = sorted(f"pair.{k}" for k in pair if k not in PAIR_KEYS)
    first = parse_pose(entry["pose"], base)
    second = parse_pose(pair["pose"], base)
    ref = PairRef(rgb=resolve(rgb), pose=second, depth=resolve(depth) if depth else None, intrinsics=intr)
    return first, ref, unknown


# ============================================================================ loading


def pose_matrix(values: Any) -> np.ndarray:
    """16 numbers (row-major) or nested rows -> a 4x4 float64 matrix."""
    return np.asarray(values, dtype=np.float64).reshape(4, 4)


@dataclass(frozen=True)
class SecondView:
    """The second view on the first view's pixel grid: RGB, metric depth (NaN where
    invalid) or None, intrinsics (fx, fy, cx, cy) in those pixels and the depth's kind."""

    rgb: np.ndarray
    depth: np.ndarray | None
    intrinsics: tuple[float, float, float, float]
    depth_kind: str | None
    depth_format: str | None = None
    """The format its depth was read as (see :mod:`.depth_formats`) and the scale applied."""
    depth_scale: float | None = None


class PosedPair:
    """An item's second view and both poses. The second view is read on first use, with
    the load options of the first, and kept; a problem reading it is a :class:`SourceSkip`
    whose reason starts with ``pair_``: ``pair_rgb_<reason>`` for its RGB file (``pair_rgb_not_found``,
    ``pair_rgb_corrupt_or_truncated``, ...), ``pair_depth_<reason>`` for its depth file
    (``pair_depth_not_found``, ...), ``pair_size_mismatch`` when it does not come out at the
    first view's size."""

    def __init__(self, ref: SourceRef, options: Any, size: tuple[int, int]):
        if ref.pair is None or ref.pose is None:
            raise ValueError("a posed pair needs the ref's pose and pair")
        self.ref = ref
        self.options = options
        self.size = (int(size[0]), int(size[1]))
        self.poses = (pose_matrix(ref.pose), pose_matrix(ref.pair.pose))
        self.name = display_path(ref.pair.name or ref.pair.rgb)
        """The second view's RGB as a dataset names it (portable)."""
        self.depth_name = display_path(ref.pair.depth_name or ref.pair.depth) if ref.pair.depth else None
        self.has_depth = ref.pair.depth is not None
        self._view: SecondView | SourceSkip | None = None
        self._lock = threading.Lock()

    def view(self) -> SecondView:
        with self._lock:
            if self._view is None:
                try:
                    self._view = self._load()
                except SourceSkip as skip:
                    self._view = skip
            if isinstance(self._view, SourceSkip):
                raise self._view
            return self._view

    def _load(self) -> SecondView:
        from .rgbd import load_rgbd_item, scale_intrinsics

        pair, first = self.ref.pair, self.ref
        intr = pair.intrinsics or first.intrinsics
        ref2 = SourceRef(id=f"{first.id}#pair", path=pair.rgb, kind="rgbd" if pair.depth else "image",
                         depth=pair.depth, depth_format=first.depth_format if pair.depth else None,
                         depth_scale=first.depth_scale if pair.depth else None, intrinsics=intr,
                         name=pair.name, depth_name=pair.depth_name)
        try:
            if pair.depth:
                item2 = load_rgbd_item(ref2, self.options)
            else:
                from .images import load_item

                item2 = load_item(ref2, self.options)
        except SourceSkip as skip:
            reason = skip.reason if skip.reason.startswith("depth_") else f"rgb_{skip.reason}"
            raise SourceSkip(f"pair_{reason}", skip.path, skip.detail) from None
        if (item2.width, item2.height) != self.size:
            raise SourceSkip("pair_size_mismatch", pair.rgb,
                             f"the second view is {item2.width}x{item2.height}, the first {self.size[0]}x{self.size[1]}")
        if item2.intrinsics is None:
            file_w, file_h = item2.info.get("file_size", [item2.width, item2.height])
            item2.intrinsics = scale_intrinsics(intr, item2.width / float(file_w), item2.height / float(file_h))
        return SecondView(item2.rgb, item2.depth, tuple(float(v) for v in item2.intrinsics),  # type: ignore[arg-type]
                          item2.depth_kind, item2.info.get("depth_format"), item2.info.get("depth_scale"))


def attach_pair(item: Item, ref: SourceRef, options: Any) -> Item:
    """``item`` with its :class:`PosedPair` when ``ref`` names one."""
    if ref.pair is not None and ref.pose is not None:
        item.pair = PosedPair(ref, options, (item.width, item.height))
    return item
