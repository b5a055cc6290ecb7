"""Cross-view correspondence (issue 24; not one of the paper's five tasks).

Two images of one scene from two viewpoints. A point is marked 1 in the first image; the
second shows N candidate points marked A, B, C, ... (3 to 6), and exactly one of them is
the same point of the scene. Which letter? The marks are the depth tasks' circled labels
(the point is the ring's centre, :mod:`spatial_ssrl.rendering.markers`).

Sources
-------
- Procedural scenes (built in): the first view is the item itself (the scene's default
  camera); the second is the same scene rendered from a pose drawn here (a sideways step
  of 0.3-1.0 m, some forward/backward and height change, a turn of up to 22 degrees back
  towards the content and a small tilt; :func:`~spatial_ssrl.sources.procedural.render_view`).
  A pixel of the first view is back-projected with its depth and the intrinsics, carried
  into the second camera's frame through the two poses and projected; the second view
  *sees* it when its own depth at that pixel agrees with the point's (within 2 % + 1 cm).
- Rectified stereo pairs with ground-truth disparity of the left view (the Middlebury pair
  scikit-image ships is built in; any ``*_left.*`` / ``*_right.*`` or ``im0`` / ``im1`` pair
  loaded with disparity). The left pixel (u, v) with disparity d is seen at (u - d, v) in the
  right view. With one disparity map, occlusion is read from the row: the pixel is hidden
  in the right view when a nearer pixel further right on the row (disparity larger by at
  least ``OCCLUSION_JUMP``) lands at or left of its own landing place plus
  ``OCCLUSION_MARGIN`` (crossing over it, or ending right beside it); pixels without
  disparity are never used. The order of the two views is drawn (left or right first), and
  every point must look alike in both views (mean absolute difference of its window at most
  ``APPEARANCE_TOL``), which catches a wrong ground truth.
- Posed pairs (an RGB-D manifest line with ``pose`` and ``pair``, both views with metric
  depth; :mod:`spatial_ssrl.sources.posed`): the order is drawn; points are sampled in the
  view shown first, back-projected with its depth, carried by the two camera-to-world
  matrices into the other camera and projected; that view sees a point when its depth there
  agrees within ``POSED_VISIBLE_TOL``, and the point's windows must look alike in both views
  (``APPEARANCE_TOL``), which catches a wrong pose. No depth for the second view:
  ``correspondence_no_second_depth`` (occlusion cannot be checked).

Every candidate (the true one and the distractors) is a point seen in *both* views, so no
distractor can be ruled out for being absent from the first image, and each one sits off
depth edges in both (depth range within ``EDGE_TOL`` of its nearest value over a small
window around the pixel: a pixel of misplacement cannot jump to another surface).
Distractors lie at least ``max(0.1 m, 5 % of the true point's depth)`` from it in 3D, so
none is the same place, and their rings keep clear of each other.

Variants (the levels): ``N-candidates-far`` and ``N-candidates-near`` with N = 3..6.

- ``far``: every two candidates at least 18 % of the shorter shown side apart in the
  second image (pairwise, not only from the true one: an isolated true point would give the
  answer away);
- ``near``: all candidates within 22 % of the shorter side of a cluster centre drawn
  uniformly around the true point (which may then sit anywhere in the cluster), only the
  rings' clearance apart: neighbours on the same surfaces to tell apart.

No shortcut through positions. Views of one scene move little, so with the full frames
the true candidate would nearly always be the one nearest the marked point's place, and,
the distractors being drawn around it, the middle one of the candidates. Hence:

- each view is shown as a crop (``FRAME_SHARE`` of its width and height cut off) whose
  offset is chosen (:meth:`CorrespondenceTask._framing`) so that the candidate nearest the
  marked point's place in the picture is the true one with probability 1/N only, and a
  distractor otherwise;
- the true point's rank among the candidates ordered by their summed distance to the
  others is drawn uniformly, and the candidates are kept only with that rank.

Over the built-in scenes both rules of thumb then score about chance (1/N).

The params hold the poses (or the stereo order and files), the crop offsets, the marked
pixel, the exact position of the match in the second image, each candidate's ring centre,
source pixel and 3D point (all image positions in the shown crops); ``answer(params)`` is
the letter of the candidate nearest the match.

Rejections (named): ``correspondence_no_second_view`` (neither a procedural scene nor a
stereo pair with disparity nor a posed pair), ``correspondence_needs_metric_depth``,
``correspondence_no_second_depth``, ``correspondence_pair_<reason>`` (a posed pair's second
view cannot be read),
``correspondence_pose_<reason>`` (the second camera cannot stand there),
``correspondence_size_mismatch``, ``correspondence_no_visible_point`` (too few points seen
in both views), ``correspondence_too_few_distractors`` (no candidate set meets the level's
rules), and, when a drawn sample is checked again, the reason a candidate fails
(``correspondence_point_invalid_depth``, ``_point_on_depth_edge``, ``_point_out_of_view``,
``_point_occluded``, ``_appearance_mismatch``), ``correspondence_geometry_mismatch``,
``correspondence_candidate_rule`` and the marker layout's reasons.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..prompts import get_prompt_set
from ..rendering.markers import draw_markers, marker_layout_problem, marker_style
from ..sources.base import Item
from ..sources.procedural import Pose, parse_procedural_path, pose_problem, render_view
from .base import PretextTask, Rendered
from .camera_motion import (
    POSED_ORDERS,
    posed_files,
    posed_views,
    read_partner,
    stereo_partner,
)
from .depth import MIN_REGION_SIDE, REGION_SHARE

LETTERS = "ABCDEF"
_VARIANT = re.compile(r"^([3-6])-candidates-(far|near)$")

SAMPLE_PIXELS = 6000
"""First-view pixels (a regular grid) examined as possible points, per sample."""
EDGE_TOL = 0.10
"""Largest depth range (share of the nearest depth) over the core window of a point."""
VISIBLE_TOL = (0.02, 0.01)
"""Procedural views: the second view's depth must match the point's within rel * z + abs (m)."""
POSED_VISIBLE_TOL = (0.03, 0.02)
"""Posed pairs (a manifest's depth and poses, with a sensor's noise): the same, a little wider."""
OCCLUSION_MARGIN = 1.0
"""Stereo: a pixel counts as hidden when a nearer pixel lands within this many pixels of it."""
OCCLUSION_JUMP = 0.5
"""Stereo: "nearer" means a disparity larger by at least this many pixels."""
APPEARANCE_TOL = 24.0
"""Stereo: largest mean absolute difference (0-255) between a point's windows in the two views."""
MIN_SEPARATION_M = 0.1
MIN_SEPARATION_SHARE = 0.05
"""A distractor's 3D point lies at least max(MIN_SEPARATION_M, share * depth) from the true one."""
FAR_SHARE = 0.18
"""``far``: candidates pairwise at least this share of the shorter side apart (view 2)."""
NEAR_SHARE = 0.22
"""``near``: candidates within this share of the shorter side of the cluster centre."""
FRAME_SHARE = 0.3
"""Each view is shown cropped by this share of its width and of its height (see _framing)."""
WINDOW_SHARE = 0.75
"""Candidates lie in a window of half-size this share of the reach (see _choose)."""
JITTER_SHARE = 0.08
"""The framing places the drawn candidate within this share of the shorter shown side of the
marked point's place (and nearer to it than any other candidate)."""
SEARCH_RESTARTS = 64

