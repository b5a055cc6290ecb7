"""Relative 3D position: answers re-derived from the depth map at the recorded markers
with this file's own facing table, thresholds and back-projection; a procedural metric
scene as a ground-truth oracle; exact prompts; facing weights."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from test_depth_tasks import (
    check_marker_layout,
    check_marker_pixels,
    draw_samples,
    load_diode,
    load_megadepth,
    make_item,
    ramp_item,
    read_region,
    smooth_holes_item,
    steps_item,
)

from spatial_ssrl.sources import Item
from spatial_ssrl.tasks import make_task
from spatial_ssrl.tasks.position import relative_direction

LETTERS = "ABCD"
# Worked out by hand on the ground plane (X to the image's right, Z away from the viewer):
# the word a target offset along one image axis gets, for each facing of the camera.
HAND_TABLE = {
    # facing away from the viewer: the camera sees the scene as we do
    "away": {("x", 1): "Right", ("x", -1): "Left", ("z", 1): "Front", ("z", -1): "Back"},
    # facing us: mirror image; farther from us is behind it
    "toward": {("x", 1): "Left", ("x", -1): "Right", ("z", 1): "Back", ("z", -1): "Front"},
    # facing the image's left: image-left is ahead, image-right behind, the far side on its right
    "left": {("x", 1): "Back", ("x", -1): "Front", ("z", 1): "Right", ("z", -1): "Left"},
    # facing the image's right: image-right ahead, the near side (towards us) on its right
    "right": {("x", 1): "Front", ("x", -1): "Back", ("z", 1): "Left", ("z", -1): "Right"},
}
FACING_TEXT = {"left": "to the left of the image", "right": "to the right of the image",
               "toward": "to me", "away": "away from me"}
SINGLE = {"Left", "Right", "Front", "Back"}
BOTH = {"Left-Front", "Right-Front", "Right-Back", "Left-Back"}
DIODE_INTRINSICS = (886.81, 927.06, 512.0, 384.0)


def hand_answer(facing, sx, sz):
    words = []
    if sx:
        words.append(HAND_TABLE[facing][("x", sx)])
    if sz:
        words.append(HAND_TABLE[facing][("z", sz)])
    lateral = [w for w in words if w in ("Left", "Right")]
    ahead = [w for w in words if w in ("Front", "Back")]
    return "-".join(lateral + ahead)


def expected_prompt(camera, target, facing, options, clause):
    listed = "".join(f" {L}. {o}" for L, o in zip(LETTERS, options))
    height = " and ignore the height difference between the two regions" if clause else ""
    return (
        "<image>I've taken an image and there are two regions marked as 1, and 2 on the image. Assume that there "
        f"is a camera at position '{camera}' and it's facing {FACING_TEXT[facing]}. According to the camera, "
        f"where is the region marked '{target}'?{listed}. Consider cues such as depth, orientation, and 3D "
        f"spatial relationship{height}. The final answer should be chosen from 'A', 'B', 'C', and 'D'."
    )


def _classes(a, b, thr):
    gap = max(a[0], b[0]) - min(a[1], b[1])
    spread = max(a[1], b[1]) - min(a[0], b[0])
    assert gap > thr or spread <= thr, "offset too close to its threshold to have one answer"
    return gap > thr


def rederive_position(item, sample, expect_mode=None):
    """Re-derive the answer from the depth map; returns (mode, text, lateral counts, depth counts)."""
    p = sample.meta["params"]
    markers = {int(k): tuple(v) for k, v in p["markers"].items()}
    assert sorted(markers) == [1, 2]
    side, radius = p["region_side"], p["marker"]["radius"]
    check_marker_layout(item, markers, radius, side)
    check_marker_pixels(item, sample.images[0], markers, radius)
    cam, tgt = p["camera_label"], p["target_label"]
    assert {cam, tgt} == {1, 2}
    mode = expect_mode or ("metric" if item.depth_kind == "metric" and item.intrinsics is not None else "image")
    assert p["mode"] == mode
    reg = {}
    for lab, (u, v) in markers.items():
        raw, n = read_region(item, (u, v), side)
        assert n.max() - n.min() < 0.15
        reg[lab] = {"u": u, "v": v, "raw": raw, "n": n}
    c, t = reg[cam], reg[tgt]
    if mode == "image":
        thr_x, thr_z = 150.0 * item.width / 1600.0, 0.25
        lat_c, lat_t = (c["u"], c["u"]), (t["u"], t["u"])
        dep_c, dep_t = (c["n"].min(), c["n"].max()), (t["n"].min(), t["n"].max())
        dx = t["u"] - c["u"]
        dz = np.median(t["n"]) - np.median(c["n"])
    else:
        fx, _, cx, _ = item.intrinsics

        def x_range(r):
            a = (r["u"] - cx) / fx
            return tuple(sorted((a * r["raw"].min(), a * r["raw"].max())))

        lat_c, lat_t = x_range(c), x_range(t)
        dep_c, dep_t = (c["raw"].min(), c["raw"].max()), (t["raw"].min(), t["raw"].max())
        zbar = (dep_c[0] + dep_c[1] + dep_t[0] + dep_t[1]) / 4
        thr_x, thr_z = max(0.5, 0.10 * zbar), max(0.5, 0.15 * zbar)
        zc, zt = np.median(c["raw"]), np.median(t["raw"])
        dx = (t["u"] - cx) * zt / fx - (c["u"] - cx) * zc / fx
        dz = zt - zc
    assert p["thresholds"]["lateral"] == pytest.approx(thr_x, rel=1e-9)
    assert p["thresholds"]["depth"] == pytest.approx(thr_z, rel=1e-9)
    lat_counts = _classes(lat_c, lat_t, thr_x)
    dep_counts = _classes(dep_c, dep_t, thr_z)
    assert lat_counts or dep_counts
    sx = int(np.sign(dx)) if lat_counts else 0
    sz = int(np.sign(dz)) if dep_counts else 0
    text = hand_answer(p["facing"], sx, sz)
    pool = BOTH if (lat_counts and dep_counts) else SINGLE
    assert set(sample.options) == pool and len(sample.options) == 4
    assert sample.answer in LETTERS and sample.options[LETTERS.index(sample.answer)] == text
    clause = dep_counts or abs(t["v"] - c["v"]) > 0.03 * item.height
    assert sample.problem == expected_prompt(cam, tgt, p["facing"], sample.options, clause)
    assert sample.answer_type == "choice"
    assert p["depth_source"] == item.depth_path
    if item.intrinsics is not None:
        assert p["intrinsics"] == list(item.intrinsics)
    return mode, text, lat_counts, dep_counts


# --------------------------------------------------------------------------------------
# The rotation, against hand-worked cases
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("facing", ["left", "right", "toward", "away"])
@pytest.mark.parametrize("sx", [-1, 0, 1])
@pytest.mark.parametrize("sz", [-1, 0, 1])
def test_rotation_matches_hand_table(facing, sx, sz):
    if sx == 0 and sz == 0:
        with pytest.raises(ValueError):
            relative_direction(facing, sx, sz)
        return
    assert relative_direction(facing, sx, sz) == hand_answer(facing, sx, sz)


def test_hand_worked_examples():
    # target to the image's right and farther away than the camera region
    assert relative_direction("away", 1, 1) == "Right-Front"
    assert relative_direction("toward", 1, 1) == "Left-Back"
    assert relative_direction("left", 1, 1) == "Right-Back"
    assert relative_direction("right", 1, 1) == "Left-Front"
    # target to the image's left at the same depth
    assert relative_direction("away", -1, 0) == "Left"
    assert relative_direction("toward", -1, 0) == "Right"
    assert relative_direction("left", -1, 0) == "Front"
    assert relative_direction("right", -1, 0) == "Back"
    # target straight in front of us (nearer), same image column
    assert relative_direction("away", 0, -1) == "Back"
    assert relative_direction("toward", 0, -1) == "Front"
    assert relative_direction("left", 0, -1) == "Left"
    assert relative_direction("right", 0, -1) == "Right"


# --------------------------------------------------------------------------------------
# Generated samples, re-derived
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("factory", [ramp_item, steps_item, smooth_holes_item])
def test_image_mode_answers_rederived(factory):
    item = factory()
    samples = draw_samples(make_task("position"), item, 40, seed=3)
    kinds = Counter()
    for s in samples:
        _, _, lc, dc = rederive_position(item, s)
        kinds[(lc, dc)] += 1
    assert len(kinds) >= 2  # single-axis and combined questions both occur


def test_option_sets_and_letters_vary():
    item = steps_item()
    samples = draw_samples(make_task("position"), item, 120, seed=9)
    letters = Counter(s.answer for s in samples)
    assert set(letters) == set(LETTERS)
    assert {s.meta["params"]["camera_label"] for s in samples} == {1, 2}
    pools = {frozenset(s.options) for s in samples}
    assert pools == {frozenset(SINGLE), frozenset(BOTH)}


def test_absolute_thresholds_and_variants():
    item = smooth_holes_item()
    task = make_task("position", "image", absolute_thresholds=True)
    s = draw_samples(task, item, 1)[0]
    assert s.meta["params"]["thresholds"]["lateral"] == 150.0
    scaled = draw_samples(make_task("position", "image"), item, 1)[0]
    assert scaled.meta["params"]["thresholds"]["lateral"] == pytest.approx(150.0 * item.width / 1600)
    cls = type(task)
    assert cls.paper_counts == {"auto": 20200} and cls.requires_depth and cls.answer_type == "choice"
    for bad in ("2-regions", "metric-uniform", "public"):
        with pytest.raises(ValueError):
            make_task("position", bad)
    # metric mode needs metric depth and intrinsics
    metric = make_task("position", "metric")
    assert metric.check(item, metric.make_params(np.random.default_rng(0), item)) == "position_needs_metric_depth"
    no_depth = Item(id="rgb", rgb=item.rgb)
    assert metric.check(no_depth, metric.make_params(np.random.default_rng(0), no_depth)) == "depth_missing"


def test_no_pair_is_a_named_rejection():
    # one flat plateau and noise elsewhere: flat windows exist but never two far enough apart
    h, w = 200, 260
    d = np.random.default_rng(0).uniform(1, 10, size=(h, w))
    d[90:110, 110:130] = 5.0
    item = make_item(d)
    task = make_task("position")
    assert task.check(item, task.make_params(np.random.default_rng(0), item)) == "position_no_valid_pair"


def _facing_counts(task, item, n):
    rng = np.random.default_rng(123)
    return Counter(task.make_params(rng, item)["facing"] for _ in range(n))


def test_facing_weights():
    item = ramp_item(160, 200)
    n = 3000
    uniform = _facing_counts(make_task("position"), item, n)
    for f in ("left", "right", "toward", "away"):
        assert abs(uniform[f] / n - 0.25) < 0.035, uniform
    for task in (make_task("position", facing_weights="public"), make_task("position", "auto-public")):
        public = _facing_counts(task, item, n)
        for f, share in (("left", 0.3), ("right", 0.3), ("toward", 0.3), ("away", 0.1)):
            assert abs(public[f] / n - share) < 0.035, public
    only = _facing_counts(make_task("position", facing_weights={"toward": 1}), item, 50)
    assert set(only) == {"toward"}


def test_check_catches_tampered_params():
    item = steps_item()
    task = make_task("position")
    p = task.make_params(np.random.default_rng(4), item)
    assert task.check(item, p) is None
    flipped = {**p, "offsets": {**p["offsets"], "lateral": -p["offsets"]["lateral"]}}
    assert task.check(item, flipped) == "position_geometry_mismatch"
    moved = {**p, "markers": {**p["markers"], "2": [p["markers"]["2"][0] + 2, p["markers"]["2"][1]]}}
    assert task.check(item, moved) == "marker_off_region"


# --------------------------------------------------------------------------------------
# Metric mode: a procedural scene whose 3D geometry is known
# --------------------------------------------------------------------------------------
class CardScene:
    """A level pinhole camera (y down) 1.5 m above a floor, a back wall and a few upright
    fronto-parallel cards. Depth is ray-cast from this description."""

    def __init__(self, seed, h=480, w=640, f=500.0):
        rng = np.random.default_rng(seed)
        self.h, self.w, self.fx, self.fy, self.cx, self.cy = h, w, f, f, w / 2, h / 2
        self.wall = 14.0
        self.cards = []
        for _ in range(4):
            z = rng.uniform(2.5, 11.0)
            x0 = rng.uniform(-0.45, 0.35) * z
            self.cards.append((x0, x0 + rng.uniform(0.6, 2.0), 1.5 - rng.uniform(1.0, 2.6), z))

    def hit(self, u, v):
        """Depth Z of the surface seen through pixel (u, v) (arrays)."""
        rx, ry = (u - self.cx) / self.fx, (v - self.cy) / self.fy
        z = np.full(np.broadcast(u, v).shape, self.wall)
        with np.errstate(divide="ignore"):
            floor = np.where(ry > 0, 1.5 / np.where(ry > 0, ry, 1), np.inf)
        z = np.minimum(z, floor)
        for x0, x1, ytop, zc in self.cards:
            X, Y = rx * zc, ry * zc
            on = (X >= x0) & (X <= x1) & (Y >= ytop) & (Y <= 1.5) & (zc < z)
            z = np.where(on, zc, z)
        return z

    def item(self, seed):
        v, u = np.mgrid[0:self.h, 0:self.w].astype(np.float64)
        depth = self.hit(u, v)
        return make_item(depth, kind="metric", intrinsics=(self.fx, self.fy, self.cx, self.cy),
                         item_id=f"cards{seed}", seed=seed)

    def point(self, u, v):
        z = float(self.hit(np.array(u, float), np.array(v, float)))
        return (u - self.cx) / self.fx * z, z


def test_metric_mode_matches_scene_geometry():
    agree = total = 0
    for seed in range(5):
        scene = CardScene(seed)
        item = scene.item(seed)
        for s in draw_samples(make_task("position"), item, 40, seed=seed):
            mode, text, lat_counts, dep_counts = rederive_position(item, s)
            assert mode == "metric"
            p = s.meta["params"]
            # ground truth from the scene description at the two marker centres
            (xc, zc) = scene.point(*p["markers"][str(p["camera_label"])])
            (xt, zt) = scene.point(*p["markers"][str(p["target_label"])])
            thr = p["thresholds"]
            true_lat = abs(xt - xc) > thr["lateral"]
            true_dep = abs(zt - zc) > thr["depth"]
            truth = hand_answer(p["facing"], int(np.sign(xt - xc)) if true_lat else 0,
                                int(np.sign(zt - zc)) if true_dep else 0)
            total += 1
            agree += (truth == s.options[LETTERS.index(s.answer)]) and (true_lat, true_dep) == (lat_counts, dep_counts)
    assert total >= 200 and agree == total, (agree, total)


# --------------------------------------------------------------------------------------
# Real fixtures
# --------------------------------------------------------------------------------------
def test_diode_fixture_image_and_metric(shared_samples):
    plain = load_diode(shared_samples)
    for s in draw_samples(make_task("position"), plain, 10, seed=2):
        assert rederive_position(plain, s)[0] == "image"
    metric = load_diode(shared_samples, intrinsics=DIODE_INTRINSICS)
    for s in draw_samples(make_task("position"), metric, 10, seed=2):
        assert rederive_position(metric, s)[0] == "metric"
    for s in draw_samples(make_task("position", "image"), metric, 5, seed=2):
        assert rederive_position(metric, s, expect_mode="image")[0] == "image"


@pytest.mark.parametrize("n", [1, 2])
def test_megadepth_fixture(shared_samples, n):
    item = load_megadepth(shared_samples, n)
    assert item.width == 1600
    for s in draw_samples(make_task("position"), item, 10, seed=n):
        assert rederive_position(item, s)[0] == "image"
