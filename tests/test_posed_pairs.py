"""Posed pairs from an RGB-D manifest (issue 24, point 4: "pairs with poses given in a
manifest"): two views of one scene with camera-to-world poses serve camera_motion and
correspondence in a real run.

The pairs are made here from the procedural scenes: two views rendered with
``render_view(seed, size, pose)``, written as PNG + metric depth ``.npy``, and a manifest
whose poses are 4x4 camera-to-world matrices computed in this file from the Pose values
(its own few lines of rotation math). Each answer is checked against that ground truth
(the motion chosen when rendering; for correspondence, the scene's analytic 3D point
projected by this file's math), which view came first is read from the pixels, ``ssrl
validate`` passes with nothing left unchecked and catches a tampered answer, a bad pose is a
named skip, and the dataset names its files relative to the input root (no absolute path)."""

from __future__ import annotations

import io
import json
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from deps import edit_rows, run_cli
from PIL import Image

from spatial_ssrl.sources import discover_rgbd, load_source_item
from spatial_ssrl.sources.posed import PoseProblem, parse_pose
from spatial_ssrl.sources.procedural import (
    Pose,
    pose_problem,
    render_view,
    scene_geometry,
)
from spatial_ssrl.tasks import make_task
from spatial_ssrl.tasks.base import generate_sample

SIZE = (320, 240)
LETTERS = "ABCDEF"


# --------------------------------------------------------------------------- our own pose math


