"""Posed pairs, for the validators: the stored camera-to-world matrices read and checked, and
the two views read again from their files (the names the sample stores, resolved against the
manifest's source roots), in the order they were shown. Nothing here comes from the tasks."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..sources import SourceRef, SourceSkip, load_source_item
from ..sources.naming import resolve
from .common import Context, Fail, NotCheckable

ORDERS = ("view1-view2", "view2-view1")
RIGID_TOL = 1e-3


@dataclass
class View:
    rgb: np.ndarray
    depth: np.ndarray | None
    intrinsics: tuple[float, float, float, float]
    pose: np.ndarray
    """4x4 camera-to-world."""


def matrix(data) -> np.ndarray:
    """A stored 4x4 camera-to-world pose, checked to be a rigid motion."""
    try:
        m = np.array(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise Fail("a stored pose is not a 4x4 matrix of numbers") from None
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise Fail("a stored pose is not a finite 4x4 matrix")
    rot = m[:3, :3]
    if (np.abs(rot.T @ rot - np.eye(3)).max() > RIGID_TOL or np.linalg.det(rot) <= 0
            or np.abs(m[3] - (0, 0, 0, 1)).max() > 1e-6):
        raise Fail("a stored pose is not a rotation and a translation")
    return m


def to_camera(pose: np.ndarray, world: np.ndarray) -> np.ndarray:
    """World points (..., 3) in the frame of the camera whose camera-to-world is ``pose``."""
    return (world - pose[:3, 3]) @ pose[:3, :3]


def to_world(pose: np.ndarray, cam: np.ndarray) -> np.ndarray:
    return cam @ pose[:3, :3].T + pose[:3, 3]


_CACHE: OrderedDict = OrderedDict()


def _read(ctx: Context, name: str, depth: str | None, fmt, scale) -> tuple[np.ndarray, np.ndarray | None]:
    load = ctx.sources.load
    key = (name, depth, fmt, scale, load, ctx.sources.dataset_dir, tuple(sorted((ctx.sources.roots or {}).items())))
    hit = _CACHE.get(key)
    if hit is None:
        path = resolve(name, ctx.sources.roots, ctx.sources.dataset_dir)
        dpath = resolve(depth, ctx.sources.roots, ctx.sources.dataset_dir) if depth else None
        ref = SourceRef(name, path, kind="rgbd" if dpath else "image", depth=dpath, depth_format=fmt,
                        depth_scale=scale)
        try:
            item = load_source_item(ref, load)
        except SourceSkip as exc:
            hit = NotCheckable(f"the view {name} cannot be re-read: {exc.reason}")
        else:
            if dpath and item.depth_kind != "metric":
                hit = Fail(f"the depth of {name} is not metric")
            else:
                hit = (item.rgb, item.depth)
        _CACHE[key] = hit
        while len(_CACHE) > 4:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    if isinstance(hit, Exception):
        raise hit
    return hit


def read_views(ctx: Context, params: dict, need_depth: bool) -> list[View]:
    """The two views in the order shown, from the files the sample names; the source must be
    one of them, in the place its ``order`` says."""
    try:
        order = params["order"]
        names, depths = list(params["views"]), list(params["depths"])
        fmts, scales = list(params["depth_formats"]), list(params["depth_scales"])
        intr = [tuple(float(v) for v in k) for k in params["view_intrinsics"]]
        poses = [matrix(p) for p in params["poses"]]
    except (KeyError, TypeError, ValueError):
        raise Fail("meta lacks the posed pair's views, depths, intrinsics or poses") from None
    if order not in ORDERS or not all(len(x) == 2 for x in (names, depths, fmts, scales, intr, poses)):
        raise Fail("meta's posed pair is not two views with a known order")
    if any(len(k) != 4 or not all(math.isfinite(v) for v in k) or k[0] <= 0 or k[1] <= 0 for k in intr):
        raise Fail("meta's view intrinsics are not [fx, fy, cx, cy]")
    at = 0 if order == ORDERS[0] else 1
    if names[at] != ctx.record.source:
        raise Fail(f"the source {ctx.record.source!r} is not the view the order {order!r} puts there")
    if need_depth and not all(depths):
        raise Fail("a view has no depth")
    views = []
    size = None
    for k in range(2):
        rgb, depth = _read(ctx, names[k], depths[k], fmts[k], scales[k])
        if size is None:
            size = rgb.shape
        elif rgb.shape != size:
            raise Fail(f"the two views differ in size ({size[1]}x{size[0]}, {rgb.shape[1]}x{rgb.shape[0]})")
        views.append(View(rgb, depth, intr[k], poses[k]))
    if list(params.get("size") or []) != [size[1], size[0]]:
        raise Fail(f"meta size {params.get('size')} differs from the re-read views' {[size[1], size[0]]}")
    return views
