"""Regional depth ordering.

``k`` square regions (k = 2..5; the paper uses 3) are marked with circled labels 1..k in
random order; the answer lists the labels from nearest to farthest (``3-1-2``).

Depth is normalised by the 0.5 and 99.5 percentiles of the valid pixels and clipped to
[0, 1]. A region qualifies when all of its pixels are valid and its normalised range
(max - min) is below ``r_max`` (0.15). A set of regions qualifies when, sorted by depth,
every region's nearest pixel is more than ``d_min`` (0.05) farther than the previous
region's farthest pixel. This interval rule is stricter than comparing one number per
region: it makes the order the same whichever statistic a reader uses (median, mean,
centre pixel, min or max), so the answer cannot hinge on that choice. ``meta`` records the
median of each region (the statistic we report) together with its min and max.

Search. The depth map is reduced once per item to a grid of ``g`` x ``g`` pixel blocks
(block min, block max, block fully valid), by strided element-wise passes. A region is an
``m`` x ``m`` group of blocks (side ``s = m g`` pixels, about 3.5 % of the shorter image
side and at least 9 px), so sliding ``m`` x ``m`` minimum/maximum windows over the block
grid give every candidate's exact full-resolution min, max and validity; nothing is
approximated by the reduction, only the placement is quantised to ``g`` pixels. Regions
are then drawn among the qualifying windows with the task's random generator (a random
first region, then a random one among those compatible with all chosen so far, with a few
restarts); a cheap interval-chain bound rejects items that cannot hold ``k`` separated
regions at all without any sampling. ``check`` re-reads every chosen region at full
resolution.

Markers (see :mod:`spatial_ssrl.rendering.markers`) are rings centred on the regions;
the square lies inside the ring's opening and only the digit's strokes cover part of it.
Marker centres keep more than two radii plus a gap apart and the whole marker stays
inside the image.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..prompts import get_prompt_set
from ..rendering.markers import MarkerStyle, draw_markers, marker_layout_problem, marker_style
from ..sources.base import Item
from .base import PretextTask, Rendered

PERCENTILES = (0.5, 99.5)
REGION_SHARE = 0.035
"""Target region side as a share of the shorter image side."""
MIN_REGION_SIDE = 9
R_MAX = 0.15
D_MIN = 0.05
SEARCH_RESTARTS = 24

_VARIANT = re.compile(r"^([2-5])-regions(?:-gap(0\.\d+))?$")
"""``k-regions`` (the paper's gap ``d_min``) or ``k-regions-gapG``: consecutive regions at
least G apart in normalised depth (G above the paper's 0.05 makes an easier level)."""


# --------------------------------------------------------------------------------------
# Region geometry and the per-item analysis shared with the position task
# --------------------------------------------------------------------------------------
def region_grid(height: int, width: int, share: float = REGION_SHARE, min_side: int = MIN_REGION_SIDE) -> tuple[int, int]:
    """Block size ``g`` and blocks per region side ``m`` (both odd, so the region side
    ``s = m g`` is odd and has a centre pixel)."""
    target = max(float(min_side), share * min(height, width))
    g = max(1, int(target // 6))
    if g % 2 == 0:
        g -= 1
    g = max(1, g)
    m = max(3, int(round(target / g)))
    if m % 2 == 0:
        m = m + 1 if (m + 1) * g - target <= target - (m - 1) * g else m - 1
    while m * g < min_side:
        m += 2
    return g, m


def _block_reduce(a: np.ndarray, g: int, op) -> np.ndarray:
    """``op``-reduce each ``g`` x ``g`` block of ``a`` (shape a multiple of ``g``), with
    strided element-wise passes (much faster than reshaping for small blocks)."""
    if g == 1:
        return np.array(a)
    # rows first: each pass reads whole contiguous rows of the full-resolution map
    r = np.array(a[0::g])
    for k in range(1, g):
        op(r, a[k::g], out=r)
    c = np.array(r[:, 0::g])
    for k in range(1, g):
        op(c, r[:, k::g], out=c)
    return c


def _slide(b: np.ndarray, m: int, op, axis: int) -> np.ndarray:
    """``op`` (``np.minimum`` or ``np.maximum``) over every run of ``m`` consecutive
    entries along ``axis``, by doubling: runs of 2, 4, 8, ... from pairs of shorter runs,
    then two overlapping runs cover ``m`` (min and max are idempotent, so the overlap
    changes nothing and the result equals the plain left-to-right reduction exactly, NaN
    included). About 2 log2(m) passes instead of m - 1."""
    n = b.shape[axis]
    out_n = n - m + 1

    def take(a, start, stop):
        return a[start:stop] if axis == 0 else a[:, start:stop]

    cur, size = b, 1
    while 2 * size <= m:
        length = cur.shape[axis] - size
        cur = op(take(cur, 0, length), take(cur, size, size + length))
        size *= 2
    if size == m:
        return np.array(take(cur, 0, out_n))
    return op(take(cur, 0, out_n), take(cur, m - size, m - size + out_n))


def _window_reduce(b: np.ndarray, m: int, op) -> np.ndarray:
    """``out[i, j] = op`` over ``b[i:i+m, j:j+m]`` (separable sliding window)."""
    return _slide(_slide(b, m, op, 1), m, op, 0)


def percentiles(values: np.ndarray, qs: tuple[float, ...] = PERCENTILES, n_valid: int | None = None) -> list[float]:
    """Percentiles of the non-NaN entries of ``values`` (any shape) with numpy's default
    (linear) definition, found without sorting, partitioning or even gathering the whole
    array: a sorted subsample brackets each order statistic, and only the values beyond
    the bracket are partitioned (NaN fails every comparison, so it drops out on its own).
    ``n_valid`` is the number of non-NaN entries when the caller knows it. Exact: when a
    bracket misses (the margins make that very unlikely) it falls back to
    ``np.percentile`` of the valid values."""
    flat = values.reshape(-1)
    n = int(np.count_nonzero(~np.isnan(flat))) if n_valid is None else int(n_valid)
    if n == 0:
        raise ValueError("no valid value")
    step = max(1, flat.size // 32768)
    sub = np.sort(flat[::step])  # NaN sorts last
    m = int(np.count_nonzero(~np.isnan(sub)))
    if m == 0:
        return [float(v) for v in np.percentile(flat[~np.isnan(flat)], qs)]
    sub = sub[:m]
    out = []
    for q in qs:
        f = q / 100.0
        pos = (n - 1) * f
        k = int(np.floor(pos))
        k1 = min(k + 1, n - 1)
        margin = 6.0 * np.sqrt(max(f * (1.0 - f), 1e-4) / m) + 2.0 / m
        if f <= 0.5:  # {v <= t} is exactly the |part| smallest values
            part = flat[flat <= sub[min(m - 1, int(np.ceil((f + margin) * m)))]]
            ks, ok = (k, k1), part.size > k1
        else:  # {v >= t} is exactly the |part| largest values
            part = flat[flat >= sub[max(0, int(np.floor((f - margin) * m)))]]
            off = n - int(part.size)
            ks, ok = (k - off, k1 - off), off <= k
        if not ok:
            return [float(v) for v in np.percentile(flat[~np.isnan(flat)], qs)]
        p = np.partition(part, ks)
        a, b = float(p[ks[0]]), float(p[ks[1]])
        out.append(a + (b - a) * (pos - k))
    return out


def normalise(values, lo: float, hi: float):
    """Map depth to [0, 1] by the two percentiles, clipping outside them (float64)."""
    return np.clip((np.asarray(values, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)


@dataclass
class DepthAnalysis:
    """Everything about one item's depth map that does not depend on random choices."""

    problem: str | None
    height: int
    width: int
    p_lo: float = 0.0
    p_hi: float = 1.0
    block: int = 1
    blocks_per_side: int = 1
    side: int = 1
    style: MarkerStyle | None = None
    # Qualifying windows (flat, fully valid, marker fits), row-major order.
    x0: np.ndarray | None = None
    y0: np.ndarray | None = None
    cx: np.ndarray | None = None
    cy: np.ndarray | None = None
    lo: np.ndarray | None = None
    """Normalised min of each candidate region."""
    hi: np.ndarray | None = None
    """Normalised max."""
    raw_lo: np.ndarray | None = None
    """Min of the stored depth values (metres for metric items)."""
    raw_hi: np.ndarray | None = None
    memo: dict = field(default_factory=dict, repr=False, compare=False)
    """Figures derived from the candidates alone (the tasks' per-item arrays), computed
    once per analysis; the analysis is shared only between identical depth arrays."""

    @property
    def n(self) -> int:
        return 0 if self.cx is None else int(self.cx.size)

    def max_chain(self, gap: float, limit: int) -> int:
        """The largest number (capped at ``limit``) of candidates whose normalised ranges
        are pairwise separated by more than ``gap`` (greedy interval scheduling: take the
        earliest-ending interval that starts after the last end + gap; one vectorised pass
        per step, no sorting)."""
        if self.n == 0:
            return 0
        key = ("max_chain", float(gap), int(limit))
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = self._max_chain(gap, limit)
        return hit

    def _max_chain(self, gap: float, limit: int) -> int:
        count, last = 0, -np.inf
        while count < limit:
            later = self.lo > last + gap
            if not later.any():
                break
            last = float(np.min(self.hi, where=later, initial=np.inf))
            count += 1
        return count

    def stats_meta(self) -> dict[str, Any]:
        return {"percentiles": list(PERCENTILES), "values": [self.p_lo, self.p_hi]}


def _analyse(item: Item, share: float, min_side: int, r_max: float) -> DepthAnalysis:
    h, w = item.height, item.width
    if item.depth is None:
        return DepthAnalysis("depth_missing", h, w)
    depth = item.depth
    if depth.shape != (h, w) or (item.mask is not None and item.mask.shape != (h, w)):
        return DepthAnalysis("depth_shape_mismatch", h, w)
    depth = depth.astype(np.float32, copy=False)
    valid = np.isfinite(depth)
    if item.mask is not None:
        mask = item.mask.astype(bool, copy=False)
        if not np.array_equal(valid, mask):  # not the Item contract: make it so
            valid &= mask
            depth = np.where(valid, depth, np.float32(np.nan))
    if np.isinf(depth).any():
        depth = np.where(valid, depth, np.float32(np.nan))
    # From here on NaN marks every invalid pixel and nothing else: min/max reductions
    # propagate it, so a block or window containing an invalid pixel comes out NaN.
    n_valid = int(np.count_nonzero(valid))
    if n_valid == 0:
        return DepthAnalysis("depth_no_valid_pixels", h, w)
    p_lo, p_hi = percentiles(depth, n_valid=n_valid)
    if not p_hi > p_lo:
        return DepthAnalysis("depth_constant", h, w, p_lo, p_hi)
    g, m = region_grid(h, w, share, min_side)
    s = g * m
    style = marker_style(s)
    hb, wb = h // g, w // g
    base = DepthAnalysis(None, h, w, p_lo, p_hi, g, m, s, style)
    if hb < m or wb < m:
        base.problem = "depth_no_valid_regions"
        return base
    d = depth[: hb * g, : wb * g]
    bmin = _block_reduce(d, g, np.minimum)  # NaN where the block has an invalid pixel
    bmax = _block_reduce(d, g, np.maximum)
    wmin = _window_reduce(bmin, m, np.minimum)  # NaN where the window has one
    wmax = _window_reduce(bmax, m, np.maximum)
    nlo = normalise(wmin, p_lo, p_hi)
    nhi = normalise(wmax, p_lo, p_hi)
    with np.errstate(invalid="ignore"):
        ok = (nhi - nlo) < r_max  # False for NaN: windows with an invalid pixel drop out
    # the marker (radius R around the centre pixel) must fit inside the image
    half, r = s // 2, style.radius
    ys = np.arange(ok.shape[0]) * g + half
    xs = np.arange(ok.shape[1]) * g + half
    ok &= ((ys >= r) & (ys <= h - 1 - r))[:, None]
    ok &= ((xs >= r) & (xs <= w - 1 - r))[None, :]
    # row-major flat positions (what np.nonzero(ok) gives as row/column pairs); 1-D takes
    # are several times faster than 2-D fancy indexing and read the same values
    flat = np.flatnonzero(ok)
    iy, ix = np.divmod(flat, ok.shape[1])
    base.y0, base.x0 = (iy * g).astype(np.int64, copy=False), (ix * g).astype(np.int64, copy=False)
    base.cy, base.cx = base.y0 + half, base.x0 + half
    base.lo, base.hi = nlo.reshape(-1).take(flat), nhi.reshape(-1).take(flat)
    base.raw_lo = wmin.reshape(-1).take(flat).astype(np.float64)
    base.raw_hi = wmax.reshape(-1).take(flat).astype(np.float64)
    if base.n == 0:
        base.problem = "depth_no_valid_regions"
    return base


def near_band(a: DepthAnalysis, c: int, spacing2: int) -> tuple[int, int]:
    """Index range ``[b0, b1)`` holding every candidate whose centre is within
    ``sqrt(spacing2)`` rows of candidate ``c``'s (candidates are in row-major order, so
    their ``cy`` never decreases): outside it no candidate can be a near neighbour of ``c``,
    and the exact distance test runs on this band only."""
    if "cy_sorted" not in a.memo:
        a.memo["cy_sorted"] = bool(a.n < 2 or np.all(a.cy[1:] >= a.cy[:-1]))
    if not a.memo["cy_sorted"]:
        return 0, a.n
    r = math.isqrt(int(spacing2)) + 1 if spacing2 >= 0 else 0
    cy = int(a.cy[c])
    return int(np.searchsorted(a.cy, cy - r, "left")), int(np.searchsorted(a.cy, cy + r, "right"))


def clear_of(a: DepthAnalysis, j, c: int, spacing2: int) -> np.ndarray:
    """Whether the markers of candidates ``j`` (a slice or index array) keep clear of
    candidate ``c``'s: squared centre distance above ``spacing2``."""
    return ((a.cx[j] - a.cx[c]) ** 2 + (a.cy[j] - a.cy[c]) ** 2) > spacing2


def _still_allowed(a: DepthAnalysis, idx: np.ndarray | None, c: int, spacing2: int, d_min: float) -> np.ndarray:
    """The candidates of ``idx`` (ascending; None: all) whose markers keep clear of
    candidate ``c``'s and whose depth interval is more than ``d_min`` away from ``c``'s,
    in order: the same set as the element-wise test over every candidate, with the
    distance test only where it can fail (:func:`near_band`)."""
    above, below = a.hi[c] + d_min, a.lo[c] - d_min
    b0, b1 = near_band(a, c, spacing2)
    if idx is None:
        ok = (a.lo > above) | (a.hi < below)
        ok[b0:b1] &= clear_of(a, slice(b0, b1), c, spacing2)
        return np.flatnonzero(ok)
    ok = (a.lo[idx] > above) | (a.hi[idx] < below)
    p0, p1 = int(np.searchsorted(idx, b0, "left")), int(np.searchsorted(idx, b1, "left"))
    ok[p0:p1] &= clear_of(a, idx[p0:p1], c, spacing2)
    return idx[ok]


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 3
_CACHE_LOCK = threading.Lock()


def analyse_depth(item: Item, share: float = REGION_SHARE, min_side: int = MIN_REGION_SIDE,
                  r_max: float = R_MAX) -> DepthAnalysis:
    """The item's depth analysis, cached for the last few items. An entry keeps
    references to the arrays it was computed from and is reused only for those very
    arrays, so the cache can only save time, never change a result."""
    key = (item.id, item.height, item.width, share, min_side, r_max)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] is item.depth and hit[1] is item.mask:
            _CACHE.move_to_end(key)
            return hit[2]
    result = _analyse(item, share, min_side, r_max)
    with _CACHE_LOCK:
        _CACHE[key] = (item.depth, item.mask, result)
        _CACHE.move_to_end(key)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result


def region_stats(item: Item, box: list[int], p_lo: float, p_hi: float) -> dict[str, Any] | None:
    """Full-resolution statistics of the square ``box`` = [x, y, s, s]; None when any
    pixel is invalid."""
    x, y, s, _ = (int(v) for v in box)
    if x < 0 or y < 0 or x + s > item.width or y + s > item.height:
        return None
    raw = np.asarray(item.depth[y:y + s, x:x + s], dtype=np.float32)
    valid = np.isfinite(raw)
    if item.mask is not None:
        valid &= item.mask[y:y + s, x:x + s].astype(bool)
    if not valid.all():
        return None
    n = normalise(raw, p_lo, p_hi)
    return {
        "norm_median": _median(n),
        "norm_min": float(n.min()),
        "norm_max": float(n.max()),
        "depth_median": _median(raw.astype(np.float64)),
        "depth_min": float(raw.min()),
        "depth_max": float(raw.max()),
    }


def _median(a: np.ndarray) -> float:
    """``np.median`` of a NaN-free array (same value), by one partition."""
    flat = a.reshape(-1)
    n = flat.size
    half = n // 2
    if n % 2:
        return float(np.partition(flat, half)[half])
    p = np.partition(flat, (half - 1, half))
    return float((p[half - 1] + p[half]) / 2.0)


def region_record(label: int, analysis: DepthAnalysis, idx: int, stats: dict[str, Any]) -> dict[str, Any]:
    s = analysis.side
    return {
        "label": int(label),
        "box": [int(analysis.x0[idx]), int(analysis.y0[idx]), s, s],
        "center": [int(analysis.cx[idx]), int(analysis.cy[idx])],
        **stats,
        "norm_range": stats["norm_max"] - stats["norm_min"],
    }


def common_meta(item: Item, analysis: DepthAnalysis) -> dict[str, Any]:
    return {
        "region_side": analysis.side,
        "block": analysis.block,
        "marker": analysis.style.as_meta(),
        "depth_norm": analysis.stats_meta(),
        "depth_kind": item.depth_kind,
        "intrinsics": None if item.intrinsics is None else [float(v) for v in item.intrinsics],
        "depth_source": item.depth_path,
    }


def markers_in_file(item: Item, markers: dict[str, list[int]]) -> dict[str, list[float]] | None:
    resize = item.info.get("resize")
    if not resize:
        return None
    sx, sy = resize["scale"]
    return {k: [x / sx, y / sy] for k, (x, y) in markers.items()}


def verify_regions(item: Item, params: dict[str, Any], analysis: DepthAnalysis, r_max: float) -> str | None:
    """Shared full-resolution checks: stats reproduce, regions valid and flat, markers
    centred on their regions, inside the image and apart."""
    if params.get("rejected"):
        return params["rejected"]
    if analysis.problem:
        return analysis.problem
    if params["depth_norm"]["values"] != [analysis.p_lo, analysis.p_hi]:
        return "depth_stats_mismatch"
    p_lo, p_hi = analysis.p_lo, analysis.p_hi
    for reg in params["regions"]:
        st = region_stats(item, reg["box"], p_lo, p_hi)
        if st is None:
            return "depth_region_invalid"
        if not st["norm_max"] - st["norm_min"] < r_max:
            return "depth_region_not_flat"
        x, y, s, _ = reg["box"]
        if params["markers"][str(reg["label"])] != [x + s // 2, y + s // 2]:
            return "marker_off_region"
    return marker_layout_problem(params["markers"], analysis.style, item.width, item.height)


# --------------------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------------------
class DepthTask(PretextTask):
    name = "depth"
    answer_type = "permutation"
    paper_counts = {"3-regions": 20620}
    requires_depth = True
    lossless_output = False

    def __init__(self, variant: str | None = None, *, r_max: float = R_MAX, d_min: float = D_MIN,
                 region_share: float = REGION_SHARE, min_region_side: int = MIN_REGION_SIDE, **kwargs: Any):
        super().__init__(variant, **kwargs)
        mt = _VARIANT.match(self.variant)
        if not mt:
            raise ValueError(f"depth variant must be 'k-regions' or 'k-regions-gapG' with k in 2..5 and G a "
                             f"normalised depth gap (e.g. 3-regions-gap0.2), got {self.variant!r}")
        self.k = int(mt.group(1))
        if mt.group(2) is not None:
            gap = float(mt.group(2))
            if not d_min <= gap < 0.5:
                raise ValueError(f"depth variant {self.variant!r}: the gap must be in [{d_min}, 0.5)")
            d_min = gap
        self.r_max, self.d_min = float(r_max), float(d_min)
        self.region_share, self.min_region_side = float(region_share), int(min_region_side)

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        return tuple(f"{k}-regions" for k in range(2, 6))

    @classmethod
    def default_variant(cls) -> str:
        return "3-regions"

    def _analysis(self, item: Item) -> DepthAnalysis:
        return analyse_depth(item, self.region_share, self.min_region_side, self.r_max)

    def make_params(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        a = self._analysis(item)
        if a.problem:
            return {"rejected": a.problem}
        if a.max_chain(self.d_min, self.k) < self.k:
            return {"rejected": "depth_no_valid_regions"}
        spacing2 = a.style.min_spacing ** 2
        chosen: list[int] = []
        for _ in range(SEARCH_RESTARTS):
            chosen = []
            idx = None  # the candidates still allowed (None: all of them)
            for _ in range(self.k):
                size = a.n if idx is None else idx.size
                if size == 0:
                    break
                r = rng.integers(size)
                c = int(r) if idx is None else int(idx[r])
                chosen.append(c)
                idx = _still_allowed(a, idx, c, spacing2, self.d_min)
            if len(chosen) == self.k:
                break
        else:
            return {"rejected": "depth_no_valid_regions"}
        labels = [int(v) + 1 for v in rng.permutation(self.k)]  # label of the i-th chosen region
        regions = []
        for lab, c in zip(labels, chosen):
            box = [int(a.x0[c]), int(a.y0[c]), a.side, a.side]
            st = region_stats(item, box, a.p_lo, a.p_hi)
            if st is None:  # cannot happen: the window search is exact
                return {"rejected": "depth_region_invalid"}
            regions.append(region_record(lab, a, c, st))
        regions.sort(key=lambda r: r["label"])
        return {
            "k": self.k,
            "r_max": self.r_max,
            "d_min": self.d_min,
            "separation": "interval",
            "order_statistic": "median",
            **common_meta(item, a),
            "regions": regions,
            "markers": {str(r["label"]): list(r["center"]) for r in regions},
        }

    def check(self, item: Item, params: dict[str, Any]) -> str | None:
        a = self._analysis(item)
        reason = verify_regions(item, params, a, self.r_max)
        if reason:
            return reason
        stats = sorted(
            (region_stats(item, r["box"], a.p_lo, a.p_hi) for r in params["regions"]),
            key=lambda st: st["norm_min"],
        )
        for near, far in zip(stats, stats[1:]):
            if not far["norm_min"] - near["norm_max"] > self.d_min:
                return "depth_regions_too_close"
        return None

    def render(self, item: Item, params: dict[str, Any]) -> Rendered:
        style = marker_style(params["region_side"])
        image = draw_markers(item.rgb, params["markers"], style)
        extra: dict[str, Any] = {"output_size": [item.width, item.height], "depth_source": item.depth_path}
        in_file = markers_in_file(item, params["markers"])
        if in_file:
            extra["markers_in_file"] = in_file
        return Rendered(images=[image], problem=get_prompt_set(self.prompt_set).depth(params["k"]), extra_meta=extra)

    def answer(self, params: dict[str, Any]) -> str:
        ordered = sorted(params["regions"], key=lambda r: r["norm_median"])
        return "-".join(str(r["label"]) for r in ordered)
