"""Camera motion: re-derive the motion from the two stored poses with hand-written
geometry (the first camera's axes from its yaw and pitch, the step projected on them, the
yaw difference; for a posed pair, the two camera-to-world matrices, the rule of
:func:`derive_posed_motion`), turn it into the option text, and check the pictures: the
first image is the re-read source, the second the scene re-rendered from the stored pose
(procedural), the other view of the stereo pair, or the posed pair's files read again in the
order shown; for procedural scenes and posed pairs the share of the first view that the
second sees is measured again from the depth maps."""

from __future__ import annotations

import io
import math
import os
import re

import numpy as np
from PIL import Image

from .common import Context, Fail, NotCheckable, mad
from .posed import matrix, read_views, to_camera, to_world

LETTERS = "ABCD"
MIN_STEP = 0.1
"""Metres along a camera axis that count as a step (the task draws 0.25 m or more)."""
MIN_TURN = 2.0
"""Degrees of yaw that count as a turn (the task draws 3 or more)."""
ZERO_STEP, ZERO_TURN = 1e-3, 1e-3
"""At most this much along an axis (m) / of yaw (deg) counts as no motion; between the two
limits the motion is ambiguous."""
STEP_WORDS = {(0, 1): "right", (0, -1): "left", (1, 1): "down", (1, -1): "up", (2, 1): "forward", (2, -1): "backward"}
_VARIANT = re.compile(r"^(single|combined)-(large|small)$")


def _pose(data) -> tuple[np.ndarray, float, float]:
    if not isinstance(data, dict):
        raise Fail("a stored pose is not a dict")
    try:
        pos = np.array([float(v) for v in data["position"]], dtype=np.float64)
        yaw, pitch = float(data["yaw_deg"]), float(data.get("pitch_deg", 0.0))
    except (KeyError, TypeError, ValueError):
        raise Fail("a stored pose lacks position / yaw_deg") from None
    if pos.shape != (3,) or not (np.isfinite(pos).all() and math.isfinite(yaw) and math.isfinite(pitch)):
        raise Fail("a stored pose is not three finite coordinates and finite angles")
    return pos, yaw, pitch


def camera_axes(yaw_deg: float, pitch_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The camera's right, down and forward unit vectors in the scene frame (Y down, yaw
    positive toward +X, pitch positive up, no roll)."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    right = np.array([math.cos(a), 0.0, -math.sin(a)])
    forward = np.array([math.sin(a) * math.cos(b), -math.sin(b), math.cos(a) * math.cos(b)])
    down = np.cross(forward, right)
    return right, down, forward


def derive_motion(first, second) -> tuple[list[str], dict]:
    """The parts of the motion from pose ``first`` to ``second`` (stored dicts): step words
    (``forward``...) and ``turn_left`` / ``turn_right``; Fail on an ambiguous size or a
    change of pitch."""
    p1, yaw1, pitch1 = _pose(first)
    p2, yaw2, pitch2 = _pose(second)
    if abs(pitch2 - pitch1) > ZERO_TURN:
        raise Fail("the pitch changed between the views: not one of the eight motions")
    axes = camera_axes(yaw1, pitch1)
    step = [float(np.dot(p2 - p1, ax)) for ax in axes]
    turn = (yaw2 - yaw1 + 180.0) % 360.0 - 180.0
    parts = []
    for k, v in enumerate(step):
        if abs(v) >= MIN_STEP:
            parts.append(STEP_WORDS[(k, 1 if v > 0 else -1)])
        elif abs(v) > ZERO_STEP:
            raise Fail(f"ambiguity rule: a step of {v:.3f} m along axis {k} is neither a move nor none")
    if abs(turn) >= MIN_TURN:
        parts.append("turn_right" if turn > 0 else "turn_left")
    elif abs(turn) > ZERO_TURN:
        raise Fail(f"ambiguity rule: a turn of {turn:.3f} degrees is neither a turn nor none")
    return parts, {"step": step, "turn": turn}


def motion_words(parts: list[str]) -> str:
    words = [f"turned {p[5:]}" if p.startswith("turn_") else f"moved {p}" for p in parts]
    text = " and ".join(words)
    return text[:1].upper() + text[1:]


