"""The shard writer's write-behind: a shard it has written is on disk, reads back whole, and
does not stay in the page cache (``WriteBehind`` in ``writers/base.py``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

import pyarrow.parquet as pq
import pytest

from spatial_ssrl.writers.base import ParquetShardWriter, WriteBehind
from spatial_ssrl.writers.canonical import FEATURES, SCHEMA, to_row
from spatial_ssrl.writers.encoded import EncodedSample

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page-cache residency is read with Linux's mincore")


def _fs_type(path: str) -> str:
    """The file system type of ``path``, from the longest matching mount point."""
    best, kind = "", ""
    real = os.path.realpath(path)
    with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 3:
                mnt = parts[1].replace("\\040", " ")
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, kind = mnt, parts[2]
    return kind


def resident_fraction(path: str) -> float:
    """Share of ``path``'s pages in the page cache (mincore over a read-only mapping, which
    touches none of them)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    size = os.path.getsize(path)
    page = os.sysconf("SC_PAGE_SIZE")
    n = (size + page - 1) // page
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            vec = ctypes.create_string_buffer(n)
            assert libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
            return sum(b & 1 for b in vec.raw) / n
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def _sample(i: int) -> EncodedSample:
    blob = os.urandom(256 * 1024)  # incompressible, like PNG bytes
    return EncodedSample(id=f"s{i}", task="flip", variant="2x2", images=[blob], image_names=[f"s{i}.png"],
                         problem="<image>q", answer="0-0", answer_type="flip", options=None, source="x", meta={})


@linux_only
def test_a_finished_shard_is_whole_on_disk_and_out_of_the_cache(tmp_path):
    if _fs_type(str(tmp_path)) in ("tmpfs", "ramfs"):
        pytest.skip("a memory file system keeps its pages: there is no disk behind them")
    samples = [_sample(i) for i in range(96)]  # 24 MB in row groups of 2 MB
    w = ParquetShardWriter(str(tmp_path / "out"), SCHEMA, FEATURES, to_row, rows_per_shard=1000,
                           max_group_bytes=2 * 1024 * 1024)
    for s in samples:
        w.add(s)
    (shard,) = w.close()
    assert os.path.getsize(shard) > 24 * 1024 * 1024
    # a plain write of the same size stays resident: the measurement can tell the two apart
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(os.path.getsize(shard)))
    assert resident_fraction(str(plain)) > 0.9
    assert resident_fraction(shard) < 0.1
    table = pq.read_table(shard)
    assert table.column("id").to_pylist() == [s.id for s in samples]
    assert [cell[0]["bytes"] for cell in table.column("images").to_pylist()] == [s.images[0] for s in samples]


@linux_only
def test_push_keeps_unwritten_data(tmp_path):
    """Dropping pages never drops data: a push right after a write, before any sync, and the
    bytes read back are the ones written."""
    path = tmp_path / "f.bin"
    data = os.urandom(8 * 1024 * 1024)
    with open(path, "wb") as fh:
        behind = WriteBehind(str(path))
        fh.write(data[: len(data) // 2])
        fh.flush()
        behind.push()
        fh.write(data[len(data) // 2:])
        fh.flush()
        behind.push()
        behind.close()
    assert path.read_bytes() == data
    assert behind.fd is None


def test_write_behind_on_a_missing_file_is_a_no_op(tmp_path):
    behind = WriteBehind(str(tmp_path / "gone.bin"))
    assert behind.fd is None
    behind.push()
    behind.close()
