"""Camera motion between two views of one scene.

Two images of the same scene, the second taken after the camera moved. How did it move,
as seen from where it stood for the first image? Eight motions: moved left, right,
forward, backward, up or down (a step along one of the first camera's own axes, no turn),
or turned left or right (a turn in place about the vertical axis). Four options A-D,
shuffled; the answer is a letter.

Sources
-------
- Procedural scenes (built in): the first view is the item itself (the scene's default
  camera), the second is rendered from the same scene seed at a pose drawn here
  (:func:`~spatial_ssrl.sources.procedural.render_view`). Poses are stored in the params,
  so the second view can be re-rendered and the motion re-derived from them.
- Calibrated stereo pairs: an RGB-D item whose depth came from disparity with a known
  baseline (Middlebury: scikit-image's Motorcycle pair is built in) and whose other view
  lies beside it (``*_left.*`` / ``*_right.*``, or Middlebury 2014's ``im0`` / ``im1``).
  The right camera stands ``baseline`` metres to the right of the left one with the same
  orientation, so left-then-right is "moved right"; the order is drawn, so right-then-left
  ("moved left") is as frequent. A rig gives one motion of one size: only the ``single``
  variants take stereo pairs, whatever their magnitude.
- Posed pairs (an RGB-D manifest line with ``pose`` and ``pair``,
  :mod:`spatial_ssrl.sources.posed`): the relative pose of the second camera in the first
  one's frame gives the label by :func:`classify_relative` (a step along one axis and/or a
  yaw, tilt within bounds), its level by :func:`motion_magnitude`; a pair serves only the
  variant its motion falls in. The order is drawn when both views have metric depth. The
  label must also explain the image motion clearly better than any distractor
  (``camera_motion_pair_misfit``), since a real motion is never exactly one of the eight.

Conventions: a pose is the camera's place in the scene frame (X right, Y down, Z forward,
metres; yaw positive to the right). The motion is the second camera's pose in the frame
of the first: its position ``R1^T (t2 - t1)`` (x right, y down, z forward) and the yaw
difference. By construction exactly one translation axis and/or the yaw move.

Variants (the difficulty): ``single-large`` / ``single-small`` (one motion; all eight
are possible, the three distractors are three of the other seven, uniformly) and
``combined-large`` / ``combined-small`` (a step along one axis, then a turn; the options
are the four combinations of that axis's two directions with the two turns, so both parts
must be read). ``large`` and ``small`` set the ranges of the step (metres) and turn
(degrees), :data:`MAGNITUDES`.

Ambiguity filter, on the first view's depth reprojected into the second camera
(named rejections):

- ``camera_motion_small_overlap``: under ``camera_min_overlap`` of the first view's
  pixels are seen in the second (in frame, in front, not hidden: procedural views are
  tested against the second view's own depth);
- ``camera_motion_too_small``: the median image motion of those pixels is below
  ``camera_min_flow`` of the image width (the views barely differ);
- ``camera_motion_confusable``: some distractor, at its best-fitting size, predicts image
  motion within ``camera_confusion`` of the width (mean difference) of the true one (e.g.
  a sideways step in front of one flat wall moves the image as a turn does);
- ``camera_motion_pose_<reason>``: the second camera would stand outside the room, too
  near a wall, the floor or an object (:func:`~spatial_ssrl.sources.procedural.pose_problem`);
- ``camera_motion_no_second_view`` (an item that is neither a procedural scene nor a
  stereo pair nor a posed pair), ``camera_motion_stereo_is_single`` (a stereo pair in a
  ``combined`` variant), ``camera_motion_needs_metric_depth``;
- posed pairs: ``camera_motion_pair_tilted``, ``_pair_mixed_step``, ``_pair_is_single`` /
  ``_is_combined`` / ``_is_large`` / ``_is_small`` (the pair's motion belongs to another
  variant), ``_pair_misfit``, and ``_pair_rgb_<reason>`` / ``_pair_depth_<reason>`` /
  ``_pair_size_mismatch`` when the second view cannot be read.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections import OrderedDict
from typing import Any, ClassVar

import numpy as np

from ..prompts import get_prompt_set
from ..sources.base import Item
from ..sources.procedural import Pose, parse_procedural_path, pose_problem, render_view
from .base import PretextTask, Rendered

LETTERS = ("A", "B", "C", "D")
TRANSLATIONS: dict[str, tuple[int, int, int]] = {
    "left": (-1, 0, 0), "right": (1, 0, 0),
    "up": (0, -1, 0), "down": (0, 1, 0),
    "forward": (0, 0, 1), "backward": (0, 0, -1),
}
"""Unit steps along the first camera's axes (x right, y down, z forward)."""
TURNS: dict[str, int] = {"left": -1, "right": 1}
"""Sign of the yaw change (positive: to the right)."""
MOTIONS = (*TRANSLATIONS, "turn_left", "turn_right")
AXES = {"left": 0, "right": 0, "up": 1, "down": 1, "forward": 2, "backward": 2}
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up", "forward": "backward",
            "backward": "forward"}

