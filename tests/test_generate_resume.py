"""``ssrl generate --resume``: a run killed (SIGKILL to its process group, as the OOM killer
or a lost session would) at random moments continues where it stopped, and the dataset it
ends with equals an uninterrupted run's: the same ids in the same order, the same content,
no duplicates, no gaps."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dataset_digest import parquet_rows as _rows

RUN = [sys.executable, "-m", "spatial_ssrl.cli", "generate", "-q", "--seed", "5"]
JOURNAL = Path(".tmp-ssrl-run") / "journal.jsonl"


def _records(out: Path) -> list[tuple[str, str]]:
    """The same for llamafactory: each record with the bytes of its image files."""
    got = []
    for line in (out / "train.jsonl").read_text().splitlines():
        rec = json.loads(line)
        h = hashlib.sha256(line.encode())
        for p in rec["images"]:
            h.update((out / p).read_bytes())
        got.append((rec["id"], h.hexdigest()))
    return got


def _checkpoints(out: Path) -> int:
    try:
        return sum(1 for line in (out / JOURNAL).read_bytes().splitlines() if line.startswith(b'{"ckpt"'))
    except OSError:
        return 0


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_after_new_checkpoint(args: list[str], out: Path, rng: random.Random, timeout: float = 60.0) -> bool:
    """Start a run, wait until it made one more part durable, kill its process group a random
    moment later. Returns False when the run finished first."""
    before = _checkpoints(out)
    p = _start(args)
    deadline = time.monotonic() + timeout
    while _checkpoints(out) <= before:
        if p.poll() is not None:
            p.stderr.close()
            return False
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)
    # a random moment within about one shard's time: much later and a fast run may have
    # finished (its dataset in place) by the time the kill lands
    time.sleep(rng.uniform(0.0, 0.2))
    if p.poll() is not None:
        p.stderr.close()
        return False
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(10)
    p.stderr.close()
    return not (out / "manifest.json").exists()  # killed while exiting: it had finished


def _finish(args: list[str]) -> None:
    done = subprocess.run(args, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("workers", ["2"])
def test_killed_three_times_then_resumed_equals_uninterrupted(tmp_path, workers):
    base = [*RUN, "-n", "240", "--shard-rows", "16", "-w", workers]
    ref = tmp_path / "ref"
    _finish([*base, "--out", str(ref)])
    expected = _rows(ref)
    assert len(expected) == 240

    out = tmp_path / "killed"
    rng = random.Random(11)
    kills = 0
    args = [*base, "--out", str(out)]
    while kills < 3:
        assert _kill_after_new_checkpoint(args if kills == 0 else [*args, "--resume"], out, rng), \
            "the run finished before it could be killed"
        kills += 1
        # what a kill leaves: no dataset under a final name, the run folder kept for --resume
        assert not (out / "manifest.json").exists()
        assert not list((out / "data").glob("*.parquet")) if (out / "data").exists() else True
        assert _checkpoints(out) >= kills
    _finish([*args, "--resume"])
    got = _rows(out)
    assert got == expected
    assert len({i for i, _ in got}) == len(got)
    m = json.loads((out / "manifest.json").read_text())
    assert m["num_written"] == 240 and m["timing"]["resumed_at_row"] > 0
    assert sorted(os.listdir(out)) == ["README.md", "data", "manifest.json"]  # no journal, lock or staging left


def test_llamafactory_resume_equals_uninterrupted(tmp_path):
    base = [*RUN, "-n", "64", "--shard-rows", "8", "-w", "2", "-f", "llamafactory", "-t", "shuffle,crop"]
    ref = tmp_path / "ref"
    _finish([*base, "--out", str(ref)])
    out = tmp_path / "killed"
    args = [*base, "--out", str(out)]
    assert _kill_after_new_checkpoint(args, out, random.Random(3))
    _finish([*args, "--resume"])
    assert _records(out) == _records(ref)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(p.name for p in (ref / "images").iterdir())


def test_interrupted_run_is_kept_and_guarded(tmp_path):
    """Without --resume a new run does not throw the finished samples away; a resume with
    other options is refused and keeps them; --overwrite starts afresh."""
    out = tmp_path / "o"
    base = [*RUN, "-n", "120", "--shard-rows", "12", "-w", "1", "-t", "shuffle,flip"]
    args = [*base, "--out", str(out)]
    assert _kill_after_new_checkpoint(args, out, random.Random(5))

    again = subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2
    assert "interrupted run" in again.stderr and "--resume" in again.stderr
    assert "Traceback" not in again.stderr
    kept = _checkpoints(out)
    assert kept >= 1

    other = subprocess.run([*RUN, "-n", "121", "--shard-rows", "12", "-w", "1", "-t", "shuffle,flip",
                            "--out", str(out), "--resume"], check=False, capture_output=True, text=True, timeout=120)
    assert other.returncode == 1
    assert "cannot resume" in other.stderr and "num 120 (now 121)" in other.stderr
    assert "Traceback" not in other.stderr
    assert _checkpoints(out) == kept  # still there for the right command

    fresh = subprocess.run([*args, "--overwrite"], check=False, capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["num_written"] == 120 and "resumed_at_row" not in m["timing"]


def test_ctrl_c_keeps_finished_parts_for_resume(tmp_path):
    out = tmp_path / "o"
    base = [*RUN, "-n", "120", "--shard-rows", "12", "-w", "2", "-t", "shuffle,flip,crop"]
    ref = tmp_path / "ref"
    _finish([*base, "--out", str(ref)])
    args = [*base, "--out", str(out)]
    p = _start(args)
    deadline = time.monotonic() + 60
    while _checkpoints(out) < 2:
        assert p.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(p.pid, signal.SIGINT)
    err = p.communicate(timeout=10)[1].decode()
    assert p.returncode == 130
    assert "--resume" in err and "Traceback" not in err
    _finish([*args, "--resume"])
    assert _rows(out) == _rows(ref)


def test_one_run_at_a_time_per_folder(tmp_path):
    out = tmp_path / "o"
    first = _start([*RUN, "-n", "400", "-w", "1", "-t", "shuffle", "--out", str(out)])
    try:
        deadline = time.monotonic() + 60
        while not (out / ".tmp-ssrl-run").is_dir():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        second = subprocess.run([*RUN, "-n", "4", "-w", "1", "-t", "shuffle", "--out", str(out), "--overwrite"],
                                check=False, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"{out} is in use by another ssrl command (PID {first.pid})" in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        first.stderr.close()


def test_llamafactory_checkpoint_comes_after_its_images_are_synced(tmp_path, monkeypatch):
    """A llamafactory checkpoint vouches for the images its records name: each of them (and
    the images folder) is synced to disk by the batch's writer before the checkpoint is
    written."""
    import json as _json

    from spatial_ssrl.engine import journal as journal_mod
    from spatial_ssrl.engine.mix import MixEntry
    from spatial_ssrl.engine.run import GenerateConfig, run_generation
    from spatial_ssrl.sources import default_refs
    from spatial_ssrl.writers import base

    synced: list[str] = []
    real_fsync = base.fsync_path
    monkeypatch.setattr(base, "fsync_path",
                        lambda p, directory=False, drop=False: (synced.append(os.path.abspath(p)),
                                                                real_fsync(p, directory, drop)))
    seen: list[tuple[int, set]] = []  # (rows at the checkpoint, paths synced by then)
    real_batch = journal_mod.Journal.batch

    def batch(self, units, where, parts, rows, seconds):
        seen.append((rows, set(synced)))
        return real_batch(self, units, where, parts, rows, seconds)

    monkeypatch.setattr(journal_mod.Journal, "batch", batch)
    refs = [r for r in default_refs() if r.kind == "image"][:3]
    out = tmp_path / "lf"
    cfg = GenerateConfig(num=12, seed=1, format="llamafactory", rows_per_shard=5,
                         mix=[MixEntry("flip", "2x2", 1.0)])
    run_generation(refs, str(out), cfg)
    records = [_json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    # a checkpoint per batch: each photo's 4 samples are a unit, and two would pass 5 rows
    assert [rows for rows, _ in seen] == [4, 8, 12]
    for rows, paths in seen:
        named = {os.path.abspath(os.path.join(out, p)) for r in records[:rows] for p in r["images"]}
        assert named and named <= paths, f"checkpoint at {rows} rows: images not synced {sorted(named - paths)[:3]}"
        assert os.path.abspath(out / "images") in paths


def test_resuming_a_finished_dataset_is_a_no_op(tmp_path):
    """A job script that resumes after every preemption: the last resume finds the work done."""
    out = tmp_path / "done"
    first = subprocess.run([*RUN, "--out", str(out), "--num", "12", "--workers", "1"], capture_output=True,
                           text=True, check=False)
    assert first.returncode == 0, first.stderr
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    again = subprocess.run([*RUN, "--out", str(out), "--num", "12", "--workers", "1", "--resume"],
                           capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert f"--resume: {out} already holds this finished dataset (12 samples); nothing to do" in again.stdout
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    other = subprocess.run([*RUN, "--out", str(out), "--num", "13", "--workers", "1", "--resume"],
                           capture_output=True, text=True, check=False)
    assert other.returncode != 0 and "Traceback" not in other.stderr
    assert other.stderr.strip().splitlines() == [
        (f"Error: --resume: {out} holds a finished dataset made with --num 12 (now 13); pass --overwrite to "
         "replace it or choose another --out")]
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
