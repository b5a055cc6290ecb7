"""Correspondence: find the match of the marked point again from the source geometry, in
code of its own, and name the candidate on it.

From the sample it takes only the marked pixel, the candidates' ring centres, the crop
offsets, the camera poses (procedural) or the stereo order, and the level's rules. The rest
comes from the sources:

- procedural: the scene re-rendered from the default camera (the first view) and from the
  stored pose (the second); the marked pixel is back-projected with the first view's depth
  and intrinsics, moved into the second camera with rotation matrices built here from the
  stored yaw and pitch, projected, and must be seen there (the second view's depth agrees);
- stereo: the ground-truth disparity file read again; the match of left pixel (u, v) is
  (u - d, v) in the right view (right view first: the left pixel landing on the marked
  one is searched along the row), and the left pixel must not be hidden in the right view
  (no nearer pixel further right on its row lands on or just beside it);
- posed pairs: both views and their depth files read again by the names the sample stores,
  in the order shown; the marked pixel is back-projected with the first view's depth and
  carried by the stored camera-to-world matrices into the second camera, whose depth must
  agree there.

Both images must be the crops of the two views with rings at the stored places. Exactly one
ring must sit on the match (within ``MATCH_TOL`` pixels) and the others far from it; each
distractor's 3D point, read from the second view, must lie at least the level's separation
from the true one.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
from PIL import Image

from ..sources.depth_formats import read_disparity
from ..sources.naming import resolve
from ..sources.procedural import render_view
from .common import Context, Fail, NotCheckable, check_marked_image
from .depth import depth_item, need_params
from .posed import read_views, to_camera, to_world

LETTERS = "ABCDEF"
_VARIANT = re.compile(r"^([3-6])-candidates-(far|near)$")
MATCH_TOL = 1.5
"""Pixels between the true ring's centre and the exact match (rounding leaves at most 0.71)."""
SEEN_TOL = (0.03, 0.02)
"""Procedural: the second view's depth at the match agrees with the point's within rel * z + abs."""
HIDE_JUMP, HIDE_MARGIN = 0.5, 1.0
"""Stereo: a pixel further right that is nearer by at least HIDE_JUMP disparity pixels and
lands at most HIDE_MARGIN pixels right of the point's landing place hides it."""
POSED_SEEN_TOL = (0.05, 0.03)
"""Posed pairs (sensor depth and poses): the second view's depth at the match agrees within rel * z + abs."""
SEPARATION_SLACK = 0.9
"""Share of the level's 3D separation a distractor must keep when read from the second view
(its ring centre is rounded to a pixel, so its point moves a little)."""


def _rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Camera-to-scene rotation of a camera turned by ``yaw_deg`` (forward toward +X) and
    tilted up by ``pitch_deg`` (forward toward -Y); columns: right, down, forward."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.sin(a) * math.cos(b), -math.sin(b), math.cos(a) * math.cos(b)])
    right = np.array([math.cos(a), 0.0, -math.sin(a)])
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


def _pose(data) -> tuple[np.ndarray, np.ndarray]:
    try:
        pos = np.array([float(v) for v in data["position"]])
        rot = _rotation(float(data["yaw_deg"]), float(data.get("pitch_deg", 0.0)))
    except (KeyError, TypeError, ValueError):
        raise Fail("a stored camera pose is unreadable") from None
    if pos.shape != (3,) or not np.isfinite(pos).all():
        raise Fail("a stored camera position is not three finite numbers")
    return pos, rot


def _crop(img: np.ndarray, offset, size) -> np.ndarray:
    x, y = (int(v) for v in offset)
    w, h = (int(v) for v in size)
    if x < 0 or y < 0 or x + w > img.shape[1] or y + h > img.shape[0]:
        raise Fail(f"crop at ({x}, {y}) of size {w}x{h} leaves the {img.shape[1]}x{img.shape[0]} view")
    return np.ascontiguousarray(img[y:y + h, x:x + w])


def _images(ctx: Context, params, views, markers1, cands) -> None:
    frames, size = params["frames"], params["frame_size"]
    radius, inner = int(params["marker"]["radius"]), int(params["marker"]["inner_radius"])
    for i, (view, marks) in enumerate(zip(views, (markers1, cands))):
        check_marked_image(ctx.image(i), _crop(view, frames[i], size), marks, radius, inner,
                           None if ctx.lossless(i) else ctx.jpeg_quality)


