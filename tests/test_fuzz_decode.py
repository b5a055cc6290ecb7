"""Fuzzing image and depth decoding: random bytes, truncated real PNG/JPEG files and
random sizes / channels / dtypes written as PNG, TIFF and NPY. Loading either returns a
well-formed item or raises :class:`SourceSkip` with a named reason: never anything else.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from fuzzing import REASON, remove_tmpdirs, tmpdir  # noqa: F401 (remove_tmpdirs: module fixture)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from spatial_ssrl.sources import (
    LoadOptions,
    SourceRef,
    SourceSkip,
    load_item,
    load_rgbd_item,
)

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
OPTS = LoadOptions(min_side=16, max_pixels=4_000_000, resize_max_pixels=200_000)


def _tmpdir() -> Path:
    return tmpdir("fuzz-decode-")


def _load(path: Path, options: LoadOptions = OPTS):
    """load_item or the SourceSkip's reason; any other exception fails the test."""
    try:
        item = load_item(SourceRef(id=path.name, path=str(path)), options)
    except SourceSkip as skip:
        assert isinstance(skip.reason, str) and REASON.match(skip.reason), skip.reason
        return skip.reason
    rgb = item.rgb
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert min(rgb.shape[:2]) >= options.min_side or "resize" in item.info
    if options.resize_max_pixels:
        assert rgb.shape[0] * rgb.shape[1] <= options.resize_max_pixels
    return item


def _real_image_bytes(fmt: str, seed: int, h: int = 120, w: int = 160) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([(yy * 2) % 256, (xx * 3) % 256, rng.integers(0, 256, (h, w))], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt)
    return buf.getvalue()


PNG = _real_image_bytes("PNG", 0)
JPEG = _real_image_bytes("JPEG", 1)


_MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"II*\x00", b"MM\x00*", b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
          b"GIF89a", b"\x93NUMPY"]


@FUZZ
@given(
    magic=st.sampled_from(_MAGIC + ["png_header", "jpeg_header"]),
    data=st.binary(max_size=2048),
    ext=st.sampled_from([".png", ".jpg", ".tif", ".bmp", ".webp", ".bin"]),
)
def test_random_bytes_are_skipped_by_name(magic, data, ext):
    head = PNG[:33] if magic == "png_header" else JPEG[:160] if magic == "jpeg_header" else magic
    p = _tmpdir() / f"x{ext}"
    p.write_bytes(head + data)
    _load(p)  # a named skip (or, rarely, a tiny valid image)


@settings(max_examples=30, deadline=None)
@given(path=st.one_of(st.text(max_size=30), st.from_regex(r"procedural:-?[0-9]{0,25}", fullmatch=True)))
def test_procedural_refs_with_random_paths(path):
    from spatial_ssrl.sources import load_source_item

    try:
        item = load_source_item(SourceRef(id="p", path=path, kind="procedural"), OPTS)
    except SourceSkip as skip:
        assert REASON.match(skip.reason), skip.reason
        return
    assert item.rgb.dtype == np.uint8 and item.depth is not None


@FUZZ
@given(
    which=st.sampled_from(["png", "jpeg"]),
    cut=st.floats(min_value=0.0, max_value=1.0),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=4),
)
def test_truncated_and_corrupted_real_files(which, cut, flips):
    data = bytearray(PNG if which == "png" else JPEG)
    data = data[: int(len(data) * cut)]
    for pos, val in flips:
        if data:
            data[pos % len(data)] = val
    p = _tmpdir() / f"t.{which}"
    p.write_bytes(bytes(data))
    _load(p)  # item (a JPEG may decode partially) or a named skip


_PIL_MODES = {
    # (dtype, channels) -> Pillow writes it
    ("uint8", 1), ("uint8", 2), ("uint8", 3), ("uint8", 4),
    ("uint16", 1), ("int32", 1), ("float32", 1), ("bool", 1),
}


