"""Ctrl-C during `ssrl generate` (issue 10, defect 2): SIGINT to the whole process group,
as a terminal sends it, ends the run within 2 s, quietly (no traceback from the parent or
any worker), exit code 130, no shard under a final name, no process left behind.

Repeated 20 times in a row with 2 workers (about 40 s on 2 cores; ``SSRL_INTERRUPT_RUNS``
sets another count), twice without a pool (``--workers 1``)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("process groups and /proc: Linux only", allow_module_level=True)


def _runs() -> int:
    return int(os.environ.get("SSRL_INTERRUPT_RUNS") or 20)


def _session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``, from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            pids.append(int(entry))
    return pids


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _temp_shards(out: Path) -> list[Path]:
    """Parts being written or written (``.tmp-*.parquet``), in OUT's ``data/`` or a staging folder."""
    return [p for p in out.rglob(".tmp-*.parquet") if p.is_file()]


def _interrupt_once(out: Path, rng: random.Random, wait_for_shard: bool, workers: int = 2) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "spatial_ssrl.cli", "generate", "--out", str(out),
           "--num", "400", "--workers", str(workers), "-q",
           # small shards: several exist (under temporary names) within a second or two
           "--shard-rows", "16"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env=env)
    try:
        # wait until it is generating: both workers started, then a random moment more (every
        # other run: until the first shard exists under its temporary name)
        deadline = time.monotonic() + 60
        while workers > 1 and len(_children(proc.pid)) < workers and proc.poll() is None:
            assert time.monotonic() < deadline, "no worker process started within 60 s"
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        if wait_for_shard:
            # a shard is being written under its temporary name: the writer must drop it
            while not _temp_shards(out) and proc.poll() is None:
                assert time.monotonic() < deadline, "no temporary shard within 60 s"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.5))
        else:
            time.sleep(rng.uniform(0.0, 1.5))
        assert proc.poll() is None, "the run ended before the interrupt"
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("generate did not end within 10 s of Ctrl-C")
        took = time.monotonic() - t0
        err_text = err.decode(errors="replace")
        assert proc.returncode == 130, (proc.returncode, err_text)
        assert "Traceback" not in err_text, err_text
        assert "KeyboardInterrupt" not in err_text, err_text
        assert "interrupted" in err_text, err_text
        # anywhere under OUT, a staging folder included
        finals = sorted(str(p.relative_to(out)) for p in out.rglob("train-*.parquet"))
        assert not finals, finals
        assert not list(out.rglob("manifest.json"))
        left = _session_members(proc.pid)
        assert not left, f"processes left behind: {left}"
        return took, err_text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        else:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_ctrl_c_ends_generate_quickly_and_quietly(tmp_path):
    rng = random.Random(os.environ.get("SSRL_INTERRUPT_SEED", time.time_ns()))
    times = []
    for i in range(_runs()):
        took, _ = _interrupt_once(tmp_path / f"run{i}", rng, wait_for_shard=i % 2 == 1)
        times.append(took)
        assert took < 2.0, f"run {i}: took {took:.2f} s to end after Ctrl-C"
    print(f"\n{len(times)} interrupts: max {max(times):.3f} s, mean {sum(times) / len(times):.3f} s")


def test_ctrl_c_without_a_pool(tmp_path):
    rng = random.Random(os.environ.get("SSRL_INTERRUPT_SEED", time.time_ns()))
    for i in range(2):
        took, _ = _interrupt_once(tmp_path / f"run{i}", rng, wait_for_shard=True, workers=1)
        assert took < 2.0, f"run {i}: took {took:.2f} s to end after Ctrl-C"
