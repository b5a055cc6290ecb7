"""Depth: read the depth map at the markers, check the regions are flat and apart, and
order them nearest first. Shared region reading for the position task."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from .common import Context, Fail, NotCheckable, check_marked_image

R_MAX_DEFAULT = 0.15
D_MIN_DEFAULT = 0.05


def need_params(ctx: Context) -> dict[str, Any]:
    if ctx.params is None:
        raise NotCheckable(f"no meta/params in the {ctx.format} format: marker positions unknown")
    return ctx.params


def depth_item(ctx: Context):
    item = ctx.item(need_depth=True)
    if item.depth is None:
        raise NotCheckable("the re-read source has no depth")
    return item


def valid_map(item) -> np.ndarray:
    valid = np.isfinite(item.depth)
    if item.mask is not None:
        valid &= item.mask.astype(bool)
    return valid


def norm_range(item, valid: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(item.depth[valid].astype(np.float64), [0.5, 99.5])
    return float(lo), float(hi)


def markers_of(params: dict[str, Any]) -> dict[int, tuple[int, int]]:
    try:
        return {int(k): (int(v[0]), int(v[1])) for k, v in params["markers"].items()}
    except (KeyError, TypeError, ValueError, IndexError):
        raise Fail("meta has no readable markers") from None


def check_marked(ctx: Context, params: dict[str, Any], item, markers: dict[int, tuple[int, int]]) -> int:
    """The marker sizes from meta, the markers inside the image and apart, and the shown image
    equal to the source with exactly those markers drawn; returns the regions' side."""
    side = int(params.get("region_side", 0))
    marker = params.get("marker") or {}
    radius, inner = int(marker.get("radius", 0)), int(marker.get("inner_radius", 0))
    if side <= 0 or radius <= 0:
        raise Fail("meta lacks region_side/marker sizes")
    check_layout(markers, radius, item.width, item.height)
    check_marked_image(ctx.image(0), item.rgb, markers, radius, inner,
                       None if ctx.lossless(0) else ctx.jpeg_quality)
    return side


def check_layout(markers: dict[int, tuple[int, int]], radius: int, width: int, height: int) -> None:
    for lab, (x, y) in markers.items():
        if not (radius <= x <= width - 1 - radius and radius <= y <= height - 1 - radius):
            raise Fail(f"marker {lab} leaves the image")
    pts = list(markers.items())
    for i in range(len(pts)):
        for j in range(i + 1, len(pts)):
            if math.dist(pts[i][1], pts[j][1]) <= 2 * radius:
                raise Fail(f"markers {pts[i][0]} and {pts[j][0]} overlap")


def read_region(item, valid, center, side, lo, hi) -> dict[str, Any]:
    x, y = center
    h = side // 2
    if not (h <= x < item.width - h and h <= y < item.height - h):
        raise Fail(f"region at {center} leaves the depth map")
    win = (slice(y - h, y - h + side), slice(x - h, x - h + side))
    if not valid[win].all():
        raise Fail(f"region at {center} holds invalid depth")
    raw = item.depth[win].astype(np.float64)
    n = np.clip((raw - lo) / (hi - lo), 0.0, 1.0)
    return {"u": x, "v": y, "raw": raw, "n": n}


def regions_and_image(ctx: Context, params: dict[str, Any], r_max: float):
    """Re-read every marked region (side from meta, centre = marker) and check the image."""
    item = depth_item(ctx)
    valid = valid_map(item)
    lo, hi = norm_range(item, valid)
    stored = (params.get("depth_norm") or {}).get("values")
    if stored is None or not np.allclose(stored, [lo, hi], rtol=1e-6, atol=1e-9):
        raise Fail(f"depth normalisation {stored} differs from the re-read depth's [{lo:.6g}, {hi:.6g}]")
    markers = markers_of(params)
    side = check_marked(ctx, params, item, markers)
    regions = {}
    for lab, c in markers.items():
        r = read_region(item, valid, c, side, lo, hi)
        if not float(r["n"].max() - r["n"].min()) < r_max:
            raise Fail(f"ambiguity rule: region {lab} is not flat")
        regions[lab] = r
    return item, regions


def validate(ctx: Context) -> str:
    params = need_params(ctx)
    k = len(params.get("markers") or {})
    variant_k = (ctx.record.variant or "").split("-")[0]
    if not variant_k.isdigit() or int(variant_k) != k:
        raise Fail(f"{k} markers for variant {ctx.record.variant!r}")
    r_max = float(params.get("r_max", R_MAX_DEFAULT))
    d_min = float(params.get("d_min", D_MIN_DEFAULT))
    _, regions = regions_and_image(ctx, params, r_max)
    if sorted(regions) != list(range(1, k + 1)):
        raise Fail(f"marker labels {sorted(regions)}, expected 1..{k}")
    by_min = sorted(regions.values(), key=lambda r: r["n"].min())
    for near, far in itertools.pairwise(by_min):
        if not far["n"].min() - near["n"].max() > d_min:
            raise Fail("ambiguity rule: two regions' depth ranges are too close")
    order = sorted(regions, key=lambda lab: float(np.median(regions[lab]["n"])))
    return "-".join(str(lab) for lab in order)