def _rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Camera-to-scene rotation of a procedural camera: turned by yaw about +Y (forward toward
    +X), then tilted up by pitch (forward toward -Y). Columns: right, down, forward."""
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    turn = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    tilt = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return turn @ tilt


def _c2w(pose: Pose) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = _rotation(pose.yaw_deg, pose.pitch_deg)
    m[:3, 3] = (pose.x, pose.y, pose.z)
    return m


def _step(pose: Pose, right=0.0, forward=0.0, turn=0.0) -> Pose:
    """``pose`` after a step along its own right / forward axes, then a turn (yaw)."""
    a = math.radians(pose.yaw_deg)
    dx = right * math.cos(a) + forward * math.sin(a)
    dz = -right * math.sin(a) + forward * math.cos(a)
    return Pose(pose.x + dx, pose.y, pose.z + dz, pose.yaw_deg + turn, pose.pitch_deg)


FIRST = Pose(0.2, -0.1, 0.3, 10.0)  # not the scene frame: the world and camera 1 differ
PAIRS = {  # name: (scene seed, second pose, the motion seen from the first view, the reverse)
    "sideways": (3, _step(FIRST, right=0.9), "Moved right", "Moved left"),
    "sideways_files": (5, _step(FIRST, right=0.9), "Moved right", "Moved left"),
}


def _write_view(folder: Path, stem: str, seed: int, pose: Pose) -> tuple[int, int, int, int]:
    view = render_view(seed, SIZE, pose)
    Image.fromarray(view.rgb).save(folder / f"{stem}.png")
    np.save(folder / f"{stem}_depth.npy", view.depth)
    return view.intrinsics


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("posed") / "capture"
    (root / "views").mkdir(parents=True)
    (root / "poses").mkdir()
    lines = []
    for name, (seed, second, _, _) in PAIRS.items():
        assert pose_problem(seed, FIRST) is None and pose_problem(seed, second) is None
        intr = _write_view(root / "views", f"{name}_a", seed, FIRST)
        _write_view(root / "views", f"{name}_b", seed, second)
        poses = [_c2w(FIRST).tolist(), _c2w(second).tolist()]
        if name.endswith("_files"):  # ScanNet / 7-Scenes style: one text file per pose
            for k, m in zip("ab", poses):
                (root / "poses" / f"{name}_{k}.txt").write_text("\n".join(" ".join(f"{v:.9f}" for v in r) for r in m))
            poses = [f"poses/{name}_a.txt", f"poses/{name}_b.txt"]
        lines.append({"rgb": f"views/{name}_a.png", "depth": f"views/{name}_a_depth.npy", "intrinsics": list(intr),
                      "pose": poses[0],
                      "pair": {"rgb": f"views/{name}_b.png", "depth": f"views/{name}_b_depth.npy", "pose": poses[1]}})
    # a line whose second pose is no rotation (its 3x3 part scaled by 1.2): a named skip
    bad = _c2w(PAIRS["sideways"][1])
    bad[:3, :3] *= 1.2
    lines.append({**lines[0], "rgb": "views/sideways_b.png", "depth": "views/sideways_b_depth.npy",
                  "pair": {"rgb": "views/sideways_a.png", "pose": bad.tolist()}})
    (root / "pairs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def _rows(out: Path) -> list[dict]:
    return [r for f in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _decode(image: dict) -> np.ndarray:
    with Image.open(io.BytesIO(image["bytes"])) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def _views(capture: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    return tuple(np.asarray(Image.open(capture / "views" / f"{name}_{k}.png")).astype(np.int16) for k in "ab")


def _name_of(source: str) -> str:
    return Path(source).stem[:-2]  # capture/views/sideways_a.png -> sideways


def _generate(capture: Path, out: Path, task: str, num: int, monkeypatch) -> list[dict]:
    monkeypatch.chdir(out.parent)  # not the manifest's folder: its paths are relative to itself
    run_cli("generate", "--input", capture / "pairs.jsonl", "--out", out, "--num", num, "--tasks", task,
            "--workers", 1, "--seed", 4, "-q")
    rows = _rows(out)
    assert len(rows) == num
    for r in rows:  # portable names only: nothing of the maker's disk in any column
        text = json.dumps({k: v for k, v in r.items() if k != "images"}, default=str)
        assert str(capture.parent) not in text
        assert r["source"].startswith("capture/views/")
    return rows


def _validate(out: Path, report: Path, ok: bool = True) -> dict:
    res = run_cli("validate", "--data", out, "-q", "--out", report, ok=ok)
    result = json.loads(report.read_text())
    if ok:
        assert res.exit_code == 0 and result["ok"], result
    return result


def _tamper(out: Path, tmp: Path, change) -> tuple[Path, str]:
    """A copy of the dataset whose first row ``change`` altered (in place)."""
    bad = tmp / f"tampered-{change.__name__}"
    shutil.copytree(out, bad)
    rows, save = edit_rows(bad)
    change(rows[0])
    save()
    return bad, rows[0]["id"]


def _next_letter(row: dict) -> None:
    row["answer"] = LETTERS[(LETTERS.index(row["answer"]) + 1) % 4]


def _second_camera_moved(row: dict) -> None:
    """The second shown camera's stored position moved 30 cm: the match lands elsewhere."""
    meta = json.loads(row["meta"])
    meta["params"]["poses"][1][0][3] += 0.3
    row["meta"] = json.dumps(meta)


# --------------------------------------------------------------------------- camera motion


