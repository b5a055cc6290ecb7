"""``--engine ray``: the same files as the local engine, byte for byte, written by Ray workers.

Real Ray, local, 2 CPUs, started once for the module. Ray is in the ``test`` extra: under
CI (``CI`` set) a missing Ray fails these tests instead of skipping them."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deps import require, run_cli

from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
from spatial_ssrl.sources import discover_rgbd

MANIFEST_KEYS = ("num_written", "counts", "counts_by_task", "rejections", "skips", "skipped_files",
                 "conversions", "unfilled", "sources", "mix")

# Ray Data's own deprecation notices about its settings (not ours to fix)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


@pytest.fixture(scope="module")
def ray_session():
    ray = require("ray")
    require("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A few real photos (scikit-image's) as PNG, plus a truncated PNG: a source that fails
    when it is loaded, so its slots go to a second round."""
    from PIL import Image
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(data, name)()).save(d / f"{name}.png")
    (d / "broken.png").write_bytes((d / "coffee.png").read_bytes()[:300])
    return d


def _hash(obj) -> str:
    return hashlib.sha256(repr(obj).encode()).hexdigest()


def _parquet_rows(out: Path) -> list[tuple[str, str]]:
    """(id, hash of every column, image bytes included) of each row, in dataset order."""
    rows = []
    for f in sorted(glob.glob(str(out / "data" / "*.parquet"))):
        for r in pq.read_table(f).to_pylist():
            rid = r["id"] if "id" in r else r["extra_info"]["id"]
            rows.append((rid, _hash(r)))
    return rows


