"""bench/gpu_check.py, the script the first lent GPU runs, works end to end (here on the CPU,
without bf16): every step passes, the resume leaves the checkpoint's tensors exactly, and the
JSON it writes holds the figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from deps import require

require("torch")
require("trl")

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def test_gpu_check_runs_every_step(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--steps", "2", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=900, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["passed"] and set(report["steps"]) >= {"train sft", "train grpo", "resume", "infer", "eval"}
    assert all(step["passed"] for step in report["steps"].values())
    resume = report["steps"]["resume"]["tensors_equal"]
    got, total = resume.split("/")
    assert got == total and int(total) > 10
    assert report["steps"]["train grpo"]["s_per_step_median"] > 0
