"""``ssrl generate --engine ray --resume``: a Ray run killed (SIGKILL to its process group, as
the OOM killer or a lost session would) at random moments continues where it stopped, and
the dataset it ends with equals an uninterrupted run's: the same ids in the same order, the
same content, no duplicates, no gaps.

Each run is a real ``ssrl generate`` subprocess starting its own local Ray with 2 CPUs (a
Ray start costs several seconds, so the runs are few and small). A killed driver takes its
Ray processes down with it: the GCS and the raylet are in its process group, the workers
(in groups of their own) end when their raylet is gone; the tests wait for that, within a
bound, and end any straggler of the killed run's session by its id. Ray is in the ``test``
extra: under CI (``CI`` set) a missing Ray fails these tests instead of skipping them."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dataset_digest import parquet_rows as _rows
from deps import require

from spatial_ssrl.engine.run import MAX_JOBS_PER_UNIT

RUN = [sys.executable, "-m", "spatial_ssrl.cli", "generate", "-q", "--seed", "5"]
RAY = ["--engine", "ray", "-w", "2"]
STAGING = Path(".tmp-ssrl-run")
JOURNAL = STAGING / "journal.jsonl"


@pytest.fixture(scope="module", autouse=True)
def _needs_ray():
    require("ray")
    require("ray.data")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Four real photos (scikit-image's) and a truncated PNG: a source that fails when it is
    loaded, so its slots are dealt again in a second round."""
    from PIL import Image
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(data, name)()).save(d / f"{name}.png")
    (d / "broken.png").write_bytes((d / "coffee.png").read_bytes()[:300])
    return d


def _env() -> dict:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # a local Ray of its own for each run
    return env


def _journal(out: Path) -> list[dict]:
    """The journal's complete lines."""
    try:
        raw = (out / JOURNAL).read_bytes()
    except OSError:
        return []
    recs = []
    for line in raw.split(b"\n")[:-1]:  # the last piece: empty, or a line cut short
        try:
            recs.append(json.loads(line))
        except ValueError:
            break
    return recs


def _checkpoints(out: Path) -> int:
    try:
        return sum(1 for line in (out / JOURNAL).read_bytes().splitlines() if line.startswith(b'{"ckpt"'))
    except OSError:
        return 0


def _alive_in_session(sid: int) -> list[int]:
    """Processes (not zombies) of the session ``sid`` (Linux; elsewhere none are seen)."""
    pids = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] not in "ZX":
            pids.append(int(name))
    return pids


def _end_session(sid: int, within: float = 30.0) -> list[int]:
    """Wait (at most ``within`` s) for every process of the killed run's session to end; kill
    those left by their ids. Returns them (none expected)."""
    deadline = time.monotonic() + within
    left = _alive_in_session(sid)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _alive_in_session(sid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def _start(args: list[str]) -> subprocess.Popen:
    # a session of its own: its pid is the process group and the session id of all it starts
    return subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=_env())


def _kill_after_new_checkpoint(args: list[str], out: Path, rng: random.Random, timeout: float = 120.0) -> bool:
    """Start a run, wait until it checkpointed one more batch, SIGKILL its process group a
    random moment later, and wait until its Ray processes are gone. Returns False when the
    run finished first."""
    before = _checkpoints(out)
    p = _start(args)
    try:
        deadline = time.monotonic() + timeout
        while _checkpoints(out) <= before:
            if p.poll() is not None:
                return False
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        if p.poll() is not None:
            return False
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        p.stderr.close()
        left = _end_session(p.pid)
    assert not left, f"processes of the killed run still running after 30 s: {left}"
    return True