MAGNITUDES: dict[str, dict[str, tuple[float, float]]] = {
    "large": {"horizontal": (0.7, 1.2), "vertical": (0.4, 0.6), "turn": (15.0, 30.0), "turn_combined": (6.0, 12.0)},
    "small": {"horizontal": (0.35, 0.6), "vertical": (0.25, 0.4), "turn": (6.0, 12.0), "turn_combined": (3.0, 6.0)},
}
"""Step length (metres: forward/backward/left/right are horizontal, up/down vertical) and
turn (degrees) ranges of each magnitude, drawn uniformly. A turn that goes with a step
is smaller: a turn moves the whole image, and a large one would drown the step."""

_VARIANT = re.compile(r"^(single|combined)-(large|small)$")
_STEREO_NAMES = ((re.compile(r"^(.*)_left(\.[A-Za-z0-9]+)$"), r"\1_right\2"),
                 (re.compile(r"^im0(\.[A-Za-z0-9]+)$"), r"im1\1"))
#: Pixels of the first view sampled for the overlap and image-motion measures.
SAMPLE_PIXELS = 6000
#: Pixels (a subset of those) compared in the confusion test, and the sizes tried there.
CONFUSION_PIXELS = 1000
_TRY_STEPS = np.geomspace(0.03, 3.0, 24)
_TRY_TURNS = np.geomspace(0.5, 60.0, 24)
_TRY_STEPS_2D = np.geomspace(0.03, 3.0, 14)
_TRY_TURNS_2D = np.geomspace(0.5, 60.0, 14)
_REFINE = np.geomspace(0.8, 1.25, 7)
"""Around the best size of the grid, the sizes tried again (factors)."""


def motion_key(motion: dict[str, Any]) -> str:
    """``forward``, ``turn_left`` or ``forward+turn_left`` for a params ``motion``."""
    parts = []
    if motion.get("translation"):
        parts.append(motion["translation"])
    if motion.get("turn"):
        parts.append(f"turn_{motion['turn']}")
    if not parts:
        raise ValueError("a motion needs a translation or a turn")
    return "+".join(parts)


def motion_text(key: str) -> str:
    """The option text: ``Moved forward``, ``Turned left``, ``Moved forward and turned left``."""
    words = []
    for part in key.split("+"):
        words.append(f"turned {part[5:]}" if part.startswith("turn_") else f"moved {part}")
    text = " and ".join(words)
    return text[0].upper() + text[1:]


def _left_file(path: str | None) -> str | None:
    """The file an item's ``path`` names: the path itself when it is a file, else (a run
    names its sources relative to input roots) the built-in copy of a scikit-image file of
    that name. A user's own stereo pair is found when the item carries its file path."""
    if not path:
        return None
    if os.path.isfile(path):
        return path
    from ..sources.builtin import builtin_data_dir

    try:
        builtin = os.path.join(builtin_data_dir(), os.path.basename(path))
    except Exception:  # noqa: BLE001 - scikit-image absent
        return None
    return builtin if os.path.basename(path) in _BUILTIN_PAIRS and os.path.isfile(builtin) else None


_BUILTIN_PAIRS = ("motorcycle_left.png",)


def stereo_partner(path: str | None) -> str | None:
    """The other view of the stereo pair whose left view ``path`` names, or None."""
    left = _left_file(path)
    if left is None:
        return None
    folder, name = os.path.split(left)
    for pattern, repl in _STEREO_NAMES:
        if pattern.match(name):
            other = os.path.join(folder, pattern.sub(repl, name))
            return other if os.path.isfile(other) else None
    return None


_PARTNER_CACHE: OrderedDict = OrderedDict()
_PARTNER_LOCK = threading.Lock()


