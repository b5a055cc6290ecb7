"""The metric distance task and the numeric answer type.

Every level is generated through the real engine; each answer is recomputed here from the
sources themselves, independently of the generator and of ``ssrl validate``: on the
procedural scenes from the analytic 3D point behind each pixel (``scene_geometry``), on the
Middlebury pair from its disparity file and the rig's calibration written out below, on the
DIODE sample from its ``.npy`` depth. The marker centres are found in the output pixels.
The numeric reward is checked against hand-worked mean relative accuracies and unit
spellings.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from deps import edit_rows, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
from spatial_ssrl.sources import LoadOptions, default_refs, load_source_item
from spatial_ssrl.sources.base import Item
from spatial_ssrl.sources.procedural import (
    procedural_refs,
    render_scene,
    scene_geometry,
)
from spatial_ssrl.tasks import generate_sample, make_task
from spatial_ssrl.tasks.levels import task_levels

LEVELS = [lv.name for lv in task_levels("distance")]
ALL_LEVELS = ",".join(f"distance:{v}=1" for v in LEVELS)


def _rows(out) -> list[dict]:
    rows = []
    for f in sorted((out / "data").glob("*.parquet")):
        rows.extend(pq.read_table(f).to_pylist())
    return rows


def _image(row) -> np.ndarray:
    with Image.open(io.BytesIO(row["images"][0]["bytes"])) as im:
        return np.asarray(im.convert("RGB"))


def _marker_centres_from_pixels(out_img: np.ndarray, src: np.ndarray, n: int) -> list[tuple[float, float]]:
    """Centres of the drawn rings, from the pixels that differ from the source: split the
    changed pixels into ``n`` clusters by column/row gaps and take each bounding box's centre
    (a ring is symmetric about its centre)."""
    ys, xs = np.nonzero(np.any(out_img != src, axis=2))
    pts = np.stack([xs, ys], axis=1)
    groups = [pts]
    if n == 2:  # split along the axis with the larger gap between the two rings
        for axis in (0, 1):
            vals = np.unique(pts[:, axis])
            gaps = np.diff(vals)
            if gaps.size and gaps.max() > 3:
                cut = vals[np.argmax(gaps)]
                groups = [pts[pts[:, axis] <= cut], pts[pts[:, axis] > cut]]
                break
    return [((g[:, 0].min() + g[:, 0].max()) / 2, (g[:, 1].min() + g[:, 1].max()) / 2) for g in groups]


def _distance(mode: str, p1, p2=None) -> float:
    p1 = np.asarray(p1, dtype=np.float64)
    if mode == "camera":
        return float(np.sqrt((p1 ** 2).sum()))
    return float(np.sqrt(((p1 - np.asarray(p2, dtype=np.float64)) ** 2).sum()))


def _check_answer(row, d: float):
    assert abs(d - float(row["answer"])) <= 0.005 + 1e-6, (row["id"], d, row["answer"])
    assert f"{d:.2f}" == row["answer"], (row["id"], d, row["answer"])


# ------------------------------------------------------------------------------ generation


@pytest.fixture(scope="module")
def procedural_set(tmp_path_factory):
    """Every level on the procedural scenes, lossless PNG so the rings can be found."""
    out = tmp_path_factory.mktemp("distance") / "procedural"
    run_generation(procedural_refs(12), str(out),
                   GenerateConfig(num=16, seed=5, mix=parse_mix(ALL_LEVELS, with_depth=True), workers=1,
                                  image_format="png"))
    return out


def test_every_level_matches_the_scene_geometry(procedural_set):
    rows = _rows(procedural_set)
    assert sorted({r["variant"] for r in rows}) == sorted(LEVELS)
    assert len(rows) == 16
    for row in rows:
        meta = json.loads(row["meta"])
        params = meta["params"]
        assert row["answer_type"] == "numeric" and row["options"] is None
        seed = int(row["source"].split(":")[1])
        w, h = meta["image_size"]
        geom = scene_geometry(seed, w, h)
        src = render_scene(seed, w, h).rgb
        mode = "camera" if row["variant"] == "camera" else "pair"
        n = 1 if mode == "camera" else 2
        assert "from the camera" in row["problem"] if mode == "camera" else "between the two points" in row["problem"]
        assert "meters" in row["problem"]
        found = _marker_centres_from_pixels(_image(row), src, n)
        markers = {int(k): v for k, v in params["markers"].items()}
        assert sorted(markers) == list(range(1, n + 1))
        for (fx, fy), (u, v) in zip(sorted(found), sorted(markers.values())):
            assert abs(fx - u) <= 1 and abs(fy - v) <= 1, (found, markers)
        p = [geom.points[markers[k][1], markers[k][0]] for k in range(1, n + 1)]
        d = _distance(mode, *p)
        _check_answer(row, d)
        if row["variant"] == "pair-lateral":
            assert abs(float(p[0][2]) - float(p[1][2])) <= 0.3 * d + 1e-6
        if row["variant"] == "pair-depth":
            assert abs(float(p[0][2]) - float(p[1][2])) >= 0.7 * d - 1e-6
        if mode == "pair":
            assert d >= 0.3
            (u1, v1), (u2, v2) = markers[1], markers[2]
            assert math.hypot(u1 - u2, v1 - v2) > 0.1 * min(w, h)


def test_validate_passes_and_catches_a_tampered_answer(procedural_set, tmp_path):
    res = run_cli("validate", procedural_set)
    assert "all checked samples pass" in res.output
    bad = tmp_path / "bad"
    shutil.copytree(procedural_set, bad)
    rows, save = edit_rows(bad)
    victim = rows[3]
    victim["answer"] = f"{float(victim['answer']) + 0.01:.2f}"  # one centimetre off
    save()
    report = tmp_path / "r.json"
    res = run_cli("validate", bad, "--out", report, ok=False)
    assert res.exit_code == 1
    failures = json.loads(report.read_text())["failures"]
    assert [f["id"] for f in failures] == [victim["id"]]
    assert "stored answer" in failures[0]["reason"]


def test_middlebury_answers_from_the_disparity_file(tmp_path):
    """The bundled Middlebury pair: depth = f B / (d + doffs), with the 2014 calib.txt of
    Motorcycle (full resolution) divided by the factor 4 of scikit-image's copy."""
    (ref,) = [r for r in default_refs(procedural_scenes=0) if r.kind == "rgbd"]
    out = tmp_path / "mb"
    run_generation([ref], str(out), GenerateConfig(num=8, seed=2, mix=parse_mix(ALL_LEVELS, with_depth=True),
                                                   workers=1))
    rows = _rows(out)
    assert len(rows) == 8 and {r["source"] for r in rows} == {"data/motorcycle_left.png"}
    disp = np.load(ref.depth)["arr_0"].astype(np.float64)  # 741 x 500, the RGB's own grid
    f, cx, cy, doffs, baseline = 3979.911 / 4, 1244.772 / 4, 1019.507 / 4, 124.343 / 4, 0.193001
    for row in rows:
        params = json.loads(row["meta"])["params"]
        pts = []
        for k in sorted(params["markers"]):
            u, v = params["markers"][k]
            z = f * baseline / (disp[v, u] + doffs)
            pts.append((z * (u - cx) / f, z * (v - cy) / f, z))
        _check_answer(row, _distance("camera" if row["variant"] == "camera" else "pair", *pts))
    assert "all checked samples pass" in run_cli("validate", out).output