def _letter(match_shown: np.ndarray, cands: dict[int, tuple[int, int]], spacing: float) -> int:
    pts = np.array([cands[k] for k in sorted(cands)], dtype=np.float64)
    dist = np.linalg.norm(pts - match_shown, axis=1)
    k = int(np.argmin(dist))
    if dist[k] > MATCH_TOL:
        raise Fail(f"no ring on the match: the nearest is {dist[k]:.2f} px from it")
    if np.sort(dist)[1] <= spacing:
        raise Fail("ambiguity rule: a second ring sits close to the match")
    return k


def validate(ctx: Context) -> str:
    params = need_params(ctx)
    m = _VARIANT.match(ctx.record.variant or "")
    if not m:
        raise NotCheckable(f"unknown correspondence variant {ctx.record.variant!r}")
    n = int(m.group(1))
    try:
        cands = {k: (int(c[0]), int(c[1])) for k, c in enumerate(params["candidates"])}
        mark = tuple(int(v) for v in params["markers"]["1"])
        o1, o2 = (np.array([int(v) for v in o]) for o in params["frames"])
        rules = params["rules"]
        spacing = float(rules["min_spacing_px"])
    except (KeyError, TypeError, ValueError, IndexError):
        raise Fail("meta lacks the candidates, marker, frames or rules") from None
    if len(cands) != n:
        raise Fail(f"{len(cands)} candidates for variant {ctx.record.variant!r}")
    if list(ctx.record.options or []) != list(LETTERS[:n]):
        raise Fail(f"options {ctx.record.options!r}, expected the letters {', '.join(LETTERS[:n])}")
    if len(ctx.record.images) != 2:
        raise Fail(f"{len(ctx.record.images)} images, expected 2")
    item = depth_item(ctx)
    if list(params.get("size") or []) != [item.width, item.height]:
        raise Fail(f"meta size {params.get('size')} differs from the source's {[item.width, item.height]}")
    u1, v1 = mark[0] + int(o1[0]), mark[1] + int(o1[1])  # the marked pixel in the full first view
    if params.get("source") == "procedural":
        match, views, xyz_true, cand_xyz = _procedural(ctx, params, item, u1, v1, cands, o2)
    elif params.get("source") == "stereo":
        match, views, xyz_true, cand_xyz = _stereo(ctx, params, item, u1, v1, cands, o2)
    elif params.get("source") == "posed":
        match, views, xyz_true, cand_xyz = _posed(ctx, params, item, u1, v1, cands, o2)
    else:
        raise Fail(f"unknown correspondence source {params.get('source')!r}")
    _images(ctx, params, views, {1: mark}, {k + 1: c for k, c in cands.items()})
    k = _letter(match - o2, cands, spacing)
    need = float(rules["min_separation_m"]) * SEPARATION_SLACK
    for i, p in cand_xyz.items():
        if i != k and np.linalg.norm(p - xyz_true) < need:
            raise Fail(f"ambiguity rule: candidate {LETTERS[i]} is {np.linalg.norm(p - xyz_true):.3f} m from "
                       "the true point in 3D")
    return LETTERS[k]


