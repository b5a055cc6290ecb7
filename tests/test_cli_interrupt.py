"""Ctrl-C in ``ssrl validate``, ``overlap``, ``preview`` and ``tiny-model``: status 130 at
once, no "Aborted!" (click's answer, status 1, before), no traceback.

Each command runs as a program (``python -m spatial_ssrl.cli``) and gets a real SIGINT once
it is at work: ``-X importtime`` makes Python print each module as it is first imported,
and each command imports one only once its work has begun (``spatial_ssrl.outfiles``;
tiny-model: torch), then has a second or more of work left. A signal during the
program's start-up imports is not covered here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
from spatial_ssrl.sources import builtin_photos


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("interrupt") / "data"
    run_generation(builtin_photos(), str(out), GenerateConfig(num=48, seed=3, mix=parse_mix(None), workers=1))
    return out


def _interrupt(args: list[str], ready: str, tmp_path) -> tuple[int, str, float]:
    """Run ``ssrl ARGS``, send SIGINT when stderr shows ``ready``; (status, stderr, seconds
    from the signal to the exit)."""
    err_path = tmp_path / "stderr.txt"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "spatial_ssrl.cli", *args],
                                stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            t_end = time.monotonic() + 60
            while ready not in err_path.read_text(errors="replace"):
                assert proc.poll() is None, f"finished before it was interrupted: {err_path.read_text()[-2000:]}"
                assert time.monotonic() < t_end, "never got ready"
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
            t0 = time.monotonic()
            code = proc.wait(timeout=30)
            elapsed = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = err_path.read_text(errors="replace")
    return code, "\n".join(line for line in text.splitlines() if not line.startswith("import time:")), elapsed


def _check(code: int, stderr: str, elapsed: float) -> None:
    assert code == 130, stderr[-2000:]
    assert "Aborted!" not in stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-2000:]
    assert elapsed < 2.5


def test_validate(dataset, tmp_path):
    _check(*_interrupt(["validate", str(dataset), "-q"], "spatial_ssrl.outfiles", tmp_path))


def test_preview(dataset, tmp_path):
    out = tmp_path / "p.html"
    _check(*_interrupt(["preview", str(dataset), "-o", str(out), "--max-side", "64"], "spatial_ssrl.outfiles",
                       tmp_path))
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-ssrl")]


def test_overlap(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    y, x = np.mgrid[0:4000, 0:4000]
    Image.fromarray(((x * 7 + y * 3) % 256).astype(np.uint8)).save(folder / "a.png", compress_level=1)
    for k in range(1, 40):
        os.link(folder / "a.png", folder / f"{k}.png")
    _check(*_interrupt(["overlap", "--train-images", str(folder), "--bench-images", str(folder), "-w", "1",
                        "--out", str(tmp_path / "pairs.json")], "spatial_ssrl.outfiles", tmp_path))
    assert not (tmp_path / "pairs.json").exists()


def test_tiny_model(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    out = tmp_path / "tiny"
    _check(*_interrupt(["tiny-model", "--arch", "qwen2_5_vl", "--out", str(out)], "| torch", tmp_path))
    assert not out.exists() and not [n for n in os.listdir(tmp_path) if n.startswith(".tiny-model-")]
