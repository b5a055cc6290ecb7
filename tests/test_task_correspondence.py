"""The cross-view correspondence task (issue 24).

Every level is generated through the real engine on the built-in inputs. Each answer is
found again here from the sources by geometry written in this file, independently of the
generator and of ``ssrl validate``: on the procedural scenes the analytic 3D point behind
the marked pixel (``scene_geometry``) is moved into the second camera with rotation
matrices built here from the documented pose conventions and projected, and the second
view's own analytic geometry must show that very point there; on the Middlebury pair the
match is a disparity lookup in scikit-image's file. The output pixels must be crops of the
two views with rings only where the sample says. ``ssrl validate`` passes and catches
tampering; each rejection has its name (and the occlusion filters are checked against the
analytic scenes and a hand-made disparity row); the export formats load; the online feeder
and the curriculum take the task.
"""

from __future__ import annotations

import io
import json
import math
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from deps import assert_validate_catches, edit_rows, run_cli
from PIL import Image

from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
from spatial_ssrl.sources import SourceRef, builtin_rgbd, default_refs, load_source_item
from spatial_ssrl.sources.base import Item
from spatial_ssrl.sources.builtin import builtin_data_dir
from spatial_ssrl.sources.procedural import (
    Pose,
    procedural_refs,
    render_scene,
    render_view,
    scene_geometry,
)
from spatial_ssrl.tasks import generate_sample, make_task
from spatial_ssrl.tasks.correspondence import hidden_in_right
from spatial_ssrl.tasks.levels import task_levels

LEVELS = ["3-candidates-far", "4-candidates-far", "6-candidates-far", "4-candidates-near", "6-candidates-near"]
SPEC = ",".join(f"correspondence:{v}=1" for v in LEVELS)
LETTERS = "ABCDEF"


def _rows(out) -> list[dict]:
    rows = []
    for f in sorted((out / "data").glob("*.parquet")):
        rows.extend(pq.read_table(f).to_pylist())
    return rows


def _decode(cell) -> np.ndarray:
    with Image.open(io.BytesIO(cell["bytes"])) as im:
        return np.asarray(im.convert("RGB"))