def _same_pixels(ctx: Context, i: int, expected: np.ndarray, what: str) -> None:
    shown = ctx.image(i)
    if shown.shape != expected.shape:
        raise Fail(f"image {i + 1} is {shown.shape[1]}x{shown.shape[0]}, {what} {expected.shape[1]}x{expected.shape[0]}")
    if ctx.lossless(i):
        if not np.array_equal(shown, expected):
            raise Fail(f"image {i + 1} differs from {what}")
        return
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(expected)).save(buf, format="JPEG", quality=int(ctx.jpeg_quality))
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        again = np.asarray(im.convert("RGB"))
    if mad(shown, again) > 1.0 or mad(shown, expected) > ctx.tol(i):
        raise Fail(f"image {i + 1} differs from {what}")


def _overlap(depth1, intr, p1, yaw1, pitch1, p2, yaw2, pitch2, depth2, stride: int = 4) -> float:
    """Share of the first view's pixels (every ``stride``-th) that the second camera sees
    in frame and unhidden (its own depth map no nearer than the point, with a margin)."""
    h, w = depth1.shape
    fx, fy, cx, cy = intr
    v, u = np.mgrid[0:h:stride, 0:w:stride]
    z = depth1[v, u].astype(np.float64)
    ok = np.isfinite(z) & (z > 0)
    u, v, z = u[ok], v[ok], z[ok]
    cam = np.stack([(u - cx) / fx * z, (v - cy) / fy * z, z], axis=1)
    a1 = np.stack(camera_axes(yaw1, pitch1), axis=1)  # columns: camera axes in the scene
    a2 = np.stack(camera_axes(yaw2, pitch2), axis=1)
    scene = cam @ a1.T + p1
    c2 = (scene - p2) @ a2
    with np.errstate(divide="ignore", invalid="ignore"):
        u2 = fx * c2[:, 0] / c2[:, 2] + cx
        v2 = fy * c2[:, 1] / c2[:, 2] + cy
    inside = (c2[:, 2] > 1e-3) & (u2 > -0.5) & (u2 < w - 0.5) & (v2 > -0.5) & (v2 < h - 0.5)
    iu = np.clip(np.rint(np.where(inside, u2, 0)).astype(int), 0, w - 1)
    iv = np.clip(np.rint(np.where(inside, v2, 0)).astype(int), 0, h - 1)
    seen = inside & ~(depth2[iv, iu] < c2[:, 2] * 0.97 - 0.02)
    return float(seen.sum()) / max(1, len(z))


# Posed pairs (a manifest's two views with camera-to-world poses). The rule, as documented:
# a step when the second camera's position in the first camera's frame has a largest
# component of POSED_STEP or more and its other two within POSED_OFF_AXIS of it; a turn
# when the yaw reaches POSED_TURN degrees; pitch and roll within POSED_TILT degrees.
POSED_STEP, POSED_OFF_AXIS, POSED_TURN, POSED_TILT = 0.1, 0.35, 3.0, 5.0
LARGE = {"horizontal": 0.7, "vertical": 0.4, "turn": 15.0, "turn_combined": 6.0}
"""Lower ends of the ``large`` ranges: a posed motion is large when each part reaches its own."""


def derive_posed_motion(first: np.ndarray, second: np.ndarray) -> tuple[list[str], dict]:
    """The parts of the motion between two camera-to-world matrices (the first camera's
    view of the second) and their sizes; Fail when the rule gives no single label."""
    step = first[:3, :3].T @ (second[:3, 3] - first[:3, 3])  # the first camera's x, y, z
    axes = first[:3, :3].T @ second[:3, :3]  # the second camera's axes, in the first's frame
    fwd, right2 = axes[:, 2], axes[:, 0]
    yaw = math.degrees(math.atan2(fwd[0], fwd[2]))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, -fwd[1]))))
    level_right = np.array([fwd[2], 0.0, -fwd[0]]) / math.hypot(fwd[0], fwd[2])
    level_down = np.cross(fwd, level_right)
    roll = math.degrees(math.atan2(float(right2 @ level_down), float(right2 @ level_right)))
    if max(abs(pitch), abs(roll)) > POSED_TILT:
        raise Fail(f"the poses tilt the camera (pitch {pitch:.1f}, roll {roll:.1f} degrees): no option names that")
    parts = []
    k = int(np.argmax(np.abs(step)))
    if abs(step[k]) >= POSED_STEP:
        if max(abs(step[j]) for j in range(3) if j != k) > POSED_OFF_AXIS * abs(step[k]):
            raise Fail(f"the step {np.round(step, 3).tolist()} is not along one axis of the first camera")
        parts.append(STEP_WORDS[(k, 1 if step[k] > 0 else -1)])
    if abs(yaw) >= POSED_TURN:
        parts.append("turn_right" if yaw > 0 else "turn_left")
    return parts, {"step": float(abs(step[k])), "axis": k, "turn": abs(yaw)}


