"""`ssrl generate` and its output folder: nothing of the user's is ever removed, an interrupted
or failed run loses nothing and leaves nothing half-made, modes follow the umask, errors are
one line, and a run that wrote nothing fails."""

from __future__ import annotations

import errno
import glob
import json
import os
import stat

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from spatial_ssrl.cli import main

FAST = ["--num", "4", "--tasks", "flip", "-q", "--workers", "1"]


def _images(folder, n=3, side=192):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(7)
    for k in range(n):
        yy, xx = np.mgrid[0:side, 0:side]
        img = np.stack([(xx * 255 // side), (yy * 255 // side), ((xx + yy) * 127 // side)], -1).astype(np.uint8)
        for _ in range(12):
            r = max(5, side // 5)
            y, x = rng.integers(0, side - r, 2)
            img[y:y + rng.integers(4, r), x:x + rng.integers(4, r)] = rng.integers(0, 256, 3)
        Image.fromarray(img).save(os.path.join(folder, f"photo{k}.png"))
    return sorted(os.listdir(folder))


def gen(*args):
    return CliRunner().invoke(main, ["generate", *[str(a) for a in args]])


def _one_line_error(res, code):
    assert res.exit_code == code, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)  # a click error, no traceback
    assert "Traceback" not in res.output
    msg = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(msg) == 1, res.output
    return msg[0]


def _snapshot(folder):
    out = {}
    for root, _d, names in os.walk(folder):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = fh.read()
    return out


def _no_temp_left(folder):
    left = [p for p in glob.glob(os.path.join(str(folder), "**", ".tmp-*"), recursive=True)]
    assert not left, left


def test_overwrite_with_input_inside_out_keeps_the_input(tmp_path):
    proj = tmp_path / "proj"
    names = _images(proj / "images")
    (proj / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite", "--seed", "3"]):
        res = gen("--input", proj / "images", "--out", proj, *FAST, *extra)
        assert res.exit_code == 0, res.output
        assert sorted(os.listdir(proj / "images")) == names
        assert (proj / "notes.txt").read_text() == "mine"
        m = json.loads((proj / "manifest.json").read_text())
        assert m["num_written"] == 4
        assert sorted(os.path.relpath(p, proj) for p in glob.glob(str(proj / "data" / "*"))) == m["files"]
    _no_temp_left(proj)


def test_refusals_say_what_is_there(tmp_path):
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / "mine.csv").write_text("a,b\n")
    res = gen("--out", out, *FAST, "--overwrite")
    msg = _one_line_error(res, 2)
    assert "already holds a dataset" not in msg and "mine.csv" in msg
    assert (out / "data" / "mine.csv").read_text() == "a,b\n"

    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text('{"mine": true}')
    msg = _one_line_error(gen("--out", other, *FAST, "--overwrite"), 2)
    assert "already holds a dataset" not in msg and "manifest.json" in msg
    assert (other / "manifest.json").read_text() == '{"mine": true}'

    # a user's images/ where llamafactory would put its images
    _images(tmp_path / "lf" / "images", n=1)
    msg = _one_line_error(gen("--out", tmp_path / "lf", *FAST, "--format", "llamafactory"), 2)
    assert "already holds a dataset" not in msg and "photo0.png" in msg
    assert os.listdir(tmp_path / "lf" / "images") == ["photo0.png"]

    # our own dataset without --overwrite: that one *is* a dataset
    ds = tmp_path / "ds"
    assert gen("--out", ds, *FAST).exit_code == 0
    assert "already holds a dataset" in _one_line_error(gen("--out", ds, *FAST), 2)


def test_leftovers_of_an_interrupted_run_are_reused(tmp_path):
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / ".tmp-train-00000.parquet").write_bytes(b"PAR1")
    res = gen("--out", out, *FAST)
    assert res.exit_code == 0, res.output
    assert json.loads((out / "manifest.json").read_text())["num_written"] == 4
    _no_temp_left(out)


def test_interrupted_overwrite_loses_nothing(tmp_path, monkeypatch):
    from spatial_ssrl import engine

    out = tmp_path / "out"
    assert gen("--out", out, *FAST, "--format", "llamafactory").exit_code == 0
    before = _snapshot(out)
    real = engine.run_generation

    def interrupted(refs, out_dir, config, **kw):
        real(refs, out_dir, config, **kw)  # everything written, then Ctrl-C before the swap
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "run_generation", interrupted)
    res = gen("--out", out, *FAST, "--overwrite", "--seed", "9")
    assert res.exit_code == 130
    assert _snapshot(out) == before
    assert not glob.glob(str(out / ".tmp-*"))

    monkeypatch.setattr(engine, "run_generation", real)
    # a real overwrite replaces the old images (ours) but not a file the user added
    (out / "images" / "keep.txt").write_text("mine")
    res = gen("--out", out, *FAST, "--overwrite", "--seed", "9", "--format", "canonical")
    assert res.exit_code == 0, res.output
    assert os.listdir(out / "images") == ["keep.txt"]
    assert not (out / "train.jsonl").exists() and not (out / "dataset_info.json").exists()
    assert sorted(os.listdir(out)) == ["README.md", "data", "images", "manifest.json"]


@pytest.mark.parametrize("fmt,files", [
    ("easyr1", ["manifest.json", "format_prompt.jinja"]),
    ("llamafactory", ["manifest.json", "dataset_info.json", "train.jsonl"]),
])
def test_modes_follow_the_umask(tmp_path, fmt, files):
    old = os.umask(0o027)
    try:
        out = tmp_path / fmt
        res = gen("--out", out, *FAST, "--format", fmt)
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    paths = [out / f for f in files] + [out / p for p in json.loads((out / "manifest.json").read_text())["files"]]
    if fmt == "llamafactory":
        paths += list((out / "images").iterdir())
    for p in paths:
        want = 0o750 if p.is_dir() else 0o640
        assert stat.S_IMODE(p.stat().st_mode) == want, (p, oct(p.stat().st_mode))


def test_out_that_cannot_be_a_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert "file" in _one_line_error(gen("--out", f / "sub", *FAST), 2)
    link = tmp_path / "dangling"
    os.symlink(tmp_path / "missing", link)
    assert "does not exist" in _one_line_error(gen("--out", link, *FAST), 2)
    assert not (tmp_path / "missing").exists()


def test_read_only_folder(tmp_path, monkeypatch):
    """A folder we may not write in. Root ignores mode 0555, so as root the refusal the kernel
    would give is simulated: creating a folder under it raises PermissionError (tempfile and
    os.makedirs both go through os.mkdir)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:
        real_mkdir = os.mkdir

        def mkdir(path, *args, **kwargs):
            if str(path).startswith(str(ro)):
                raise PermissionError(13, "Permission denied", str(path))
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", mkdir)
    try:
        for out in (ro, ro / "sub"):
            message = _one_line_error(gen("--out", out, *FAST), 2)
            assert "ermission" in message or "cannot write" in message or "not writable" in message, message
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("fmt,fails_on", [
    ("canonical", "manifest.json"),
    ("llamafactory", "dataset_info.json"),
    ("easyr1", "format_prompt.jinja"),
])
def test_disk_full_leaves_nothing_and_keeps_the_old_dataset(tmp_path, monkeypatch, fmt, fails_on):
    from spatial_ssrl.writers import base

    out = tmp_path / "out"
    assert gen("--out", out, *FAST, "--format", fmt).exit_code == 0
    before = _snapshot(out)
    real = base.atomic_write_bytes

    def full(path, data, sync=False):
        if os.path.basename(path) == fails_on:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        real(path, data)

    monkeypatch.setattr(base, "atomic_write_bytes", full)
    msg = _one_line_error(gen("--out", out, *FAST, "--format", fmt, "--overwrite", "--seed", "5"), 1)
    assert "No space left on device" in msg
    assert _snapshot(out) == before
    assert not glob.glob(str(out / ".tmp-*"))

    fresh = tmp_path / "fresh"
    msg = _one_line_error(gen("--out", fresh, *FAST, "--format", fmt), 1)
    assert not fresh.exists()  # no shard without a manifest, no images left behind
    fresh.mkdir()
    _one_line_error(gen("--out", fresh, *FAST, "--format", fmt), 1)
    assert os.listdir(fresh) == []  # a folder of the user's stays, empty


def test_zero_samples_is_a_failure(tmp_path):
    tiny = tmp_path / "tiny"
    _images(tiny, n=2, side=40)
    out = tmp_path / "out"
    msg = _one_line_error(gen("--input", tiny, "--out", out, *FAST, "--min-side", "112"), 1)
    assert "no samples were written" in msg and "every input was skipped" in msg and "too_small 2" in msg
    assert not out.exists()
    # an existing dataset is kept when the replacement writes nothing
    assert gen("--out", out, *FAST).exit_code == 0
    before = _snapshot(out)
    _one_line_error(gen("--input", tiny, "--out", out, *FAST, "--min-side", "112", "--overwrite"), 1)
    assert _snapshot(out) == before


def test_a_swap_killed_midway_restores_the_previous_dataset(tmp_path):
    """A SIGKILL between setting the previous run aside and moving the new manifest in leaves
    OUT without a manifest and the previous run in .tmp-ssrl-old-*: the next run puts it back
    (and then refuses to overwrite it without --overwrite, as for any dataset)."""
    out = tmp_path / "out"
    assert gen("--out", out, *FAST).exit_code == 0
    before = _snapshot(out)
    # the state the swap leaves when killed after moving the new data/ in, before the manifest
    trash = out / ".tmp-ssrl-old-killed"
    trash.mkdir()
    os.replace(out / "manifest.json", trash / "manifest.json")
    os.replace(out / "data", trash / "data")
    (out / "data").mkdir()
    (out / "data" / "train-00000-of-00001.parquet").write_bytes(b"half of a new run")
    result = gen("--out", out, *FAST)
    assert result.exit_code != 0 and "already holds a dataset" in result.output
    assert _snapshot(out) == before
    assert not trash.exists()


def test_report_files_know_every_entry_a_dataset_folder_has():
    """``--out FILE`` refuses a dataset's own entries from a list of its own (so that it
    imports no writer); it must name everything any format writes, and nothing more."""
    from spatial_ssrl.outfiles import DATASET_ENTRIES, MANIFEST
    from spatial_ssrl.writers import FORMAT_ENTRIES, FORMATS

    assert set(FORMATS) == set(FORMAT_ENTRIES)
    written = {MANIFEST}.union(*FORMAT_ENTRIES.values())
    assert written == set(DATASET_ENTRIES)