def _procedural(ctx, params, item, u1, v1, cands, o2):
    poses = params.get("poses")
    if not isinstance(poses, list) or len(poses) != 2:
        raise Fail("meta does not hold two camera poses")
    t1, r1 = _pose(poses[0])
    t2, r2 = _pose(poses[1])
    if not (0 <= u1 < item.width and 0 <= v1 < item.height):
        raise Fail("the marked pixel leaves the first view")
    fx, fy, cx, cy = (float(t) for t in item.intrinsics)
    z1 = float(item.depth[v1, u1])
    if not (math.isfinite(z1) and z1 > 0):
        raise Fail("no depth at the marked pixel")
    cam1 = np.array([(u1 - cx) * z1 / fx, (v1 - cy) * z1 / fy, z1])
    scene = r1 @ cam1 + t1
    cam2 = r2.T @ (scene - t2)
    if cam2[2] <= 1e-3:
        raise Fail("the marked point is behind the second camera")
    try:
        view2 = render_view(int(params["scene_seed"]), (item.width, item.height), dict(poses[1]))
    except ValueError as exc:
        raise Fail(f"the second view cannot be rendered: {exc}") from None
    gx, gy, gcx, gcy = (float(t) for t in view2.intrinsics)
    match = np.array([gx * cam2[0] / cam2[2] + gcx, gy * cam2[1] / cam2[2] + gcy])
    iu, iv = (round(float(t)) for t in match)
    if not (0 <= iu < item.width and 0 <= iv < item.height):
        raise Fail("the marked point leaves the second view")
    seen = float(view2.depth[iv, iu])
    if not abs(seen - cam2[2]) <= SEEN_TOL[0] * cam2[2] + SEEN_TOL[1]:
        raise Fail(f"the marked point is hidden in the second view (depth there {seen:.3f} m, the point "
                   f"{cam2[2]:.3f} m)")
    cand_xyz = {}
    for k, (x, y) in cands.items():  # each candidate's 3D point, read from the second view
        u, v = x + int(o2[0]), y + int(o2[1])
        z = float(view2.depth[v, u])
        c2 = np.array([(u - gcx) * z / gx, (v - gcy) * z / gy, z])
        cand_xyz[k] = r2 @ c2 + t2
    return match, [item.rgb, view2.rgb], scene, cand_xyz


def _posed(ctx, params, item, u1, v1, cands, o2):
    """A posed pair: the marked pixel of the view shown first, back-projected with its depth,
    carried to the world and into the second camera by the stored camera-to-world matrices,
    projected; the second view's depth there must agree (it sees the point)."""
    a, b = read_views(ctx, params, need_depth=True)
    h, w = a.depth.shape
    if not (0 <= u1 < w and 0 <= v1 < h):
        raise Fail("the marked pixel leaves the first view")
    z1 = float(a.depth[v1, u1])
    if not (math.isfinite(z1) and z1 > 0):
        raise Fail("no depth at the marked pixel")
    fx, fy, cx, cy = a.intrinsics
    world = to_world(a.pose, np.array([(u1 - cx) * z1 / fx, (v1 - cy) * z1 / fy, z1]))
    cam2 = to_camera(b.pose, world)
    if cam2[2] <= 1e-3:
        raise Fail("the marked point is behind the second camera")
    gx, gy, gcx, gcy = b.intrinsics
    match = np.array([gx * cam2[0] / cam2[2] + gcx, gy * cam2[1] / cam2[2] + gcy])
    iu, iv = (round(float(t)) for t in match)
    if not (0 <= iu < w and 0 <= iv < h):
        raise Fail("the marked point leaves the second view")
    seen = float(b.depth[iv, iu])
    if not abs(seen - cam2[2]) <= POSED_SEEN_TOL[0] * cam2[2] + POSED_SEEN_TOL[1]:
        raise Fail(f"the marked point is hidden in the second view (depth there {seen:.3f} m, the point "
                   f"{cam2[2]:.3f} m)")
    cand_xyz = {}
    for k, (x, y) in cands.items():  # each candidate's point in the world, read from the second view
        u, v = x + int(o2[0]), y + int(o2[1])
        if not (0 <= u < w and 0 <= v < h):
            raise Fail(f"candidate {LETTERS[k]} leaves the second view")
        z = float(b.depth[v, u])
        if not (math.isfinite(z) and z > 0):
            raise Fail(f"no depth under candidate {LETTERS[k]}")
        cand_xyz[k] = to_world(b.pose, np.array([(u - gcx) * z / gx, (v - gcy) * z / gy, z]))
    return match, [a.rgb, b.rgb], world, cand_xyz


def _right_path(left: str) -> str:
    folder, name = os.path.split(left)
    for pattern, repl in ((r"^(.*)_left(\.\w+)$", r"\1_right\2"), (r"^im0(\.\w+)$", r"im1\1")):
        if re.match(pattern, name):
            return os.path.join(folder, re.sub(pattern, repl, name))
    raise Fail(f"{name} is not the left view of a stereo pair (*_left.* or im0.*)")