def test_diode_sample_answers_from_its_depth_file(shared_samples, tmp_path):
    """The DIODE sample through a manifest that gives intrinsics (the values commonly used
    for DIODE's scanner); the answer recomputed from the raw ``.npy`` depth."""
    intr = [886.81, 927.06, 512.0, 384.0]
    manifest = tmp_path / "diode.jsonl"
    manifest.write_text(json.dumps({"rgb": str(shared_samples / "RGB-D_img3.png"),
                                    "depth": str(shared_samples / "RGB-D_depth3.npy"),
                                    "mask": str(shared_samples / "RGB-D_depth_mask3.npy"),
                                    "depth_format": "diode", "intrinsics": intr}) + "\n")
    out = tmp_path / "diode"
    run_cli("generate", "--input", manifest, "--out", out, "-n", 4, "--tasks", "distance:camera=1,distance:pair=1",
            "--seed", 1, "-q")
    depth = np.load(shared_samples / "RGB-D_depth3.npy")[..., 0]
    fx, fy, cx, cy = intr
    rows = _rows(out)
    assert len(rows) == 4
    for row in rows:
        params = json.loads(row["meta"])["params"]
        pts = []
        for k in sorted(params["markers"]):
            u, v = params["markers"][k]
            z = float(depth[v, u])
            pts.append((z * (u - cx) / fx, z * (v - cy) / fy, z))
        _check_answer(row, _distance(row["variant"], *pts))
    assert "all checked samples pass" in run_cli("validate", out).output


