"""A run over RGB-D inputs with broken depth: each broken depth file is a named skip in the
manifest, the run goes on, and the RGB of a pair with bad depth still feeds the depth-free
tasks."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from pixels import read_rows

from spatial_ssrl.cli import main


def _photo(seed, h=180, w=240):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, (xx * yy) % 255], axis=2).astype(np.float64)
    img += rng.normal(0, 25, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _steps(h=180, w=240):
    """Depth in four flat bands from 1 m to 7 m, left to right, with a slight tilt."""
    band = np.minimum(np.arange(w) * 4 // w, 3).astype(np.float32)
    return (1.0 + 2.0 * band[None, :] + 0.001 * np.arange(h, dtype=np.float32)[:, None]).astype(np.float32)


def test_bad_depth_files_are_named_skips(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    cases = {
        "good": _steps(),
        "constant": np.full((180, 240), 2.5, np.float32),
        "allnan": np.full((180, 240), np.nan, np.float32),
        "negative": -_steps(),
        "wrongshape": _steps(90, 200),
    }
    for i, (name, depth) in enumerate(cases.items()):
        Image.fromarray(_photo(i)).save(d / f"{name}.png")
        np.save(d / f"{name}_depth.npy", depth[..., None])
    Image.fromarray(_photo(9)).save(d / "text.png")
    (d / "text_depth.npy").write_bytes(b"not a numpy file at all")

    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["generate", "-i", str(d), "--out", str(out), "--num", "24", "-w", "2", "-q",
                                    "--tasks", "shuffle:2x2=1,depth=1"])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["skips"] == {
        "depth_constant": 1,
        "depth_all_invalid": 1,
        "depth_negative": 1,
        "depth_shape_mismatch": 1,
        "depth_unreadable": 1,
    }
    assert m["sources"]["depth_unusable"] == 5
    rows = read_rows(out)
    by_task = {}
    for r in rows:
        by_task.setdefault(r["task"], set()).add(r["source"].rsplit("/", 1)[1])
    # every depth sample comes from the one good pair; shuffle still uses the broken pairs' RGB
    assert by_task["depth"] == {"good.png"}
    assert {"constant.png", "allnan.png", "negative.png", "wrongshape.png", "text.png"} <= by_task["shuffle"]
    assert m["counts_by_task"] == {"depth": 12, "shuffle": 12}


def test_strict_stops_on_bad_depth(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(_photo(0)).save(d / "flat.png")
    np.save(d / "flat_depth.npy", np.full((180, 240, 1), 3.0, np.float32))
    res = CliRunner().invoke(main, ["generate", "-i", str(d), "--out", str(tmp_path / "o"), "--num", "4",
                                    "-w", "1", "-q", "--strict", "--tasks", "depth"])
    assert res.exit_code == 1
    assert "flat_depth.npy" in res.output and "depth_constant" in res.output
    assert "Traceback" not in res.output


def test_depth_tasks_without_depth_inputs_is_a_usage_error(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(_photo(0)).save(d / "a.png")
    res = CliRunner().invoke(main, ["generate", "-i", str(d), "--out", str(tmp_path / "o"), "--tasks", "position"])
    assert res.exit_code == 2 and "need RGB-D inputs" in res.output