def posed_magnitude(parts: list[str], sizes: dict) -> str:
    steps = [p for p in parts if not p.startswith("turn_")]
    large = True
    if steps:
        large &= sizes["step"] >= LARGE["vertical" if sizes["axis"] == 1 else "horizontal"]
    if len(steps) < len(parts):
        large &= sizes["turn"] >= LARGE["turn_combined" if steps else "turn"]
    return "large" if large else "small"


def _overlap_posed(views, stride: int = 4) -> float:
    """Share of the first shown view's pixels with depth that the second camera sees in
    frame (and, when the second view has depth, not hidden behind a nearer surface)."""
    a, b = views
    h, w = a.depth.shape
    v, u = np.mgrid[0:h:stride, 0:w:stride]
    z = a.depth[v, u].astype(np.float64)
    ok = np.isfinite(z) & (z > 0)
    u, v, z = u[ok], v[ok], z[ok]
    fx, fy, cx, cy = a.intrinsics
    cam = to_camera(b.pose, to_world(a.pose, np.stack([(u - cx) / fx * z, (v - cy) / fy * z, z], axis=1)))
    gx, gy, gcx, gcy = b.intrinsics
    with np.errstate(divide="ignore", invalid="ignore"):
        u2 = gx * cam[:, 0] / cam[:, 2] + gcx
        v2 = gy * cam[:, 1] / cam[:, 2] + gcy
    seen = (cam[:, 2] > 1e-3) & (u2 > -0.5) & (u2 < w - 0.5) & (v2 > -0.5) & (v2 < h - 0.5)
    if b.depth is not None:
        iu = np.clip(np.rint(np.where(seen, u2, 0)).astype(int), 0, w - 1)
        iv = np.clip(np.rint(np.where(seen, v2, 0)).astype(int), 0, h - 1)
        with np.errstate(invalid="ignore"):
            seen &= ~(b.depth[iv, iu] < cam[:, 2] * 0.97 - 0.02)
    return float(seen.sum()) / max(1, len(z))


def _check_posed(ctx: Context, params: dict) -> None:
    views = read_views(ctx, params, need_depth=False)
    if views[0].depth is None:
        raise Fail("the view shown first has no depth: its overlap with the second cannot be measured")
    for i, view in enumerate(views):
        _same_pixels(ctx, i, view.rgb, f"view {i + 1} of the posed pair")
    share = _overlap_posed(views)
    if share < ctx.thresholds.camera_min_overlap - 0.03:
        raise Fail(f"ambiguity rule: the second view sees {share:.2f} of the first, below "
                   f"{ctx.thresholds.camera_min_overlap}")


def _partner_name(path: str) -> str | None:
    folder, name = os.path.split(path)
    m = re.match(r"^(.*)_left(\.[A-Za-z0-9]+)$", name)
    if m:
        return os.path.join(folder, f"{m.group(1)}_right{m.group(2)}")
    m = re.match(r"^im0(\.[A-Za-z0-9]+)$", name)
    if m:
        return os.path.join(folder, f"im1{m.group(1)}")
    return None