def _finish(args: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, check=False, capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr
    return done


def _listing(out: Path) -> list[tuple[str, int]]:
    """The staged run's files with their sizes."""
    return sorted((str(p.relative_to(out)), p.stat().st_size) for p in (out / STAGING).rglob("*") if p.is_file())


def _assert_killed_state(out: Path, fmt: str) -> None:
    """What a kill leaves: nothing under a final name, every checkpointed part there with its
    rows (parquet) or lines (llamafactory)."""
    assert not (out / "manifest.json").exists()
    assert not [p for p in out.rglob("*") if p.name.startswith("train") or p.name == "manifest.json"]
    recs = _journal(out)
    assert recs and "fingerprint" in recs[0]
    parts = [(rel, n) for r in recs if "ckpt" in r for rel, n in r["ckpt"]["parts"]]
    assert parts and sum(n for _, n in parts) == max(r["rows"] for r in recs if "ckpt" in r)
    for rel, n in parts:
        path = out / STAGING / rel
        rows = (len(path.read_bytes().splitlines()) if fmt == "llamafactory"
                else pq.read_metadata(path).num_rows)
        assert rows == n, rel


def test_ray_run_killed_three_times_then_resumed_equals_uninterrupted(tmp_path, photos):
    base = [*RUN, "-i", str(photos), "-n", "120", "-t", "shuffle,flip,crop", "--batch-samples", "4"]
    ref = tmp_path / "ref"
    # the local engine's uninterrupted run (the same rows as an uninterrupted Ray run's,
    # tests/test_ray_engine.py) is made while the Ray runs start
    local = subprocess.Popen([*base, "-w", "1", "--out", str(ref)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=_env())

    out = tmp_path / "killed"
    args = [*base, *RAY, "--out", str(out)]
    rng = random.Random(7)
    kills = 0
    while kills < 3:
        assert _kill_after_new_checkpoint(args if kills == 0 else [*args, "--resume"], out, rng), \
            "the run finished before it could be killed"
        kills += 1
        _assert_killed_state(out, "canonical")
        assert _checkpoints(out) >= kills
        if kills == 1:
            # a resume with another batch size (other parts) is refused by name, and the
            # interrupted run stays as it was
            listing = _listing(out)
            journal = (out / JOURNAL).read_bytes()
            other = subprocess.run([*RUN, "-i", str(photos), "-n", "120", "-t", "shuffle,flip,crop",
                                    "--batch-samples", "8", *RAY, "--out", str(out), "--resume"],
                                   check=False, capture_output=True, text=True, timeout=300, env=_env())
            assert other.returncode == 1, other.stderr
            assert "cannot resume" in other.stderr and "batch-samples 4 (now 8)" in other.stderr
            assert "Traceback" not in other.stderr and len(other.stderr.strip().splitlines()) == 1
            assert (out / JOURNAL).read_bytes() == journal
            assert _listing(out) == listing
    _finish([*args, "--resume"])

    assert local.wait(300) == 0, local.stderr.read()
    local.stderr.close()
    expected = _rows(ref)
    assert len(expected) == 120
    got = _rows(out)
    assert got == expected
    assert len({i for i, _ in got}) == len(got)
    m = json.loads((out / "manifest.json").read_text())
    ml = json.loads((ref / "manifest.json").read_text())
    for key in ("num_written", "counts", "rejections", "skips", "unfilled", "sources"):
        assert m[key] == ml[key], key
    assert m["skips"] == {"corrupt_or_truncated": 1}  # its slots went to a second round
    assert m["timing"]["resumed_at_row"] > 0 and m["options"]["engine"] == "ray"
    n = len(m["files"])
    assert m["files"] == [f"data/train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    # a shard per batch: 4 samples at most, or one unit of the plan when it holds more
    assert max(pq.read_metadata(out / f).num_rows for f in m["files"]) <= max(4, MAX_JOBS_PER_UNIT)
    assert n >= 120 // MAX_JOBS_PER_UNIT
    assert sorted(os.listdir(out)) == ["README.md", "data", "manifest.json"]  # no journal, lock or staging left
    assert sorted(os.listdir(out / "data")) == sorted(os.path.basename(f) for f in m["files"])


def test_ray_llamafactory_killed_then_resumed_equals_uninterrupted(tmp_path, photos):
    """The record file, dataset entry and every image byte for byte as the local engine's
    uninterrupted run writes them; no stray image of a batch cut short by the kill."""
    base = [*RUN, "-i", str(photos), "-n", "64", "-f", "llamafactory", "-t", "shuffle,crop"]
    ref = tmp_path / "ref"
    local = subprocess.Popen([*base, "-w", "1", "--batch-samples", "4", "--out", str(ref)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    out = tmp_path / "killed"
    args = [*base, *RAY, "--batch-samples", "4", "--out", str(out)]
    assert _kill_after_new_checkpoint(args, out, random.Random(3))
    _assert_killed_state(out, "llamafactory")
    _finish([*args, "--resume"])
    assert local.wait(300) == 0, local.stderr.read()
    local.stderr.close()

    assert (out / "train.jsonl").read_bytes() == (ref / "train.jsonl").read_bytes()
    assert (out / "dataset_info.json").read_bytes() == (ref / "dataset_info.json").read_bytes()
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == sorted(p.name for p in (ref / "images").iterdir())
    assert all((out / "images" / n).read_bytes() == (ref / "images" / n).read_bytes() for n in names)
    ids = [json.loads(line)["id"] for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(ids) == 64 == len(set(ids))
    m = json.loads((out / "manifest.json").read_text())
    assert m["timing"]["resumed_at_row"] > 0
    assert sorted(os.listdir(out)) == ["README.md", "dataset_info.json", "images", "manifest.json", "train.jsonl"]


def test_killed_on_one_engine_resumed_on_the_other(tmp_path, photos):
    """One journal and one resume path: a local run killed with -9 is resumed on Ray, a Ray
    run killed with -9 is resumed by local workers, and each ends with the uninterrupted
    run's files, byte for byte."""
    base = [*RUN, "-i", str(photos), "-n", "240", "-t", "shuffle,flip", "--batch-samples", "8"]
    ref = tmp_path / "ref"
    _finish([*base, "-w", "2", "--out", str(ref)])
    expected = _files(ref)
    for first, then, name in ((["-w", "2"], RAY, "local-then-ray"), (RAY, ["-w", "2"], "ray-then-local")):
        out = tmp_path / name
        assert _kill_after_new_checkpoint([*base, *first, "--out", str(out)], out, random.Random(2))
        _assert_killed_state(out, "canonical")
        _finish([*base, *then, "--out", str(out), "--resume"])
        assert _files(out) == expected, name
        m = json.loads((out / "manifest.json").read_text())
        assert m["timing"]["resumed_at_row"] > 0 and m["options"]["engine"] == ("ray" if then is RAY else "local")


def test_ray_resume_with_other_options_is_refused_before_starting_ray(tmp_path, photos):
    """An interrupted run resumed with another batch size (other parts) is refused by name,
    before Ray is started, and the interrupted run is kept."""
    import ray

    from spatial_ssrl.engine import GenerateConfig, parse_mix
    from spatial_ssrl.engine.journal import ResumeError
    from spatial_ssrl.engine.run import run_generation
    from spatial_ssrl.sources import discover_rgbd

    out = tmp_path / "o"
    args = [*RUN, "-i", str(photos), "-n", "120", "-t", "shuffle,flip", "--shard-rows", "12", "-w", "1",
            "--out", str(out)]
    assert _kill_after_new_checkpoint(args, out, random.Random(1))
    journal = (out / JOURNAL).read_bytes()
    refs, _ = discover_rgbd([str(photos)])
    cfg = GenerateConfig(num=120, seed=5, mix=parse_mix("shuffle,flip"), workers=1, rows_per_shard=12,
                         batch_samples=6)
    was_running = ray.is_initialized()
    with pytest.raises(ResumeError, match=r"made with batch-samples 12 \(now 6\)"):
        run_generation(refs, str(out / STAGING), cfg, resume=True, engine="ray")
    assert ray.is_initialized() == was_running
    assert (out / JOURNAL).read_bytes() == journal
    _finish([*args, "--resume"])
    m = json.loads((out / "manifest.json").read_text())
    assert m["num_written"] == 120 and m["timing"]["resumed_at_row"] > 0 and m["options"]["engine"] == "local"


def _files(out: Path) -> dict[str, str]:
    """Every file of the dataset but the manifest and the card, with the hash of its bytes."""
    import hashlib

    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in ("manifest.json", "README.md")}
