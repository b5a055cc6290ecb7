"""The procedural RGB-D scenes: determinism, the Item depth contract, and the geometry
oracle checked against independent derivations (pinhole back-projection, the floor plane,
the analytic surfaces of the described objects)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from spatial_ssrl.sources import LoadOptions, SourceRef, SourceSkip
from spatial_ssrl.sources.procedural import (
    GROUND_ID,
    SURFACE_NAMES,
    load_procedural_item,
    procedural_refs,
    render_scene,
    render_scene_with_geometry,
    scene_geometry,
)

SEEDS = (0, 1, 2, 3, 5, 8, 13, 21)
W, H = 320, 240


@pytest.fixture(scope="module")
def scenes():
    return {s: render_scene_with_geometry(s, W, H) for s in SEEDS}


def _backproject(depth: np.ndarray, intr) -> np.ndarray:
    fx, fy, cx, cy = intr
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    z = depth.astype(np.float64)
    return np.stack([(u - cx) / fx * z, (v - cy) / fy * z, z], axis=-1)


def _box_frame(obj: dict) -> tuple[np.ndarray, np.ndarray]:
    """Rows: the box's own x, y, z axes in camera coordinates, from its described yaw."""
    th = math.radians(obj["yaw_deg"])
    axes = np.array([[math.cos(th), 0.0, -math.sin(th)], [0.0, 1.0, 0.0], [math.sin(th), 0.0, math.cos(th)]])
    return axes, np.asarray(obj["center"], dtype=np.float64)


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_scene():
    a, ga = render_scene_with_geometry(4, 160, 120)
    b, gb = render_scene_with_geometry(4, 160, 120)
    assert np.array_equal(a.rgb, b.rgb)
    assert np.array_equal(a.depth, b.depth)
    assert np.array_equal(a.mask, b.mask)
    assert a.intrinsics == b.intrinsics
    assert json.dumps(a.info, sort_keys=True) == json.dumps(b.info, sort_keys=True)
    g = scene_geometry(4, 160, 120)
    assert np.array_equal(g.object_id, ga.object_id)
    assert np.array_equal(g.points, ga.points)
    assert np.array_equal(g.normals, gb.normals)


def test_different_seeds_differ(scenes):
    rgbs = [scenes[s][0].rgb for s in SEEDS]
    depths = [scenes[s][0].depth for s in SEEDS]
    for i in range(len(SEEDS)):
        for j in range(i + 1, len(SEEDS)):
            assert not np.array_equal(rgbs[i], rgbs[j])
            assert not np.array_equal(depths[i], depths[j])
    layouts = {json.dumps(scenes[s][0].info["scene"]["objects"]) for s in SEEDS}
    assert len(layouts) == len(SEEDS)


def test_layout_does_not_depend_on_image_size():
    small = render_scene(9, 160, 120)
    large = render_scene(9, 480, 360)
    assert small.info["scene"]["objects"] == large.info["scene"]["objects"]
    assert small.info["scene"]["room"] == large.info["scene"]["room"]
    fs, fl = small.intrinsics, large.intrinsics
    assert fl[0] == pytest.approx(3 * fs[0])
    assert fl[1] == pytest.approx(3 * fs[1])
    # the principal point follows the grid (pixel centres at integer coordinates)
    assert fl[2] + 0.5 == pytest.approx(3 * (fs[2] + 0.5))
    assert fl[3] + 0.5 == pytest.approx(3 * (fs[3] + 0.5))


# --------------------------------------------------------------------------- item contract


def test_item_contract(scenes):
    for seed in SEEDS:
        item, _ = scenes[seed]
        assert item.id == f"procedural/scene-{seed:05d}"
        assert item.path == f"procedural:{seed}"
        assert item.rgb.dtype == np.uint8 and item.rgb.shape == (H, W, 3)
        assert item.depth.dtype == np.float32 and item.depth.shape == (H, W)
        assert item.mask.dtype == np.bool_ and item.mask.shape == (H, W)
        assert item.depth_kind == "metric"
        assert item.depth_path is None
        assert len(item.intrinsics) == 4 and all(isinstance(x, float) for x in item.intrinsics)
        # closed room: every pixel sees a surface
        assert item.mask.all()
        assert np.isfinite(item.depth).all() and (item.depth > 0).all()
        json.dumps(item.info)  # the description must be JSON-able
        scene = item.info["scene"]
        assert scene["camera"]["intrinsics"] == pytest.approx(list(item.intrinsics), rel=1e-6)
        assert scene["width"] == W and scene["height"] == H


def test_depth_range_is_plausible(scenes):
    for seed in SEEDS:
        item, geom = scenes[seed]
        d = item.depth
        assert 0.5 < float(d.min()) and float(d.max()) < 40.0
        # a real spread of depths: near floor, far back wall
        assert float(np.percentile(d, 95)) > 2.0 * float(np.percentile(d, 5))
        for obj in geom.objects:
            assert 1.0 < obj.center[2] < float(d.max())


