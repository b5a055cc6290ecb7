"""Distance: re-read the source's depth and intrinsics, back-project the marked pixels and
measure, in code of its own.

Only the marker positions (and the window side and thresholds the sample was drawn with)
come from the sample's params; every depth value, the intrinsics check and the distance
come from the re-read source. The ambiguity rules are applied again: each marked window
fully valid and off depth edges, the points apart in the image and in 3D, the pair of the
variant's kind, and the distance stable over where inside the markers the points are
taken.
"""

from __future__ import annotations

import math
import re

import numpy as np

from .common import Context, Fail, NotCheckable
from .depth import check_marked, depth_item, markers_of, need_params, valid_map

_VARIANT = re.compile(r"^(camera|pair)(?:-(lateral|depth))?$")
TOL = 1e-9
"""Relative slack on the ambiguity rules, so float rounding alone never fails a sample."""


def _point(item, u: int, v: int) -> tuple[float, float, float]:
    fx, fy, cx, cy = (float(t) for t in item.intrinsics)
    z = float(item.depth[v, u])
    return (z * (u - cx) / fx, z * (v - cy) / fy, z)


def _window_points(item, u: int, v: int, side: int, grid: int) -> list[tuple[float, float, float]]:
    half = side // 2
    n = min(side, grid)
    offs = sorted({round(-half + 2 * half * i / (n - 1)) for i in range(n)}) if n > 1 else [0]
    return [_point(item, u + dx, v + dy) for dy in offs for dx in offs]


def validate(ctx: Context) -> str:
    params = need_params(ctx)
    m = _VARIANT.match(ctx.record.variant or "")
    if not m or (m.group(1) == "camera" and m.group(2)):
        raise NotCheckable(f"unknown distance variant {ctx.record.variant!r}")
    mode, kind = m.group(1), m.group(2)
    item = depth_item(ctx)
    if item.depth_kind != "metric":
        raise Fail(f"the source's depth is {item.depth_kind!r}, not metric: no distance can be asked")
    if item.intrinsics is None:
        raise Fail("the source has no intrinsics")
    stored = params.get("intrinsics")
    if stored is None or not np.allclose(stored, item.intrinsics, rtol=1e-9, atol=1e-9):
        raise Fail(f"intrinsics in meta {stored} differ from the source's {list(item.intrinsics)}")
    markers = markers_of(params)
    want = [1] if mode == "camera" else [1, 2]
    if sorted(markers) != want:
        raise Fail(f"marker labels {sorted(markers)}, expected {want}")
    side = check_marked(ctx, params, item, markers)
    thr = params.get("thresholds") or {}
    edge_tol = float(thr.get("edge_tol", 0.10))
    max_spread = float(thr.get("max_spread", 0.20))
    grid = int(thr.get("spread_grid", 9))

    valid = valid_map(item)
    half = side // 2
    points = {}
    for lab, (u, v) in markers.items():
        if not (half <= u < item.width - half and half <= v < item.height - half):
            raise Fail(f"the window of point {lab} leaves the depth map")
        win = (slice(v - half, v + half + 1), slice(u - half, u + half + 1))
        if not valid[win].all():
            raise Fail(f"point {lab}'s window holds invalid depth")
        z = item.depth[win].astype(np.float64)
        if z.max() - z.min() > edge_tol * z.min() * (1 + TOL):
            raise Fail(f"ambiguity rule: point {lab} sits on a depth edge")
        points[lab] = _point(item, u, v)

    if mode == "camera":
        d = math.sqrt(sum(c * c for c in points[1]))
        if d < float(thr.get("min_distance") or 0.0):
            raise Fail(f"ambiguity rule: the point is {d:.3f} m from the camera, below the minimum")
        spread = [math.sqrt(sum(c * c for c in p)) for p in _window_points(item, *markers[1], side, grid)]
    else:
        d = math.dist(points[1], points[2])
        (u1, v1), (u2, v2) = markers[1], markers[2]
        sep = thr.get("min_separation_px")
        if sep is not None and math.hypot(u1 - u2, v1 - v2) <= float(sep):
            raise Fail("ambiguity rule: the two points are too close in the image")
        if d < float(thr.get("min_distance") or 0.0):
            raise Fail(f"ambiguity rule: the two points are {d:.3f} m apart, below the minimum")
        share = abs(points[1][2] - points[2][2]) / d
        if kind == "lateral" and share > float(thr.get("lateral_share", 0.3)) + TOL:
            raise Fail(f"not a lateral pair: depth difference {share:.2f} of the distance")
        if kind == "depth" and share < float(thr.get("depth_share", 0.7)) - TOL:
            raise Fail(f"not a depth pair: depth difference {share:.2f} of the distance")
        w1 = _window_points(item, u1, v1, side, grid)
        w2 = _window_points(item, u2, v2, side, grid)
        spread = [math.dist(p, q) for p in w1 for q in w2]
    if not (math.isfinite(d) and d > 0):
        raise Fail(f"the distance {d!r} is not a positive finite length")
    if max(spread) - min(spread) > max_spread * d * (1 + TOL):
        raise Fail(f"ambiguity rule: the distance varies from {min(spread):.3f} to {max(spread):.3f} m "
                   "over the marked areas")
    decimals = int(params.get("decimals", 2))
    return f"{d:.{decimals}f}"


__all__ = ["validate"]