# Second camera of a procedural sample, relative to the first (metres, degrees).
STEP_RIGHT = (0.3, 1.0)
STEP_FORWARD = (-0.5, 0.5)
STEP_DOWN = (-0.4, 0.2)
TURN_BACK = (0.0, 22.0)
TILT = (-8.0, 8.0)


@dataclass
class Pool:
    """Points seen in both views: where each was sampled in the item (``anchor``, integer
    pixels), where it is in the first and second image shown (``p1``, ``p2``, float
    pixels), its 3D point in the item camera's frame, and how many sampled pixels each
    filter let through (``counts``, in filter order) or, per point, the first filter it
    failed (``failed``: None when it passed them all)."""

    anchor: np.ndarray
    p1: np.ndarray
    p2: np.ndarray
    xyz: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)
    failed: list[str | None] = field(default_factory=list)

    def take(self, keep: np.ndarray) -> Pool:
        return Pool(self.anchor[keep], self.p1[keep], self.p2[keep], self.xyz[keep], self.counts)


def _core(side: int) -> int:
    """Half-size of the window a point's depth must be flat over."""
    return max(2, side // 4)


def _flat(depth: np.ndarray, us: np.ndarray, vs: np.ndarray, half: int) -> np.ndarray:
    """Per pixel (us, vs): every depth of the (2 half + 1)^2 window is valid and their range
    is at most EDGE_TOL of the nearest. Pixels whose window leaves the map are not flat."""
    h, w = depth.shape
    inside = (us >= half) & (us < w - half) & (vs >= half) & (vs < h - half)
    out = np.zeros(us.shape, dtype=bool)
    if not inside.any():
        return out
    d = np.arange(-half, half + 1)
    win = depth[vs[inside, None, None] + d[None, :, None], us[inside, None, None] + d[None, None, :]]
    win = win.reshape(win.shape[0], -1).astype(np.float64)
    with np.errstate(invalid="ignore"):
        lo, hi = win.min(axis=1), win.max(axis=1)
        ok = np.isfinite(win).all(axis=1) & (lo > 0) & (hi - lo <= EDGE_TOL * lo)
    out[inside] = ok
    return out


def _back_project(us, vs, z, intr) -> np.ndarray:
    fx, fy, cx, cy = (float(t) for t in intr)
    z = np.asarray(z, dtype=np.float64)
    return np.stack([(np.asarray(us) - cx) * z / fx, (np.asarray(vs) - cy) * z / fy, z], axis=-1)


def _fits(p: np.ndarray, radius: int, width: int, height: int) -> np.ndarray:
    """The marker of radius ``radius`` centred at round(p) lies inside the image."""
    r = np.rint(p)
    return (r[:, 0] >= radius) & (r[:, 0] <= width - 1 - radius) & (r[:, 1] >= radius) & (r[:, 1] <= height - 1 - radius)


class _Filters:
    """Applies named filters in turn, counting survivors and noting each point's first failure."""

    def __init__(self, n: int):
        self.alive = np.ones(n, dtype=bool)
        self.failed: list[str | None] = [None] * n
        self.counts: dict[str, int] = {"sampled": n}

    def apply(self, name: str, ok: np.ndarray, count_as: str | None = None) -> None:
        for i in np.flatnonzero(self.alive & ~ok):
            self.failed[i] = name
        self.alive &= ok
        self.counts[count_as or name] = int(self.alive.sum())



def _second_view(f: _Filters, anchor: np.ndarray, cam2: np.ndarray, intrinsics, depth2: np.ndarray, tol, radius: int,
                 half: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project points given in the second camera's frame (``cam2``) into the second view and
    apply the filters that view decides: in view (both marks fit), seen (its depth there
    agrees within ``tol``: relative, absolute), not on a depth edge. Returns the points in the
    first view, in the second, and the second's pixel indices."""
    w, h = size
    fx, fy, cx, cy = intrinsics
    z2 = cam2[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        p2 = np.stack([fx * cam2[:, 0] / z2 + cx, fy * cam2[:, 1] / z2 + cy], axis=1)
    p1 = anchor.astype(np.float64)
    ahead = np.isfinite(p2).all(axis=1) & (z2 > 1e-3)
    f.apply("point_out_of_view", ahead & _fits(np.where(ahead[:, None], p2, 0.0), radius, w, h)
            & _fits(p1, radius, w, h))
    i2 = np.rint(np.where(f.alive[:, None], p2, 0.0)).astype(np.intp)
    with np.errstate(invalid="ignore"):  # no depth there: not seen
        seen = np.abs(depth2[i2[:, 1], i2[:, 0]].astype(np.float64) - z2) <= tol[0] * z2 + tol[1]
    f.apply("point_occluded", seen)
    f.apply("point_on_depth_edge", _flat(depth2, i2[:, 0], i2[:, 1], half), "point_on_depth_edge_view2")
    return p1, p2, i2

def stereo_disparity(item: Item) -> np.ndarray | None:
    """The left view's disparity on the item's pixel grid, recovered from the depth the
    loader made of it (``info.depth_conversion``); NaN where invalid. None when the item's
    depth did not come from disparity."""
    conv = item.info.get("depth_conversion") or {}
    if conv.get("from") != "disparity" or item.depth is None:
        return None
    file_w = (item.info.get("depth_file_size") or [item.width])[0]
    scale = item.width / float(file_w)  # disparity-map pixels -> item pixels
    doffs = float(conv.get("doffs") or 0.0)
    z = item.depth.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if conv.get("baseline") and conv.get("fx"):
            d = float(conv["fx"]) * float(conv["baseline"]) / z - doffs
        else:
            d = 1.0 / z - doffs
    d *= scale
    d[~np.isfinite(d) | (d <= 0)] = np.nan
    return d


def hidden_in_right(disp: np.ndarray, margin: float = OCCLUSION_MARGIN, jump: float = OCCLUSION_JUMP) -> np.ndarray:
    """Left pixels that the right view does not see (or sees right beside a nearer
    surface's edge), from the left disparity alone. Pixel (u, v) lands at x = u - d in the
    right view; it is hidden when a pixel k > 0 places further right on its row is nearer
    (disparity larger by at least ``jump``) and lands at or left of x + ``margin``: to land
    there it must cross over (or come within ``margin`` of) the point's own place."""
    h, w = disp.shape
    d = np.where(np.isfinite(disp), disp, -np.inf)  # an invalid pixel hides nothing
    x = np.arange(w, dtype=np.float64)[None, :] - d
    hidden = np.zeros((h, w), dtype=bool)
    valid = np.isfinite(disp)
    if not valid.any():
        return hidden
    reach = math.ceil(float(np.nanmax(disp) - np.nanmin(disp)) + margin)
    for k in range(1, min(reach, w - 1) + 1):
        near, far = d[:, k:], d[:, :-k]
        hidden[:, :-k] |= (near >= far + jump) & (x[:, k:] <= x[:, :-k] + margin)
    return hidden & valid


_STEREO_CACHE: list[tuple[np.ndarray, np.ndarray]] = []


def stereo_maps(item: Item, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(disparity, hidden) of a stereo item; ``hidden`` is computed for the given rows only
    (False elsewhere). The disparity is kept for the last two items, keyed by the very
    depth array it came from, so a hit is always exact."""
    disp = next((d for depth, d in _STEREO_CACHE if depth is item.depth), None)
    if disp is None:
        disp = stereo_disparity(item)
        if disp is None:
            return None
        _STEREO_CACHE.insert(0, (item.depth, disp))
        del _STEREO_CACHE[2:]
    hidden = np.zeros(disp.shape, dtype=bool)
    rows = np.unique(np.clip(rows, 0, disp.shape[0] - 1))
    hidden[rows] = hidden_in_right(disp[rows])
    return disp, hidden


def _right_name(left: str) -> str:
    """The right view's name for the left view's (``x_left.png`` -> ``x_right.png``,
    ``im0.png`` -> ``im1.png``), in the same folder."""
    folder, _, base = left.rpartition("/")
    for pattern, repl in ((r"^(.*)_left(\.\w+)$", r"\1_right\2"), (r"^im0(\.\w+)$", r"im1\1")):
        if re.match(pattern, base):
            return (folder + "/" if folder else "") + re.sub(pattern, repl, base)
    return base


def centrality_rank(points: np.ndarray) -> int:
    """Where the first point comes when the points are ordered by their summed distance to
    the others, smallest first (ties: the first point counts as the less central)."""
    total = np.linalg.norm(points[:, None] - points[None], axis=2).sum(axis=1)
    return int(np.sum(total[1:] <= total[0]))


class CorrespondenceTask(PretextTask):
    name = "correspondence"
    answer_type = "choice"
    paper_counts: ClassVar[dict[str, float]] = {}  # not a paper task: only by --tasks
    requires_depth = True
    lossless_output = False
    VARIANTS = ("4-candidates-far", "3-candidates-far", "6-candidates-far", "4-candidates-near",
                "6-candidates-near")

    def __init__(self, variant: str | None = None, **kwargs: Any):
        super().__init__(variant, **kwargs)
        m = _VARIANT.match(self.variant)
        if not m:
            raise ValueError("correspondence variant must be 'N-candidates-far' or 'N-candidates-near' with N in "
                             f"3..6 (e.g. {', '.join(self.VARIANTS)}); got {self.variant!r}")
        self.n = int(m.group(1))
        self.spread = m.group(2)

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        return cls.VARIANTS

    # -- the two views ------------------------------------------------------------------
    def _second_pose(self, rng: np.random.Generator) -> Pose:
        sign = 1.0 if rng.integers(2) else -1.0
        return Pose().moved(right=sign * float(rng.uniform(*STEP_RIGHT)), down=float(rng.uniform(*STEP_DOWN)),
                            forward=float(rng.uniform(*STEP_FORWARD)),
                            turn_deg=-sign * float(rng.uniform(*TURN_BACK)), tilt_deg=float(rng.uniform(*TILT)))

    def pool(self, item: Item, params: dict[str, Any], us: np.ndarray, vs: np.ndarray) -> Pool:
        """Evaluate the item pixels (us, vs) as points of the question ``params`` sets up
        (source, poses or stereo order, marker size)."""
        us = np.asarray(us, dtype=np.intp)
        vs = np.asarray(vs, dtype=np.intp)
        radius = int(params["marker"]["radius"])
        half = _core(int(params["region_side"]))
        w, h = item.width, item.height
        f = _Filters(us.size)
        # a posed pair's points are sampled in the view shown first, with its depth
        posed = posed_views(item, params["order"]) if params["source"] == "posed" else None
        depth1, intr1 = (posed[0][1], posed[0][2]) if posed else (item.depth, item.intrinsics)
        z1 = np.full(us.shape, np.nan)
        inside = (us >= 0) & (us < w) & (vs >= 0) & (vs < h)
        z1[inside] = depth1[vs[inside], us[inside]]
        with np.errstate(invalid="ignore"):
            f.apply("point_invalid_depth", np.isfinite(z1) & (z1 > 0))
        f.apply("point_on_depth_edge", _flat(depth1, us, vs, half))
        xyz = _back_project(us, vs, np.where(f.alive, z1, 1.0), intr1)
        anchor = np.stack([us, vs], axis=1)
        if posed:
            (rgb_a, _, _, pose_a), (rgb_b, depth_b, intr_b, pose_b) = posed
            cam2 = (xyz @ pose_a[:3, :3].T + pose_a[:3, 3] - pose_b[:3, 3]) @ pose_b[:3, :3]
            p1, p2, i2 = _second_view(f, anchor, cam2, intr_b, depth_b, POSED_VISIBLE_TOL, radius, half, (w, h))
            f.apply("appearance_mismatch", self._alike(rgb_a, rgb_b, anchor, i2,
                                                       max(3, int(params["region_side"]) // 3), f.alive))
        elif params["source"] == "procedural":
            second = Pose.from_dict(params["poses"][1])
            view2 = render_view(params["scene_seed"], (w, h), second)
            cam2 = second.to_camera(Pose.from_dict(params["poses"][0]).to_scene(xyz))
            p1, p2, i2 = _second_view(f, anchor, cam2, view2.intrinsics, view2.depth, VISIBLE_TOL, radius, half, (w, h))
        else:
            disp, hidden = stereo_maps(item, vs)
            d = np.where(f.alive, disp[np.clip(vs, 0, h - 1), np.clip(us, 0, w - 1)], 0.0)
            right = np.stack([us - d, vs.astype(np.float64)], axis=1)
            p1, p2 = (anchor.astype(np.float64), right) if params["order"] == "left-right" \
                else (right, anchor.astype(np.float64))
            f.apply("point_out_of_view", np.isfinite(d) & _fits(np.nan_to_num(p1), radius, w, h)
                    & _fits(np.nan_to_num(p2), radius, w, h))
            f.apply("point_occluded", ~hidden[np.clip(vs, 0, h - 1), np.clip(us, 0, w - 1)])
            rgb2 = self._right_view(item)
            f.apply("appearance_mismatch", self._alike(item.rgb, rgb2, anchor, np.rint(np.nan_to_num(right)),
                                                       max(3, int(params["region_side"]) // 3), f.alive))
        out = Pool(anchor, p1, p2, xyz, f.counts, f.failed)
        return out

    @staticmethod
    def _alike(left: np.ndarray, right: np.ndarray, a: np.ndarray, b: np.ndarray, half: int,
               alive: np.ndarray) -> np.ndarray:
        """Stereo: the window of each point in the left view looks like its window in the
        right view (mean absolute difference at most APPEARANCE_TOL)."""
        h, w = left.shape[:2]
        ok = np.zeros(len(a), dtype=bool)
        d = np.arange(-half, half + 1)
        b = b.astype(np.intp)
        inside = alive & (a[:, 0] >= half) & (a[:, 0] < w - half) & (a[:, 1] >= half) & (a[:, 1] < h - half) \
            & (b[:, 0] >= half) & (b[:, 0] < w - half) & (b[:, 1] >= half) & (b[:, 1] < h - half)
        idx = np.flatnonzero(inside)
        for start in range(0, idx.size, 512):  # bounded memory: 512 windows at a time
            k = idx[start:start + 512]
            wl = left[a[k, 1, None, None] + d[None, :, None], a[k, 0, None, None] + d[None, None, :]].astype(np.int16)
            wr = right[b[k, 1, None, None] + d[None, :, None], b[k, 0, None, None] + d[None, None, :]].astype(np.int16)
            ok[k] = np.abs(wl - wr).reshape(len(k), -1).mean(axis=1) <= APPEARANCE_TOL
        return ok

    # -- drawing ------------------------------------------------------------------------
    def make_params(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        base = self._setup(rng, item)
        if "rejected" in base:
            return base
        h, w = item.height, item.width
        step = max(1, round(math.sqrt(h * w / SAMPLE_PIXELS)))
        off = step // 2
        vs, us = np.mgrid[off:h:step, off:w:step]
        pool = self.pool(item, base, us.ravel(), vs.ravel())
        counts = pool.counts
        pool = pool.take(np.array([f is None for f in pool.failed], dtype=bool))
        if len(pool.anchor) < self.n:
            return {"rejected": "correspondence_no_visible_point"}
        chosen = self._choose(rng, base, pool)
        if chosen is None:
            return {"rejected": "correspondence_too_few_distractors"}
        truth, others, centre, (o1, o2) = chosen
        order = [truth, *others]
        picks = [order[int(i)] for i in rng.permutation(self.n)]  # in letter order
        o1a, o2a = np.array(o1, dtype=np.float64), np.array(o2, dtype=np.float64)
        rules = self._rules(base, float(pool.xyz[truth, 2]))
        if centre is not None:
            rules["centre"] = [float(c) for c in np.asarray(centre) - o2a]
        return {
            **base,
            "n_candidates": self.n,
            "spread": self.spread,
            "frames": [list(o1), list(o2)],
            "point": {
                "anchor": pool.anchor[truth].tolist(),
                "view1": [float(t) for t in pool.p1[truth] - o1a],
                "view2": [float(t) for t in pool.p2[truth] - o2a],
                "xyz": [float(t) for t in pool.xyz[truth]],
            },
            "markers": {"1": [int(t) for t in np.rint(pool.p1[truth]) - o1a]},
            "candidates": [[int(t) for t in np.rint(pool.p2[i]) - o2a] for i in picks],
            "candidate_anchors": [pool.anchor[i].tolist() for i in picks],
            "candidate_xyz": [[float(t) for t in pool.xyz[i]] for i in picks],
            "rules": rules,
            "pool": counts,
        }

    def _setup(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        """Where the second view comes from, drawn (procedural pose, stereo order), and
        the sizes every later step uses."""
        if item.depth is None or item.intrinsics is None:
            return {"rejected": "correspondence_needs_metric_depth"}
        frame = [item.width - round(FRAME_SHARE * item.width), item.height - round(FRAME_SHARE * item.height)]
        side = max(MIN_REGION_SIDE, round(REGION_SHARE * min(frame)))
        common = {"size": [item.width, item.height], "frame_size": frame, "region_side": side,
                  "marker": marker_style(side).as_meta(), "intrinsics": [float(t) for t in item.intrinsics]}
        path = item.path or ""
        if item.pair is not None and not path.startswith("procedural:"):
            return self._posed_setup(rng, item, common)
        if path.startswith("procedural:"):
            try:
                seed = parse_procedural_path(path)[0]
            except ValueError:
                return {"rejected": "correspondence_no_second_view"}
            second = self._second_pose(rng)
            problem = pose_problem(seed, second)
            if problem:
                return {"rejected": f"correspondence_pose_{problem}"}
            return {"source": "procedural", "scene_seed": seed, "poses": [Pose().to_dict(), second.to_dict()],
                    **common}
        conv = item.info.get("depth_conversion") or {}
        partner = stereo_partner(item.file or path) if conv.get("from") == "disparity" else None
        if partner is None:
            return {"rejected": "correspondence_no_second_view"}
        if item.depth_kind != "metric":
            return {"rejected": "correspondence_needs_metric_depth"}
        flipped = bool(rng.integers(2))
        # the views by the names the dataset gives its sources (never a full path)
        right = _right_name(path)
        return {"source": "stereo", "order": "right-left" if flipped else "left-right",
                "views": [right, path] if flipped else [path, right], **common}

    @staticmethod
    def _posed_setup(rng: np.random.Generator, item: Item, common: dict[str, Any]) -> dict[str, Any]:
        """A posed pair (:mod:`spatial_ssrl.sources.posed`): both views need metric depth,
        the second to tell whether it sees a point; the order is drawn."""
        from ..sources.base import SourceSkip

        pair = item.pair
        if item.depth_kind != "metric":
            return {"rejected": "correspondence_needs_metric_depth"}
        if not pair.has_depth:
            return {"rejected": "correspondence_no_second_depth"}
        try:
            second = pair.view()
        except SourceSkip as skip:
            return {"rejected": f"correspondence_{skip.reason}"}
        if second.depth_kind != "metric":
            return {"rejected": "correspondence_needs_metric_depth"}
        order = POSED_ORDERS[int(rng.integers(2))]
        views = posed_views(item, order)
        return {"source": "posed", "order": order, **posed_files(item, order),
                "poses": [v[3].tolist() for v in views],
                "view_intrinsics": [[float(t) for t in v[2]] for v in views], **common}

    def _rules(self, base: dict[str, Any], z: float) -> dict[str, Any]:
        fw, fh = base["frame_size"]
        w, h = base["size"]
        short = min(fw, fh)
        jitter = JITTER_SHARE * short
        rules: dict[str, Any] = {
            "min_separation_m": max(MIN_SEPARATION_M, MIN_SEPARATION_SHARE * z),
            "min_spacing_px": int(base["marker"]["min_spacing"]),
            "jitter_px": jitter,
            "reach_px": [w - fw - jitter, h - fh - jitter],
        }
        if self.spread == "far":
            rules["far_px"] = FAR_SHARE * short
        else:
            rules["near_px"] = NEAR_SHARE * short
        return rules

    def _choose(self, rng: np.random.Generator, base: dict[str, Any], pool: Pool):
        """(true point, n - 1 distractors, the ``near`` cluster centre or None, the two
        crop offsets) meeting the level's rules, or None. Pool indices; second-view
        positions in the full frame.

        Two draws are made once, before any search, so that where the true point sits
        among the candidates says nothing about the answer:

        - ``rank``: the true point's place when the candidates are ordered by their summed
          distance to the others (0: the middle one), uniform over 0..n-1. Left to itself
          the true point would mostly be the middle one, the distractors being drawn around
          it; the candidates are drawn inside a window placed further off the true point
          for a larger rank, and a set is kept only with the drawn rank.
        - ``decoy``: whether the candidate the framing brings nearest to the marked point's
          place is the true one (probability 1/n) or a distractor (see :meth:`_framing`).
        """
        p2 = pool.p2
        q2 = np.rint(p2)
        p1 = np.rint(pool.p1)
        fw, fh = base["frame_size"]
        radius = int(base["marker"]["radius"])
        span = np.array([fw - 1 - 2 * radius, fh - 1 - 2 * radius])
        reach = np.array(self._rules(base, 1.0)["reach_px"])
        truths = np.flatnonzero((np.abs(q2 - p1) <= reach).all(axis=1))
        if truths.size == 0:
            return None
        rank = int(rng.integers(self.n))
        decoy = bool(rng.random() >= 1.0 / self.n)
        xs, ys = q2[:, 0].tolist(), q2[:, 1].tolist()  # plain floats: faster than tiny arrays below
        for _ in range(SEARCH_RESTARTS):
            t = int(truths[rng.integers(truths.size)])
            rules = self._rules(base, float(pool.xyz[t, 2]))
            ok = np.linalg.norm(pool.xyz - pool.xyz[t], axis=1) >= rules["min_separation_m"]
            # every candidate close enough to the marked point's place for the framing to
            # bring any one of them there (see _framing) ...
            ok &= (np.abs(q2 - p1[t]) <= reach).all(axis=1)
            # ... and inside a window around a point off the true one by an amount that
            # grows with the drawn rank
            half = WINDOW_SHARE * reach
            angle, off = rng.uniform(0.0, 2 * math.pi), (rank + rng.uniform()) / self.n
            shift = off * half * np.array([math.cos(angle), math.sin(angle)])
            ok &= (np.abs(q2 - (q2[t] + shift)) <= half).all(axis=1)
            centre = None
            if self.spread == "far":
                gap = rules["far_px"]
            else:  # a cluster around a centre drawn so the true point may sit anywhere in it
                gap = rules["min_spacing_px"] + 1
                near = rules["near_px"]
                angle, r = rng.uniform(0.0, 2 * math.pi), near * math.sqrt(rng.uniform())
                centre = p2[t] + r * np.array([math.cos(angle), math.sin(angle)])
                ok &= np.linalg.norm(p2 - centre, axis=1) <= near
            ok[t] = False
            picked = [t]
            gap2, (sx, sy) = gap * gap, (float(span[0]), float(span[1]))
            x0 = x1 = xs[t]
            y0 = y1 = ys[t]
            for i in rng.permutation(np.flatnonzero(ok)).tolist():
                x, y = xs[i], ys[i]
                if max(x1, x) - min(x0, x) > sx or max(y1, y) - min(y0, y) > sy:
                    continue
                if any((x - xs[j]) ** 2 + (y - ys[j]) ** 2 <= gap2 for j in picked):
                    continue
                picked.append(i)
                x0, x1, y0, y1 = min(x0, x), max(x1, x), min(y0, y), max(y1, y)
                if len(picked) == self.n:
                    break
            if len(picked) < self.n or centrality_rank(q2[picked]) != rank:
                continue
            order = rng.permutation(np.arange(1, self.n)).tolist() if decoy else [0]
            for j in order:
                frames = self._framing(rng, p1[t], q2[picked], j, base, rules["jitter_px"])
                if frames is not None:
                    return t, picked[1:], centre, frames
        return None

    @staticmethod
    def _framing(rng: np.random.Generator, mark: np.ndarray, cands: np.ndarray, j: int, base: dict[str, Any],
                 jitter: float) -> tuple[list[int], list[int]] | None:
        """Crop offsets (first view, second view) that keep every ring inside its crop and
        make candidate ``j`` the one nearest the place where the marked point sits in the
        first crop (within ``jitter`` of it). With the full frames the true candidate
        would nearly always be that one, since views of one scene move little; with the
        crops it is the true one only as often as chance."""
        w, h = base["size"]
        frame = base["frame_size"]
        slack = (w - frame[0], h - frame[1])
        radius = int(base["marker"]["radius"])
        gaps = np.linalg.norm(cands - cands[j], axis=1)
        reach = min(0.45 * float(np.min(gaps[np.arange(len(cands)) != j])), jitter)
        for _ in range(8):
            angle, r = rng.uniform(0.0, 2 * math.pi), reach * math.sqrt(rng.uniform())
            delta = np.rint(cands[j] + r * np.array([math.cos(angle), math.sin(angle)]) - mark).astype(int)
            if int(np.argmin(np.linalg.norm(cands - (mark + delta), axis=1))) != j:
                continue
            o1 = []
            for ax in (0, 1):
                far_edge = frame[ax] - 1 - radius
                lo = max(0, -delta[ax], int(mark[ax]) - far_edge, int(cands[:, ax].max()) - far_edge - delta[ax])
                hi = min(slack[ax], slack[ax] - delta[ax], int(mark[ax]) - radius,
                         int(cands[:, ax].min()) - radius - delta[ax])
                if lo > hi:
                    break
                o1.append(int(rng.integers(lo, hi + 1)))
            else:
                return o1, [o1[0] + int(delta[0]), o1[1] + int(delta[1])]
        return None

    # -- checking -----------------------------------------------------------------------
    def check(self, item: Item, params: dict[str, Any]) -> str | None:
        if params.get("rejected"):
            return params["rejected"]
        if list(params["size"]) != [item.width, item.height]:
            return "correspondence_size_mismatch"
        if params["source"] == "procedural":
            problem = pose_problem(params["scene_seed"], Pose.from_dict(params["poses"][1]))
            if problem:
                return f"correspondence_pose_{problem}"
        anchors = np.array([params["point"]["anchor"], *params["candidate_anchors"]], dtype=np.intp)
        pool = self.pool(item, params, anchors[:, 0], anchors[:, 1])
        bad = next((f for f in pool.failed if f is not None), None)
        if bad:
            return f"correspondence_{bad}"
        o1, o2 = (np.array(o, dtype=np.float64) for o in params["frames"])
        if not (np.allclose(pool.p1[0] - o1, params["point"]["view1"], atol=1e-6)
                and np.allclose(pool.p2[0] - o2, params["point"]["view2"], atol=1e-6)
                and np.array_equal(np.rint(pool.p1[0]) - o1, params["markers"]["1"])
                and np.array_equal(np.rint(pool.p2[1:]) - o2, np.array(params["candidates"]))
                and np.allclose(pool.xyz[1:], params["candidate_xyz"], atol=1e-9)):
            return "correspondence_geometry_mismatch"
        style = marker_style(params["region_side"])
        fw, fh = params["frame_size"]
        for markers in ({"1": params["markers"]["1"]},
                        {LETTERS[k]: c for k, c in enumerate(params["candidates"])}):
            problem = marker_layout_problem(markers, style, fw, fh)
            if problem:
                return problem
        if not self._rules_hold(params):
            return "correspondence_candidate_rule"
        return None

    @staticmethod
    def _rules_hold(params: dict[str, Any]) -> bool:
        """The candidate rules of the level, on the stored (shown) positions."""
        rules = params["rules"]
        o1, o2 = (np.array(o, dtype=np.float64) for o in params["frames"])
        true_p2 = np.array(params["point"]["view2"])
        cands = np.array(params["candidates"], dtype=np.float64)
        k = int(np.argmin(np.linalg.norm(cands - true_p2, axis=1)))
        if np.linalg.norm(cands[k] - true_p2) > 1.0:  # the true ring sits on the match
            return False
        xyz = np.array(params["candidate_xyz"])
        if any(np.linalg.norm(xyz[i] - xyz[k]) < rules["min_separation_m"] for i in range(len(cands)) if i != k):
            return False
        mark = np.array(params["markers"]["1"], dtype=np.float64) + o1  # in the full first frame
        if (np.abs(cands + o2 - mark) > np.array(rules["reach_px"]) + 1e-9).any():
            return False
        dist = np.linalg.norm(cands[:, None] - cands[None], axis=2)[np.triu_indices(len(cands), 1)]
        if "far_px" in rules:
            return bool(dist.min() > rules["far_px"])
        return bool(dist.min() > rules["min_spacing_px"]
                    and (np.linalg.norm(cands - np.asarray(rules["centre"]), axis=1) <= rules["near_px"] + 1.0).all())

    # -- the sample ---------------------------------------------------------------------
    def views(self, item: Item, params: dict[str, Any]) -> list[np.ndarray]:
        """The two full views before cropping and marking, in the order shown."""
        if params["source"] == "posed":
            return [v[0] for v in posed_views(item, params["order"])]
        if params["source"] == "procedural":
            second = Pose.from_dict(params["poses"][1])
            return [item.rgb, render_view(params["scene_seed"], tuple(params["size"]), second).rgb]
        left, right = item.rgb, self._right_view(item)
        return [left, right] if params["order"] == "left-right" else [right, left]

    @staticmethod
    def _right_view(item: Item) -> np.ndarray:
        partner = stereo_partner(item.file or item.path)
        if partner is None:
            raise ValueError(f"the right view of {item.path} is not found")
        return read_partner(partner, (item.width, item.height))

    def render(self, item: Item, params: dict[str, Any]) -> Rendered:
        style = marker_style(params["region_side"])
        fw, fh = params["frame_size"]
        crops = [np.ascontiguousarray(view[y:y + fh, x:x + fw])
                 for view, (x, y) in zip(self.views(item, params), params["frames"])]
        letters = LETTERS[: len(params["candidates"])]
        images = [draw_markers(crops[0], {"1": params["markers"]["1"]}, style),
                  draw_markers(crops[1], {L: c for L, c in zip(letters, params["candidates"])}, style)]
        extra = {"output_size": [fw, fh], "depth_source": item.depth_path}
        return Rendered(images=images, problem=get_prompt_set(self.prompt_set).correspondence(len(letters)),
                        options=list(letters), extra_meta=extra)

    def answer(self, params: dict[str, Any]) -> str:
        u, v = params["point"]["view2"]
        dist = [math.hypot(c[0] - u, c[1] - v) for c in params["candidates"]]
        return LETTERS[dist.index(min(dist))]
