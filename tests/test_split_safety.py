"""``ssrl split`` under faults: one split per dataset, a swap that cannot lose or duplicate
rows when stopped at any rename (Ctrl-C or SIGKILL), unreadable inputs and full or
read-only disks refused in one line with the dataset as it was."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from deps import run_cli

pq = pytest.importorskip("pyarrow.parquet")

SPLIT = ["--test-fraction", "0.3", "--coldstart-fraction", "0.1"]


def ssrl(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spatial_ssrl.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, check=False, env=env)


def row_ids(folder: Path) -> Counter:
    """Row ids of every split, read from the files directly (not through our readers)."""
    ids: Counter = Counter()
    if (folder / "data").is_dir():
        for f in sorted((folder / "data").glob("*.parquet")):
            ids.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    for f in sorted(folder.glob("*.jsonl")):
        ids.update(json.loads(line)["id"] for line in f.read_text().splitlines() if line.strip())
    return ids


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("splitsafety")
    out = {}
    for fmt in ("canonical", "llamafactory"):
        d = root / fmt
        run_cli("generate", "--out", d, "--num", 120, "--seed", 4, "--workers", 1, "-q", "--format", fmt,
                "--tasks", "flip,shuffle")
        run_cli("split", d, *SPLIT, "--seed", 1)
        out[fmt] = d
    return out


@pytest.fixture
def copy(datasets, tmp_path):
    def make(fmt: str) -> Path:
        dst = tmp_path / fmt
        shutil.copytree(datasets[fmt], dst)
        return dst
    return make


def test_a_second_split_is_refused_while_one_runs(copy):
    from spatial_ssrl.locking import FolderLock

    d = copy("canonical")
    before = snapshot(d)
    with FolderLock(str(d)):
        result = ssrl("split", d, *SPLIT, "--seed", 2)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        (f"Error: {d} is in use by another ssrl command (PID {os.getpid()}); wait for it to finish or choose "
        "another folder")]
    assert snapshot(d) == {k: v for k, v in before.items()}


@pytest.mark.parametrize("fmt", ["canonical", "llamafactory"])
def test_two_splits_at_once_lose_and_duplicate_nothing(copy, fmt):
    d = copy(fmt)
    before = row_ids(d)
    assert sum(before.values()) == 120 and max(before.values()) == 1
    procs = [subprocess.Popen([sys.executable, "-m", "spatial_ssrl.cli", "split", str(d), *SPLIT, "--seed",
                               str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (2, 3)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert any(rc == 0 for rc, _ in results), results
    for rc, err in results:
        assert rc == 0 or "is in use by another ssrl command" in err, err
    assert row_ids(d) == before


def _strace_ok() -> bool:
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "true"], capture_output=True, check=False)
    return probe.returncode == 0


needs_strace = pytest.mark.skipif(not _strace_ok(), reason="strace is missing or ptrace is not permitted")


def renames_of_a_split(d: Path) -> int:
    """How many rename calls a split of ``d`` makes (strace counts them)."""
    probe = d.parent / "probe"
    shutil.copytree(d, probe)
    log = d.parent / "renames.log"
    subprocess.run(["strace", "-f", "-qq", "-o", str(log), "-e", "trace=rename,renameat,renameat2",
                    sys.executable, "-m", "spatial_ssrl.cli", "split", str(probe), *SPLIT, "--seed", "9"],
                   capture_output=True, check=True, timeout=300)
    n = sum(1 for line in log.read_text().splitlines() if "rename" in line and str(probe) in line)
    shutil.rmtree(probe)
    return n


@needs_strace
@pytest.mark.parametrize("fmt", ["llamafactory", "canonical"])
@pytest.mark.parametrize("signal_name", ["INT", "KILL"])
def test_split_stopped_at_every_rename(copy, fmt, signal_name):
    """Stopped at the k-th rename, for every k: no row lost or doubled, a message that tells
    the truth, and the next split finishes the job (or starts clean)."""
    d = copy(fmt)
    n = renames_of_a_split(d)
    assert n >= 3
    original = row_ids(d)
    for k in range(1, n + 1):
        work = d.parent / f"{fmt}-{k}"
        shutil.copytree(d, work)
        before = snapshot(work)
        res = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=rename,renameat,renameat2",
                              "-e", f"inject=rename,renameat,renameat2:signal={signal_name}:when={k}",
                              sys.executable, "-m", "spatial_ssrl.cli", "split", str(work), *SPLIT, "--seed", "9"],
                             capture_output=True, text=True, timeout=300, check=False)
        assert "Traceback" not in res.stderr, res.stderr[-2000:]
        # the fault happened: strace ends as the split did, killed by the signal or exiting 130
        assert res.returncode == (130 if signal_name == "INT" else -signal.SIGKILL), (k, res.returncode)
        if signal_name == "INT":
            assert res.returncode == 130, (k, res.stderr[-2000:])
            if "the dataset is as it was" in res.stderr:
                assert snapshot(work) == before, k
            else:
                assert "the split had been committed and is complete" in res.stderr, res.stderr[-500:]
        # whatever state it stopped in, the next split ends with every row exactly once
        again = run_cli("split", work, *SPLIT, "--seed", "9", ok=False)  # in-process: quicker
        assert again.exit_code == 0, (k, again.output[-2000:])
        assert row_ids(work) == original, k
        assert not [p for p in os.listdir(work) if p.startswith(".tmp-")], (k, os.listdir(work))
        manifest = json.loads((work / "manifest.json").read_text())
        assert sum(manifest["splits"]["rows"].values()) == 120
        shutil.rmtree(work)


def test_unreadable_inputs_are_one_line(copy):
    d = copy("canonical")
    shard = min((d / "data").glob("train-*.parquet"))
    meta = pq.ParquetFile(shard).metadata.row_group(0)
    images = next(meta.column(i) for i in range(meta.num_columns)
                  if meta.column(i).path_in_schema.startswith("images") and "bytes" in meta.column(i).path_in_schema)
    raw = bytearray(shard.read_bytes())
    at = images.data_page_offset + 1
    raw[at:at + 40] = b"\x13" * 40  # the page header of the image column, which the index does not read
    shard.write_bytes(bytes(raw))
    before = snapshot(d)
    res = ssrl("split", d, *SPLIT, "--seed", 5)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot read data/{shard.name}:"), lines
    assert snapshot(d) == before

    lf = copy("llamafactory")
    path = lf / "train.jsonl"
    rows = path.read_text().splitlines()
    rec = json.loads(rows[2])
    del rec["messages"]
    rows[2] = json.dumps(rec)
    path.write_text("\n".join(rows) + "\n")
    res = ssrl("split", lf, *SPLIT)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "train.jsonl line 3 lacks key(s) messages" in res.stderr.strip().splitlines()[-1]
    path.write_bytes(path.read_bytes().replace(b'"task"', b'"t\xffask"', 1))
    res = ssrl("split", lf, *SPLIT)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "cannot read train.jsonl: 'utf-8' codec can't decode" in res.stderr.strip().splitlines()[-1]


def _can_mount() -> bool:
    return not (os.geteuid() != 0 or shutil.which("mount") is None)


@pytest.mark.skipif(not _can_mount(), reason="mounting a tmpfs needs root")
@pytest.mark.parametrize("fmt", ["canonical", "llamafactory"])
def test_disk_full_and_read_only(copy, tmp_path, fmt):
    src = copy(fmt)
    size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    rows = sum(p.stat().st_size for p in [*src.glob("data/*.parquet"), *src.glob("*.jsonl")])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={2 * size + (1 << 20)}", "tmpfs", str(mnt)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        d = mnt / fmt
        shutil.copytree(src, d)
        # leave room for half a second copy of the rows
        st = os.statvfs(mnt)
        with open(mnt / "filler", "wb") as fh:
            fh.truncate(0)
            fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - rows // 2))
        before = snapshot(d)
        res = ssrl("split", d, *SPLIT, "--seed", 5)
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
        line = res.stderr.strip().splitlines()[-1]
        assert "No space left on device" in line and str(d) in line and "the dataset is as it was" in line
        assert snapshot(d) == before
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        res = ssrl("split", d, *SPLIT, "--seed", 5)
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert "Read-only file system" in res.stderr.strip().splitlines()[-1]
        assert snapshot(d) == before
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
