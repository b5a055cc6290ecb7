"""The fast JPEG / PNG decoders (``sources/fast_decode.py``) give Pillow's pixels exactly,
take only the layouts they are meant for, and never change how a bad file is judged."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from spatial_ssrl.sources import fast_decode
from spatial_ssrl.sources.base import SourceRef, SourceSkip
from spatial_ssrl.sources.images import load_item


def _photo(h=251, w=333) -> np.ndarray:
    """A real photo cropped to an odd size (partial JPEG MCUs on both edges)."""
    return np.ascontiguousarray(skdata.astronaut()[:h, :w])


def _pillow_rgb(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _decode(path):
    with Image.open(path) as img:
        return fast_decode.decode_rgb(str(path), img)


JPEG_CASES = [
    dict(subsampling=s, progressive=p, quality=q)
    for s in ("4:4:4", "4:2:2", "4:2:0")
    for p in (False, True)
    for q in (75, 95)
]


@pytest.mark.parametrize("opts", JPEG_CASES, ids=lambda o: f"{o['subsampling']}-prog{int(o['progressive'])}-q{o['quality']}")
def test_jpeg_equals_pillow(tmp_path, opts):
    pytest.importorskip("simplejpeg")
    path = tmp_path / "x.jpg"
    Image.fromarray(_photo()).save(path, "JPEG", **opts)
    fast = _decode(path)
    assert fast is not None, "an RGB JPEG should take the fast path"
    assert fast.dtype == np.uint8 and np.array_equal(fast, _pillow_rgb(path))


def test_png_equals_pillow(tmp_path):
    pytest.importorskip("pyspng")
    for name, kw in (("default.png", {}), ("level1.png", {"compress_level": 1}), ("level9.png", {"compress_level": 9})):
        path = tmp_path / name
        Image.fromarray(_photo(301, 402)).save(path, "PNG", **kw)
        fast = _decode(path)
        assert fast is not None and np.array_equal(fast, _pillow_rgb(path))


def test_bundled_pngs_equal_pillow():
    pytest.importorskip("pyspng")
    folder = Path(skdata.__file__).parent
    checked = 0
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as img:
            if img.mode != "RGB":
                continue
        fast = _decode(path)
        if fast is None:  # e.g. 16-bit RGB: Pillow's job
            continue
        assert np.array_equal(fast, _pillow_rgb(path)), path.name
        checked += 1
    assert checked >= 5


def _save_png(path, arr, **kw):
    Image.fromarray(arr).save(path, "PNG", **kw)
    return path


@pytest.mark.parametrize("name, make", [
    ("grey.png", lambda p: _save_png(p, _photo()[..., 0])),
    ("rgba.png", lambda p: _save_png(p, np.dstack([_photo(), np.full(_photo().shape[:2], 200, np.uint8)]))),
    ("trns.png", lambda p: _save_png(p, _photo(), transparency=(1, 2, 3))),
    ("exif.png", lambda p: _save_png(p, _photo(), exif=_exif_rotated())),
    ("grey.jpg", lambda p: Image.fromarray(_photo()[..., 0]).save(p, "JPEG")),
    ("cmyk.jpg", lambda p: Image.fromarray(_photo()).convert("CMYK").save(p, "JPEG")),
    ("rgb.webp", lambda p: Image.fromarray(_photo()).save(p, "WEBP")),
])
def test_other_layouts_are_left_to_pillow(tmp_path, name, make):
    path = tmp_path / name
    make(path)
    assert _decode(path) is None


def _exif_rotated() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif


def test_16bit_rgb_png_is_left_to_pillow(tmp_path):
    import zlib
    import struct

    h, w = 20, 30
    rows = b"".join(b"\x00" + np.full((w, 3), 40000, ">u2").tobytes() for _ in range(h))

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    path = tmp_path / "rgb16.png"
    path.write_bytes(png)
    with Image.open(path) as img:
        assert img.mode == "RGB"  # Pillow reduces it to 8 bits: the fast path must not guess
    assert _decode(path) is None


@pytest.mark.parametrize("ext, fmt", [(".jpg", "JPEG"), (".png", "PNG")])
def test_load_item_same_with_and_without_fast_decoders(tmp_path, monkeypatch, ext, fmt):
    path = tmp_path / f"photo{ext}"
    Image.fromarray(_photo(400, 500)).save(path, fmt)
    ref = SourceRef(id="p", path=str(path))
    fast = load_item(ref)
    monkeypatch.setattr(fast_decode, "_simplejpeg", None)
    monkeypatch.setattr(fast_decode, "_pyspng", None)
    slow = load_item(ref)
    assert np.array_equal(fast.rgb, slow.rgb) and fast.info == slow.info


@pytest.mark.parametrize("ext, fmt", [(".jpg", "JPEG"), (".png", "PNG")])
def test_truncated_files_still_named_by_pillow(tmp_path, ext, fmt):
    buf = io.BytesIO()
    Image.fromarray(_photo(400, 500)).save(buf, fmt)
    path = tmp_path / f"cut{ext}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    with pytest.raises(SourceSkip) as err:
        load_item(SourceRef(id="c", path=str(path)))
    assert err.value.reason == "corrupt_or_truncated"


def test_fixture_photos_equal_pillow(shared_samples):
    for name in ("RGB-D_img1.jpg", "RGB-D_img2.jpg", "RGB-D_img3.png"):
        path = shared_samples / name
        fast = _decode(path)
        assert fast is not None, name
        assert np.array_equal(fast, _pillow_rgb(path)), name
    assert _decode(shared_samples / "RGB_img.png") is None  # RGBA: Pillow drops the alpha