# --------------------------------------------------------------------------- geometry oracle


def test_depth_is_z_of_the_analytic_points(scenes):
    for seed in SEEDS:
        item, geom = scenes[seed]
        pts = geom.points.astype(np.float64)
        back = _backproject(item.depth, item.intrinsics)
        err = np.linalg.norm(back - pts, axis=-1) / np.linalg.norm(pts, axis=-1)
        assert float(err.max()) < 1e-3
        # depth is the Z coordinate, not the length of the ray
        assert np.allclose(item.depth, pts[..., 2], rtol=1e-6)
        ray_len = np.linalg.norm(pts, axis=-1)
        corner = ray_len[0, 0]
        assert corner > item.depth[0, 0] * 1.05


def test_floor_pixels_lie_on_the_floor_plane(scenes):
    for seed in SEEDS:
        item, geom = scenes[seed]
        h_cam = item.info["scene"]["camera"]["height"]
        assert geom.camera_height == pytest.approx(h_cam, abs=1e-6)
        floor = geom.object_id == GROUND_ID
        assert floor.sum() > 0.1 * floor.size
        assert np.allclose(geom.points[..., 1][floor], h_cam, atol=1e-5)
        # independent derivation from the intrinsics alone: Z = h fy / (v - cy) on the floor
        fx, fy, cx, cy = item.intrinsics
        v = np.nonzero(floor)[0].astype(np.float64)
        z_expected = h_cam * fy / (v - cy)
        assert np.allclose(item.depth[floor], z_expected, rtol=1e-5)
        # the level camera sees the floor only below the horizon row
        assert v.min() > cy


def test_walls_match_their_described_planes(scenes):
    for seed in SEEDS:
        item, geom = scenes[seed]
        for wall in item.info["scene"]["room"]["walls"]:
            sel = geom.object_id == wall["id"]
            if not sel.any():
                continue
            p = geom.points[sel].astype(np.float64)
            nx, nz = wall["normal_xz"]
            assert np.allclose(p[:, 0] * nx + p[:, 2] * nz, wall["offset"], rtol=1e-5, atol=1e-4)
            assert (p[:, 1] < geom.camera_height + 1e-4).all()  # never below the floor
        # the front wall is behind the camera
        assert not (geom.object_id == -5).any()


def test_object_pixels_lie_on_their_object(scenes):
    checked = 0
    for seed in SEEDS:
        item, geom = scenes[seed]
        for obj in item.info["scene"]["objects"]:
            sel = geom.object_id == obj["id"]
            if not sel.any():
                continue
            p = geom.points[sel].astype(np.float64)
            c = np.asarray(obj["center"])
            if obj["kind"] == "sphere":
                r = np.linalg.norm(p - c, axis=1)
                assert np.allclose(r, obj["radius"], rtol=1e-4, atol=1e-4)
                # resting on the floor
                assert c[1] + obj["radius"] == pytest.approx(geom.camera_height, abs=1e-6)
            else:
                axes, c = _box_frame(obj)
                local = (p - c) @ axes.T
                scaled = np.abs(local) / (0.5 * np.asarray(obj["size"]))
                assert np.allclose(scaled.max(axis=1), 1.0, atol=1e-3)
                assert c[1] + obj["size"][1] / 2 == pytest.approx(geom.camera_height, abs=1e-6)
            n = geom.normals[sel].astype(np.float64)
            assert np.allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-4)
            assert ((n * p).sum(axis=1) < 0).all()  # faces the camera
            checked += 1
    assert checked >= 2 * len(SEEDS)


def test_object_centres_project_onto_their_object_unless_occluded(scenes):
    visible = total = 0
    for seed in SEEDS:
        item, geom = scenes[seed]
        fx, fy, cx, cy = item.intrinsics
        for obj in item.info["scene"]["objects"]:
            x, y, z = obj["center"]
            u = int(round(fx * x / z + cx))
            v = int(round(fy * y / z + cy))
            if not (0 <= u < W and 0 <= v < H):
                continue
            total += 1
            shown = int(geom.object_id[v, u])
            if shown == obj["id"]:
                visible += 1
                assert item.depth[v, u] <= z + 1e-4
            else:
                # hidden: only another object, nearer than this one's centre, can cover it
                assert shown > 0, (seed, obj["id"], SURFACE_NAMES.get(shown))
                assert item.depth[v, u] < z
    assert total >= 2 * len(SEEDS)
    assert visible >= 0.9 * total


