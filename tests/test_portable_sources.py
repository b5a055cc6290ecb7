"""A dataset names its sources relative to the input roots (named once, in the manifest), never
by the user's absolute paths: the same photos generated from two places give byte-identical
data files with the same sample ids, validate re-reads the sources from any working folder,
and after the inputs move `--source-root LABEL=DIR` says where they went."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner
from PIL import Image

from spatial_ssrl.cli import main


def _photos(folder: Path) -> None:
    rng = np.random.default_rng(3)
    (folder / "sub").mkdir(parents=True)
    for k, rel in enumerate(("a.png", "sub/b.png", "sub/c.jpg")):
        yy, xx = np.mgrid[0:160, 0:200]
        img = np.stack([(xx * 255 // 200), (yy * 255 // 160), ((xx + yy + 40 * k) % 256)], -1).astype(np.uint8)
        for _ in range(10):
            y, x = rng.integers(0, 120, 2)
            img[y:y + 30, x:x + 30] = rng.integers(0, 256, 3)
        Image.fromarray(img).save(folder / rel, quality=95)


def _run(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _rows(out: Path) -> list[dict]:
    return [r for f in sorted((out / "data").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_sources_are_relative_to_the_input_roots(tmp_path):
    first, second = tmp_path / "one" / "photos", tmp_path / "two" / "deeper" / "photos"
    _photos(first)
    shutil.copytree(first, second)
    a, b = tmp_path / "a", tmp_path / "b"
    for src, out in ((first, a), (second, b)):
        _run("generate", "-i", src, "--out", out, "--num", 8, "--tasks", "flip,crop", "--workers", 1, "-q")
    rows = _rows(a)
    assert {r["source"] for r in rows} <= {"photos/a.png", "photos/sub/b.png", "photos/sub/c.jpg"}
    for r in rows:  # nothing of the maker's disk layout in any column
        assert str(tmp_path) not in json.dumps(r, default=str)
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["source_roots"] == {"photos": str(first)}
    # the same photos elsewhere: the same ids and byte-identical data files
    assert [r["id"] for r in _rows(b)] == [r["id"] for r in rows]
    files_a = sorted(p.relative_to(a) for p in (a / "data").glob("*.parquet"))
    assert files_a == sorted(p.relative_to(b) for p in (b / "data").glob("*.parquet"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)


def test_two_roots_of_one_name_and_validate_from_anywhere(tmp_path, monkeypatch):
    first, second = tmp_path / "x" / "photos", tmp_path / "y" / "photos"
    _photos(first)
    _photos(second)
    (second / "a.png").unlink()
    out = tmp_path / "data"
    _run("generate", "-i", first, "-i", second, "--out", out, "--num", 12, "--tasks", "flip,crop", "--workers", 1,
         "-q")
    roots = json.loads((out / "manifest.json").read_text())["source_roots"]
    assert roots == {"photos": str(first), "photos~2": str(second)}
    labels = {r["source"].split("/")[0] for r in _rows(out)}
    assert labels == {"photos", "photos~2"}
    monkeypatch.chdir(tmp_path / "x")  # a working folder where "photos/..." would mean something else
    assert "all checked samples pass" in _run("validate", out, "-q")
    # the inputs move: validate finds them where it is told
    moved = tmp_path / "moved"
    shutil.move(str(tmp_path / "y"), str(moved))
    cannot = _run("validate", out, "-q")
    assert "not_found" in cannot
    fixed = _run("validate", out, "-q", "--source-root", f"photos~2={moved / 'photos'}")
    assert "all checked samples pass" in fixed and "not_found" not in fixed


def test_built_in_rgbd_inputs_store_no_absolute_path(tmp_path):
    out = tmp_path / "rgbd"
    _run("generate", "--out", out, "--num", 30, "--tasks", "depth,position", "--workers", 1, "-q")
    rows = _rows(out)
    assert any(r["depth_source"] for r in rows)
    site = os.path.dirname(np.__file__).rsplit(os.sep, 1)[0]  # where the built-in photos are installed
    for r in rows:
        text = json.dumps(r, default=str)
        assert site not in text and str(tmp_path) not in text
    assert "all checked samples pass" in _run("validate", out, "-q")


def test_a_diode_folder_with_masks_stores_no_absolute_path(tmp_path):
    """DIODE's validity masks are found beside the depth; the dataset says where, relative to
    the depth file, not by the folder's absolute path."""
    from spatial_ssrl.sources.procedural import render_scene

    folder = tmp_path / "diode" / "scan_00001"
    folder.mkdir(parents=True)
    for k in range(2):
        item = render_scene(k, 320, 240)
        Image.fromarray(item.rgb).save(folder / f"view_{k}.png")
        np.save(folder / f"view_{k}_depth.npy", item.depth[..., None].astype(np.float32))
        np.save(folder / f"view_{k}_depth_mask.npy", np.ones(item.depth.shape, np.float32))
    out = tmp_path / "out"
    _run("generate", "--input", tmp_path / "diode", "--out", out, "--num", 6, "--tasks", "depth", "--workers", 1, "-q")
    rows = _rows(out)
    assert len(rows) == 6
    for r in rows:
        assert str(tmp_path) not in json.dumps(r, default=str)
        assert json.loads(r["meta"])["mask_path"] == os.path.basename(
            r["depth_source"]).replace("_depth.npy", "_depth_mask.npy")
