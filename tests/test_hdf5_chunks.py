"""The fast HDF5 chunk reader (``sources/hdf5_chunks.py``) against h5py's own ``ds[()]``.

Every stored layout it accepts must give the very array h5py gives (dtype, shape and every
bit, NaN payloads included); every layout it does not understand must be handed back
(``None``) so h5py reads it; broken bytes must raise ``ValueError`` and still end as a named
depth skip through the public reader."""

from __future__ import annotations

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from spatial_ssrl.sources import hdf5_chunks  # noqa: E402
from spatial_ssrl.sources.base import SourceSkip  # noqa: E402
from spatial_ssrl.sources.depth_formats import read_depth_file  # noqa: E402


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bytes (so NaN == NaN and -0.0 != 0.0)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _depth_like(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 80.0, size=shape)
    if np.dtype(dtype).kind == "f":
        a[rng.random(shape) < 0.2] = 0.0  # MegaDepth's "no depth"
        a.flat[:7] = [np.nan, np.inf, -np.inf, -0.0, 1e-30, 3.4e38, -2.5]
    return a.astype(dtype)


def _write(path, data, userblock=0, **kw):
    with h5py.File(path, "w", userblock_size=userblock) as fh:
        fh.create_dataset("depth", data=data, **kw)


def _read_both(path):
    with h5py.File(path, "r") as fh:
        fast = hdf5_chunks.read_dataset(fh["depth"])
    with h5py.File(path, "r") as fh:
        ref = fh["depth"][()]
    return fast, ref


ACCEPTED = {
    # MegaDepth's layout: float32, 64x64 chunks, gzip 9, shape not a multiple of the chunk
    "megadepth_like": (lambda: _depth_like((203, 150), "f4"), dict(chunks=(64, 64), compression="gzip", compression_opts=9)),
    "shuffle_gzip_f8": (lambda: _depth_like((100, 77), "f8"), dict(chunks=(32, 20), compression="gzip", shuffle=True)),
    "big_endian_i2": (lambda: _depth_like((90, 130), ">i2"), dict(chunks=(16, 64), compression="gzip", compression_opts=1)),
    "uncompressed_chunks_u2": (lambda: _depth_like((70, 70), "u2"), dict(chunks=(64, 64))),
    "shuffle_only_f4": (lambda: _depth_like((65, 66), "f4"), dict(chunks=(64, 64), shuffle=True)),
    "one_chunk": (lambda: _depth_like((40, 50), "f4"), dict(chunks=(40, 50), compression="gzip")),
    "hxwx1": (lambda: _depth_like((80, 60, 1), "f4"), dict(chunks=(32, 32, 1), compression="gzip")),
    "all_zero_chunks": (lambda: np.zeros((300, 200), "f4"), dict(chunks=(64, 64), compression="gzip", compression_opts=9)),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_fast_path_equals_h5py(tmp_path, name):
    make, kw = ACCEPTED[name]
    path = tmp_path / f"{name}.h5"
    _write(path, make(), **kw)
    fast, ref = _read_both(path)
    assert fast is not None, "this layout should take the fast path"
    assert _same(fast, ref)


@pytest.mark.parametrize("name", ["megadepth_like", "shuffle_gzip_f8"])
def test_zlib_fallback_gives_the_same_array(tmp_path, monkeypatch, name):
    make, kw = ACCEPTED[name]
    path = tmp_path / "x.h5"
    _write(path, make(), **kw)
    monkeypatch.setattr(hdf5_chunks, "_libdeflate", None)
    assert hdf5_chunks.inflate_backend() == "zlib"
    fast, ref = _read_both(path)
    assert fast is not None and _same(fast, ref)


def test_userblock_offsets(tmp_path):
    path = tmp_path / "ub.h5"
    _write(path, _depth_like((130, 129), "f4"), userblock=1024, chunks=(64, 64), compression="gzip")
    fast, ref = _read_both(path)
    assert fast is not None and _same(fast, ref)


def test_unwritten_chunks_hold_the_fill_value(tmp_path):
    path = tmp_path / "sparse.h5"
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset("depth", shape=(200, 300), dtype="f4", chunks=(64, 64),
                               compression="gzip", fillvalue=-7.5)
        ds[10:70, 100:180] = 3.25  # touches a few chunks only
    fast, ref = _read_both(path)
    assert fast is not None and _same(fast, ref)
    assert (ref == -7.5).sum() > 0 and (ref == 3.25).sum() == 60 * 80


@pytest.mark.parametrize("kw", [
    dict(),  # contiguous
    dict(chunks=(32, 32), compression="gzip", fletcher32=True),
    dict(chunks=(32, 32), compression="lzf"),
], ids=["contiguous", "fletcher32", "lzf"])
def test_layouts_it_does_not_know_go_back_to_h5py(tmp_path, kw):
    path = tmp_path / "other.h5"
    data = _depth_like((70, 90), "f4")
    _write(path, data, **kw)
    fast, ref = _read_both(path)
    assert fast is None
    # and the public reader still reads them (through h5py)
    raw = read_depth_file(str(path), "megadepth")
    assert _same(raw.values, ref.astype(np.float32))


def test_compact_layout_goes_back_to_h5py(tmp_path):
    path = tmp_path / "compact.h5"
    with h5py.File(path, "w") as fh:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple((20, 30))
        dsid = h5py.h5d.create(fh.id, b"depth", h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.arange(600, dtype="f4").reshape(20, 30))
    fast, ref = _read_both(path)
    assert fast is None and ref[19, 29] == 599


def _corrupt_first_chunk(path):
    with h5py.File(path, "r") as fh:
        info = fh["depth"].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + 2)  # inside the deflate stream, after the zlib header
        fh.write(b"\xff" * min(64, info.size - 6))


def test_broken_chunk_raises_and_the_reader_names_it(tmp_path):
    path = tmp_path / "broken.h5"
    _write(path, _depth_like((128, 128), "f4"), chunks=(64, 64), compression="gzip")
    _corrupt_first_chunk(path)
    with h5py.File(path, "r") as fh, pytest.raises(ValueError):
        hdf5_chunks.read_dataset(fh["depth"])
    with pytest.raises(SourceSkip) as err:
        read_depth_file(str(path), "megadepth")
    assert err.value.reason == "depth_unreadable"


def test_megadepth_fixtures_equal_h5py(shared_samples):
    for name in ("RGB-D_depth1.h5", "RGB-D_depth2.h5"):
        fast, ref = _read_both(shared_samples / name)
        assert fast is not None, f"{name} should take the fast path"
        assert _same(fast, ref)
        assert np.count_nonzero(ref) > 0.05 * ref.size
