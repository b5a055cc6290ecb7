"""Regional depth ordering: every answer is re-derived from the depth map at the recorded
markers, with this file's own normalisation and region reading (never the task's code).

Also home of the helpers the position tests share: synthetic RGB-D items, the fixture
loaders and the marker-pixel checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from spatial_ssrl.sources import Item
from spatial_ssrl.tasks import generate_sample, make_task
from spatial_ssrl.tasks import depth as depth_mod

WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}
FORMATS = {
    2: "Smallest-Largest",
    3: "Smallest-Middle-Largest",
    4: "Smallest-Middle1-Middle2-Largest",
    5: "Smallest-Middle1-Middle2-Middle3-Largest",
}
PAPER_DEPTH_PROMPT = (
    "<image>The original image has three regions marked as 1, 2, and 3. Consider the content, positional "
    "relationships, depths of the three regions and other cues, and sort the depths of the three regions from "
    "smallest to largest from the camera, where the format of the answer is 'Smallest-Middle-Largest'."
)


# --------------------------------------------------------------------------------------
# Synthetic items and fixtures
# --------------------------------------------------------------------------------------
def _rgb(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(40, 216, size=(h, w, 3), dtype=np.uint8)


def make_item(depth, mask=None, kind="relative", intrinsics=None, item_id="synthetic", seed=0):
    depth = np.asarray(depth, dtype=np.float32)
    if mask is None:
        mask = np.isfinite(depth)
    depth = np.where(mask, depth, np.nan).astype(np.float32)
    return Item(id=item_id, rgb=_rgb(*depth.shape, seed=seed), depth=depth, mask=mask, depth_kind=kind,
                intrinsics=intrinsics, depth_path=f"memory://{item_id}")


def ramp_item(h=240, w=320):
    yy, xx = np.mgrid[0:h, 0:w]
    return make_item(1.0 + 9.0 * yy / h + 0.3 * xx / w, item_id=f"ramp{h}x{w}")


def steps_item(h=300, w=400, levels=(2.0, 3.0, 4.5, 6.0, 8.0, 11.0)):
    xx = np.mgrid[0:h, 0:w][1]
    band = np.minimum(xx * len(levels) // w, len(levels) - 1)
    return make_item(np.asarray(levels)[band], item_id="steps")


def smooth_holes_item(h=360, w=480, seed=3):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    d = 5.0 + 3.0 * yy
    for _ in range(6):
        a, fy, fx, ph = rng.uniform(0.3, 1.0), rng.uniform(1, 4), rng.uniform(1, 4), rng.uniform(0, 6)
        d += a * np.sin(2 * np.pi * (fy * yy + fx * xx) + ph)
    mask = np.ones((h, w), dtype=bool)
    for _ in range(12):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(5, 40)
        mask &= (np.mgrid[0:h, 0:w][0] - cy) ** 2 + (np.mgrid[0:h, 0:w][1] - cx) ** 2 > r * r
    return make_item(d, mask=mask, item_id=f"smooth{seed}", seed=seed)


def load_diode(folder, intrinsics=None):
    rgb = np.asarray(Image.open(folder / "RGB-D_img3.png").convert("RGB"))
    raw = np.load(folder / "RGB-D_depth3.npy")[..., 0].astype(np.float32)
    mask = (np.load(folder / "RGB-D_depth_mask3.npy") > 0.5) & np.isfinite(raw) & (raw > 0)
    depth = np.where(mask, raw, np.nan).astype(np.float32)
    return Item(id="diode3", rgb=rgb, path=str(folder / "RGB-D_img3.png"), depth=depth, mask=mask,
                depth_kind="metric", intrinsics=intrinsics, depth_path=str(folder / "RGB-D_depth3.npy"))


def load_megadepth(folder, n=1):
    h5py = pytest.importorskip("h5py")
    rgb = np.asarray(Image.open(folder / f"RGB-D_img{n}.jpg").convert("RGB"))
    with h5py.File(folder / f"RGB-D_depth{n}.h5", "r") as fh:
        raw = fh["depth"][:].astype(np.float32)
    mask = raw > 0
    depth = np.where(mask, raw, np.nan).astype(np.float32)
    return Item(id=f"megadepth{n}", rgb=rgb, path=str(folder / f"RGB-D_img{n}.jpg"), depth=depth, mask=mask,
                depth_kind="relative", depth_path=str(folder / f"RGB-D_depth{n}.h5"))


# --------------------------------------------------------------------------------------
# Independent readers
# --------------------------------------------------------------------------------------
def own_percentiles(item):
    valid = item.mask & np.isfinite(item.depth)
    return [float(v) for v in np.percentile(item.depth[valid].astype(np.float64), [0.5, 99.5])]


def read_region(item, marker, side):
    """The square of ``side`` pixels centred on ``marker``: (raw depth, normalised depth),
    after asserting every pixel is valid."""
    x, y = marker
    h = side // 2
    assert side % 2 == 1
    assert h <= x < item.width - h and h <= y < item.height - h
    raw = item.depth[y - h:y + h + 1, x - h:x + h + 1].astype(np.float64)
    assert item.mask[y - h:y + h + 1, x - h:x + h + 1].all() and np.isfinite(raw).all()
    lo, hi = own_percentiles(item)
    return raw, np.clip((raw - lo) / (hi - lo), 0.0, 1.0)


def check_marker_pixels(item, image, markers, radius):
    """The output keeps the source grid, differs from the source only inside the marker
    discs, and each marker shows both near-white and near-black ink."""
    assert image.shape == item.rgb.shape and image.dtype == np.uint8
    changed = np.any(image != item.rgb, axis=2)
    yy, xx = np.mgrid[0:item.height, 0:item.width]
    inside = np.zeros_like(changed)
    for x, y in markers.values():
        disc = (yy - y) ** 2 + (xx - x) ** 2 <= (radius + 1) ** 2
        inside |= disc
        ink = image[disc & changed]
        assert len(ink) > 0
        assert (ink.min(axis=1) > 230).any() and (ink.max(axis=1) < 25).any()
    assert not (changed & ~inside).any()


def check_marker_layout(item, markers, radius, side):
    assert radius >= side / math.sqrt(2)  # the region's square fits inside the ring
    for x, y in markers.values():
        assert radius <= x <= item.width - 1 - radius and radius <= y <= item.height - 1 - radius
    pts = list(markers.values())
    for i in range(len(pts)):
        for j in range(i + 1, len(pts)):
            assert math.dist(pts[i], pts[j]) > 2 * radius


def expected_side(item):
    return max(9, 0.035 * min(item.height, item.width))


def rederive_depth(item, sample, k):
    p = sample.meta["params"]
    markers = {int(lab): tuple(v) for lab, v in p["markers"].items()}
    assert sorted(markers) == list(range(1, k + 1))
    side, radius = p["region_side"], p["marker"]["radius"]
    # region size scales with the image: within about 30 % of 3.5 % of the shorter side
    assert 0.7 * expected_side(item) <= side <= 1.3 * expected_side(item) + 2
    assert p["depth_norm"]["values"] == pytest.approx(own_percentiles(item), rel=1e-9, abs=1e-9)
    check_marker_layout(item, markers, radius, side)
    regions = []
    for lab, mk in markers.items():
        raw, n = read_region(item, mk, side)
        assert n.max() - n.min() < 0.15
        regions.append((float(np.median(n)), float(n.min()), float(n.max()), lab))
        box = next(r["box"] for r in p["regions"] if r["label"] == lab)
        assert box == [mk[0] - side // 2, mk[1] - side // 2, side, side]
    regions.sort()
    for near, far in zip(regions, regions[1:]):
        assert far[1] - near[2] > 0.05  # every pixel of the farther region is 0.05 farther
    # any per-region statistic gives the same order
    assert [r[3] for r in regions] == [r[3] for r in sorted(regions, key=lambda r: r[1])]
    assert sample.answer == "-".join(str(r[3]) for r in regions)
    assert sample.answer_type == "permutation" and sample.options is None
    assert sample.meta["params"]["depth_source"] == item.depth_path
    check_marker_pixels(item, sample.images[0], markers, radius)


def draw_samples(task, item, n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s, rej = generate_sample(task, item, rng, f"s{i}")
        assert s is not None, dict(rej)
        out.append(s)
    return out


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("factory", [ramp_item, steps_item, smooth_holes_item])
@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_depth_answers_rederived_from_depth(factory, k):
    item = factory()
    task = make_task("depth", f"{k}-regions")
    samples = draw_samples(task, item, 12, seed=k)
    for s in samples:
        rederive_depth(item, s, k)
    # label assignment is random: more than one answer shows up
    assert len({s.answer for s in samples}) > 1


def test_prompts_exact():
    item = ramp_item()
    s = draw_samples(make_task("depth"), item, 1)[0]
    assert s.problem == PAPER_DEPTH_PROMPT
    for k in (2, 4, 5):
        labels = [str(i) for i in range(1, k + 1)]
        listed = "1 and 2" if k == 2 else ", ".join(labels[:-1]) + ", and " + labels[-1]
        w = WORDS[k]
        expected = (
            f"<image>The original image has {w} regions marked as {listed}. Consider the content, positional "
            f"relationships, depths of the {w} regions and other cues, and sort the depths of the {w} regions "
            f"from smallest to largest from the camera, where the format of the answer is '{FORMATS[k]}'."
        )
        s = draw_samples(make_task("depth", f"{k}-regions"), item, 1)[0]
        assert s.problem == expected


def test_variants_and_contract():
    cls = type(make_task("depth"))
    assert cls.requires_depth is True and cls.answer_type == "permutation"
    assert cls.paper_counts == {"3-regions": 20620}
    assert make_task("depth").variant == "3-regions"
    for bad in ("1-regions", "6-regions", "3", "three"):
        with pytest.raises(ValueError):
            make_task("depth", bad)


def test_answers_cover_all_orders():
    item = smooth_holes_item()
    answers = {s.answer for s in draw_samples(make_task("depth"), item, 60, seed=11)}
    assert answers == {"1-2-3", "1-3-2", "2-1-3", "2-3-1", "3-1-2", "3-2-1"}


def test_deterministic_and_cache_neutral():
    item = smooth_holes_item()
    task = make_task("depth")
    depth_mod._CACHE.clear()
    a = [task.make_params(np.random.default_rng(5), item) for _ in range(2)]
    depth_mod._CACHE.clear()
    b = task.make_params(np.random.default_rng(5), item)
    assert a[0] == a[1] == b
    # a different item with the same id and shape but other values is not served from the cache
    other = make_item(item.depth[::-1].copy(), mask=item.mask[::-1].copy(), item_id=item.id)
    c = task.make_params(np.random.default_rng(5), other)
    assert c != b
    assert task.check(other, c) is None and task.check(item, b) is None


def test_rejections_are_named():
    task = make_task("depth")
    rng = np.random.default_rng(0)
    h, w = 200, 260
    no_depth = Item(id="rgb", rgb=_rgb(h, w))
    assert task.check(no_depth, task.make_params(rng, no_depth)) == "depth_missing"
    const = make_item(np.full((h, w), 3.0))
    assert task.check(const, task.make_params(rng, const)) == "depth_constant"
    empty = make_item(np.full((h, w), np.nan))
    assert task.check(empty, task.make_params(rng, empty)) == "depth_no_valid_pixels"
    # two depth plateaus cannot hold three separated regions
    two = make_item(np.where(np.mgrid[0:h, 0:w][1] < w // 2, 2.0, 5.0))
    assert task.check(two, task.make_params(rng, two)) == "depth_no_valid_regions"
    assert make_task("depth", "2-regions").check(two, make_task("depth", "2-regions").make_params(rng, two)) is None
    # a noisy map has no flat window at all
    noise = make_item(np.random.default_rng(1).uniform(1, 10, size=(h, w)))
    assert task.check(noise, task.make_params(rng, noise)) == "depth_no_valid_regions"
    s, rej = generate_sample(task, noise, rng, "x")
    assert s is None and rej["depth_no_valid_regions"] > 0


def test_check_catches_tampered_params():
    item = steps_item()
    task = make_task("depth")
    p = task.make_params(np.random.default_rng(2), item)
    assert task.check(item, p) is None
    # move one region onto the boundary between two steps: no longer flat
    bad = {**p, "regions": [dict(r) for r in p["regions"]], "markers": dict(p["markers"])}
    w = item.width
    edge_x = w // 6  # first step boundary
    r0 = bad["regions"][0]
    s = r0["box"][2]
    r0["box"] = [edge_x - s // 2, r0["box"][1], s, s]
    bad["markers"][str(r0["label"])] = [edge_x, r0["box"][1] + s // 2]
    assert task.check(item, bad) in {"depth_region_not_flat", "markers_overlap", "depth_regions_too_close"}
    # a marker off its region
    bad2 = {**p, "markers": {**p["markers"], "1": [p["markers"]["1"][0] + 1, p["markers"]["1"][1]]}}
    assert task.check(item, bad2) == "marker_off_region"
    # stats that do not belong to this item
    bad3 = {**p, "depth_norm": {**p["depth_norm"], "values": [0.0, 1.0]}}
    assert task.check(item, bad3) == "depth_stats_mismatch"


@pytest.mark.parametrize("h, w", [(64, 80), (480, 640), (1500, 2000)])
def test_marker_scale_follows_image(h, w):
    yy = np.mgrid[0:h, 0:w][0]
    item = make_item(1.0 + 10.0 * yy / h)
    s = draw_samples(make_task("depth", "2-regions"), item, 1)[0]
    p = s.meta["params"]
    assert p["region_side"] >= 9
    assert 0.02 * min(h, w) <= p["marker"]["radius"] <= max(16, 0.06 * min(h, w))
    rederive_depth(item, s, 2)


def test_render_keeps_grid_and_records_resize():
    item = ramp_item()
    item.info["resize"] = {"scale": [0.5, 0.5]}
    s = draw_samples(make_task("depth"), item, 1)[0]
    assert s.images[0].shape == item.rgb.shape
    for lab, (x, y) in s.meta["params"]["markers"].items():
        assert s.meta["markers_in_file"][lab] == [x / 0.5, y / 0.5]


def test_diode_fixture(shared_samples):
    item = load_diode(shared_samples)
    task = make_task("depth")
    for s in draw_samples(task, item, 10, seed=1):
        rederive_depth(item, s, 3)
        assert s.meta["params"]["depth_source"].endswith("RGB-D_depth3.npy")


@pytest.mark.parametrize("n", [1, 2])
def test_megadepth_fixture(shared_samples, n):
    item = load_megadepth(shared_samples, n)
    for k in (3, 4):
        for s in draw_samples(make_task("depth", f"{k}-regions"), item, 6, seed=n):
            rederive_depth(item, s, k)


def test_max_chain_equals_brute_force():
    """The greedy separation bound against trying every subset of a few random intervals."""
    from itertools import combinations

    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(1, 9))
        lo = rng.uniform(0, 1, n)
        hi = lo + rng.uniform(0, 0.2, n)
        a = depth_mod.DepthAnalysis(None, 10, 10, cx=np.zeros(n), lo=lo, hi=hi)
        gap = float(rng.choice([0.0, 0.05, 0.1]))

        def separated(idx):
            iv = sorted((lo[i], hi[i]) for i in idx)
            return all(b[0] > a_[1] + gap for a_, b in zip(iv, iv[1:]))

        best = max(r for r in range(1, n + 1) if any(separated(c) for c in combinations(range(n), r)))
        for limit in (2, 3, 5):
            assert a.max_chain(gap, limit) == min(best, limit)


@pytest.mark.parametrize("nan_share", [0.0, 0.3, 0.97])
def test_percentiles_ignore_nan_and_match_numpy(nan_share):
    """The bracketing percentiles on NaN-filled maps equal numpy's on the valid values,
    with ties, a tiny valid set and heavy tails included."""
    rng = np.random.default_rng(int(nan_share * 100))
    maps = [
        rng.lognormal(1.0, 1.2, (300, 410)).astype(np.float32),
        rng.integers(0, 7, (257, 301)).astype(np.float32),  # heavy ties
        np.concatenate([rng.normal(5, 1, 50_000), rng.normal(500, 1, 300)]).astype(np.float32).reshape(-1, 100),
    ]
    for a in maps:
        a = a.copy()
        a[rng.random(a.shape) < nan_share] = np.nan
        a.flat[0] = 3.0  # at least one valid value
        want = np.percentile(a[~np.isnan(a)], depth_mod.PERCENTILES)
        got = depth_mod.percentiles(a)
        assert got == pytest.approx(list(want), rel=1e-12, abs=1e-12)
        assert depth_mod.percentiles(a, n_valid=int(np.count_nonzero(~np.isnan(a)))) == got
