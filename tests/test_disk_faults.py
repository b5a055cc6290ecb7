"""A full disk or a read-only folder during a checkpoint save or a coldstart: one line naming
the path, no partial file under a final name, our temporary files gone, and what was
complete before still usable (training resumes from the last complete checkpoint).

The disks are small tmpfs mounts, which needs root; elsewhere the tests skip and say so."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deps import require, run_cli

require("torch")
require("torchvision")
require("transformers")
require("trl")
require("peft")


@pytest.fixture
def tmpfs(tmp_path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounts = []

    def mount(size_bytes: int) -> Path:
        mnt = tmp_path / f"mnt{len(mounts)}"
        mnt.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(mnt)],
                              capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounts.append(mnt)
        return mnt

    yield mount
    for mnt in mounts:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave: int) -> None:
    st = os.statvfs(mnt)
    with open(mnt / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("diskfaults")
    data, tiny = root / "data", root / "tiny"
    run_cli("generate", "--out", data, "--num", 24, "--seed", 9, "--workers", 1, "-q", "--tasks", "flip,crop")
    run_cli("split", data, "--test-fraction", 0.2, "--coldstart-fraction", 0.3)
    run_cli("tiny-model", "--arch", "qwen2_5_vl", "--out", tiny)
    return {"root": root, "data": data, "tiny": tiny}


def test_disk_full_during_a_checkpoint_save(inputs, tmpfs):
    from spatial_ssrl.training.runs import last_checkpoint, scan_checkpoints

    mnt = tmpfs(256 << 20)
    out = mnt / "run"
    cmd = [sys.executable, "-m", "spatial_ssrl.cli", "train", "grpo", "-c", "tiny_grpo", "--model",
           str(inputs["tiny"]), "--data", str(inputs["data"]), "--output", str(out), "--no-coldstart",
           "--set", "validation_steps=0", "--max-steps"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([*cmd, "400"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoint-1" / "ssrl_checkpoint.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        size = sum(p.stat().st_size for p in (out / "checkpoint-1").iterdir())
        fill(mnt, size // 2)  # room for half a checkpoint
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err
    last = last_checkpoint(str(out))
    line = err.strip().splitlines()[-1]
    assert line == (f"Error: cannot write a checkpoint in {out}: No space left on device; last complete "
                    f"checkpoint: {last} (continue with --resume)")
    # nothing half-written is left under a checkpoint's name, and no temporary files of ours
    assert all(problem is None for _, _, problem in scan_checkpoints(str(out)))
    assert not [p for p in out.rglob(".tmp-*")]
    marker = json.loads((out / "ssrl_run.json").read_text())
    assert marker["status"] == "failed"
    (mnt / "filler").unlink()
    step = int(Path(last).name.split("-")[1])
    resumed = subprocess.run([*cmd, str(step + 1), "--resume"], capture_output=True, text=True, env=env,
                             timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from checkpoint-{step}" in resumed.stdout
    assert json.loads((out / "ssrl_run.json").read_text())["status"] == "complete"


def test_read_only_output_is_one_line_before_loading(inputs, tmpfs):
    mnt = tmpfs(1 << 20)
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    result = run_cli("train", "grpo", "-c", "tiny_grpo", "--model", inputs["tiny"], "--data", inputs["data"],
                     "--output", mnt / "run", "--no-coldstart", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Loading weights" not in result.output
    assert result.output.strip().splitlines()[-1] == f"Error: cannot write {mnt / 'run'}: Read-only file system"


def test_coldstart_on_a_full_disk(inputs, tmpfs):
    mnt = tmpfs(64 << 20)
    fill(mnt, 64 << 10)
    out = mnt / "cold"
    result = run_cli("coldstart", "--data", inputs["data"], "--out", out, "--num", 50, ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: cannot write ") and line.endswith("No space left on device; nothing was written")
    assert sorted(os.listdir(mnt)) == ["filler"]  # no output, no working folder of ours