def _params(row) -> dict:
    return json.loads(row["meta"])["params"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Every level through ``ssrl generate`` on the built-in inputs (procedural scenes and
    the Middlebury pair are the depth sources)."""
    out = tmp_path_factory.mktemp("correspondence") / "run"
    run_cli("generate", "--out", out, "-n", 20, "--tasks", SPEC, "--seed", 5, "--workers", 1, "-q")
    return out


@pytest.fixture(scope="module")
def stereo(tmp_path_factory):
    """Every level on the Middlebury pair alone."""
    out = tmp_path_factory.mktemp("correspondence-stereo") / "run"
    run_generation(builtin_rgbd(), str(out), GenerateConfig(num=10, seed=2, mix=parse_mix(SPEC, with_depth=True),
                                                            workers=1))
    return out


# ----------------------------------------------------------------------------- geometry


def _rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Camera-to-scene rotation of the documented convention: a yaw about the vertical Y
    axis (positive turns forward +Z toward +X) after a pitch about X (positive tilts
    forward toward -Y, up)."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    about_y = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    about_x = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return about_y @ about_x


def _pose(d: dict) -> tuple[np.ndarray, np.ndarray]:
    return np.array(d["position"], dtype=np.float64), _rotation(d["yaw_deg"], d.get("pitch_deg", 0.0))


def _nearest(cands, p) -> tuple[int, float, float]:
    """Index of the candidate nearest ``p``, its distance, and the next one's."""
    d = np.sort(np.hypot(*(np.asarray(cands, dtype=np.float64) - p).T))
    k = int(np.argmin(np.hypot(*(np.asarray(cands, dtype=np.float64) - p).T)))
    return k, float(d[0]), float(d[1])


def _procedural_truth(p: dict) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(the match in the second shown image, the candidates' analytic scene points, the
    marked point's scene point) from the scenes' analytic geometry."""
    w, h = p["size"]
    (o1x, o1y), (o2x, o2y) = p["frames"]
    u1, v1 = p["markers"]["1"][0] + o1x, p["markers"]["1"][1] + o1y
    g1 = scene_geometry(p["scene_seed"], w, h)
    g2 = scene_geometry(p["scene_seed"], w, h, pose=Pose.from_dict(p["poses"][1]))
    t1, r1 = _pose(p["poses"][0])
    t2, r2 = _pose(p["poses"][1])
    scene = r1 @ g1.points[v1, u1].astype(np.float64) + t1
    cam2 = r2.T @ (scene - t2)
    fx, fy, cx, cy = g2.intrinsics
    match = np.array([fx * cam2[0] / cam2[2] + cx, fy * cam2[1] / cam2[2] + cy])
    # the second view sees that very point at the match: same object, same place
    iu, iv = (round(float(t)) for t in match)
    assert g2.object_id[iv, iu] == g1.object_id[v1, u1]
    seen = r2 @ g2.points[iv, iu].astype(np.float64) + t2
    assert np.linalg.norm(seen - scene) <= 0.02 * cam2[2] + 0.02
    cand_pts = [r2 @ g2.points[y + o2y, x + o2x].astype(np.float64) + t2 for x, y in p["candidates"]]
    return match - np.array([o2x, o2y]), cand_pts, scene


def _stereo_truth(p: dict) -> np.ndarray:
    """The match in the second shown image, from scikit-image's disparity file: left pixel
    (u, v) is (u - d, v) in the right view."""
    disp = np.load(f"{builtin_data_dir()}/motorcycle_disp.npz")["arr_0"].astype(np.float64)
    (o1x, o1y), (o2x, o2y) = p["frames"]
    x, y = p["markers"]["1"][0] + o1x, p["markers"]["1"][1] + o1y
    row = disp[y]
    if p["order"] == "left-right":
        assert np.isfinite(row[x])
        match = np.array([x - row[x], y])
    else:  # the marked pixel is in the right view: the left pixel landing on it, nearest in front
        cols = np.arange(row.size)
        lands = np.abs(cols - row - x)
        near = np.flatnonzero(np.isfinite(lands) & (lands <= 0.5 + 1e-9))
        assert near.size, "no left pixel lands on the marked right pixel"
        match = np.array([float(near[np.argmax(row[near])]), y])
    return match - np.array([o2x, o2y])


def _jpeg_again(a: np.ndarray, quality: int = 95) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def _check_pixels(out: np.ndarray, view: np.ndarray, frame, size, centres, radius: int) -> None:
    """``out`` is the crop of ``view`` at ``frame`` with rings drawn at ``centres`` and
    nothing else: away from the coding blocks the rings touch it is the crop as JPEG
    (quality 95, the default) codes it, and every ring shows as changed pixels around its
    centre."""
    x, y = frame
    w, h = size
    crop = np.ascontiguousarray(view[y:y + h, x:x + w])
    assert out.shape == crop.shape
    ref = _jpeg_again(crop)
    diff = np.abs(out.astype(np.int16) - crop.astype(np.int16)).max(axis=2)
    yy, xx = np.mgrid[0:h, 0:w]
    touched = np.zeros((h, w), dtype=bool)
    for cx, cy in centres:
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        band = (d2 >= (radius - 3) ** 2) & (d2 <= (radius - 1) ** 2)
        assert (diff[band] > 40).mean() > 0.3, f"no ring at ({cx}, {cy})"
        r = radius + 2
        touched[max(0, (cy - r) // 16 * 16 - 16):(cy + r) // 16 * 16 + 32,
                max(0, (cx - r) // 16 * 16 - 16):(cx + r) // 16 * 16 + 32] = True
    away = np.abs(out.astype(np.int16) - ref).max(axis=2)[~touched]
    assert (away > 8).mean() < 2e-4, "the picture differs from the crop away from the rings"


# ----------------------------------------------------------------------------- the answers


def test_every_level_on_the_procedural_scenes_re_derives(run):
    rows = _rows(run)
    assert len(rows) == 20 and {r["variant"] for r in rows} == set(LEVELS)
    procedural = [r for r in rows if r["source"].startswith("procedural:")]
    assert {r["variant"] for r in procedural} == set(LEVELS)
    for r in rows:
        n = int(r["variant"][0])
        assert r["task"] == "correspondence" and r["answer_type"] == "choice"
        assert r["options"] == list(LETTERS[:n]) and r["answer"] in LETTERS[:n]
        assert r["problem"].count("<image>") == 2 and len(r["images"]) == 2
        assert f"marked as {', '.join(LETTERS[:n - 1])}, and {LETTERS[n - 1]}" in r["problem"]
    for r in procedural:
        p = _params(r)
        match, cand_pts, scene = _procedural_truth(p)
        k, dist, second = _nearest(p["candidates"], match)
        assert dist <= 0.71 and second > 20, (r["id"], dist, second)
        assert r["answer"] == LETTERS[k], r["id"]
        for i, q in enumerate(cand_pts):  # the distractors are other places of the scene
            if i != k:
                assert np.linalg.norm(q - scene) >= 0.08, (r["id"], i)
        w, h = p["size"]
        first = render_scene(p["scene_seed"], w, h).rgb
        second_view = render_view(p["scene_seed"], (w, h), p["poses"][1]).rgb
        radius = p["marker"]["radius"]
        _check_pixels(_decode(r["images"][0]), first, p["frames"][0], p["frame_size"], [p["markers"]["1"]], radius)
        _check_pixels(_decode(r["images"][1]), second_view, p["frames"][1], p["frame_size"], p["candidates"], radius)


def test_every_level_on_the_middlebury_pair_re_derives(stereo):
    rows = _rows(stereo)
    assert len(rows) == 10 and {r["variant"] for r in rows} == set(LEVELS)
    left = np.asarray(Image.open(f"{builtin_data_dir()}/motorcycle_left.png").convert("RGB"))
    right = np.asarray(Image.open(f"{builtin_data_dir()}/motorcycle_right.png").convert("RGB"))
    orders = set()
    for r in rows:
        p = _params(r)
        orders.add(p["order"])
        k, dist, second = _nearest(p["candidates"], _stereo_truth(p))
        assert dist <= 1.0 and second > 20, (r["id"], dist, second)
        assert r["answer"] == LETTERS[k], r["id"]
        views = (left, right) if p["order"] == "left-right" else (right, left)
        radius = p["marker"]["radius"]
        _check_pixels(_decode(r["images"][0]), views[0], p["frames"][0], p["frame_size"], [p["markers"]["1"]], radius)
        _check_pixels(_decode(r["images"][1]), views[1], p["frames"][1], p["frame_size"], p["candidates"], radius)
    assert orders == {"left-right", "right-left"}


def test_positions_give_the_answer_away_no_more_than_chance(run, stereo):
    """The candidate nearest the marked point's place in the picture, and the middle one
    of the candidates, are the answer about as often as chance (1/N) over many samples."""
    items = [load_source_item(r) for r in procedural_refs(6)]
    hits = {"place": 0, "middle": 0}
    chance = 0.0
    total = 0
    for level in ("4-candidates-far", "4-candidates-near", "6-candidates-far"):
        task = make_task("correspondence", level)
        for i in range(20):
            s, _ = generate_sample(task, items[i % 6], np.random.default_rng(i), "x")
            if s is None:
                continue
            p = s.meta["params"]
            c = np.array(p["candidates"], dtype=np.float64)
            truth = LETTERS.index(s.answer)
            hits["place"] += int(np.argmin(np.hypot(*(c - p["markers"]["1"]).T)) == truth)
            hits["middle"] += int(np.argmin(np.linalg.norm(c[:, None] - c[None], axis=2).sum(1)) == truth)
            chance += 1.0 / task.n
            total += 1
    for name, k in hits.items():
        assert k <= chance + 3 * math.sqrt(chance), (name, k, chance)  # ~3 sd above chance at most


# ----------------------------------------------------------------------------- validate


def test_validate_passes_and_catches_tampering(run, stereo, tmp_path):
    for out in (run, stereo):
        res = run_cli("validate", out, "--out", tmp_path / "ok.json")
        report = json.loads((tmp_path / "ok.json").read_text())
        assert report["ok"] and report["tasks"]["correspondence"]["failed"] == 0, res.output
        assert report["tasks"]["correspondence"]["passed"] == len(_rows(out))

    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    data, save = edit_rows(bad)
    tampered = {}
    for level in LEVELS:  # a wrong letter
        r = next(x for x in data if x["variant"] == level and x["id"] not in tampered)
        r["answer"] = LETTERS[(LETTERS.index(r["answer"]) + 1) % len(r["options"])]
        tampered[r["id"]] = "stored answer"
    free = [x for x in data if x["id"] not in tampered and x["source"].startswith("procedural:")]
    r = free[0]  # two rings' places swapped in meta: the pixels still agree, the letters do not
    meta = json.loads(r["meta"])
    cands = meta["params"]["candidates"]
    k = LETTERS.index(r["answer"])
    cands[k], cands[(k + 1) % len(cands)] = cands[(k + 1) % len(cands)], cands[k]
    r["meta"] = json.dumps(meta)
    tampered[r["id"]] = "stored answer"
    r = free[1]  # the second camera turned a little further: the picture is not that view
    meta = json.loads(r["meta"])
    meta["params"]["poses"][1]["yaw_deg"] += 4.0
    r["meta"] = json.dumps(meta)
    tampered[r["id"]] = ""
    r = free[2]  # the two images swapped
    r["images"] = r["images"][::-1]
    tampered[r["id"]] = ""
    save()

    assert_validate_catches(bad, tmp_path / "bad.json", tampered)


# ----------------------------------------------------------------------------- rejections


@pytest.fixture(scope="module")
def scene():
    return load_source_item(procedural_refs(1, seed=3)[0])


def _sample_params(item, level="4-candidates-far", seed=0):
    task = make_task("correspondence", level)
    for s in range(seed, seed + 20):
        p = task.make_params(np.random.default_rng(s), item)
        if "rejected" not in p and task.check(item, p) is None:
            return task, p
    raise AssertionError("no sample drawn")


def test_contract_pickle_json_and_determinism(scene):
    import pickle

    task = make_task("correspondence", "6-candidates-near")
    first, _ = generate_sample(task, scene, np.random.default_rng(5), "a")
    assert first is not None
    clone = pickle.loads(pickle.dumps(task))
    assert len(pickle.dumps(task)) < 4096
    again, _ = generate_sample(clone, scene, np.random.default_rng(5), "a")
    assert again.answer == first.answer and all(np.array_equal(x, y) for x, y in zip(again.images, first.images))
    params = json.loads(json.dumps(first.meta["params"]))
    assert params == first.meta["params"] and task.answer(params) == first.answer


def test_rejections_are_named(scene):
    task = make_task("correspondence", "4-candidates-far")
    plain = Item(id="plain", rgb=scene.rgb, depth=scene.depth, mask=scene.mask, intrinsics=scene.intrinsics,
                 depth_kind="metric")  # RGB-D, but no second view
    s, rej = generate_sample(task, plain, np.random.default_rng(0), "x")
    assert s is None and set(rej) == {"correspondence_no_second_view"}
    flat = Item(id="photo", rgb=scene.rgb, path="procedural:3")
    s, rej = generate_sample(task, flat, np.random.default_rng(0), "x")
    assert s is None and set(rej) == {"correspondence_needs_metric_depth"}

    task, p = _sample_params(scene)
    outside = json.loads(json.dumps(p))
    outside["poses"][1]["position"][0] = 50.0
    assert task.check(scene, outside) == "correspondence_pose_outside_room"
    moved = json.loads(json.dumps(p))
    moved["candidates"][0][0] += 3
    assert task.check(scene, moved) == "correspondence_geometry_mismatch"
    strict = json.loads(json.dumps(p))
    strict["rules"]["min_separation_m"] = 100.0
    assert task.check(scene, strict) == "correspondence_candidate_rule"
    small = Item(id="small", rgb=scene.rgb[:400], depth=scene.depth[:400], intrinsics=scene.intrinsics,
                 path="procedural:3", depth_kind="metric")
    assert task.check(small, p) == "correspondence_size_mismatch"

    # a first-view pixel that the second view does not see, and one on a depth edge
    h, w = scene.height, scene.width
    vs, us = np.mgrid[20:h - 20:3, 20:w - 20:3]
    pool = task.pool(scene, p, us.ravel(), vs.ravel())
    for reason in ("point_occluded", "point_on_depth_edge"):
        i = pool.failed.index(reason)
        bad = json.loads(json.dumps(p))
        bad["point"]["anchor"] = [int(us.ravel()[i]), int(vs.ravel()[i])]
        assert task.check(scene, bad) == f"correspondence_{reason}"


def test_occlusion_filter_agrees_with_the_analytic_scenes():
    """Pixels the filter calls hidden in the second view really are: the analytic geometry
    of the second view shows another place at their projection; pixels it keeps are seen."""
    for seed in (3, 7, 11):
        item = load_source_item(procedural_refs(1, seed=seed)[0])
        task, p = _sample_params(item)
        h, w = item.height, item.width
        vs, us = np.mgrid[24:h - 24:4, 24:w - 24:4]
        us, vs = us.ravel(), vs.ravel()
        pool = task.pool(item, p, us, vs)
        g1 = scene_geometry(seed, w, h)
        g2 = scene_geometry(seed, w, h, pose=Pose.from_dict(p["poses"][1]))
        t2, r2 = _pose(p["poses"][1])
        checked = {"kept": 0, "hidden": 0}
        for i, why in enumerate(pool.failed):
            if why not in (None, "point_occluded"):
                continue
            scene_pt = g1.points[vs[i], us[i]].astype(np.float64)  # first camera = scene frame
            cam2 = r2.T @ (scene_pt - t2)
            fx, fy, cx, cy = g2.intrinsics
            iu, iv = round(fx * cam2[0] / cam2[2] + cx), round(fy * cam2[1] / cam2[2] + cy)
            there = r2 @ g2.points[iv, iu].astype(np.float64) + t2
            gap = np.linalg.norm(there - scene_pt)
            if why is None:
                assert gap <= 0.03 * cam2[2] + 0.02, (seed, us[i], vs[i], gap)
                checked["kept"] += 1
            else:
                assert gap > 0.02 * cam2[2], (seed, us[i], vs[i], gap)
                checked["hidden"] += 1
        assert checked["kept"] > 100 and checked["hidden"] > 0, checked


def test_stereo_occlusion_on_a_hand_made_row():
    """A near block (disparity 20, columns 60..79) in front of a far wall (disparity 5):
    the right view loses the 15 wall pixels left of the block that the block covers there
    (20 - 5 = 15), plus one pixel of margin; nothing else is hidden."""
    row = np.full((1, 120), 5.0)
    row[0, 60:80] = 20.0
    hidden = hidden_in_right(row)[0]
    assert set(np.flatnonzero(hidden)) == set(range(60 - 16, 60))
    row[0, 30] = np.nan  # a pixel without disparity is never used, and hides nothing
    assert not hidden_in_right(row)[0, 30]
    assert set(np.flatnonzero(hidden_in_right(row)[0])) == set(range(44, 60))


def test_a_wrong_right_view_rejects_every_point(tmp_path):
    """The stereo filter compares each point's windows in the two views: with noise for a
    right view nothing is left to ask about."""
    root = builtin_data_dir()
    shutil.copy(f"{root}/motorcycle_left.png", tmp_path / "moto_left.png")
    shutil.copy(f"{root}/motorcycle_disp.npz", tmp_path / "moto_disp.npz")
    noise = np.random.default_rng(0).integers(0, 256, (500, 741, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "moto_right.png")
    ref = builtin_rgbd()[0]
    item = load_source_item(SourceRef("moto", str(tmp_path / "moto_left.png"), kind="rgbd",
                                      depth=str(tmp_path / "moto_disp.npz"), depth_format="disparity",
                                      intrinsics=ref.intrinsics, baseline=ref.baseline,
                                      disparity_offset=ref.disparity_offset))
    task = make_task("correspondence", "3-candidates-far")
    p = task.make_params(np.random.default_rng(0), item)
    assert p == {"rejected": "correspondence_no_visible_point"}


def test_engine_names_the_rejection_of_an_rgbd_file_without_a_second_view(tmp_path):
    item = render_scene(8, 320, 240)
    Image.fromarray(item.rgb).save(tmp_path / "room.png")
    np.save(tmp_path / "room_depth.npy", np.asarray(item.depth))
    manifest = tmp_path / "pairs.jsonl"
    manifest.write_text(json.dumps({"rgb": "room.png", "depth": "room_depth.npy", "depth_format": "npy",
                                    "intrinsics": list(item.intrinsics)}) + "\n")
    res = run_cli("generate", "--input", manifest, "--out", tmp_path / "out", "-n", 2, "--tasks",
                  "correspondence", "-q", ok=False)
    assert "correspondence_no_second_view" in res.output and "Traceback" not in res.output


def test_resized_stereo_pair(tmp_path):
    """The Middlebury pair loaded at half size: the generator and ``ssrl validate`` both
    work on the reduced grid; the answers match the disparity file scaled to it."""
    from spatial_ssrl.sources import LoadOptions

    out = tmp_path / "out"
    run_generation(builtin_rgbd(), str(out), GenerateConfig(
        num=6, seed=2, mix=parse_mix("correspondence:4-candidates-far=1,correspondence:4-candidates-near=1",
                                     with_depth=True),
        load=LoadOptions(resize_max_pixels=371 * 250), workers=1))
    disp = np.load(f"{builtin_data_dir()}/motorcycle_disp.npz")["arr_0"].astype(np.float64)
    rows = _rows(out)
    assert len(rows) == 6
    checked = 0
    for r in rows:
        p = _params(r)
        w, h = p["size"]
        assert w < 741 and h < 500
        s = w / 741
        (o1x, o1y), (o2x, o2y) = p["frames"]
        x, y = p["markers"]["1"][0] + o1x, p["markers"]["1"][1] + o1y
        if p["order"] == "left-right":  # the full-size disparity pixel under the small one, scaled
            d = disp[min(499, int((y + 0.5) * 500 / h)), min(740, int((x + 0.5) / s))] * s
            k, dist, _ = _nearest(p["candidates"], np.array([x - d - o2x, y - o2y]))
            assert dist <= 1.5 and r["answer"] == LETTERS[k], (r["id"], dist)
            checked += 1
    assert checked
    res = run_cli("validate", out, "--out", tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text())["tasks"]["correspondence"]["passed"] == 6, res.output


# ----------------------------------------------------------------------------- plumbing


@pytest.mark.parametrize("fmt", ["canonical", "trl", "easyr1", "verl", "llamafactory"])
def test_every_export_format_reads_back(fmt, tmp_path):
    from spatial_ssrl.readers import open_dataset

    out = tmp_path / fmt
    run_generation(procedural_refs(2), str(out), GenerateConfig(num=4, seed=2, format=fmt,
                                                                mix=parse_mix(SPEC, with_depth=True), workers=1))
    records = list(open_dataset(str(out)).records())
    assert len(records) == 4 and {r.task for r in records} == {"correspondence"}
    for r in records:
        assert r.answer in r.options and len(r.images) == 2 and r.problem.count("<image>") == 2
    if fmt == "llamafactory":
        for rec in (json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()):
            target = rec["messages"][1]["content"]
            assert "same spot" in target and target.endswith(f"\\boxed{{{rec['answer']}}}")
            assert len(rec["images"]) == 2 and all((out / f).is_file() for f in rec["images"])
    else:
        import datasets

        files = sorted(str(f) for f in (out / "data").glob("*.parquet"))
        assert datasets.load_dataset("parquet", data_files=files, split="train").num_rows == 4
    run_cli("validate", out, "--out", tmp_path / "report.json")
    tasks = json.loads((tmp_path / "report.json").read_text())["tasks"]["correspondence"]
    if fmt == "canonical":
        assert tasks["passed"] == 4
    else:  # the candidates' places live in the meta, which these formats leave out
        assert tasks["not_checkable"] == 4 and tasks["failed"] == 0


def test_reward_reads_letters_up_to_f():
    from spatial_ssrl.reward.scoring import score

    options = list(LETTERS)

    def acc(text):
        return score(f"<think>look</think> \\boxed{{{text}}}", "E", "choice", options=options)["accuracy"]

    assert acc("E") == 1.0 and acc("(E)") == 1.0 and acc("e") == 1.0
    assert acc("F") == 0.0 and acc("A") == 0.0 and acc("E or F") == 0.0


def test_listed_by_ssrl_tasks_not_in_the_default_mix_but_in_the_preset():
    lines = run_cli("tasks").output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("correspondence"))
    assert "answer_type=choice" in lines[at]
    assert lines[at + 1].split(":", 1)[1].strip().split(" < ") == LEVELS
    assert [lv.name for lv in task_levels("correspondence")] == LEVELS
    assert "correspondence" not in {e.task for e in parse_mix(None, with_depth=True)}
    assert "correspondence" in {e.task for e in parse_mix("all", with_depth=True)}
    assert "correspondence" not in {e.task for e in parse_mix("all", with_depth=False)}  # needs depth


def test_online_feeder_and_curriculum_take_the_task():
    from spatial_ssrl.training.curriculum import CurriculumSettings
    from spatial_ssrl.training.online import OnlineFeeder, curriculum_for

    mix = parse_mix("correspondence", with_depth=True)
    cur = curriculum_for(mix, CurriculumSettings(mode="adaptive"))
    assert cur.level("correspondence") == LEVELS[0]  # a task outside the paper starts at its easiest level
    refs = [r for r in default_refs() if r.kind != "image"][:4]
    with OnlineFeeder(refs, mix, seed=3, curriculum=cur, workers=0) as feeder:
        it = feeder.rows()
        first = [next(it) for _ in range(3)]
        cur.state["correspondence"].level = LEVELS.index("6-candidates-near")
        later = [next(it) for _ in range(3)]
    assert {(r["task"], r["variant"]) for r in first} == {("correspondence", LEVELS[0])}
    assert {r["variant"] for r in later} == {"6-candidates-near"}
    for r in first + later:
        assert r["answer"] in r["options"] and len(r["images"]) == 2
        assert [c["type"] for c in r["prompt"][0]["content"][:2]] == ["image", "image"]