def test_objects_stand_apart_inside_the_view(scenes):
    for seed in SEEDS:
        _, geom = scenes[seed]
        objs = geom.objects
        assert 2 <= len(objs)
        assert [o.id for o in objs] == list(range(1, len(objs) + 1))
        for i, a in enumerate(objs):
            for b in objs[i + 1:]:
                gap = math.dist(a.ground_xz, b.ground_xz)
                assert gap > a.footprint_radius + b.footprint_radius
        fx, fy, cx, cy = geom.intrinsics
        for o in objs:
            # placed inside the horizontal field of view and never hidden entirely
            assert abs(fx * o.center[0] / o.center[2]) < cx
            assert (geom.object_id == o.id).sum() > 10


# --------------------------------------------------------------------------- appearance


def test_rgb_looks_like_a_textured_scene(scenes):
    for seed in SEEDS:
        item, geom = scenes[seed]
        rgb = item.rgb.astype(np.float64)
        lum = rgb @ np.array([0.299, 0.587, 0.114])
        assert lum.std() > 20
        assert len(np.unique(item.rgb.reshape(-1, 3), axis=0)) > 2000
        # texture inside surfaces, not flat fills: neighbouring pixels of one surface
        # differ often
        same = geom.object_id[:, 1:] == geom.object_id[:, :-1]
        diff = np.abs(np.diff(lum, axis=1)) > 2
        assert diff[same].mean() > 0.15
        # no surface is a uniform colour
        for sid in np.unique(geom.object_id):
            sel = geom.object_id == sid
            if sel.sum() > 200:
                assert lum[sel].std() > 3, (seed, int(sid))


def test_arrays_are_read_only(scenes):
    item, _ = scenes[SEEDS[0]]
    for arr in (item.rgb, item.depth, item.mask):
        with pytest.raises(ValueError):
            arr[0, 0] = 1


# --------------------------------------------------------------------------- source API


def test_refs_and_loading():
    refs = procedural_refs(3, seed=10)
    assert [r.path for r in refs] == ["procedural:10", "procedural:11", "procedural:12"]
    assert [r.id for r in refs] == [f"procedural/scene-{k:05d}" for k in (10, 11, 12)]
    assert all(r.kind == "procedural" for r in refs)
    item = load_procedural_item(refs[1], LoadOptions())
    assert item.id == refs[1].id
    assert item.rgb.shape == (480, 640, 3)
    again = render_scene(11)
    assert np.array_equal(item.rgb, again.rgb)
    assert np.array_equal(item.depth, again.depth)


def test_generic_loader_dispatches_procedural_refs():
    from spatial_ssrl.sources import load_source_item

    ref = procedural_refs(1, seed=2)[0]
    item = load_source_item(ref, LoadOptions())
    assert item.id == "procedural/scene-00002" and item.has_depth
    assert item.depth_kind == "metric"


def test_loading_with_explicit_size_and_pixel_limit():
    ref = SourceRef(id="procedural/scene-00006", path="procedural:6:320x240", kind="procedural")
    item = load_procedural_item(ref, LoadOptions())
    assert item.rgb.shape == (240, 320, 3)
    limited = load_procedural_item(ref, LoadOptions(resize_max_pixels=160 * 120))
    assert limited.rgb.shape == (120, 160, 3)
    assert limited.info["resize"]["from"] == [320, 240]
    # rendered at the smaller size, so depth stays exact and intrinsics follow the grid
    assert limited.intrinsics[0] == pytest.approx(item.intrinsics[0] / 2)
    geom = scene_geometry(6, 160, 120)
    assert np.array_equal(limited.depth, geom.points[..., 2])
    with pytest.raises(SourceSkip) as exc:
        load_procedural_item(ref, LoadOptions(min_side=300))
    assert exc.value.reason == "too_small"


@pytest.mark.parametrize("path", ["procedural:", "procedural:x", "procedural:-3", "scene:4", "procedural:4:10by10"])
def test_bad_paths_are_named_skips(path):
    with pytest.raises(SourceSkip) as exc:
        load_procedural_item(SourceRef(id="p", path=path, kind="procedural"), LoadOptions())
    assert exc.value.reason == "bad_procedural_path"


def test_negative_seed_is_refused():
    with pytest.raises(ValueError):
        render_scene(-1, 64, 48)
    with pytest.raises(ValueError):
        procedural_refs(2, seed=-5)


def test_cool_down_drops_the_textures_and_a_later_render_is_the_same():
    """The parent of the workers drops the textures once they are forked (sources.cool_down);
    a process that renders afterwards reads them again and gets the same pixels."""
    from spatial_ssrl.sources import cool_down
    from spatial_ssrl.sources import procedural

    before = render_scene(11, 96, 72)
    assert procedural._textures.cache_info().currsize == 1
    cool_down()
    assert procedural._textures.cache_info().currsize == 0
    assert not procedural._RENDER_CACHE
    after = render_scene(11, 96, 72)
    assert np.array_equal(before.rgb, after.rgb)
    assert np.array_equal(before.depth, after.depth)