def test_scale_free_depth_is_a_named_rejection(tmp_path):
    item = render_scene(4)
    for kind in ("relative", "order"):
        rel = Item(id="rel", rgb=item.rgb, depth=item.depth, mask=item.mask, intrinsics=item.intrinsics,
                   depth_kind=kind)
        task = make_task("distance", "pair")
        sample, rejections = generate_sample(task, rel, np.random.default_rng(0), "x")
        assert sample is None and set(rejections) == {"distance_needs_metric_depth"}
    blind = Item(id="blind", rgb=item.rgb, depth=item.depth, mask=item.mask, intrinsics=None, depth_kind="metric")
    sample, rejections = generate_sample(make_task("distance", "camera"), blind, np.random.default_rng(0), "x")
    assert sample is None and set(rejections) == {"distance_needs_intrinsics"}


def test_megadepth_input_is_refused_by_name(shared_samples, tmp_path):
    res = run_cli("generate", "--input", shared_samples / "RGB-D_img2.jpg", "--out", tmp_path / "m", "-n", 2,
                  "--tasks", "distance", "-q", ok=False)
    assert res.exit_code != 0
    assert "distance_needs_metric_depth" in res.output and "Traceback" not in res.output


# -------------------------------------------------------------------- the ambiguity rules


def _point(item, u, v):
    fx, fy, cx, cy = item.intrinsics
    z = float(item.depth[v, u])
    return {"depth": z, "xyz": [z * (u - cx) / fx, z * (v - cy) / fy, z]}


