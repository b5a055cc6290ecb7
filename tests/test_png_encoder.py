"""PNG output is lossless whichever encoder writes it: decoded (by Pillow) it equals the
rendered array exactly -- fpng (the default where it installs) and Pillow (the fallback)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from deps import run_cli
from PIL import Image
from pixels import ROOTS, read_rows

from spatial_ssrl.sources import SourceRef, builtin_photos, load_item, load_source_item
from spatial_ssrl.sources.naming import resolve
from spatial_ssrl.tasks import rerender
from spatial_ssrl.writers import encoded
from spatial_ssrl.writers.encoded import FPNG_AVAILABLE, encode_png, png_encoder_for

ENCODERS = ["auto", "pillow"] + (["fpng"] if FPNG_AVAILABLE else [])
ODD_SHAPES = [(1, 1), (3, 1000), (1000, 3), (4097, 5), (1, 7), (2, 2)]


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        return np.asarray(im)


def assert_exact(a: np.ndarray, encoder: str) -> bytes:
    data = encode_png(a, encoder=encoder)
    d = decoded(data)
    assert d.dtype == a.dtype and d.shape == a.shape
    assert np.array_equal(d, a)
    return data


def gradient(h: int, w: int, c: int = 3) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    chans = [(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 127 // max(h + w - 2, 1)), (x * y) % 256]
    return np.stack(chans[:c], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("channels", [3, 4])
def test_random_noise_roundtrips(encoder, channels):
    rng = np.random.default_rng(channels)
    assert_exact(rng.integers(0, 256, (451, 613, channels), dtype=np.uint8), encoder)


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("channels", [3, 4])
def test_smooth_gradients_roundtrip(encoder, channels):
    assert_exact(gradient(480, 640, channels), encoder)
    assert_exact(np.zeros((64, 64, channels), np.uint8), encoder)
    assert_exact(np.full((64, 64, channels), 255, np.uint8), encoder)


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("shape", ODD_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_odd_sizes_roundtrip(encoder, shape):
    rng = np.random.default_rng(shape[0] * 10007 + shape[1])
    assert_exact(rng.integers(0, 256, (*shape, 3), dtype=np.uint8), encoder)
    assert_exact(gradient(*shape), encoder)
    assert_exact(rng.integers(0, 256, (*shape, 4), dtype=np.uint8), encoder)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_builtin_photos_roundtrip(encoder):
    refs = builtin_photos()
    assert refs
    for ref in refs:
        item = load_item(ref)
        assert_exact(np.ascontiguousarray(item.rgb), encoder)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_other_layouts_fall_back_exactly(encoder):
    """What fpng cannot take (strided views, grey, 2 channels, 16 bit) goes to Pillow."""
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)
    for a in (base[:, ::2], base[::-1], base[..., 0], np.ascontiguousarray(base[..., :2]), base.transpose(1, 0, 2)):
        assert png_encoder_for(a, encoder) == "pillow"
        data = encode_png(a, encoder=encoder)
        assert np.array_equal(decoded(data), a)
    grey16 = rng.integers(0, 65536, (50, 70), dtype=np.uint16)
    assert png_encoder_for(grey16, encoder) == "pillow"
    with Image.open(io.BytesIO(encode_png(grey16, encoder=encoder))) as im:
        assert np.array_equal(np.asarray(im).astype(np.uint16), grey16)


def test_encoder_choice():
    a = np.zeros((8, 8, 3), np.uint8)
    assert png_encoder_for(a, "pillow") == "pillow"
    assert png_encoder_for(a, "auto") == ("fpng" if FPNG_AVAILABLE else "pillow")
    with pytest.raises(ValueError):
        encode_png(a, encoder="zopfli")
    if not FPNG_AVAILABLE:
        with pytest.raises(ImportError):
            encode_png(a, encoder="fpng")


def test_default_encoder_is_a_module_setting(monkeypatch):
    a = gradient(300, 300)
    monkeypatch.setattr(encoded, "DEFAULT_PNG_ENCODER", "pillow")
    assert png_encoder_for(a) == "pillow"
    assert encode_png(a) == encode_png(a, encoder="pillow")
    monkeypatch.setattr(encoded, "DEFAULT_PNG_ENCODER", "auto")
    assert encode_png(a) == encode_png(a, encoder="auto")


@pytest.mark.skipif(not FPNG_AVAILABLE, reason="fpng not installed")
def test_fpng_is_the_default_and_pillow_is_smaller_on_photos():
    item = load_item(builtin_photos()[0])
    a = np.ascontiguousarray(item.rgb)
    assert png_encoder_for(a) == "fpng"
    fast, small = encode_png(a), encode_png(a, encoder="pillow")
    assert fast != small
    assert np.array_equal(decoded(fast), decoded(small))


def _load(source: str):
    kind = "procedural" if source.startswith("procedural:") else "image"
    path = source if kind == "procedural" else resolve(source, ROOTS)  # through the manifest's input roots
    return load_source_item(SourceRef(source, path, kind=kind))


def test_generated_images_decode_to_what_the_tasks_render(tmp_path):
    out = tmp_path / "out"
    run_cli("generate", "--num", 6, "--tasks", "shuffle,flip,crop", "--workers", 1, "-q", "-o", out)
    rows = read_rows(out)
    assert len(rows) == 6
    n_images = 0
    for r in rows:
        meta = json.loads(r["meta"])
        rendered, answer = rerender(meta, _load(r["source"]))
        assert answer == r["answer"]
        assert len(rendered.images) == len(r["images"])
        for cell, im in zip(r["images"], rendered.images):
            assert cell["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
            assert np.array_equal(decoded(cell["bytes"]), im)
            assert cell["bytes"] == encode_png(im)
            n_images += 1
    assert n_images >= 6