def test_camera_motion_from_a_manifest_of_posed_pairs(capture, tmp_path, monkeypatch):
    out = tmp_path / "cm"
    rows = _generate(capture, out, "camera_motion:single-large", 8, monkeypatch)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skips"].get("pose_not_rotation") == 1, manifest["skips"]
    firsts = Counter()
    for r in rows:
        name = _name_of(r["source"])
        _, _, forward_motion, backward_motion = PAIRS[name]
        a, b = _views(capture, name)
        shown = [_decode(img) for img in r["images"]]
        # which view came first, from the pixels (JPEG: the nearer one by far)
        d_a, d_b = (float(np.abs(shown[0] - v).mean()) for v in (a, b))
        assert min(d_a, d_b) < 3.0 < max(d_a, d_b)
        first_is_a = d_a < d_b
        assert float(np.abs(shown[1] - (b if first_is_a else a)).mean()) < 3.0
        firsts[first_is_a] += 1
        expected = forward_motion if first_is_a else backward_motion
        assert r["options"][LETTERS.index(r["answer"])] == expected, (r["options"], r["answer"], expected)
        params = json.loads(r["meta"])["params"]
        assert params["source"] == "posed" and params["motion"]["distance_m"] == pytest.approx(0.9, abs=1e-6)
        assert all(v.startswith("capture/views/") for v in params["views"] + params["depths"])
    assert firsts[True] and firsts[False]  # both orders are drawn
    result = _validate(out, tmp_path / "ok.json")
    counts = result["tasks"]["camera_motion"]
    assert (counts["checked"], counts["passed"], counts["not_checkable"]) == (8, 8, 0), counts
    bad, victim = _tamper(out, tmp_path, _next_letter)
    result = _validate(bad, tmp_path / "bad.json", ok=False)
    assert not result["ok"] and {f["id"] for f in result["failures"]} == {victim}


# --------------------------------------------------------------------------- correspondence


def test_correspondence_from_a_manifest_of_posed_pairs(capture, tmp_path, monkeypatch):
    out = tmp_path / "co"
    rows = _generate(capture, out, "correspondence:4-candidates-far", 8, monkeypatch)
    firsts = Counter()
    for r in rows:
        name = _name_of(r["source"])
        seed, second, _, _ = PAIRS[name]
        params = json.loads(r["meta"])["params"]
        (x1, y1), (x2, y2) = params["frames"]
        fw, fh = params["frame_size"]
        a, b = _views(capture, name)
        shown = _decode(r["images"][0])
        # which view came first, from the pixels of the first crop (away from the ring)
        keep = np.ones((fh, fw), bool)
        mu, mv = params["markers"]["1"]
        keep[max(0, mv - 30):mv + 30, max(0, mu - 30):mu + 30] = False
        d_a, d_b = (float(np.abs(shown - v[y1:y1 + fh, x1:x1 + fw])[keep].mean()) for v in (a, b))
        first_is_a = d_a < d_b
        assert min(d_a, d_b) < 6.0 and max(d_a, d_b) > 3 * min(d_a, d_b)
        firsts[first_is_a] += 1
        poses = (FIRST, second) if first_is_a else (second, FIRST)
        # the marked pixel's analytic 3D point, carried into the other camera by our matrices
        geom = scene_geometry(seed, *SIZE, pose=poses[0])
        u, v = mu + x1, mv + y1
        cam1 = np.append(geom.points[v, u].astype(np.float64), 1.0)
        cam2 = np.linalg.inv(_c2w(poses[1])) @ _c2w(poses[0]) @ cam1
        fx, fy, cx, cy = geom.intrinsics
        match = np.array([fx * cam2[0] / cam2[2] + cx - x2, fy * cam2[1] / cam2[2] + cy - y2])
        dist = np.linalg.norm(np.array(params["candidates"], dtype=float) - match, axis=1)
        assert dist.min() <= 1.0 and np.sort(dist)[1] > 10
        assert r["answer"] == LETTERS[int(np.argmin(dist))]
    assert firsts[True] and firsts[False]
    result = _validate(out, tmp_path / "ok.json")
    counts = result["tasks"]["correspondence"]
    assert (counts["checked"], counts["passed"], counts["not_checkable"]) == (8, 8, 0), counts
    for change in (_next_letter, _second_camera_moved):
        bad, victim = _tamper(out, tmp_path, change)
        result = _validate(bad, tmp_path / f"{change.__name__}.json", ok=False)
        assert not result["ok"] and {f["id"] for f in result["failures"]} == {victim}, change.__name__


# --------------------------------------------------------------------------- levels and rejections