def _moved(item, params, label, u, v):
    """``params`` with point ``label`` moved to pixel (u, v), its record rebuilt here."""
    out = json.loads(json.dumps(params))
    p = out["points"][label - 1]
    s = out["region_side"]
    p.update(center=[u, v], box=[u - s // 2, v - s // 2, s, s], **_point(item, u, v))
    out["markers"][str(label)] = [u, v]
    return out


@pytest.fixture(scope="module")
def scene():
    return render_scene(6)


def _draw(variant, item, seed=0):
    task = make_task("distance", variant)
    sample, _ = generate_sample(task, item, np.random.default_rng(seed), "x")
    return task, sample.meta["params"]


def test_check_names_each_rejection(scene):
    task, params = _draw("pair", scene)
    assert task.check(scene, params) is None
    (u1, v1), (u2, v2) = params["markers"]["1"], params["markers"]["2"]
    s = params["region_side"]
    # next to point 1 in the image: rings overlapping, or apart but within 10 % of the side
    spacing = params["marker"]["min_spacing"]
    assert spacing + 2 <= 0.1 * min(scene.width, scene.height)
    reasons = set()
    for du, dv in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        for step, want in ((spacing // 2, "markers_overlap"), (spacing + 2, "distance_points_too_close_in_image")):
            got = task.check(scene, _moved(scene, params, 2, u1 + du * step, v1 + dv * step))
            assert got in (want, "distance_point_on_depth_edge", "distance_point_invalid_depth", "marker_outside_image")
            reasons.add(got)
    assert {"markers_overlap", "distance_points_too_close_in_image"} <= reasons
    # on a depth edge: a pixel whose window straddles two surfaces of very different depth
    geom = scene_geometry(6)
    ids = geom.object_id
    z = scene.depth
    h, w = z.shape
    edge = None
    for v in range(s, h - s, 3):
        for u in range(s, w - s, 3):
            win = z[v - s // 2:v + s // 2 + 1, u - s // 2:u + s // 2 + 1]
            if len(np.unique(ids[v - s // 2:v + s // 2 + 1, u - s // 2:u + s // 2 + 1])) > 1 and \
                    win.max() > 1.5 * win.min() and math.hypot(u - u1, v - v1) > 100:
                edge = (u, v)
                break
        if edge:
            break
    assert edge is not None
    assert task.check(scene, _moved(scene, params, 2, *edge)) == "distance_point_on_depth_edge"
    # invalid depth under point 2
    holed = scene.depth.copy()
    holed[v2, u2 + 1] = np.nan
    mask = scene.mask.copy()
    mask[v2, u2 + 1] = False
    item = Item(id=scene.id, rgb=scene.rgb, depth=holed, mask=mask, intrinsics=scene.intrinsics, depth_kind="metric")
    assert task.check(item, params) == "distance_point_invalid_depth"
    # a stored point that does not match the depth
    wrong = json.loads(json.dumps(params))
    wrong["points"][0]["xyz"][2] += 0.5
    assert task.check(scene, wrong) == "distance_geometry_mismatch"
    # a lateral pair judged as a depth pair, and the other way round
    lateral_task, lateral = _draw("pair-lateral", scene, 1)
    assert make_task("distance", "pair-depth").check(scene, lateral) == "distance_pair_not_depth"
    _, deep = _draw("pair-depth", scene, 1)
    assert lateral_task.check(scene, deep) == "distance_pair_not_lateral"
    # two points closer than the minimum distance in 3D
    strict = make_task("distance", "pair", min_distance=50.0)
    assert strict.check(scene, params) == "distance_points_too_close"
    # a marked area over which the distance changes by more than the allowed spread
    tight = make_task("distance", "pair", max_spread=1e-6)
    assert tight.check(scene, params) == "distance_marked_area_ambiguous"


def test_rounding_boundaries_are_redrawn(scene, monkeypatch):
    from spatial_ssrl.tasks import distance as distance_module

    task, params = _draw("camera", scene)
    d = math.hypot(*params["points"][0]["xyz"])
    assert distance_module.rounding_margin(d) >= 1e-4  # the drawn sample keeps clear of x.xx5
    assert distance_module.rounding_margin(2.345) < 1e-9 and distance_module.rounding_margin(2.34) == pytest.approx(0.005)
    assert task.answer(params) == f"{d:.2f}"
    monkeypatch.setattr(distance_module, "ROUNDING_GUARD", 1.0)  # every distance is now "on a boundary"
    assert task.check(scene, params) == "distance_rounding_boundary"


def test_answer_is_a_function_of_params_alone(scene):
    task, params = _draw("pair", scene, 3)
    p1, p2 = (np.array(p["xyz"]) for p in params["points"])
    assert task.answer(json.loads(json.dumps(params))) == f"{np.linalg.norm(p1 - p2):.2f}"
    camera_task, cam = _draw("camera", scene, 3)
    assert camera_task.answer(cam) == f"{np.linalg.norm(cam['points'][0]['xyz']):.2f}"


def test_bad_variant_is_one_clear_line(tmp_path):
    res = run_cli("generate", "--out", tmp_path / "x", "-n", 1, "--tasks", "distance:camera-depth", ok=False)
    assert res.exit_code != 0 and "distance variant" in res.output and "Traceback" not in res.output
    with pytest.raises(ValueError):
        make_task("distance", "pair-sideways")


def test_not_in_the_default_mix():
    assert "distance" not in {e.task for e in parse_mix(None, with_depth=True)}
    assert {e.variant for e in parse_mix("distance", with_depth=True)} == {"pair"}
    out = run_cli("tasks").output
    assert "distance" in out and "camera < pair-lateral < pair < pair-depth" in out


# ------------------------------------------------------------------------------ the reward


def _boxed(text: str) -> str:
    return f"<think>I estimate the depth of each point.</think> \\boxed{{{text}}}"


@pytest.mark.parametrize("pred,acc", [
    ("2.0", 1.0),
    ("2.3", 0.8),   # |2.3 - 2| / 2 = 0.15 <= 1 - t for t = 0.50 ... 0.85: 8 of 10
    ("1.7", 0.8),
    ("2.1", 1.0),   # 0.05 <= 1 - 0.95
    ("2.2", 0.9),   # 0.10: t up to 0.90
    ("1.0", 0.1),   # 0.50: t = 0.50 only
    ("3.0", 0.1),
    ("3.1", 0.0),   # 0.55
    ("5", 0.0),
    ("0", 0.0),
])
def test_numeric_partial_credit_hand_worked(pred, acc):
    from spatial_ssrl.reward import score

    r = score(_boxed(pred), "2.00", "numeric")
    assert r["accuracy"] == pytest.approx(acc)
    assert r["overall"] == pytest.approx(0.9 * acc + 0.1)
    assert r["format"] == 1.0
    if acc < 1.0:
        assert r["reason"] == ("approximate" if acc > 0 else "wrong_answer")


@pytest.mark.parametrize("text,metres", [
    ("2.5", 2.5), ("2.5 m", 2.5), ("2.5m", 2.5), ("250 cm", 2.5), ("250cm", 2.5), ("2500 mm", 2.5),
    ("2.5 meters", 2.5), ("2.5 Metres", 2.5), ("8.2 feet", 8.2 * 0.3048), ("8.2 ft", 8.2 * 0.3048),
    ("98 inches", 98 * 0.0254), ("98 in", 98 * 0.0254), ("0.0025 km", 2.5), ("about 2.5 m", 2.5),
    ("\\approx 2.5\\,\\text{m}", 2.5), ("\\text{2.5 meters}", 2.5), ("$2.5$", 2.5), (".5", 0.5),
    ("1 m 20 cm", 1.2), ("5 ft 3 in", 63 * 0.0254), ("Answer: 2.5 m", 2.5), ("2.50", 2.5), ("(2.5 m)", 2.5),
])
def test_numeric_units(text, metres):
    from spatial_ssrl.reward import canonicalize, read_length

    value, reason = read_length(text)
    assert reason is None and value == pytest.approx(metres, rel=1e-12)
    assert float(canonicalize(text, "numeric")) == pytest.approx(metres, rel=1e-12)


@pytest.mark.parametrize("text,reason", [
    ("2-3 m", "multiple_numbers"), ("2 to 3 m", "multiple_numbers"), ("2 m or 3 m", "multiple_numbers"),
    ("between 2 and 3 meters", "multiple_numbers"), ("2.5 \\pm 0.5 m", "multiple_numbers"),
    ("2.5 m (250 cm)", "multiple_numbers"), ("2,5", "multiple_numbers"), ("1 m 150 cm", "multiple_numbers"),
    ("-2.5", "signed_number"), ("at least 2 m", "unparseable"), ("2.5 parsecs", "unparseable"),
    ("two meters", "no_number"), ("", "empty_box"), ("1e3", "multiple_numbers"), ("\u0662.\u0665", "no_number"),
])
def test_numeric_refuses_hedges(text, reason):
    from spatial_ssrl.reward import read_length, score

    assert read_length(text) == (None, reason)
    r = score(_boxed(text), "2.50", "numeric")
    assert r["accuracy"] == 0.0 and r["prediction"] is None


def test_numeric_boxes_must_agree():
    from spatial_ssrl.reward import score

    same = score("<think>x</think> \\boxed{2.5 m} so \\boxed{250 cm}", "2.50", "numeric")
    assert same["accuracy"] == 1.0 and not same["hedged"]
    hedge = score("<think>x</think> \\boxed{2 m} or maybe \\boxed{3 m}", "2.50", "numeric")
    assert hedge["accuracy"] == 0.0 and hedge["reason"] == "hedged"
    inside = score("<think>\\boxed{2.5}</think> I cannot tell.", "2.50", "numeric")
    assert inside["accuracy"] == 0.0


def test_numeric_through_every_reward_entry_point(procedural_set, tmp_path):
    from spatial_ssrl.reward import infer_answer_type
    from spatial_ssrl.reward.easyr1 import compute_score as easyr1_score
    from spatial_ssrl.reward.trl import make_reward_funcs
    from spatial_ssrl.reward.verl import compute_score as verl_score

    assert infer_answer_type("2.35") == "numeric" and infer_answer_type("3") == "exact"
    # EasyR1 passes the ground truth alone: the type is inferred from "2.00"
    got = easyr1_score([{"response": _boxed("2.3 m"), "ground_truth": "2.00"}])
    assert got[0]["accuracy"] == pytest.approx(0.8)
    got = verl_score("spatial_ssrl/distance", _boxed("230 cm"), "2.00", extra_info={})
    assert got["acc"] == pytest.approx(0.8)
    accuracy, _fmt, _overall = make_reward_funcs()
    vals = accuracy([_boxed("2.3"), _boxed("7 ft")], answer=["2.00", "2.00"], answer_type=["numeric", "numeric"])
    assert vals == pytest.approx([0.8, 0.9])  # 7 ft = 2.1336 m, 0.0668 off: within 1 - t for t <= 0.90
    # ssrl score on the generated dataset: exact answers, 10 % off, a hedge
    rows = _rows(procedural_set)
    preds = tmp_path / "preds.jsonl"
    with preds.open("w") as fh:
        for i, r in enumerate(rows):
            value = float(r["answer"])
            text = [f"{value:.2f} m", f"{value * 110:.1f} cm", f"{value:.2f} or {value + 1:.2f}"][i % 3]
            fh.write(json.dumps({"id": r["id"], "response": _boxed(text)}) + "\n")
    report = tmp_path / "score.json"
    run_cli("score", "--data", procedural_set, "--predictions", preds, "--out", report)
    rep = json.loads(report.read_text())
    expected = []
    for i, r in enumerate(rows):
        expected.append([1.0, 0.9, 0.0][i % 3])
    assert rep["per_task"]["distance"]["accuracy"] == pytest.approx(100 * sum(expected) / len(expected), abs=1e-6)
    assert rep["failure_reasons"].get("multiple_numbers") == sum(1 for i in range(len(rows)) if i % 3 == 2)


_PIECES = ["2.5", " ", "m", "cm", "-", "to", "or", "\\text{", "}", "\\,", "~", "about", "feet", "'", '"', "1e309",
           "9" * 40, ".", ",", "\u00bd", "\u0663", "inch", "(", ")", "$", "\\approx", "meters away"]


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.one_of(st.text(max_size=200), st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)))
def test_numeric_reader_fuzz(text):
    from spatial_ssrl.reward import read_length, score

    t0 = time.perf_counter()
    value, reason = read_length(text)
    assert (value is None) != (reason is None)
    if value is not None:
        assert math.isfinite(value) and value >= 0
    r = score(_boxed(text), "2.50", "numeric")
    assert 0.0 <= r["accuracy"] <= 1.0 and (r["accuracy"] == 1.0 or r["reason"])
    assert time.perf_counter() - t0 < 1.0


# ------------------------------------------------------------------------- online and levels


def test_online_feeder_takes_the_task(tmp_path):
    from spatial_ssrl.training.curriculum import CurriculumSettings
    from spatial_ssrl.training.online import OnlineFeeder, curriculum_for

    refs = default_refs(procedural_scenes=6)
    mix = parse_mix("distance", with_depth=True)
    out = tmp_path / "offline"
    run_generation(refs, str(out), GenerateConfig(num=4, seed=9, mix=mix, workers=1))
    offline = {r["id"]: r["answer"] for r in _rows(out)}
    with OnlineFeeder(refs, mix, seed=9, plan_size=4, workers=0) as feeder:
        it = feeder.rows()
        rows = [next(it) for _ in range(4)]
    assert {r["id"]: r["answer"] for r in rows} == offline
    assert {r["answer_type"] for r in rows} == {"numeric"} and {r["task"] for r in rows} == {"distance"}
    cur = curriculum_for(mix, CurriculumSettings(mode="adaptive"), start={"distance": "camera"})
    with OnlineFeeder(refs, mix, seed=9, curriculum=cur, workers=0) as feeder:
        it = feeder.rows()
        first = [next(it) for _ in range(3)]
        assert {r["variant"] for r in first} == {"camera"}
        cur.state["distance"].level = LEVELS.index("pair-depth")
        later = [next(it) for _ in range(3)]
    assert {r["variant"] for r in later} == {"pair-depth"}


def test_export_formats_carry_the_numeric_answer(tmp_path):
    refs = procedural_refs(4)
    for fmt in ("trl", "easyr1", "verl", "llamafactory"):
        out = tmp_path / fmt
        run_generation(refs, str(out), GenerateConfig(num=2, seed=1, mix=parse_mix("distance:camera", with_depth=True),
                                                      workers=1, format=fmt))
        if fmt == "llamafactory":
            recs = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
            assert all(r["messages"][1]["content"].endswith(f"\\boxed{{{r['answer']}}}") for r in recs)
            assert all(os.path.isfile(out / r["images"][0]) for r in recs)
            continue
        rows = _rows(out)
        assert len(rows) == 2
        if fmt == "verl":
            assert all(r["extra_info"]["answer_type"] == "numeric" for r in rows)
            assert all(r["data_source"] == "spatial_ssrl/distance" for r in rows)
        else:
            assert {r["answer_type"] for r in rows} == {"numeric"}


def test_distance_windows_stay_valid_under_resize(tmp_path):
    """A procedural scene loaded smaller than its nominal size keeps intrinsics and markers
    consistent: the answer still matches the analytic geometry at the rendered size."""
    ref = procedural_refs(1, seed=11)[0]
    item = load_source_item(ref, LoadOptions(resize_max_pixels=320 * 240))
    assert item.width * item.height <= 320 * 240
    task = make_task("distance", "pair")
    sample, _ = generate_sample(task, item, np.random.default_rng(0), "x")
    params = sample.meta["params"]
    geom = scene_geometry(11, item.width, item.height)
    (u1, v1), (u2, v2) = params["markers"]["1"], params["markers"]["2"]
    d = _distance("pair", geom.points[v1, u1], geom.points[v2, u2])
    assert f"{d:.2f}" == sample.answer
    assert sample.meta["markers_in_file"]


# ------------------------------------------------------------------------ contract and fuzz


@pytest.mark.parametrize("variant", LEVELS)
def test_task_contract(variant, scene):
    import pickle

    task = make_task("distance", variant)
    first, _ = generate_sample(task, scene, np.random.default_rng(5), "a")
    blob = pickle.dumps(task)
    assert len(blob) < 4096
    again, _ = generate_sample(pickle.loads(blob), scene, np.random.default_rng(5), "a")
    assert again.answer == first.answer and np.array_equal(again.images[0], first.images[0])
    params = first.meta["params"]
    assert json.loads(json.dumps(params)) == params
    other, _ = generate_sample(task, scene, np.random.default_rng(6), "a")
    assert other.meta["params"] != params


_REASON = __import__("re").compile(r"^[a-z][a-z0-9_]*$")


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(variant=st.sampled_from(LEVELS), h=st.integers(16, 240), w=st.integers(16, 240),
       kind=st.sampled_from(["ramp", "blocks", "constant", "noise"]), scale=st.sampled_from([1e-30, 1e-3, 1.0, 1e3, 3e38]),
       holes=st.booleans(), depth_kind=st.sampled_from(["metric", "relative", "order"]),
       with_intrinsics=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_distance_samples_or_rejects_by_name(variant, h, w, kind, scale, holes, depth_kind, with_intrinsics, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = {"ramp": 1.0 + yy / h + 0.5 * xx / w, "blocks": 1.0 + ((yy // 8 + xx // 8) % 3),
            "constant": np.ones((h, w)), "noise": rng.uniform(0.5, 3.0, (h, w))}[kind]
    with np.errstate(over="ignore"):
        depth = (base * scale).astype(np.float32)
    if holes:
        depth[rng.random((h, w)) < 0.1] = np.nan
    mask = np.isfinite(depth) & (depth > 0)
    depth = np.where(mask, depth, np.nan).astype(np.float32)
    intr = (1.2 * max(h, w), 1.2 * max(h, w), w / 2.0, h / 2.0) if with_intrinsics else None
    item = Item(id="fuzz", rgb=rng.integers(40, 216, (h, w, 3), dtype=np.uint8), depth=depth, mask=mask,
                intrinsics=intr, depth_kind=depth_kind)
    task = make_task("distance", variant)
    for _ in range(3):
        params = task.make_params(rng, item)
        reason = task.check(item, params)
        if reason is None:
            assert depth_kind == "metric" and intr is not None
            value = float(task.answer(params))
            assert math.isfinite(value) and value >= 0.3 - 0.005
            task.render(item, params)
        else:
            assert _REASON.match(reason), reason


def test_resized_file_input_validates(tmp_path):
    """An RGB-D file pair (a procedural render saved as PNG + metric ``.npy``) given with
    its intrinsics through a manifest and downscaled on loading: the intrinsics follow the
    resize, the answers match the depth file at the marked pixels, and ``ssrl validate``
    (which re-reads the files at the same size) passes."""
    item = render_scene(8, 640, 480)
    Image.fromarray(item.rgb).save(tmp_path / "room.png")
    np.save(tmp_path / "room_depth.npy", np.asarray(item.depth))
    manifest = tmp_path / "pairs.jsonl"
    manifest.write_text(json.dumps({"rgb": "room.png", "depth": "room_depth.npy", "depth_format": "npy",
                                    "intrinsics": list(item.intrinsics)}) + "\n")
    out = tmp_path / "out"
    run_cli("generate", "--input", manifest, "--out", out, "-n", 4, "--tasks", ALL_LEVELS, "--seed", 4,
            "--resize-max-pixels", 320 * 240, "-q")
    rows = _rows(out)
    assert len(rows) == 4
    for row in rows:
        meta = json.loads(row["meta"])
        assert meta["resize"]["to"] == [320, 240]
        sx = 320 / 640
        fx, fy, cx, cy = meta["params"]["intrinsics"]
        assert fx == pytest.approx(item.intrinsics[0] * sx) and cx == pytest.approx((item.intrinsics[2] + 0.5) * sx - 0.5)
        depth_small = np.asarray(Image.fromarray(np.asarray(item.depth)).resize((320, 240), Image.Resampling.NEAREST))
        pts = []
        for k in sorted(meta["params"]["markers"]):
            u, v = meta["params"]["markers"][k]
            z = float(meta["params"]["points"][int(k) - 1]["depth"])
            assert z in depth_small  # a value of the file's depth, nearest-sampled
            pts.append((z * (u - cx) / fx, z * (v - cy) / fy, z))
        _check_answer(row, _distance("camera" if row["variant"] == "camera" else "pair", *pts))
    assert "all checked samples pass" in run_cli("validate", out).output
