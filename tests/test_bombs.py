"""Decompression bombs and folder loops.

Importing the package used to turn Pillow's decompression-bomb guard off for the whole
process (``Image.MAX_IMAGE_PIXELS = None`` in two modules), so ``ssrl infer`` decoded a
small PNG declaring 20000 x 20000 pixels into gigabytes. The guard now stays on; our own
readers raise it to their explicit ``max_pixels`` only while they open one file. And
``ssrl overlap`` walked a folder holding two links to its parent for ever."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

PILLOW_DEFAULT = Image.MAX_IMAGE_PIXELS


def _png_bomb(path, side: int = 20000) -> None:
    """A 1-bit PNG of side x side black pixels (about 60 KB on disk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                 + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    _png_bomb(path)
    return path


def test_importing_the_package_keeps_pillows_guard():
    code = ("import PIL.Image as I; d = I.MAX_IMAGE_PIXELS; import importlib\n"
            "for m in ('spatial_ssrl.cli', 'spatial_ssrl.sources', 'spatial_ssrl.sources.images', "
            "'spatial_ssrl.eval.overlap', 'spatial_ssrl.validate.runner', 'spatial_ssrl.preview'):\n"
            "    importlib.import_module(m)\n"
            "print(I.MAX_IMAGE_PIXELS == d and d is not None)")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr[-2000:]


def test_our_readers_skip_a_bomb_cheaply(bomb):
    from spatial_ssrl.eval.overlap import HashSkip, hash_image
    from spatial_ssrl.sources import LoadOptions
    from spatial_ssrl.sources.base import SourceRef, SourceSkip
    from spatial_ssrl.sources.images import load_item

    with pytest.raises(SourceSkip) as skip:
        load_item(SourceRef(id="b", path=str(bomb)), LoadOptions())
    assert skip.value.reason == "too_many_pixels"
    with pytest.raises(HashSkip, match="too_large"):
        hash_image(str(bomb))
    from spatial_ssrl.sources.depth_formats import png_is_16bit, read_png16

    assert png_is_16bit(str(bomb)) is False
    with pytest.raises(SourceSkip) as skip:
        read_png16(str(bomb), 100_000_000, None)
    assert skip.value.reason == "depth_too_many_pixels"
    assert Image.MAX_IMAGE_PIXELS == PILLOW_DEFAULT


def test_our_readers_raise_the_bound_only_while_they_read(tmp_path, monkeypatch):
    """A photo over Pillow's bound but within our explicit max_pixels still loads (here with
    the bound made tiny, so a small picture stands for a large photo)."""
    from spatial_ssrl.eval.overlap import hash_image
    from spatial_ssrl.sources import LoadOptions
    from spatial_ssrl.sources.base import SourceRef
    from spatial_ssrl.sources.images import load_item

    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    item = load_item(SourceRef(id="p", path=str(path)), LoadOptions())
    assert item.rgb.shape == (300, 400, 3)
    hash_image(str(path))
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_infer_refuses_a_bomb_in_one_line(bomb, tmp_path):
    out = subprocess.run([sys.executable, "-m", "spatial_ssrl.cli", "infer", "--model", str(tmp_path / "no-model"),
                          "--image", str(bomb), "--question", "Which side?"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and "bomb.png" in lines[0], out.stderr[-3000:]
    assert "no-model" not in out.stderr  # refused before any model is looked for


def test_overlap_ends_on_a_folder_that_links_to_itself(tmp_path):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(folder / "sub" / "a.png")
    for name in ("up1", "up2"):
        os.symlink("..", folder / "sub" / name)
    out = subprocess.run([sys.executable, "-m", "spatial_ssrl.cli", "overlap", "--train-images", str(folder),
                          "--bench-images", str(folder), "-w", "1", "-q"], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith("1 overlapping pair")