def _pair_item(tmp_path: Path, second: Pose, seed: int = 2, with_depth: bool = True):
    folder = tmp_path / "one"
    folder.mkdir()
    intr = _write_view(folder, "a", seed, FIRST)
    _write_view(folder, "b", seed, second)
    pair = {"rgb": "b.png", "pose": _c2w(second).tolist()}
    if with_depth:
        pair["depth"] = "b_depth.npy"
    line = {"rgb": "a.png", "depth": "a_depth.npy", "intrinsics": list(intr), "pose": _c2w(FIRST).tolist(),
            "pair": pair}
    (folder / "m.jsonl").write_text(json.dumps(line) + "\n")
    refs, report = discover_rgbd([str(folder / "m.jsonl")])
    assert not report and refs[0].pair is not None
    return load_source_item(refs[0])


def test_a_pairs_motion_serves_only_its_own_level(tmp_path):
    item = _pair_item(tmp_path, _step(FIRST, forward=0.8, turn=8.0))
    _, rejections = generate_sample(make_task("camera_motion", "single-large"), item, np.random.default_rng(0), "x")
    assert set(rejections) == {"camera_motion_pair_is_combined"}
    _, rejections = generate_sample(make_task("camera_motion", "combined-small"), item, np.random.default_rng(0), "x")
    assert set(rejections) == {"camera_motion_pair_is_large"}
    sample, _ = generate_sample(make_task("camera_motion", "combined-large"), item, np.random.default_rng(0), "x")
    params = sample.meta["params"]
    expected = ("Moved forward and turned right" if params["order"] == "view1-view2"
                else "Moved backward and turned left")
    assert sample.options[LETTERS.index(sample.answer)] == expected


def test_correspondence_needs_the_second_views_depth(tmp_path):
    item = _pair_item(tmp_path, _step(FIRST, right=0.9), with_depth=False)
    _, rejections = generate_sample(make_task("correspondence", "4-candidates-far"), item,
                                    np.random.default_rng(0), "x")
    assert set(rejections) == {"correspondence_no_second_depth"}
    # camera motion takes it: measured from the first view's depth alone
    sample, _ = generate_sample(make_task("camera_motion", "single-large"), item, np.random.default_rng(0), "x")
    assert sample.options[LETTERS.index(sample.answer)] == "Moved right"


def test_pose_forms_and_named_problems(tmp_path):
    m = _c2w(Pose(0.5, -0.2, 1.0, 30.0, 10.0))
    flat = tuple(m.ravel())
    assert np.allclose(parse_pose(m.tolist(), tmp_path), flat)
    assert np.allclose(parse_pose(m[:3].ravel().tolist(), tmp_path), flat)  # 3x4, flattened
    (tmp_path / "p.txt").write_text("\n".join(" ".join(str(v) for v in r) for r in m))
    assert np.allclose(parse_pose("p.txt", tmp_path), flat)
    # TUM: position and a unit quaternion (qx, qy, qz, qw) of the same rotation, from its axis and angle
    angle = math.acos((np.trace(m[:3, :3]) - 1) / 2)
    axis = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]]) / (2 * math.sin(angle))
    q = [*(axis * math.sin(angle / 2)), math.cos(angle / 2)]
    assert np.allclose(parse_pose({"position": m[:3, 3].tolist(), "quaternion": q}, tmp_path), flat, atol=1e-9)
    bad = {
        "pose_not_found": "missing.txt",
        "pose_bad_shape": [1.0, 2.0, 3.0],
        "pose_not_finite": [*m.ravel()[:3], float("-inf"), *m.ravel()[4:]],
        "pose_bad_last_row": [*m.ravel()[:12], 0.0, 0.0, 1.0, 1.0],
        "pose_not_rotation": (np.diag([1.0, 1.0, -1.0, 1.0]) @ m).tolist(),  # a mirror
    }
    (tmp_path / "inf.txt").write_text("-inf " * 16)
    for reason, value in {**bad, "pose_not_finite ": "inf.txt"}.items():
        with pytest.raises(PoseProblem) as err:
            parse_pose(value, tmp_path)
        assert err.value.reason == reason.strip()
