"""Fast reading of a chunked, deflate-compressed HDF5 dataset.

MegaDepth stores each depth map as a float32 HDF5 dataset in 64 x 64 chunks compressed with
gzip level 9. Reading it with ``h5py`` (``ds[()]``) spends most of its time in zlib's
inflate plus a per-chunk overhead inside the HDF5 library; on a 1600 x 1064 map that is
about 50 ms, more than everything else a depth sample costs. This module reads the same
bytes another way:

1. ``h5py`` is used only for the metadata: shape, dtype, chunk shape, the filter pipeline,
   the fill value, and the file address of every stored chunk (``DatasetID.chunk_iter``,
   one call for all chunks).
2. The bytes of all chunks are fetched with one read, and every chunk is inflated with
   libdeflate (the ``deflate`` package) when it is installed, else with the standard
   library's ``zlib``. libdeflate decodes a whole buffer of known size in one call and is
   about twice as fast as zlib; the decompressed size of a chunk is always known (chunk
   shape x item size).
3. The optional byte-shuffle filter is undone with NumPy; chunks are copied into place.

Only the pipelines this code fully understands are taken this way: any subset of
``shuffle`` and ``deflate`` in the usual order (shuffle first), chunked layout. Anything
else (checksums, szip, lzf, blosc, contiguous or compact layout, an old HDF5 without
``chunk_iter``, a file not opened with the default ``sec2`` driver) returns ``None``; bytes
that do not decode (a chunk that does not inflate to its exact size) raise ``ValueError``
and :func:`.depth_formats.read_megadepth` then lets h5py try. Either way the
caller falls back to ``h5py``, so results never depend on which path was taken:
:func:`read_dataset` returns exactly the array ``ds[()]`` returns (tested bit for bit).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

try:  # libdeflate bindings: optional accelerator
    import deflate as _libdeflate
except ImportError:  # pragma: no cover - depends on the environment
    _libdeflate = None

_FILTER_DEFLATE = 1
_FILTER_SHUFFLE = 2


def inflate_backend() -> str:
    """Which inflater :func:`read_dataset` uses: ``libdeflate`` or ``zlib``."""
    return "libdeflate" if _libdeflate is not None else "zlib"


SMALL_CHUNK_RATIO = 16
"""Chunks that compress more than this (mostly fill, e.g. no-depth areas) are inflated
with zlib: libdeflate's fixed cost per call is higher and these chunks are cheap anyway."""


def _inflate(data, size: int) -> bytes:
    if _libdeflate is not None and len(data) * SMALL_CHUNK_RATIO > size:
        return _libdeflate.zlib_decompress(data, size)
    return zlib.decompress(data, bufsize=size)


def _pipeline(ds) -> list[int] | None:
    """The dataset's filter codes in pipeline order, or None when the layout is not
    chunked."""
    import h5py

    dcpl = ds.id.get_create_plist()
    if dcpl.get_layout() != h5py.h5d.CHUNKED:
        return None
    return [int(dcpl.get_filter(i)[0]) for i in range(dcpl.get_nfilters())]


def read_dataset(ds) -> np.ndarray | None:
    """The whole of the h5py dataset ``ds`` through the fast path, or None when the
    dataset is stored in a way this module does not handle (see the module docstring).

    Raises ``ValueError`` when the stored bytes are inconsistent (a chunk inflates to the
    wrong size, a chunk lies outside the file)."""
    filters = _pipeline(ds)
    if filters is None or filters not in ([], [_FILTER_DEFLATE], [_FILTER_SHUFFLE, _FILTER_DEFLATE], [_FILTER_SHUFFLE]):
        return None
    dsid = ds.id
    if not hasattr(dsid, "chunk_iter") or ds.file.driver != "sec2":  # need a plain file on disk
        return None
    shape = tuple(int(v) for v in ds.shape)
    chunk_shape = tuple(int(v) for v in ds.chunks)
    dtype = np.dtype(ds.dtype)
    if dtype.kind not in "fiu" or len(shape) == 0 or len(shape) != len(chunk_shape):
        return None
    chunks: list[Any] = []
    try:
        dsid.chunk_iter(chunks.append)
    except Exception:  # noqa: BLE001 - an HDF5 without chunk iteration: use the slow path
        return None
    fill = ds.fillvalue
    out = np.empty(shape, dtype=dtype)
    n_full = 1
    for a, b in zip(shape, chunk_shape):
        n_full *= -(-a // b)
    if len(chunks) < n_full:  # chunks never written hold the fill value
        out.fill(fill if fill is not None else 0)
    if not chunks:
        return out
    chunk_bytes = int(np.prod(chunk_shape)) * dtype.itemsize
    deflate_bit = 1 << filters.index(_FILTER_DEFLATE) if _FILTER_DEFLATE in filters else 0
    shuffle_bit = 1 << filters.index(_FILTER_SHUFFLE) if _FILTER_SHUFFLE in filters else 0
    # one read of the byte span holding every chunk (the whole file for MegaDepth); chunk
    # addresses are absolute file offsets, a user block included
    first = min(int(c.byte_offset) for c in chunks)
    last = max(int(c.byte_offset) + int(c.size) for c in chunks)
    with open(ds.file.filename, "rb") as fh:
        fh.seek(first)
        buf = fh.read(last - first)
    if len(buf) != last - first:
        raise ValueError("the file ends before its last chunk")
    view = memoryview(buf)
    two_d = len(shape) == 2
    if two_d:
        (height, width), (ch0, ch1) = shape, chunk_shape
    for info in chunks:
        start = int(info.byte_offset) - first
        data = view[start:start + int(info.size)]
        mask = int(info.filter_mask)
        if deflate_bit and not mask & deflate_bit:
            try:
                raw = _inflate(data, chunk_bytes)
            except Exception as exc:  # noqa: BLE001 - libdeflate and zlib raise different types
                raise ValueError(f"chunk at {info.chunk_offset} does not inflate: {exc}") from exc
        else:
            raw = bytes(data)
        if len(raw) != chunk_bytes:
            raise ValueError(f"chunk at {info.chunk_offset} holds {len(raw)} bytes, expected {chunk_bytes}")
        if shuffle_bit and not mask & shuffle_bit and dtype.itemsize > 1:
            block = np.frombuffer(raw, dtype=np.uint8).reshape(dtype.itemsize, -1).T.copy().view(dtype)
            block = block.reshape(chunk_shape)
        else:
            block = np.frombuffer(raw, dtype=dtype).reshape(chunk_shape)
        origin = info.chunk_offset
        if two_d:
            y, x = origin
            out[y:y + ch0, x:x + ch1] = block[: min(ch0, height - y), : min(ch1, width - x)]
        else:
            dst = tuple(slice(o, min(o + c, n)) for o, c, n in zip(origin, chunk_shape, shape))
            out[dst] = block[tuple(slice(0, sl.stop - sl.start) for sl in dst)]
    return out