def read_partner(path: str, size: tuple[int, int]) -> np.ndarray:
    """The other stereo view as RGB uint8 at ``size`` = (width, height) (box-resized when
    the item was loaded at a reduced size), read-only, from a two-entry cache."""
    from PIL import Image

    key = (path, int(size[0]), int(size[1]), os.path.getmtime(path))
    with _PARTNER_LOCK:
        hit = _PARTNER_CACHE.get(key)
        if hit is not None:
            return hit
    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.size != (int(size[0]), int(size[1])):
            img = img.resize((int(size[0]), int(size[1])), Image.Resampling.BOX)
        rgb = np.asarray(img)
    rgb.setflags(write=False)
    with _PARTNER_LOCK:
        _PARTNER_CACHE[key] = rgb
        while len(_PARTNER_CACHE) > 2:
            _PARTNER_CACHE.popitem(last=False)
    return rgb


# --------------------------------------------------------------------------- geometry


def relative_motion(first: Pose, second: Pose) -> tuple[np.ndarray, float]:
    """The second camera's position in the first camera's frame and the yaw change
    (degrees, positive to the right)."""
    return first.to_camera(second.position), second.yaw_deg - first.yaw_deg


def _yaw_matrices(deg: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotations about +Y (positive turns +Z toward +X)."""
    a = np.radians(np.asarray(deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    out = np.zeros((len(a), 3, 3))
    out[:, 0, 0], out[:, 0, 2], out[:, 1, 1], out[:, 2, 0], out[:, 2, 2] = c, s, 1.0, -s, c
    return out


def _project(pts: np.ndarray, intr) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fx, fy, cx, cy = intr
    z = pts[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return fx * pts[..., 0] / z + cx, fy * pts[..., 1] / z + cy, z


def _sizes(key: str) -> tuple[np.ndarray, np.ndarray]:
    """The step lengths and turn angles the confusion test first tries for motion ``key``."""
    parts = key.split("+")
    trans = any(not p.startswith("turn_") for p in parts)
    turn = any(p.startswith("turn_") for p in parts)
    if trans and turn:
        return _TRY_STEPS_2D, _TRY_TURNS_2D
    return (_TRY_STEPS if trans else np.zeros(1)), (_TRY_TURNS if turn else np.zeros(1))


def _family_flow(p1: np.ndarray, uv1: np.ndarray, intr2, key: str, steps: np.ndarray,
                 turns: np.ndarray) -> np.ndarray:
    """Image motion (t * s, n, 2) of first-camera points ``p1`` (n, 3) at pixels ``uv1``
    under motion ``key`` at every (turn, step) of ``turns`` x ``steps``."""
    parts = key.split("+")
    trans = next((p for p in parts if not p.startswith("turn_")), None)
    turn = next((p for p in parts if p.startswith("turn_")), None)
    direction = np.asarray(TRANSLATIONS[trans] if trans else (0, 0, 0), dtype=np.float64)
    rot = _yaw_matrices((TURNS[turn[5:]] if turn else 0) * turns)  # (t, 3, 3), second-to-first
    # a second camera at (step * direction, turn) sees p as R^T p - step R^T direction
    turned = np.einsum("nj,tji->tni", p1, rot)  # (t, n, 3): R^T p
    shift = np.einsum("j,tji->ti", direction, rot)  # (t, 3): R^T direction
    q = turned[:, None] - steps[None, :, None, None] * shift[:, None, None, :]  # (t, s, n, 3)
    q = q.reshape(-1, len(p1), 3)
    u, v, z = _project(q, intr2)
    flow = np.stack([u - uv1[:, 0], v - uv1[:, 1]], axis=-1)
    flow[z <= 1e-3] = 1e4  # behind the camera: as far off as can be
    return flow


def measure_motion(depth1: np.ndarray, intr1, intr2, first: Pose, second: Pose,
                   depth2: np.ndarray | None = None, options: list[str] | tuple = (),
                   truth: str | None = None) -> dict[str, Any]:
    """How much of the first view the second camera sees (``overlap``), how far the image
    moves (``median_flow`` as a share of the width) and, for ``options`` (motion keys)
    other than ``truth``, how closely the best-sized distractor mimics that image motion
    (``confusion``: the least mean difference of the two image motions over the seen
    pixels, as a share of the width; small means confusable). The difference is counted
    in pixels, not relative to the motion: a turn and a sideways step to the same side add
    up to a large image motion, but what tells them from the other combinations is the
    parallax, which does not grow with the turn."""
    pos, _ = relative_motion(first, second)
    rot = first.rotation().T @ second.rotation()
    return measure_motion_rt(depth1, intr1, intr2, pos, rot, depth2, options, truth)


def measure_motion_rt(depth1: np.ndarray, intr1, intr2, pos: np.ndarray, rot: np.ndarray,
                      depth2: np.ndarray | None = None, options: list[str] | tuple = (),
                      truth: str | None = None, fit: bool = False) -> dict[str, Any]:
    """:func:`measure_motion` for a second camera at ``pos`` with axes ``rot`` (columns:
    its right, down, forward) in the first camera's frame, any rotation. With ``fit``, also
    ``fit``: how closely the ``truth`` motion, at its best-fitting size, reproduces the image
    motion (the same measure as ``confusion``; a posed pair's motion is not exactly one of
    the eight, so its label must explain the image motion better than any distractor)."""
    h, w = depth1.shape
    step = max(1, round(math.sqrt(h * w / SAMPLE_PIXELS)))
    vs, us = np.mgrid[step // 2:h:step, step // 2:w:step]
    z1 = depth1[vs, us].astype(np.float64)
    valid = np.isfinite(z1) & (z1 > 0)
    us, vs, z1 = us[valid].astype(np.float64), vs[valid].astype(np.float64), z1[valid]
    fx, fy, cx, cy = intr1
    p1 = np.stack([(us - cx) * z1 / fx, (vs - cy) * z1 / fy, z1], axis=1)
    uv1 = np.stack([us, vs], axis=1)
    u2, v2, z2 = _project((p1 - pos) @ rot, intr2)
    seen = (z2 > 1e-3) & (u2 >= -0.5) & (u2 < w - 0.5) & (v2 >= -0.5) & (v2 < h - 0.5)
    if depth2 is not None and seen.any():
        iu = np.clip(np.rint(u2[seen]).astype(np.intp), 0, w - 1)
        iv = np.clip(np.rint(v2[seen]).astype(np.intp), 0, h - 1)
        there = depth2[iv, iu].astype(np.float64)
        hidden = np.isfinite(there) & (there < z2[seen] * 0.97 - 0.02)
        seen[np.flatnonzero(seen)[hidden]] = False
    out: dict[str, Any] = {"sampled": int(valid.sum()), "overlap": float(seen.sum()) / max(1, int(valid.sum()))}
    if not seen.any():
        return {**out, "median_flow": 0.0, "confusion": 0.0}
    flow = np.stack([u2[seen] - us[seen], v2[seen] - vs[seen]], axis=1)
    out["median_flow"] = float(np.median(np.hypot(flow[:, 0], flow[:, 1]))) / w
    # the confusion test on a subset of the seen pixels
    keep = np.flatnonzero(seen)
    if len(keep) > CONFUSION_PIXELS:
        keep = keep[np.linspace(0, len(keep) - 1, CONFUSION_PIXELS).astype(np.intp)]
    cp, cuv = p1[keep], uv1[keep]
    true_flow = np.stack([u2[keep] - cuv[:, 0], v2[keep] - cuv[:, 1]], axis=1)
    confusion = math.inf
    closest = None
    for key in options:
        if key == truth:
            continue
        err = _best_fit(cp, cuv, intr2, key, true_flow, w)
        if err < confusion:
            confusion, closest = err, key
    out["confusion"] = confusion if math.isfinite(confusion) else None
    out["closest_distractor"] = closest
    if fit and truth is not None:
        out["fit"] = _best_fit(cp, cuv, intr2, truth, true_flow, w)
    return out


def _best_fit(cp: np.ndarray, cuv: np.ndarray, intr2, key: str, true_flow: np.ndarray, w: int) -> float:
    """The least mean difference (share of the width) between ``true_flow`` and the image
    motion of motion ``key`` at any size: a grid of sizes, then finer around its best."""
    steps, turns = _sizes(key)
    best = math.inf
    for _ in range(2):
        pred = _family_flow(cp, cuv, intr2, key, steps, turns)
        err = np.mean(np.hypot(pred[..., 0] - true_flow[:, 0], pred[..., 1] - true_flow[:, 1]), axis=-1) / w
        k = int(np.argmin(err))
        t_best, s_best = turns[k // len(steps)], steps[k % len(steps)]
        best = min(best, float(err[k]))
        steps = s_best * _REFINE if s_best else steps
        turns = t_best * _REFINE if t_best else turns
    return best


# --------------------------------------------------------------------------- posed pairs

POSED_MIN_STEP_M = 0.1
"""Posed pairs: metres along the main axis from which the camera counts as having stepped."""
POSED_OFF_AXIS = 0.35
"""Posed pairs: a step's two other components may be at most this share of its main one."""
POSED_MIN_TURN_DEG = 3.0
"""Posed pairs: degrees of yaw from which the camera counts as having turned."""
POSED_MAX_TILT_DEG = 5.0
"""Posed pairs: largest change of pitch or roll (no option names a tilt)."""
POSED_FIT_SHARE = 0.5
"""Posed pairs: the label's best-sized image motion must be at least this much closer to the
true one than the closest distractor's (``fit <= share * confusion``)."""
POSED_ORDERS = ("view1-view2", "view2-view1")


def relative_pose(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The second camera's position in the first camera's frame and its axes there (a 3x3
    whose columns are its right, down, forward), from two 4x4 camera-to-world matrices."""
    r1 = first[:3, :3]
    return r1.T @ (second[:3, 3] - first[:3, 3]), r1.T @ second[:3, :3]


def rotation_angles(rot: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a relative rotation, ``rot = R_yaw @ R_pitch @ R_roll``
    in the conventions of :class:`Pose` (yaw positive to the right, pitch positive up; roll
    about the forward axis)."""
    f = rot[:, 2]
    yaw = math.atan2(float(f[0]), float(f[2]))
    pitch = math.atan2(-float(f[1]), math.hypot(float(f[0]), float(f[2])))
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    yp = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]]) @ np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp],
                                                                               [0.0, sp, cp]])
    rest = yp.T @ rot
    roll = math.atan2(float(rest[1, 0]), float(rest[0, 0]))
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


