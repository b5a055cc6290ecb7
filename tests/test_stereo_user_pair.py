"""A user's own calibrated stereo pair (an RGB-D manifest whose left view has its right view
beside it, Middlebury's im0/im1 naming) serves camera_motion and correspondence in a real run,
and `ssrl validate` finds the right view again: the run stores portable source names, so the
tasks read the partner through the file the item was loaded from."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
from deps import run_cli

from spatial_ssrl.sources.builtin import builtin_data_dir
from spatial_ssrl.sources.middlebury import motorcycle_calibration


@pytest.fixture
def user_pair(tmp_path):
    root = builtin_data_dir()
    scene = tmp_path / "mine" / "motorbike"
    scene.mkdir(parents=True)
    shutil.copy(f"{root}/motorcycle_left.png", scene / "im0.png")
    shutil.copy(f"{root}/motorcycle_right.png", scene / "im1.png")
    shutil.copy(f"{root}/motorcycle_disp.npz", scene / "disp0.npz")
    cal = motorcycle_calibration()
    manifest = tmp_path / "mine" / "pairs.jsonl"
    manifest.write_text(json.dumps({"rgb": "motorbike/im0.png", "depth": "motorbike/disp0.npz",
                                    "depth_format": "disparity", "intrinsics": list(cal["intrinsics"]),
                                    "baseline": cal["baseline"], "disparity_offset": cal["disparity_offset"]}) + "\n")
    return manifest


@pytest.mark.parametrize("task", ["camera_motion:single-large", "correspondence:4-candidates-far"])
def test_a_users_stereo_pair_serves_the_two_view_tasks(user_pair, tmp_path, task):
    out = tmp_path / "out"
    run_cli("generate", "--input", user_pair, "--out", out, "--num", 3, "--tasks", task, "--workers", 1, "-q")
    rows = [r for f in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert len(rows) == 3 and all(r["source"].endswith("motorbike/im0.png") for r in rows)
    assert all(str(tmp_path) not in r["source"] for r in rows)  # portable names only
    report = tmp_path / "report.json"
    run_cli("validate", "--data", out, "-q", "--out", report)
    result = json.loads(report.read_text())
    counts = result["tasks"][task.split(":")[0]]
    assert (counts["checked"], counts["passed"], counts["not_checkable"]) == (3, 3, 0) and result["ok"], result