@FUZZ
@given(
    h=st.integers(1, 300),
    w=st.integers(1, 300),
    dtype=st.sampled_from(["uint8", "uint16", "int32", "float32", "bool"]),
    channels=st.sampled_from([1, 2, 3, 4]),
    fmt=st.sampled_from(["PNG", "TIFF"]),
    fill=st.sampled_from(["random", "zeros", "max", "nan"]),
    seed=st.integers(0, 2**16),
)
def test_random_arrays_written_as_png_or_tiff(h, w, dtype, channels, fmt, fill, seed):
    if (dtype, channels) not in _PIL_MODES:
        channels = 1
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    if dtype == "bool":
        a = rng.integers(0, 2, shape).astype(bool)
    elif dtype == "float32":
        a = rng.normal(0, 1e3, shape).astype(np.float32)
        if fill == "nan":
            a[..., : max(1, w // 2)] = np.nan
            a[0, 0] = np.inf
        elif fill == "max":
            a[:] = np.finfo(np.float32).max
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, int(info.max) + 1, shape, dtype=np.int64).astype(dtype)
        if fill == "max":
            a[:] = info.max
    if fill == "zeros":
        a = np.zeros_like(a)
    try:
        img = Image.fromarray(a)
        p = _tmpdir() / f"a.{fmt.lower()}"
        img.save(p, format=fmt)
    except (TypeError, OSError, ValueError, KeyError):
        return  # Pillow cannot write this combination; nothing to load
    out = _load(p)
    if not isinstance(out, str):
        assert out.info["file_size"] == [w, h]
    elif min(h, w) >= OPTS.min_side:
        assert out in {"unsupported_mode", "corrupt_or_truncated"}, out


@FUZZ
@given(
    h=st.integers(16, 80),
    w=st.integers(16, 80),
    dh=st.integers(0, 90),
    dw=st.integers(0, 90),
    dtype=st.sampled_from(["float32", "float64", "float16", "uint16", "int8", "int64", "bool", "complex64", "U1", "O"]),
    extra_dim=st.sampled_from([None, 1, 3]),
    fill=st.sampled_from(["random", "nan", "inf", "zeros", "const", "huge", "negative"]),
    mask=st.sampled_from([None, "ok", "wrong_shape", "garbage"]),
    intrinsics=st.one_of(
        st.none(),
        st.tuples(*[st.floats(allow_nan=True, allow_infinity=True, width=64)] * 4),
    ),
    seed=st.integers(0, 2**16),
)
def test_random_npy_depth_files(h, w, dh, dw, dtype, extra_dim, fill, mask, intrinsics, seed):
    """An RGB-D pair whose depth is a random ``.npy``: an item honouring the depth
    contract, or a named skip."""
    d = _tmpdir()
    rgb = d / "scene.png"
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(rgb)
    rng = np.random.default_rng(seed)
    shape = (dh, dw) if extra_dim is None else (dh, dw, extra_dim)
    values = {
        "random": lambda: rng.uniform(0.1, 50.0, shape),
        "nan": lambda: np.full(shape, np.nan),
        "inf": lambda: np.where(rng.random(shape) < 0.5, np.inf, 2.0),
        "zeros": lambda: np.zeros(shape),
        "const": lambda: np.full(shape, 3.0),
        "huge": lambda: rng.uniform(1e30, 1e300, shape),
        "negative": lambda: rng.uniform(-10, 10, shape),
    }[fill]()
    if dtype == "O":
        arr = np.empty(shape, dtype=object)
        arr[...] = None
    elif dtype == "U1":
        arr = np.full(shape, "a")
    else:
        with np.errstate(all="ignore"):
            arr = values.astype(dtype)
    depth = d / "scene_depth.npy"
    np.save(depth, arr, allow_pickle=True)
    mask_path = None
    if mask == "ok":
        mask_path = d / "scene_depth_mask.npy"
        np.save(mask_path, rng.random((dh, dw)) < 0.9)
    elif mask == "wrong_shape":
        mask_path = d / "scene_depth_mask.npy"
        np.save(mask_path, np.ones((dh + 1, dw), bool))
    elif mask == "garbage":
        mask_path = d / "scene_depth_mask.npy"
        mask_path.write_bytes(b"\x93NUMPY garbage")
    ref = SourceRef(id="scene", path=str(rgb), kind="rgbd", depth=str(depth),
                    mask=str(mask_path) if mask_path else None, intrinsics=intrinsics)
    try:
        item = load_rgbd_item(ref, OPTS)
    except SourceSkip as skip:
        assert REASON.match(skip.reason), skip.reason
        return
    assert item.depth.dtype == np.float32 and item.depth.shape == (h, w)
    assert item.mask.dtype == bool and item.mask.shape == (h, w) and item.mask.any()
    assert np.all(np.isfinite(item.depth[item.mask])) and np.all(item.depth[item.mask] > 0)
    assert np.all(np.isnan(item.depth[~item.mask]))
    if item.intrinsics is not None:
        assert all(np.isfinite(v) for v in item.intrinsics)