_AXIS_WORDS = {(0, 1): "right", (0, -1): "left", (1, 1): "down", (1, -1): "up", (2, 1): "forward",
               (2, -1): "backward"}


def classify_relative(pos: np.ndarray, rot: np.ndarray) -> tuple[dict[str, Any] | None, str | None]:
    """The motion (a params ``motion``) a posed pair's relative pose makes, or the reason it
    makes none: a step when the position's largest component reaches
    :data:`POSED_MIN_STEP_M` and the other two stay within :data:`POSED_OFF_AXIS` of it, a
    turn when the yaw reaches :data:`POSED_MIN_TURN_DEG`; pitch and roll must stay within
    :data:`POSED_MAX_TILT_DEG`. What is left below these sizes is tested on the image motion
    (``camera_motion_pair_misfit``)."""
    yaw, pitch, roll = rotation_angles(rot)
    if max(abs(pitch), abs(roll)) > POSED_MAX_TILT_DEG:
        return None, "camera_motion_pair_tilted"
    mags = np.abs(pos)
    axis = int(np.argmax(mags))
    length = float(mags[axis])
    trans = None
    if length >= POSED_MIN_STEP_M:
        if float(np.delete(mags, axis).max()) > POSED_OFF_AXIS * length:
            return None, "camera_motion_pair_mixed_step"
        trans = _AXIS_WORDS[(axis, 1 if pos[axis] > 0 else -1)]
    turn = ("right" if yaw > 0 else "left") if abs(yaw) >= POSED_MIN_TURN_DEG else None
    if trans is None and turn is None:
        return None, "camera_motion_too_small"
    return {"translation": trans, "distance_m": length if trans else None, "turn": turn,
            "turn_deg": abs(yaw) if turn else None}, None


