"""Relative 3D position prediction.

Two flat regions (all pixels valid, normalised depth range below 0.15) are marked 1 and 2.
An imagined camera stands at one of them (which label, at random) and faces the left of
the image, the right of the image, the viewer ("to me") or away from the viewer. Where is
the other region, seen from that camera? Options A-D are the four single directions
{Left, Right, Front, Back} when one offset counts, or the four combinations {Left-Front,
Right-Front, Right-Back, Left-Back} when both do; their order is shuffled.

Geometry on the ground plane. Coordinates are X (to the right in the image) and Z (away
from the viewer, i.e. depth). The offset of the target from the camera is d = (dX, dZ).
A camera facing angle t (the convention of the paper's position task: away 0 deg, left 90,
toward 180, right 270, counter-clockwise seen from above with X to the right and Z up) looks along
f = (-sin t, cos t); its right-hand side is r = (cos t, sin t). The target is then
``d . r`` to the camera's right and ``d . f`` in front of it:

=========  ===========  ===========  ==================  ==================
facing     f            r            right component     front component
=========  ===========  ===========  ==================  ==================
away       (0, 1)       (1, 0)       dX                  dZ
left       (-1, 0)      (0, 1)       dZ                  -dX
toward     (0, -1)      (-1, 0)      -dX                 -dZ
right      (1, 0)       (0, -1)      -dZ                 dX
=========  ===========  ===========  ==================  ==================

So a camera facing the viewer has its left on the image's right and its front towards
the viewer; a camera facing the image's left has its front on the image's left and its
left towards the viewer. Which offsets "count" is decided before the rotation, on the
image axes (|dX| against the lateral threshold, |dZ| against the depth threshold), and
each counting offset contributes its sign only.

Modes (the variant):

- ``image`` (the paper): dX is the difference of the marker centres' pixel x; dZ is the
  difference of the regions' normalised depth. Thresholds 150 px at 1600 px image width,
  scaled to the width (``absolute_thresholds=True`` keeps 150 px), and 0.25.
- ``metric`` (ours): needs metric depth and intrinsics. Each region centre is
  back-projected with its median depth Z: X = (u - cx) Z / fx. The camera's own X-Z plane
  stands in for the ground plane (exact for a level camera: height is the image y axis,
  which is dropped). Thresholds are max(0.5 m, 0.10 Zbar) lateral and max(0.5 m,
  0.15 Zbar) in depth, Zbar being the regions' mean depth: 0.5 m is a step a viewer
  reads in a room, and at range the relative term takes over (150 px of 1600 at a
  typical 60-70 degree field of view is about 0.1 Z across, so the lateral rule matches
  the paper's pixel rule; depth is judged less precisely than direction, hence 0.15).
- ``auto`` (default, the paper set): ``metric`` when the item has metric depth and
  intrinsics, otherwise ``image`` (MegaDepth, relative or order-only depth).

A ``-public`` suffix on the variant (``auto-public``, ...) draws the facing with the
public code's 30/30/30/10 weights (left/right/toward/away) instead of uniformly; the
``facing_weights`` argument does the same from the API.

Robust answers. Each region is an interval of values (its min..max depth, and in metric
mode its X over that depth range), so an offset "counts" only when the two intervals are
farther apart than the threshold, and "does not count" only when the farthest pair of
values is within it; pairs in between are never drawn. Counting offsets therefore have
the same sign under any per-region statistic, and the median we record is only for the
reader.

Height clause. The question adds "and ignore the height difference between the two
regions" when the depth offset counts or the markers stand more than 3 % of the image
height apart vertically; for two regions side by side at one depth (the public code's
"near" pairs, within 30 px vertically on ~1064 px images) it is left out, as the public
code did.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from ..prompts import get_prompt_set
from ..rendering.markers import draw_markers, marker_style
from ..sources.base import Item
from .base import PretextTask, Rendered
from .depth import (
    MIN_REGION_SIDE,
    R_MAX,
    REGION_SHARE,
    DepthAnalysis,
    analyse_depth,
    clear_of,
    common_meta,
    markers_in_file,
    near_band,
    region_record,
    region_stats,
    verify_regions,
)

LETTERS = ("A", "B", "C", "D")
FACINGS = ("left", "right", "toward", "away")
FACING_DEG = {"away": 0, "left": 90, "toward": 180, "right": 270}
FACING_PRESETS = {
    "uniform": (1.0, 1.0, 1.0, 1.0),
    "paper": (1.0, 1.0, 1.0, 1.0),
    "public": (30.0, 30.0, 30.0, 10.0),
}
SINGLE_OPTIONS = ("Left", "Right", "Front", "Back")
BOTH_OPTIONS = ("Left-Front", "Right-Front", "Right-Back", "Left-Back")
PAIR_KINDS = ("lateral", "depth", "both")

# Image-plane thresholds of the paper.
IMAGE_LATERAL_PX = 150.0
REFERENCE_WIDTH = 1600
IMAGE_DEPTH = 0.25
# Metric thresholds: absolute floor (m) and share of the mean depth.
METRIC_LATERAL = (0.5, 0.10)
METRIC_DEPTH = (0.5, 0.15)
HEIGHT_CLAUSE_SHARE = 0.03
SEARCH_RESTARTS = 24

_VARIANT = re.compile(r"^(auto|image|metric)(?:-x([1-4](?:\.\d)?))?(-public)?$")
"""The mode, an optional threshold scale (``auto-x2``: every lateral and depth threshold
doubled, so only offsets far beyond the paper's margins count: an easier level) and the
public code's facing weights (``-public``)."""


def facing_vectors(facing: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """(forward, right) unit vectors of a camera facing ``facing``, on the (X, Z) plane."""
    t = np.deg2rad(FACING_DEG[facing])
    f = (int(np.rint(-np.sin(t))), int(np.rint(np.cos(t))))
    r = (int(np.rint(np.cos(t))), int(np.rint(np.sin(t))))
    return f, r


def relative_direction(facing: str, lateral_sign: int, depth_sign: int) -> str:
    """The option text for a target offset by (sign dX, sign dZ) from a camera facing
    ``facing``; a zero sign means that offset does not count."""
    f, r = facing_vectors(facing)
    right = lateral_sign * r[0] + depth_sign * r[1]
    front = lateral_sign * f[0] + depth_sign * f[1]
    words = []
    if right:
        words.append("Right" if right > 0 else "Left")
    if front:
        words.append("Front" if front > 0 else "Back")
    if not words:
        raise ValueError("no offset counts")
    return "-".join(words)


def _facing_weights(spec) -> dict[str, float]:
    if spec is None:
        spec = "uniform"
    if isinstance(spec, str):
        try:
            w = FACING_PRESETS[spec]
        except KeyError:
            raise ValueError(f"facing_weights preset must be one of {', '.join(FACING_PRESETS)}; got {spec!r}") from None
        values = dict(zip(FACINGS, w))
    elif isinstance(spec, dict):
        unknown = set(spec) - set(FACINGS)
        if unknown:
            raise ValueError(f"unknown facings {sorted(unknown)}; expected {FACINGS}")
        values = {f: float(spec.get(f, 0.0)) for f in FACINGS}
    else:
        seq = [float(v) for v in spec]
        if len(seq) != 4:
            raise ValueError("facing_weights needs four weights (left, right, toward, away)")
        values = dict(zip(FACINGS, seq))
    total = sum(values.values())
    if any(v < 0 for v in values.values()) or total <= 0:
        raise ValueError("facing weights must be non-negative and not all zero")
    return {f: v / total for f, v in values.items()}


def _classify(lo1, hi1, lo2, hi2, thr):
    """Per pair: does the offset count (intervals farther apart than ``thr``), or is it
    clearly below (farthest values within ``thr``)? Arrays or scalars."""
    gap = np.maximum(lo1, lo2) - np.minimum(hi1, hi2)
    spread = np.maximum(hi1, hi2) - np.minimum(lo1, lo2)
    return gap > thr, spread <= thr


class PositionTask(PretextTask):
    name = "position"
    answer_type = "choice"
    paper_counts: ClassVar[dict[str, int]] = {"auto": 20200}
    requires_depth = True
    lossless_output = False

    def __init__(
        self,
        variant: str | None = None,
        *,
        facing_weights=None,
        absolute_thresholds: bool = False,
        image_lateral_px: float = IMAGE_LATERAL_PX,
        image_depth: float = IMAGE_DEPTH,
        metric_lateral: tuple[float, float] = METRIC_LATERAL,
        metric_depth: tuple[float, float] = METRIC_DEPTH,
        r_max: float = R_MAX,
        region_share: float = REGION_SHARE,
        min_region_side: int = MIN_REGION_SIDE,
        **kwargs: Any,
    ):
        super().__init__(variant, **kwargs)
        mt = _VARIANT.match(self.variant)
        if not mt:
            raise ValueError(
                "position variant must be auto, image or metric, optionally with a threshold scale '-xS' "
                f"(S in 1..4, e.g. auto-x2) and '-public'; got {self.variant!r}"
            )
        self.mode = mt.group(1)
        scale = float(mt.group(2)) if mt.group(2) else 1.0
        if facing_weights is None and mt.group(3):
            facing_weights = "public"
        self.facing_weights = _facing_weights(facing_weights)
        self.absolute_thresholds = bool(absolute_thresholds)
        self.threshold_scale = scale
        self.image_lateral_px, self.image_depth = float(image_lateral_px) * scale, float(image_depth) * scale
        self.metric_lateral = tuple(float(v) * scale for v in metric_lateral)
        self.metric_depth = tuple(float(v) * scale for v in metric_depth)
        self.r_max, self.region_share, self.min_region_side = float(r_max), float(region_share), int(min_region_side)

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        return ("auto", "image", "metric", "auto-public", "image-public", "metric-public")

    # -- geometry ---------------------------------------------------------------------
    def _mode_for(self, item: Item) -> str | None:
        metric_ok = item.depth_kind == "metric" and item.intrinsics is not None
        if self.mode == "image":
            return "image"
        if self.mode == "metric":
            return "metric" if metric_ok else None
        return "metric" if metric_ok else "image"

    def _image_thresholds(self, item: Item) -> dict[str, Any]:
        lateral = self.image_lateral_px if self.absolute_thresholds else (
            self.image_lateral_px * item.width / REFERENCE_WIDTH
        )
        return {"lateral": lateral, "depth": self.image_depth, "lateral_units": "px", "depth_units": "normalised",
                "absolute": self.absolute_thresholds, "reference_width": REFERENCE_WIDTH,
                "reference_lateral_px": self.image_lateral_px}

    def _metric_thresholds(self, zbar):
        return (np.maximum(self.metric_lateral[0], self.metric_lateral[1] * zbar),
                np.maximum(self.metric_depth[0], self.metric_depth[1] * zbar))

    def _axes(self, mode: str, item: Item, x, z_lo, z_hi, n_lo, n_hi):
        """Per-region intervals on the two ground axes: (lateral lo, hi, depth lo, hi)."""
        if mode == "image":
            x = np.asarray(x, dtype=np.float64)
            return x, x, np.asarray(n_lo, dtype=np.float64), np.asarray(n_hi, dtype=np.float64)
        fx, _, cxp, _ = item.intrinsics
        a = (np.asarray(x, dtype=np.float64) - cxp) / fx
        p, q = a * z_lo, a * z_hi
        return np.minimum(p, q), np.maximum(p, q), np.asarray(z_lo, dtype=np.float64), np.asarray(z_hi, dtype=np.float64)

    def _pair_classes(self, mode, item, axes1, axes2, image_thr):
        l1lo, l1hi, d1lo, d1hi = axes1
        l2lo, l2hi, d2lo, d2hi = axes2
        if mode == "image":
            tl, td = image_thr["lateral"], image_thr["depth"]
        else:
            tl, td = self._metric_thresholds(((d1lo + d1hi) + (d2lo + d2hi)) / 4.0)  # symmetric in the pair
        lat_counts, lat_zero = _classify(l1lo, l1hi, l2lo, l2hi, tl)
        dep_counts, dep_zero = _classify(d1lo, d1hi, d2lo, d2hi, td)
        return lat_counts, lat_zero, dep_counts, dep_zero, tl, td

    def _candidate_axes(self, mode: str, item: Item, a: DepthAnalysis):
        """:meth:`_axes` of every candidate of ``a`` (lateral lo, hi, depth lo, hi) and the
        sum of each depth interval's ends, computed once per analysis."""
        key = ("position_axes", mode, item.intrinsics if mode == "metric" else None)
        axes = a.memo.get(key)
        if axes is None:
            axes = self._axes(mode, item, a.cx, a.raw_lo, a.raw_hi, a.lo, a.hi)
            axes = a.memo[key] = (*axes, axes[2] + axes[3])  # + the depth sums of the metric thresholds
        return axes

    def _partners(self, mode, item, a: DepthAnalysis, axes, c1: int, spacing2, image_thr, kind: str) -> np.ndarray:
        """The candidates (ascending) that make an unambiguous pair of ``kind`` with
        candidate ``c1`` and whose markers keep clear of its marker.

        The same set as ``~near & (lc | lz) & (dc | dz) & <kind>`` over the four classes of
        :meth:`_pair_classes`, with less work: an offset that is clearly below its threshold
        cannot also count (``gap <= spread`` in floating point too, rounding being
        monotone), so ``lateral`` is ``lc & dz``, ``depth`` is ``dc & lz`` and ``both`` is
        ``lc & dc``; each class is computed exactly as there, only the two a kind needs; and
        the distance test runs only on the rows near ``c1`` (:func:`near_band`)."""
        l_lo, l_hi, d_lo, d_hi = axes[:4]
        l1lo, l1hi, d1lo, d1hi = (v[c1] for v in axes[:4])
        if mode == "image":
            tl, td = image_thr["lateral"], image_thr["depth"]
        else:  # _pair_classes' mean depth of the pair (axes[4] = d_lo + d_hi) and thresholds
            tl, td = self._metric_thresholds(((d1lo + d1hi) + axes[4]) / 4.0)
        if kind == "lateral":
            mask = (np.maximum(l1lo, l_lo) - np.minimum(l1hi, l_hi)) > tl  # lc
            mask &= (np.maximum(d1hi, d_hi) - np.minimum(d1lo, d_lo)) <= td  # dz
        elif kind == "depth":
            mask = (np.maximum(d1lo, d_lo) - np.minimum(d1hi, d_hi)) > td  # dc
            mask &= (np.maximum(l1hi, l_hi) - np.minimum(l1lo, l_lo)) <= tl  # lz
        else:
            mask = (np.maximum(l1lo, l_lo) - np.minimum(l1hi, l_hi)) > tl  # lc
            mask &= (np.maximum(d1lo, d_lo) - np.minimum(d1hi, d_hi)) > td  # dc
        b0, b1 = near_band(a, c1, spacing2)
        mask[b0:b1] &= clear_of(a, slice(b0, b1), c1, spacing2)
        return np.flatnonzero(mask)

    def _region_axes(self, mode, item, reg):
        return self._axes(mode, item, reg["center"][0], reg["depth_min"], reg["depth_max"],
                          reg["norm_min"], reg["norm_max"])

    def _geometry(self, mode: str, item: Item, camera: dict, target: dict) -> dict[str, Any]:
        """Offsets of ``target`` from ``camera`` and whether each counts, from the
        regions' full-resolution statistics."""
        image_thr = self._image_thresholds(item)
        lc, lz, dc, dz, tl, td = self._pair_classes(mode, item, self._region_axes(mode, item, camera),
                                                    self._region_axes(mode, item, target), image_thr)
        if mode == "image":
            lateral = float(target["center"][0] - camera["center"][0])
            depth = target["norm_median"] - camera["norm_median"]
            thresholds = image_thr
        else:
            fx, _, cxp, _ = item.intrinsics
            xc = (camera["center"][0] - cxp) * camera["depth_median"] / fx
            xt = (target["center"][0] - cxp) * target["depth_median"] / fx
            lateral = float(xt - xc)
            depth = target["depth_median"] - camera["depth_median"]
            thresholds = {"lateral": float(tl), "depth": float(td), "lateral_units": "m", "depth_units": "m",
                          "lateral_rule": list(self.metric_lateral), "depth_rule": list(self.metric_depth)}
        return {
            "offsets": {"lateral": lateral, "depth": float(depth),
                        "vertical_px": int(target["center"][1] - camera["center"][1])},
            "counts": {"lateral": bool(lc), "depth": bool(dc)},
            "ambiguous": {"lateral": not (bool(lc) or bool(lz)), "depth": not (bool(dc) or bool(dz))},
            "thresholds": thresholds,
        }

    # -- the four steps -----------------------------------------------------------------
    def make_params(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        a: DepthAnalysis = analyse_depth(item, self.region_share, self.min_region_side, self.r_max)
        if a.problem:
            return {"rejected": a.problem}
        mode = self._mode_for(item)
        if mode is None:
            return {"rejected": "position_needs_metric_depth"}
        image_thr = self._image_thresholds(item)
        axes = self._candidate_axes(mode, item, a)
        spacing2 = a.style.min_spacing ** 2
        pair = None
        for _ in range(SEARCH_RESTARTS):
            c1 = int(rng.integers(a.n))
            # the partners of a kind are computed only when its turn comes (no random
            # draw happens in between, so drawing the order first changes nothing)
            for k in rng.permutation(len(PAIR_KINDS)):
                idx = self._partners(mode, item, a, axes, c1, spacing2, image_thr, PAIR_KINDS[k])
                if idx.size:
                    pair = (c1, int(idx[rng.integers(idx.size)]), PAIR_KINDS[k])
                    break
            if pair:
                break
        if pair is None:
            return {"rejected": "position_no_valid_pair"}
        c1, c2, kind = pair
        first_label = int(rng.integers(1, 3))
        labelled = {first_label: c1, 3 - first_label: c2}
        regions = []
        for lab in (1, 2):
            c = labelled[lab]
            box = [int(a.x0[c]), int(a.y0[c]), a.side, a.side]
            st = region_stats(item, box, a.p_lo, a.p_hi)
            if st is None:  # cannot happen: the window search is exact
                return {"rejected": "depth_region_invalid"}
            regions.append(region_record(lab, a, c, st))
        camera_label = int(rng.integers(1, 3))
        target_label = 3 - camera_label
        names = list(self.facing_weights)
        facing = names[int(rng.choice(len(names), p=[self.facing_weights[f] for f in names]))]
        geo = self._geometry(mode, item, regions[camera_label - 1], regions[target_label - 1])
        both = geo["counts"]["lateral"] and geo["counts"]["depth"]
        pool = BOTH_OPTIONS if both else SINGLE_OPTIONS
        options = [pool[int(i)] for i in rng.permutation(4)]
        ignore_height = geo["counts"]["depth"] or abs(geo["offsets"]["vertical_px"]) > HEIGHT_CLAUSE_SHARE * item.height
        return {
            "mode": mode,
            "r_max": self.r_max,
            **common_meta(item, a),
            "regions": regions,
            "markers": {str(r["label"]): list(r["center"]) for r in regions},
            "camera_label": camera_label,
            "target_label": target_label,
            "facing": facing,
            "facing_deg": FACING_DEG[facing],
            "facing_weights": dict(self.facing_weights),
            "pair_kind": kind,
            **geo,
            "options": options,
            "ignore_height": bool(ignore_height),
        }

    def check(self, item: Item, params: dict[str, Any]) -> str | None:
        a = analyse_depth(item, self.region_share, self.min_region_side, self.r_max)
        reason = verify_regions(item, params, a, self.r_max)
        if reason:
            return reason
        regions = {r["label"]: dict(r) for r in params["regions"]}
        for r in regions.values():
            r.update(region_stats(item, r["box"], a.p_lo, a.p_hi))
        geo = self._geometry(params["mode"], item, regions[params["camera_label"]], regions[params["target_label"]])
        if geo["ambiguous"]["lateral"] or geo["ambiguous"]["depth"]:
            return "position_ambiguous_offset"
        if not (geo["counts"]["lateral"] or geo["counts"]["depth"]):
            return "position_no_offset"
        if geo["counts"] != params["counts"] or geo["offsets"] != params["offsets"]:
            return "position_geometry_mismatch"
        return None

    def render(self, item: Item, params: dict[str, Any]) -> Rendered:
        style = marker_style(params["region_side"])
        image = draw_markers(item.rgb, params["markers"], style)
        problem = get_prompt_set(self.prompt_set).position(
            params["camera_label"], params["target_label"], params["facing"], params["options"], params["ignore_height"]
        )
        extra: dict[str, Any] = {"output_size": [item.width, item.height], "depth_source": item.depth_path}
        in_file = markers_in_file(item, params["markers"])
        if in_file:
            extra["markers_in_file"] = in_file
        return Rendered(images=[image], problem=problem, options=list(params["options"]), extra_meta=extra)

    def answer_text(self, params: dict[str, Any]) -> str:
        off, counts = params["offsets"], params["counts"]
        sx = int(np.sign(off["lateral"])) if counts["lateral"] else 0
        sz = int(np.sign(off["depth"])) if counts["depth"] else 0
        return relative_direction(params["facing"], sx, sz)

    def answer(self, params: dict[str, Any]) -> str:
        return LETTERS[params["options"].index(self.answer_text(params))]