def _llamafactory_rows(out: Path) -> list[tuple[str, str]]:
    rows = []
    with open(out / "train.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            images = [(out / p).read_bytes() for p in rec["images"]]
            rows.append((rec["id"], _hash((rec, images))))
    return rows


def _rows(out: Path, fmt: str) -> list[tuple[str, str]]:
    return _llamafactory_rows(out) if fmt == "llamafactory" else _parquet_rows(out)


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _files(out: Path) -> dict[str, str]:
    """Every file but the manifest and the card (they name the engine and the worker count),
    with the hash of its bytes."""
    return {os.path.relpath(p, out): hashlib.sha256(Path(p).read_bytes()).hexdigest()
            for p in sorted(glob.glob(str(out / "**"), recursive=True))
            if os.path.isfile(p) and os.path.basename(p) not in ("manifest.json", "README.md")}


def _both(tmp_path, refs, fmt, num, seed=1, batch=8, **kw):

    cfg = GenerateConfig(num=num, seed=seed, mix=parse_mix(kw.pop("tasks", None)), format=fmt, workers=2,
                         batch_samples=batch, **kw)
    run_generation(refs, str(tmp_path / "local"), cfg)
    result = run_generation(refs, str(tmp_path / "ray"), cfg, engine="ray")
    assert _files(tmp_path / "local") == _files(tmp_path / "ray")  # byte for byte
    return tmp_path / "local", tmp_path / "ray", result


@pytest.mark.parametrize("fmt", ["canonical", "llamafactory", "verl"])
def test_ray_equals_local_with_retry_rounds(ray_session, photos, tmp_path, fmt):
    refs, _ = discover_rgbd([str(photos)])
    local, ray_out, result = _both(tmp_path, refs, fmt, num=40)
    a, b = _rows(local, fmt), _rows(ray_out, fmt)
    assert len(a) == 40 and set(a) == set(b)
    assert a == b  # the same order too: parts are concatenated in plan order
    ml, mr = _manifest(local), _manifest(ray_out)
    for key in MANIFEST_KEYS:
        assert ml[key] == mr[key], key
    # the truncated file was found unusable, its slots dealt again
    assert mr["skips"] == {"corrupt_or_truncated": 1} and mr["sources"]["unusable"] == 1
    assert mr["options"]["engine"] == "ray" and ml["options"]["engine"] == "local"
    assert mr == result.manifest
    if fmt == "llamafactory":
        assert ml["files"] == mr["files"] == ["dataset_info.json", "images", "train.jsonl"]
    else:  # shards are cut where the batches end (here 8 samples at most): more of them
        assert all(f.startswith("data/train-") for f in mr["files"]) and len(mr["files"]) >= 5
    # nothing but the dataset is left in the folder
    left = sorted(os.path.relpath(p, ray_out) for p in glob.glob(str(ray_out / "**"), recursive=True)
                  if os.path.isfile(p))
    expected = sorted(mr["files"] + ["manifest.json"])
    if fmt == "llamafactory":
        expected = sorted(f for f in expected if f != "images")
        assert all(f.startswith("images/") for f in set(left) - set(expected))
        left = [f for f in left if not f.startswith("images/")]
    assert left == expected
    if fmt == "verl":
        index = [r["extra_info"]["index"] for f in sorted(glob.glob(str(ray_out / "data" / "*.parquet")))
                 for r in pq.read_table(f, columns=["extra_info"]).to_pylist()]
        assert index == list(range(40))
        assert len(mr["files"]) > 1  # several parts, so the offsets were exercised


def test_shards_follow_batches_not_workers(ray_session, photos, tmp_path):
    refs, _ = discover_rgbd([str(photos)])
    _local, ray_out, result = _both(tmp_path, refs, "canonical", num=30, seed=4, batch=8, rows_per_shard=5)
    m = result.manifest
    sizes = [pq.read_metadata(ray_out / f).num_rows for f in m["files"]]
    assert sum(sizes) == 30 and max(sizes) <= 5  # --shard-rows caps the batch
    n = len(sizes)
    assert m["files"] == [f"data/train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    assert m["options"]["batch_samples"] == 5 and m["options"]["workers"] == 2


def test_builtin_inputs_through_cli(ray_session, tmp_path):
    """The default inputs (photos, RGB-D pair, procedural scenes; depth tasks included)."""
    common = ["generate", "-n", "24", "--seed", "2", "-q", "--batch-samples", "6"]
    run_cli(*common, "-o", tmp_path / "local", "-w", "2")
    res = run_cli(*common, "-o", tmp_path / "ray", "--engine", "ray")
    assert res.output == ""
    a, b = _parquet_rows(tmp_path / "local"), _parquet_rows(tmp_path / "ray")
    assert len(a) == 24 and a == b
    assert _files(tmp_path / "local") == _files(tmp_path / "ray")
    ml, mr = _manifest(tmp_path / "local"), _manifest(tmp_path / "ray")
    assert ml["counts"] == mr["counts"] and ml["num_written"] == mr["num_written"] == 24
    assert mr["options"]["engine"] == "ray" and mr["options"]["ray_address"] == "local"
    assert not [n for n in os.listdir(tmp_path / "ray") if n.startswith(".tmp-")]
    assert ray_session.is_initialized()  # a session the command did not start is left running


def test_ray_resume_with_nothing_to_resume_starts_afresh(ray_session, tmp_path):
    """--resume with --engine ray where no run was interrupted: a plain run (tests/test_ray_resume.py
    kills real runs)."""
    run_cli("generate", "-n", "4", "-q", "-t", "shuffle", "-o", tmp_path / "o", "--engine", "ray", "--resume")
    m = _manifest(tmp_path / "o")
    assert m["num_written"] == 4 and "resumed_at_row" not in m["timing"]
    assert sorted(os.listdir(tmp_path / "o")) == ["README.md", "data", "manifest.json"]


def _subprocess(code: str, env_extra: dict | None = None, timeout: float = 120):
    env = {**os.environ, **(env_extra or {})}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, capture_output=True,
                          text=True,
                          timeout=timeout, env=env)


def test_without_ray_installed(tmp_path):
    """Local generation never imports Ray; --engine ray says, in one line, which extra to install."""
    out_local, out_ray = tmp_path / "local", tmp_path / "ray"
    p = _subprocess(f"""
        import sys
        sys.modules["ray"] = None  # as if Ray were not installed: importing it fails
        from spatial_ssrl.cli import main
        try:
            main(["generate", "-n", "3", "-w", "1", "-q", "-o", {str(out_local)!r}])
        except SystemExit as e:
            assert not e.code, e.code
        main(["generate", "-n", "3", "-q", "--engine", "ray", "-o", {str(out_ray)!r}])
    """)
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs Ray" in lines[0] and "spatial-ssrl[ray]" in lines[0], p.stderr
    assert (out_local / "manifest.json").is_file() and not out_ray.exists()


def test_bad_ray_address(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for addr, expect in ((f"127.0.0.1:{port}", "cannot reach a Ray cluster"), ("not-an-address", "cannot start Ray")):
        t0 = time.monotonic()
        p = _subprocess(f"""
            from spatial_ssrl.cli import main
            main(["generate", "-n", "3", "-q", "--engine", "ray", "--ray-address", {addr!r},
                  "-o", {str(tmp_path / "o")!r}])
        """)
        assert time.monotonic() - t0 < 60
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 1 and len(lines) == 1 and expect in lines[0] and addr in lines[0], p.stderr
        assert not (tmp_path / "o").exists()


def test_interrupt_stops_a_ray_run_quickly(ray_session, photos, tmp_path):
    """A Ctrl-C (SIGINT) mid-run: KeyboardInterrupt within about 2 s, and no dataset file
    left under a final name (nor any part)."""

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread to take SIGINT")
    refs, _ = discover_rgbd([str(photos)])
    cfg = GenerateConfig(num=2000, seed=0, mix=parse_mix(None), workers=1)
    fired: list[float] = []

    def progress(_n):
        if not fired:
            fired.append(time.monotonic())
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()

    out = tmp_path / "o"
    cfg.batch_samples = 16
    with pytest.raises(KeyboardInterrupt):
        run_generation(refs, str(out), cfg, progress=progress, engine="ray")
    assert fired and time.monotonic() - fired[0] < 2.5
    left = [p for p in glob.glob(str(out / "**"), recursive=True) if os.path.isfile(p)]
    assert not [p for p in left if os.path.basename(p).startswith("train") or p.endswith("manifest.json")]


def test_interrupted_ray_run_keeps_checkpointed_batches_for_resume(ray_session, photos, tmp_path):
    """A Ctrl-C after some batches were checkpointed keeps them (and the journal) for
    ``resume``, which then ends with the rows of an uninterrupted run; nothing stale is left."""
    from spatial_ssrl.engine.journal import read_journal
    from spatial_ssrl.engine.run import resumable_rows

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread to take SIGINT")
    refs, _ = discover_rgbd([str(photos)])
    cfg = GenerateConfig(num=40, seed=3, mix=parse_mix("shuffle,flip"), workers=1, batch_samples=4)
    seen: list[int] = []

    def progress(n):
        seen.append(n)
        if len(seen) == 14:  # a few batches of 4 are checkpointed by now
            os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        run_generation(refs, str(out), cfg, progress=progress, engine="ray")
    rows = resumable_rows(str(out))
    assert 4 <= rows < 40
    state = read_journal(str(out))
    parts = [rel for line in state.keep for rec in [json.loads(line)] if "ckpt" in rec
             for rel, _n in rec["ckpt"]["parts"]]
    assert sum(pq.read_metadata(out / rel).num_rows for rel in parts) == rows
    assert not (out / "manifest.json").exists() and not list((out / "data").glob("train-*"))

    result = run_generation(refs, str(out), cfg, resume=True, engine="ray")
    assert result.manifest["timing"]["resumed_at_row"] == rows
    run_generation(refs, str(tmp_path / "local"), cfg)
    assert _parquet_rows(out) == _parquet_rows(tmp_path / "local")
    assert _files(out) == _files(tmp_path / "local")
    assert sorted(os.listdir(out / "data")) == sorted(os.path.basename(f) for f in result.manifest["files"])
    assert sorted(os.listdir(out)) == ["data", "manifest.json"]


def test_failed_ray_run_through_cli_keeps_checkpointed_batches(ray_session, photos, tmp_path, monkeypatch):
    """A Ray run that fails (here: the driver, after three batches) keeps what was checkpointed;
    the command says so, and --resume finishes the run with the rows of an uninterrupted one."""
    from click.testing import CliRunner

    from spatial_ssrl.cli import main
    from spatial_ssrl.engine import run as run_module

    real_take, calls = run_module._take, []

    def failing_take(*a, **kw):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("lost the cluster")
        return real_take(*a, **kw)

    monkeypatch.setattr(run_module, "_take", failing_take)
    args = ["generate", "-q", "-i", str(photos), "-n", "30", "--seed", "2", "-t", "shuffle,flip",
            "--engine", "ray", "--batch-samples", "4", "-o", str(tmp_path / "o")]
    res = CliRunner().invoke(main, args)
    assert isinstance(res.exception, RuntimeError) and "--resume to continue" in res.output
    assert (tmp_path / "o" / ".tmp-ssrl-run" / "journal.jsonl").is_file()
    monkeypatch.setattr(run_module, "_take", real_take)
    run_cli(*args, "--resume")
    run_cli("generate", "-q", "-i", photos, "-n", "30", "--seed", "2", "-t", "shuffle,flip", "-w", "1",
            "--batch-samples", "4", "-o", tmp_path / "local")
    assert _parquet_rows(tmp_path / "o") == _parquet_rows(tmp_path / "local")
    assert _files(tmp_path / "o") == _files(tmp_path / "local")
    assert _manifest(tmp_path / "o")["timing"]["resumed_at_row"] > 0