def motion_magnitude(motion: dict[str, Any]) -> str:
    """``large`` when every part of a motion reaches the lower end of its ``large`` range
    (:data:`MAGNITUDES`), else ``small``: a combined motion is as hard as its weaker part."""
    large = MAGNITUDES["large"]
    parts = []
    if motion.get("translation"):
        parts.append(motion["distance_m"] >= large["vertical" if AXES[motion["translation"]] == 1 else "horizontal"][0])
    if motion.get("turn"):
        parts.append(motion["turn_deg"] >= large["turn_combined" if motion.get("translation") else "turn"][0])
    return "large" if all(parts) else "small"


def posed_views(item: Item, order: str) -> list[tuple[np.ndarray, np.ndarray | None, tuple, np.ndarray]]:
    """(rgb, depth or None, intrinsics, camera-to-world 4x4) of a posed item's two views, in
    the order shown. Raises SourceSkip (``pair_...``) when the second view cannot be read."""
    pair = item.pair
    second = pair.view()
    one = (item.rgb, item.depth, tuple(item.intrinsics), pair.poses[0])
    two = (second.rgb, second.depth, second.intrinsics, pair.poses[1])
    return [one, two] if order == POSED_ORDERS[0] else [two, one]


def posed_files(item: Item, order: str) -> dict[str, list]:
    """What a sample stores to find a posed pair's files again, in the order shown: the
    names the dataset gives the RGB and depth files (never a full path), the depth format
    each was read as and its scale."""
    pair = item.pair
    second = pair.view()
    out = {"views": [item.path, pair.name], "depths": [item.depth_path, pair.depth_name],
           "depth_formats": [item.info.get("depth_format"), second.depth_format],
           "depth_scales": [item.info.get("depth_scale"), second.depth_scale]}
    if order != POSED_ORDERS[0]:
        out = {k: v[::-1] for k, v in out.items()}
    return out