def _disparity(ctx, item) -> np.ndarray:
    """The left view's disparity on the item's grid, read again from the file (NaN: none)."""
    path = ctx.record.depth_source or (ctx.meta or {}).get("depth_source")
    if not path:
        raise NotCheckable("no disparity file recorded")
    path = resolve(path, ctx.sources.roots, ctx.sources.dataset_dir)
    raw = read_disparity(path, ctx.sources.load.max_pixels, (ctx.meta or {}).get("disparity_scale"))
    d = np.where(raw.valid, raw.values, np.nan).astype(np.float64)
    if d.shape != (item.height, item.width):  # the item was resized: nearest disparity pixel, rescaled
        sy, sx = d.shape[0] / item.height, d.shape[1] / item.width
        rows = np.clip(np.floor((np.arange(item.height) + 0.5) * sy).astype(int), 0, d.shape[0] - 1)
        cols = np.clip(np.floor((np.arange(item.width) + 0.5) * sx).astype(int), 0, d.shape[1] - 1)
        d = d[rows][:, cols] / sx
    return d


def _hidden(row: np.ndarray, u: int) -> bool:
    """Is left pixel ``u`` of a disparity row hidden in the right view?"""
    land = u - row[u]
    for k in range(u + 1, len(row)):
        d = row[k]
        if math.isfinite(d) and d >= row[u] + HIDE_JUMP and k - d <= land + HIDE_MARGIN:
            return True
    return False


def _left_of(row: np.ndarray, x: float) -> int:
    """The left pixel of a disparity row that lands nearest ``x`` in the right view, among
    those the right view sees."""
    cols = np.arange(len(row))
    with np.errstate(invalid="ignore"):
        gap = np.abs(cols - row - x)
    for u in np.argsort(np.where(np.isfinite(gap), gap, np.inf), kind="stable")[:8]:
        if not math.isfinite(gap[u]) or gap[u] > 1.0:
            break
        if not _hidden(row, int(u)):
            return int(u)
    raise Fail(f"no left pixel of row lands on x = {x:.1f} in the right view unhidden")


def _stereo(ctx, params, item, u1, v1, cands, o2):
    order = params.get("order")
    if order not in ("left-right", "right-left"):
        raise Fail(f"unknown stereo order {order!r}")
    left_path = resolve(ctx.record.source, ctx.sources.roots, ctx.sources.dataset_dir)
    right_path = _right_path(left_path)
    if not os.path.isfile(right_path):
        raise NotCheckable(f"the right view {right_path} is missing")
    with Image.open(right_path) as im:
        right = im.convert("RGB")
        if right.size != (item.width, item.height):
            right = right.resize((item.width, item.height), Image.Resampling.BOX)
        right = np.asarray(right)
    disp = _disparity(ctx, item)
    if not (0 <= v1 < item.height and 0 <= u1 < item.width):
        raise Fail("the marked pixel leaves the first view")
    row = disp[v1]
    if order == "left-right":
        ul = u1
        if not math.isfinite(row[ul]):
            raise Fail("no disparity at the marked pixel")
        if _hidden(row, ul):
            raise Fail("the marked point is hidden in the right view")
        match = np.array([ul - row[ul], float(v1)])
        views = [item.rgb, right]
    else:
        ul = _left_of(row, float(u1))
        match = np.array([float(ul), float(v1)])
        views = [right, item.rgb]
    fx, fy, cx, cy = (float(t) for t in item.intrinsics)

    def point(u: int, v: int) -> np.ndarray:
        z = float(item.depth[v, u])
        if not (math.isfinite(z) and z > 0):
            raise Fail(f"no depth at left pixel ({u}, {v})")
        return np.array([(u - cx) * z / fx, (v - cy) * z / fy, z])

    cand_xyz = {}
    for k, (x, y) in cands.items():
        u, v = x + int(o2[0]), y + int(o2[1])
        if not (0 <= v < item.height and 0 <= u < item.width):
            raise Fail(f"candidate {LETTERS[k]} leaves the second view")
        cand_xyz[k] = point(u if order == "right-left" else _left_of(disp[v], float(u)), v)
    return match, views, point(ul, v1), cand_xyz


__all__ = ["validate"]
