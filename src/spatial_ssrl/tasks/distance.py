"""Metric distance (ours; not one of the paper's five tasks).

Points are marked on an RGB-D image with the depth tasks' circled labels (the point is the
centre of the ring, see :mod:`spatial_ssrl.rendering.markers`), and the question asks for a
length in metres:

- ``camera``: one point, marked 1. How far is it from the camera: the Euclidean length of
  its camera-frame 3D point, i.e. the straight line from the camera's optical centre to
  the point (not its depth Z along the optical axis; the question says so).
- ``pair``: two points, marked 1 and 2. How far apart are they in 3D.
  ``pair-lateral`` keeps the two points at about the same depth (the depth difference is at
  most 0.3 of the distance: mostly an offset across the image, the easier pair) and
  ``pair-depth`` makes the depth difference at least 0.7 of the distance (mostly along the
  viewing direction: the length has to be read from depth cues, the harder pair).

Geometry. A point at pixel (u, v) with metric depth Z (the value of the depth map at that
very pixel) back-projects through the pinhole intrinsics (fx, fy, cx, cy) to
X = Z (u - cx) / fx, Y = Z (v - cy) / fy, Z. The answer is the distance rounded to two
decimals (``2.35``, metres, no unit); it is a function of the params alone, which hold each
point's pixel, depth and 3D coordinates.

Only metric depth with known intrinsics can be asked about: an item with ``relative``
(MegaDepth) or ``order`` depth is rejected as ``distance_needs_metric_depth``, one without
intrinsics as ``distance_needs_intrinsics``.

Which points. Candidates are the depth tasks' square windows (all pixels valid, the marker
inside the image; :func:`spatial_ssrl.tasks.depth.analyse_depth`, shared with them),
centred on the point. On top of that a point must sit away from depth edges: the metric
depth inside its window varies by at most ``edge_tol`` (10 %) of the window's nearest
depth, so a pixel or two of placement cannot jump to another surface. Two points must be
more than the marker spacing and ``min_separation`` (10 % of the shorter image side)
apart in the image and at least ``min_distance`` (0.3 m) apart in 3D; a single point at
least that far from the camera (two decimals of a shorter length say little). Finally the answer
must not hinge on where inside the ring the point is taken: over a grid of pixels of each
window (up to 9 x 9), the distance ranges from ``dmin`` to ``dmax``, and the sample is kept
only when ``(dmax - dmin) / d <= max_spread`` (0.2, i.e. about +-10 %, two of the ten
thresholds of the mean relative accuracy the reward uses). Draws whose exact distance lies
within 0.1 mm of a rounding boundary (``x.xx5``) are rejected too, so any recomputation of
the distance rounds to the same two decimals.

Rejection reasons: ``distance_needs_metric_depth``, ``distance_needs_intrinsics``,
``distance_no_stable_points``, ``distance_no_valid_pair``, ``distance_point_invalid_depth``,
``distance_point_on_depth_edge``, ``distance_points_too_close_in_image``,
``distance_points_too_close``, ``distance_point_too_close_to_camera``, ``distance_not_finite``,
``distance_pair_not_lateral``, ``distance_pair_not_depth``,
``distance_marked_area_ambiguous``, ``distance_rounding_boundary``,
``distance_geometry_mismatch``, the marker layout's and the depth analysis' own reasons.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, ClassVar

import numpy as np

from ..prompts import get_prompt_set
from ..rendering.markers import draw_markers, marker_layout_problem, marker_style
from ..sources.base import Item
from .base import PretextTask, Rendered
from .depth import (
    MIN_REGION_SIDE,
    R_MAX,
    REGION_SHARE,
    DepthAnalysis,
    analyse_depth,
    common_meta,
    markers_in_file,
)

EDGE_TOL = 0.10
MAX_SPREAD = 0.20
MIN_DISTANCE = 0.3
MIN_SEPARATION = 0.10
LATERAL_SHARE = 0.3
DEPTH_SHARE = 0.7
SPREAD_GRID = 9
DECIMALS = 2
ROUNDING_GUARD = 1e-4
"""Metres: a distance this close to a rounding boundary of the stored decimals is redrawn."""
SEARCH_RESTARTS = 24
PARTNER_DRAW = 512
"""Candidates drawn (with replacement) as possible partners of a first point, per restart."""
SPREAD_TRIES = 8
"""Points or partners whose spread is tried before a draw is left to ``check`` to reject."""

_VARIANT = re.compile(r"^(camera|pair)(?:-(lateral|depth))?$")


@functools.lru_cache(maxsize=64)
def spread_offsets(side: int, grid: int = SPREAD_GRID) -> np.ndarray:
    """Pixel offsets from a window's centre (both axes) of the grid the spread rule reads:
    ``grid`` evenly spaced offsets over the window (all of them when it is smaller)."""
    h = int(side) // 2
    n = min(int(side), int(grid))
    offs = np.unique(np.rint(np.linspace(-h, h, n)).astype(np.int64))
    offs.setflags(write=False)
    return offs


@functools.lru_cache(maxsize=64)
def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    offs = spread_offsets(side)
    dy, dx = np.meshgrid(offs, offs, indexing="ij")
    dx, dy = dx.ravel(), dy.ravel()
    dx.setflags(write=False)
    dy.setflags(write=False)
    return dx, dy


def back_project(u, v, z, intrinsics) -> np.ndarray:
    """Camera-frame points (..., 3) of pixels (u, v) at depth z (float64)."""
    fx, fy, cx, cy = (float(t) for t in intrinsics)
    z = np.asarray(z, dtype=np.float64)
    return np.stack([z * (np.asarray(u, dtype=np.float64) - cx) / fx,
                     z * (np.asarray(v, dtype=np.float64) - cy) / fy, z], axis=-1)


def spread(item: Item, centers, side: int) -> tuple[float, float]:
    """(dmin, dmax): the distance from the camera (one centre) or between the points (two
    centres) over the grid of pixels (:func:`spread_offsets`) of the windows of ``side``
    pixels around the centres, each pixel back-projected with its own depth."""
    dx, dy = _grid(int(side))
    clouds = []
    for u, v in centers:
        uu, vv = u + dx, v + dy
        clouds.append(back_project(uu, vv, item.depth[vv, uu], item.intrinsics))
    if len(clouds) == 1:
        d2 = np.einsum("ij,ij->i", clouds[0], clouds[0])
    else:  # |p - q|^2 = |p|^2 + |q|^2 - 2 p.q, relative to the first window's centre
        a, b = clouds
        origin = a[len(a) // 2]
        a, b = a - origin, b - origin
        d2 = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :] - 2.0 * (a @ b.T)
    d2 = np.maximum(d2, 0.0)
    return float(np.sqrt(d2.min())), float(np.sqrt(d2.max()))


def rounding_margin(d: float, decimals: int = DECIMALS) -> float:
    """Distance (in the answer's units) from ``d`` to the nearest rounding boundary."""
    scaled = d * 10 ** decimals
    return abs(scaled - math.floor(scaled) - 0.5) / 10 ** decimals


class DistanceTask(PretextTask):
    name = "distance"
    answer_type = "numeric"
    paper_counts: ClassVar[dict[str, float]] = {}  # not a paper task: only by --tasks
    requires_depth = True
    lossless_output = False
    VARIANTS = ("camera", "pair-lateral", "pair", "pair-depth")

    def __init__(self, variant: str | None = None, *, edge_tol: float = EDGE_TOL, max_spread: float = MAX_SPREAD,
                 min_distance: float = MIN_DISTANCE, min_separation: float = MIN_SEPARATION,
                 r_max: float = R_MAX, region_share: float = REGION_SHARE, min_region_side: int = MIN_REGION_SIDE,
                 **kwargs: Any):
        super().__init__(variant, **kwargs)
        m = _VARIANT.match(self.variant)
        if not m or (m.group(1) == "camera" and m.group(2)):
            raise ValueError(f"distance variant must be one of {', '.join(self.VARIANTS)}; got {self.variant!r}")
        self.mode = m.group(1)
        self.kind = m.group(2) or "any"
        if not (0 < edge_tol < 1 and 0 < max_spread < 1 and min_distance > 0 and 0 <= min_separation < 1):
            raise ValueError("distance thresholds: edge_tol and max_spread in (0, 1), min_distance > 0, "
                             "min_separation in [0, 1)")
        self.edge_tol, self.max_spread = float(edge_tol), float(max_spread)
        self.min_distance, self.min_separation = float(min_distance), float(min_separation)
        self.r_max, self.region_share, self.min_region_side = float(r_max), float(region_share), int(min_region_side)

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        return cls.VARIANTS

    @classmethod
    def default_variant(cls) -> str:
        return "pair"

    # -- candidates -------------------------------------------------------------------
    def _analysis(self, item: Item) -> DepthAnalysis:
        return analyse_depth(item, self.region_share, self.min_region_side, self.r_max)

    def _candidates(self, item: Item, a: DepthAnalysis) -> tuple[np.ndarray, np.ndarray]:
        """Every candidate's 3D point (n x 3, from the depth at its centre pixel) and the
        indices of the candidates off depth edges, once per analysis."""
        key = ("distance_points", tuple(item.intrinsics), self.edge_tol, self.mode, self.min_distance)
        hit = a.memo.get(key)
        if hit is None:
            z = np.asarray(item.depth[a.cy, a.cx], dtype=np.float64)
            xyz = back_project(a.cx, a.cy, z, item.intrinsics)
            ok = (a.raw_hi - a.raw_lo) <= self.edge_tol * a.raw_lo
            ok &= np.isfinite(xyz).all(axis=1)
            if self.mode == "camera":  # the answer's two decimals need a length well above a centimetre
                ok &= np.sqrt(np.einsum("ij,ij->i", xyz, xyz)) >= self.min_distance
            stable = np.flatnonzero(ok)
            hit = a.memo[key] = (xyz, stable)
        return hit

    def _min_image_sep(self, item: Item, a: DepthAnalysis) -> float:
        return max(float(a.style.min_spacing), self.min_separation * min(item.width, item.height))

    def _unsuitable(self, item: Item) -> str | None:
        if item.depth is None:
            return "depth_missing"
        if item.depth_kind != "metric":
            return "distance_needs_metric_depth"
        if item.intrinsics is None:
            return "distance_needs_intrinsics"
        return None

    # -- the four steps -----------------------------------------------------------------
    def make_params(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        reason = self._unsuitable(item)
        if reason:
            return {"rejected": reason}
        a = self._analysis(item)
        if a.problem:
            return {"rejected": a.problem}
        xyz, stable = self._candidates(item, a)
        if stable.size == 0:
            return {"rejected": "distance_no_stable_points"}
        side = a.side
        if self.mode == "camera":
            tries = stable[rng.integers(stable.size, size=min(SPREAD_TRIES, stable.size))]
            chosen = [int(tries[0])]
            for c in tries:  # the first whose marked area gives one answer (check names a failure)
                if self._spread_ok(item, [c], xyz, a, side):
                    chosen = [int(c)]
                    break
        else:
            sep2 = self._min_image_sep(item, a) ** 2
            chosen = []
            for _ in range(SEARCH_RESTARTS):
                c1 = int(stable[rng.integers(stable.size)])
                # partners among a random draw of the candidates (all of them, in random
                # order, when there are few): vector tests, then the spread on a few
                sub = stable[rng.integers(stable.size, size=min(PARTNER_DRAW, stable.size))]
                diff = xyz[sub] - xyz[c1]
                d = np.sqrt(np.einsum("ij,ij->i", diff, diff))
                ok = d >= self.min_distance
                ok &= ((a.cx[sub] - a.cx[c1]) ** 2 + (a.cy[sub] - a.cy[c1]) ** 2) > sep2
                if self.kind != "any":
                    with np.errstate(divide="ignore", invalid="ignore"):
                        share = np.abs(diff[:, 2]) / d
                    ok &= share <= LATERAL_SHARE if self.kind == "lateral" else share >= DEPTH_SHARE
                partners = sub[ok]
                if not partners.size:
                    continue
                chosen = [c1, int(partners[0])]
                for c2 in partners[:SPREAD_TRIES]:
                    if self._spread_ok(item, [c1, c2], xyz, a, side):
                        chosen = [c1, int(c2)]
                        break
                break
            if not chosen:
                return {"rejected": "distance_no_valid_pair"}
            if rng.integers(2):
                chosen.reverse()
        points = []
        for label, c in enumerate(chosen, start=1):
            u, v = int(a.cx[c]), int(a.cy[c])
            points.append({
                "label": label,
                "center": [u, v],
                "box": [int(a.x0[c]), int(a.y0[c]), a.side, a.side],
                "depth": float(item.depth[v, u]),
                "xyz": [float(t) for t in xyz[c]],
                "depth_min": float(a.raw_lo[c]),
                "depth_max": float(a.raw_hi[c]),
            })
        params = {
            "mode": self.mode,
            "pair_kind": self.kind if self.mode == "pair" else None,
            "units": "m",
            "decimals": DECIMALS,
            **common_meta(item, a),
            "points": points,
            "markers": {str(p["label"]): list(p["center"]) for p in points},
            "thresholds": {
                "edge_tol": self.edge_tol, "max_spread": self.max_spread, "spread_grid": SPREAD_GRID,
                "min_distance": self.min_distance,
                "min_separation_px": self._min_image_sep(item, a) if self.mode == "pair" else None,
                "lateral_share": LATERAL_SHARE if self.kind == "lateral" else None,
                "depth_share": DEPTH_SHARE if self.kind == "depth" else None,
            },
        }
        params["distance"] = _distance(params)
        params["spread"] = list(self._spread(item, params))
        return params

    def _spread_ok(self, item: Item, cands, xyz: np.ndarray, a: DepthAnalysis, side: int) -> bool:
        centers = [(int(a.cx[c]), int(a.cy[c])) for c in cands]
        p = xyz[cands[0]] if len(cands) == 1 else xyz[cands[0]] - xyz[cands[1]]
        dmin, dmax = spread(item, centers, side)
        return dmax - dmin <= self.max_spread * float(np.sqrt(p @ p))

    def _spread(self, item: Item, params: dict[str, Any]) -> tuple[float, float]:
        return spread(item, [tuple(p["center"]) for p in params["points"]], params["region_side"])

    def check(self, item: Item, params: dict[str, Any]) -> str | None:
        if params.get("rejected"):
            return params["rejected"]
        reason = self._unsuitable(item)
        if reason:
            return reason
        a = self._analysis(item)
        if a.problem:
            return a.problem
        for p in params["points"]:
            x, y, s, _ = p["box"]
            if x < 0 or y < 0 or x + s > item.width or y + s > item.height or [x + s // 2, y + s // 2] != p["center"]:
                return "distance_point_invalid_depth"
            win = (slice(y, y + s), slice(x, x + s))
            raw = item.depth[win].astype(np.float64)
            if not np.isfinite(raw).all() or (item.mask is not None and not item.mask[win].all()):
                return "distance_point_invalid_depth"
            if not raw.max() - raw.min() <= self.edge_tol * raw.min():
                return "distance_point_on_depth_edge"
            u, v = p["center"]
            if p["depth"] != float(item.depth[v, u]) or \
                    p["xyz"] != [float(t) for t in back_project(u, v, item.depth[v, u], item.intrinsics)]:
                return "distance_geometry_mismatch"
        reason = marker_layout_problem(params["markers"], marker_style(params["region_side"]), item.width, item.height)
        if reason:
            return reason
        d = _distance(params)
        if not math.isfinite(d):
            return "distance_not_finite"
        if self.mode == "camera" and d < self.min_distance:
            return "distance_point_too_close_to_camera"
        if self.mode == "pair":
            (u1, v1), (u2, v2) = (p["center"] for p in params["points"])
            if math.hypot(u1 - u2, v1 - v2) <= self._min_image_sep(item, a):
                return "distance_points_too_close_in_image"
            if d < self.min_distance:
                return "distance_points_too_close"
            share = abs(params["points"][0]["xyz"][2] - params["points"][1]["xyz"][2]) / d
            if self.kind == "lateral" and not share <= LATERAL_SHARE:
                return "distance_pair_not_lateral"
            if self.kind == "depth" and not share >= DEPTH_SHARE:
                return "distance_pair_not_depth"
        dmin, dmax = self._spread(item, params)
        if not (dmax - dmin) <= self.max_spread * d:
            return "distance_marked_area_ambiguous"
        if rounding_margin(d, params["decimals"]) < ROUNDING_GUARD:
            return "distance_rounding_boundary"
        return None

    def render(self, item: Item, params: dict[str, Any]) -> Rendered:
        image = draw_markers(item.rgb, params["markers"], marker_style(params["region_side"]))
        extra: dict[str, Any] = {"output_size": [item.width, item.height], "depth_source": item.depth_path}
        in_file = markers_in_file(item, params["markers"])
        if in_file:
            extra["markers_in_file"] = in_file
        return Rendered(images=[image], problem=get_prompt_set(self.prompt_set).distance(params["mode"]),
                        extra_meta=extra)

    def answer(self, params: dict[str, Any]) -> str:
        return f"{_distance(params):.{int(params['decimals'])}f}"


def _distance(params: dict[str, Any]) -> float:
    """The exact distance the params describe: from the camera to point 1, or between
    points 1 and 2 (metres)."""
    pts = {int(p["label"]): [float(t) for t in p["xyz"]] for p in params["points"]}
    if params["mode"] == "camera":
        return math.hypot(*pts[1])
    return math.dist(pts[1], pts[2])