# --------------------------------------------------------------------------- the task


class CameraMotionTask(PretextTask):
    name = "camera_motion"
    answer_type = "choice"
    paper_counts: ClassVar[dict[str, float]] = {}  # not a paper task: only by --tasks
    requires_depth = True
    lossless_output = False
    VARIANTS = ("single-large", "single-small", "combined-large", "combined-small")

    def __init__(self, variant: str | None = None, **kwargs: Any):
        super().__init__(variant, **kwargs)
        m = _VARIANT.match(self.variant)
        if not m:
            raise ValueError(f"camera_motion variant must be one of {', '.join(self.VARIANTS)}; got {self.variant!r}")
        self.combined = m.group(1) == "combined"
        self.magnitude = m.group(2)
        self._memo: tuple[str, dict[str, Any]] | None = None

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        return cls.VARIANTS

    @classmethod
    def default_variant(cls) -> str:
        return "single-large"

    # -- drawing ----------------------------------------------------------------------
    def _draw_motion(self, rng: np.random.Generator) -> dict[str, Any]:
        ranges = MAGNITUDES[self.magnitude]
        if self.combined:
            trans = list(TRANSLATIONS)[int(rng.integers(len(TRANSLATIONS)))]
            turn = "left" if rng.integers(2) == 0 else "right"
        else:
            pick = MOTIONS[int(rng.integers(len(MOTIONS)))]
            trans, turn = (None, pick[5:]) if pick.startswith("turn_") else (pick, None)
        motion: dict[str, Any] = {"translation": trans, "distance_m": None, "turn": turn, "turn_deg": None}
        if trans:
            lo, hi = ranges["vertical" if AXES[trans] == 1 else "horizontal"]
            motion["distance_m"] = float(rng.uniform(lo, hi))
        if turn:
            motion["turn_deg"] = float(rng.uniform(*ranges["turn_combined" if trans else "turn"]))
        return motion

    def _options(self, rng: np.random.Generator, truth: str) -> list[str]:
        if self.combined:
            trans = truth.split("+")[0]
            pool = [f"{t}+{r}" for t in (trans, OPPOSITE[trans]) for r in ("turn_left", "turn_right")]
        else:
            others = [m for m in MOTIONS if m != truth]
            pool = [truth, *(others[int(i)] for i in rng.choice(len(others), size=3, replace=False))]
        return [motion_text(pool[int(i)]) for i in rng.permutation(len(pool))]

    def make_params(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        path = item.path or ""
        if path.startswith("procedural:"):
            return self._procedural_params(rng, item, path)
        if item.pair is not None:
            return self._posed_params(rng, item)
        conv = item.info.get("depth_conversion") or {}
        partner = stereo_partner(item.file or path) if conv.get("from") == "disparity" else None
        if partner is None:
            return {"rejected": "camera_motion_no_second_view"}
        if self.combined:
            return {"rejected": "camera_motion_stereo_is_single"}
        if item.depth_kind != "metric" or item.intrinsics is None or not conv.get("baseline"):
            return {"rejected": "camera_motion_needs_metric_depth"}
        return self._stereo_params(rng, item, path, partner, conv)

    def _procedural_params(self, rng, item: Item, path: str) -> dict[str, Any]:
        try:
            seed = parse_procedural_path(path)[0]
        except ValueError:
            return {"rejected": "camera_motion_no_second_view"}
        motion = self._draw_motion(rng)
        first = Pose()
        d = np.zeros(3)
        if motion["translation"]:
            d = motion["distance_m"] * np.asarray(TRANSLATIONS[motion["translation"]], dtype=np.float64)
        turn = TURNS[motion["turn"]] * motion["turn_deg"] if motion["turn"] else 0.0
        second = first.moved(right=float(d[0]), down=float(d[1]), forward=float(d[2]), turn_deg=turn)
        key = motion_key(motion)
        return {
            "source": "procedural",
            "scene_seed": seed,
            "size": [item.width, item.height],
            "poses": [first.to_dict(), second.to_dict()],
            "motion": motion,
            "magnitude": self.magnitude,
            "options": self._options(rng, key),
        }

    def _stereo_params(self, rng, item: Item, path: str, partner: str, conv: dict) -> dict[str, Any]:
        baseline = float(conv["baseline"])
        flipped = bool(rng.integers(2))  # show the right view first: the camera moved left
        left, right = Pose(), Pose(x=baseline)
        motion = {"translation": "left" if flipped else "right", "distance_m": baseline, "turn": None,
                  "turn_deg": None}
        poses = [right, left] if flipped else [left, right]
        return {
            "source": "stereo",
            "size": [item.width, item.height],
            "right_view": os.path.basename(partner),  # beside the source; no absolute path in meta
            "order": "right-left" if flipped else "left-right",
            "baseline": baseline,
            "doffs": float(conv.get("doffs") or 0.0),
            "intrinsics": [float(v) for v in item.intrinsics],  # what re-reading the depth needs
            "poses": [p.to_dict() for p in poses],
            "motion": motion,
            "magnitude": "rig",
            "options": self._options(rng, motion_key(motion)),
        }

    def _posed_params(self, rng, item: Item) -> dict[str, Any]:
        from ..sources.base import SourceSkip

        if item.depth_kind != "metric" or item.intrinsics is None:
            return {"rejected": "camera_motion_needs_metric_depth"}
        try:
            second = item.pair.view()
        except SourceSkip as skip:
            return {"rejected": f"camera_motion_{skip.reason}"}
        # the order is drawn when both views have metric depth (the first shown is measured)
        both = second.depth is not None and second.depth_kind == "metric"
        order = POSED_ORDERS[int(rng.integers(2))] if both else POSED_ORDERS[0]
        views = posed_views(item, order)
        pos, rot = relative_pose(views[0][3], views[1][3])
        motion, why = classify_relative(pos, rot)
        if why:
            return {"rejected": why}
        combined = bool(motion["translation"] and motion["turn"])
        if combined != self.combined:
            return {"rejected": f"camera_motion_pair_is_{'combined' if combined else 'single'}"}
        magnitude = motion_magnitude(motion)
        if magnitude != self.magnitude:
            return {"rejected": f"camera_motion_pair_is_{magnitude}"}
        yaw, pitch, roll = rotation_angles(rot)
        return {
            "source": "posed",
            "size": [item.width, item.height],
            "order": order,
            **posed_files(item, order),
            "poses": [v[3].tolist() for v in views],  # camera-to-world 4x4, in the order shown
            "intrinsics": [float(v) for v in item.intrinsics],  # the source's, for re-reading it
            "view_intrinsics": [[float(t) for t in v[2]] for v in views],
            "relative": {"position": [float(t) for t in pos], "yaw_deg": yaw, "pitch_deg": pitch,
                         "roll_deg": roll},
            "motion": motion,
            "magnitude": magnitude,
            "options": self._options(rng, motion_key(motion)),
        }

    # -- checking ---------------------------------------------------------------------
    def _evidence(self, item: Item, params: dict[str, Any]) -> dict[str, Any]:
        key = json.dumps(params, sort_keys=True)
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        if params["source"] != "posed":
            first, second = (Pose.from_dict(p) for p in params["poses"])
        options = [_key_of_text(t) for t in params["options"]]
        truth = motion_key(params["motion"])
        if params["source"] == "posed":
            (_, depth_a, intr_a, pose_a), (_, depth_b, intr_b, pose_b) = posed_views(item, params["order"])
            pos, rot = relative_pose(pose_a, pose_b)
            ev = measure_motion_rt(depth_a, intr_a, intr_b, pos, rot, depth_b, options, truth, fit=True)
        elif params["source"] == "procedural":
            size = tuple(params["size"])
            depth1 = item.depth if first.is_default else render_view(params["scene_seed"], size, first).depth
            view2 = render_view(params["scene_seed"], size, second)
            ev = measure_motion(depth1, item.intrinsics, view2.intrinsics, first, second, view2.depth,
                                options, truth)
        else:
            # measured from the left view, whose depth is known; the rig's right camera has
            # its principal point doffs further right (Middlebury's calibration)
            fx, fy, cx, cy = item.intrinsics
            left, right = Pose(), Pose(x=params["baseline"])
            ev = measure_motion(item.depth, item.intrinsics, (fx, fy, cx + params["doffs"], cy), left, right,
                                None, [_mirror(k) for k in options] if params["order"] == "right-left" else options,
                                "right")
            ev["measured_from"] = "left view"
        self._memo = (key, ev)
        return ev

    def check(self, item: Item, params: dict[str, Any]) -> str | None:
        if params.get("rejected"):
            return params["rejected"]
        if params["source"] in ("procedural", "posed") and list(params["size"]) != [item.width, item.height]:
            return "camera_motion_size_mismatch"
        if params["source"] == "procedural":
            for pose in params["poses"]:
                problem = pose_problem(params["scene_seed"], Pose.from_dict(pose))
                if problem:
                    return f"camera_motion_pose_{problem}"
        ev = self._evidence(item, params)
        if ev["overlap"] < self.thresholds.camera_min_overlap:
            return "camera_motion_small_overlap"
        if ev["median_flow"] < self.thresholds.camera_min_flow:
            return "camera_motion_too_small"
        if ev["confusion"] is not None and ev["confusion"] < self.thresholds.camera_confusion:
            return "camera_motion_confusable"
        if "fit" in ev and ev["confusion"] is not None and ev["fit"] > POSED_FIT_SHARE * ev["confusion"]:
            return "camera_motion_pair_misfit"
        return None

    # -- drawing the sample -------------------------------------------------------------
    def views(self, item: Item, params: dict[str, Any]) -> list[np.ndarray]:
        """The two images, in the order shown."""
        if params["source"] == "posed":
            return [v[0] for v in posed_views(item, params["order"])]
        if params["source"] == "procedural":
            first, second = (Pose.from_dict(p) for p in params["poses"])
            size = tuple(params["size"])
            out = []
            for pose in (first, second):
                out.append(item.rgb if pose.is_default else render_view(params["scene_seed"], size, pose).rgb)
            return out
        partner = stereo_partner(item.file or item.path)
        if partner is None or os.path.basename(partner) != params["right_view"]:
            raise ValueError(f"the right view {params['right_view']!r} of {item.path} cannot be found")
        right = read_partner(partner, (item.width, item.height))
        return [right, item.rgb] if params["order"] == "right-left" else [item.rgb, right]

    def render(self, item: Item, params: dict[str, Any]) -> Rendered:
        images = self.views(item, params)
        problem = get_prompt_set(self.prompt_set).camera_motion(params["options"])
        ev = self._evidence(item, params)
        extra = {
            "output_size": [item.width, item.height],
            "depth_source": item.depth_path,
            "overlap": round(ev["overlap"], 4),
            "median_flow": round(ev["median_flow"], 4),
            "confusion": None if ev["confusion"] is None else round(ev["confusion"], 4),
        }
        if "fit" in ev:
            extra["fit"] = round(ev["fit"], 4)
        return Rendered(images=images, problem=problem, options=list(params["options"]), extra_meta=extra)

    def answer(self, params: dict[str, Any]) -> str:
        return LETTERS[params["options"].index(motion_text(motion_key(params["motion"])))]


def _key_of_text(text: str) -> str:
    parts = []
    for piece in text.lower().split(" and "):
        verb, direction = piece.split(" ", 1)
        parts.append(f"turn_{direction}" if verb == "turned" else direction)
    return "+".join(parts)


def _mirror(key: str) -> str:
    """The motion that undoes a single motion: a stereo pair shown right view first is
    measured from the left view, so its options are compared as their inverses."""
    if key.startswith("turn_"):
        return "turn_left" if key == "turn_right" else "turn_right"
    return OPPOSITE[key]