def validate(ctx: Context) -> str:
    params = ctx.params
    if params is None:
        raise NotCheckable(f"no meta/params in the {ctx.format} format: the camera poses are unknown")
    m = _VARIANT.match(ctx.record.variant or "")
    if not m:
        raise NotCheckable(f"unknown camera_motion variant {ctx.record.variant!r}")
    combined = m.group(1) == "combined"
    poses = params.get("poses")
    if not isinstance(poses, list) or len(poses) != 2:
        raise Fail("meta does not hold two camera poses")
    posed = params.get("source") == "posed"
    if posed:
        parts, sizes = derive_posed_motion(matrix(poses[0]), matrix(poses[1]))
        level = posed_magnitude(parts, sizes)
        if level != m.group(2):
            raise Fail(f"the poses give a {level} motion, the variant is {ctx.record.variant!r}")
    else:
        parts, _ = derive_motion(poses[0], poses[1])
    steps = [p for p in parts if not p.startswith("turn_")]
    turns = [p for p in parts if p.startswith("turn_")]
    if combined and not (len(steps) == 1 and len(turns) == 1):
        raise Fail(f"a combined motion must be one step and one turn, the poses give {parts or 'none'}")
    if not combined and len(parts) != 1:
        raise Fail(f"a single motion must be one step or one turn, the poses give {parts or 'none'}")
    label = motion_words(parts)
    options = params.get("options")
    if not isinstance(options, list) or len(options) != 4 or len(set(options)) != 4:
        raise Fail("meta does not hold four distinct options")
    if label not in options:
        raise Fail(f"the motion the poses give ({label!r}) is not among the options")
    if combined:
        other = {"left": "right", "right": "left", "up": "down", "down": "up", "forward": "backward",
                 "backward": "forward"}[steps[0]]
        expect = {motion_words([s, t]) for s in (steps[0], other) for t in ("turn_left", "turn_right")}
        if set(options) != expect:
            raise Fail("the options of a combined motion are not the four combinations of its axis and turn")
    n = len(ctx.record.images)
    if n != 2:
        raise Fail(f"{n} images, expected 2")

    source = ctx.record.source or ""
    if posed:
        _check_posed(ctx, params)
    elif source.startswith("procedural:"):
        _check_procedural(ctx, params, poses)
    else:
        _check_stereo(ctx, params, poses, parts)
    return LETTERS[options.index(label)]


def _check_procedural(ctx: Context, params: dict, poses: list) -> None:
    from ..sources.procedural import parse_procedural_path, render_view

    item = ctx.item(need_depth=True)
    seed = parse_procedural_path(ctx.record.source)[0]
    size = (item.width, item.height)
    if list(params.get("size") or []) != list(size):
        raise Fail(f"meta size {params.get('size')} differs from the re-read scene's {list(size)}")
    views = [render_view(seed, size, pose) for pose in poses]
    for i, view in enumerate(views):
        _same_pixels(ctx, i, view.rgb, f"scene {seed} rendered from pose {i + 1}")
    (p1, y1, t1), (p2, y2, t2) = _pose(poses[0]), _pose(poses[1])
    share = _overlap(views[0].depth, views[0].intrinsics, p1, y1, t1, p2, y2, t2, views[1].depth)
    if share < ctx.thresholds.camera_min_overlap - 0.03:
        raise Fail(f"ambiguity rule: the second view sees {share:.2f} of the first, below "
                   f"{ctx.thresholds.camera_min_overlap}")


def _check_stereo(ctx: Context, params: dict, poses: list, parts: list[str]) -> None:
    item = ctx.item(need_depth=True)
    conv = item.info.get("depth_conversion") or {}
    if conv.get("from") != "disparity" or not conv.get("baseline"):
        raise Fail("the source is neither a procedural scene nor a calibrated stereo pair")
    baseline = float(conv["baseline"])
    (p1, _, _), (p2, _, _) = _pose(poses[0]), _pose(poses[1])
    if abs(abs(float(p2[0] - p1[0])) - baseline) > 1e-6 or abs(p2[1] - p1[1]) > 1e-9 or abs(p2[2] - p1[2]) > 1e-9:
        raise Fail(f"the stored poses are not the rig's {baseline} m sideways baseline")
    left_path = item.file or item.path or ""
    right_path = _partner_name(left_path)
    if right_path is None or not os.path.isfile(right_path):
        raise NotCheckable("the other view of the stereo pair cannot be found beside the source")
    with Image.open(right_path) as im:
        im = im.convert("RGB")
        if im.size != (item.width, item.height):
            im = im.resize((item.width, item.height), Image.Resampling.BOX)
        right = np.asarray(im)
    # the left camera's pose is the rig's origin: shown first, the camera then moved right
    first_is_left = parts == ["right"]
    shown = [item.rgb, right] if first_is_left else [right, item.rgb]
    names = ["the left view", "the right view"] if first_is_left else ["the right view", "the left view"]
    for i in range(2):
        _same_pixels(ctx, i, shown[i], names[i])
