"""Shared machinery: atomic files, parquet settings and Hugging Face feature metadata."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .encoded import EncodedSample

# Hugging Face `datasets` feature descriptions, in the list syntax every datasets release
# from 2.x on understands. Stored in the parquet schema metadata so `load_dataset(OUT)`
# decodes image columns to PIL images.
STRING = {"dtype": "string", "_type": "Value"}
INT64 = {"dtype": "int64", "_type": "Value"}
IMAGE_LIST = [{"_type": "Image"}]
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def current_umask() -> int:
    """The process umask, read without changing it where Linux reports it."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str, data: bytes, sync: bool = False) -> None:
    """Write ``path`` through a hidden temporary file and a rename, so a reader never sees it
    half-written. The file gets the mode ``open()`` would give it (0666 less the umask), not
    mkstemp's 0600. With ``sync``, the bytes reach the disk before the rename."""
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str, obj: Any, sync: bool = False) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode(), sync=sync)


def hf_schema(schema: pa.Schema, features: dict) -> pa.Schema:
    """``schema`` with the Hugging Face feature description in its metadata."""
    return schema.with_metadata({b"huggingface": json.dumps({"info": {"features": features}}).encode()})


def image_cells(sample: EncodedSample) -> list[dict]:
    return [{"bytes": b, "path": n} for b, n in zip(sample.images, sample.image_names)]


def parquet_leaf_paths(schema: pa.Schema) -> list[str]:
    """Dotted paths of every leaf column parquet stores for ``schema``, read back from an
    empty file written with it (not through ``schema.empty_table()``, which imports pandas:
    0.3-0.5 s before a run could start)."""
    buf = pa.BufferOutputStream()
    pq.ParquetWriter(buf, schema, store_schema=False).close()
    ps = pq.ParquetFile(pa.BufferReader(buf.getvalue())).schema
    return [ps.column(i).path for i in range(len(ps))]


def parquet_writer_options(schema: pa.Schema) -> dict:
    """ParquetWriter settings, every one that shapes the file's bytes given explicitly (so a
    pyarrow release with other defaults still writes the same file): zstd at level 1 for
    every column except the image bytes, which are PNG or JPEG already (compressing them
    again cost ~5 ms per MB for a few percent), and neither dictionary nor statistics for
    those bytes."""
    paths = parquet_leaf_paths(schema)
    blobs = {p for p in paths if p.endswith(".bytes")}
    rest = [p for p in paths if p not in blobs]
    return {"compression": {p: ("none" if p in blobs else "zstd") for p in paths},
            "compression_level": {p: 1 for p in rest},
            "use_dictionary": rest, "write_statistics": rest,
            "version": "2.6", "data_page_version": "1.0", "data_page_size": 1 << 20,
            "write_batch_size": 1024, "dictionary_pagesize_limit": 1 << 20, "store_schema": True,
            "write_page_index": False, "write_page_checksum": False, "use_compliant_nested_type": True}


def fsync_path(path: str, directory: bool = False, drop: bool = False) -> None:
    """Sync a file (or, with ``directory``, a folder's entries) to the disk; with ``drop``,
    then take the file out of the page cache (:func:`drop_written`)."""
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
        if drop:
            drop_written(fd)
    finally:
        os.close(fd)


def drop_written(fd: int) -> None:
    """``posix_fadvise(DONTNEED)`` on a file being written: its dirty pages start for the disk
    without waiting, and the pages already written leave the page cache (unwritten data is
    never discarded). A run writes its dataset once and never reads it back, and the kernel
    hands the freed pages to the next writes: at 20,000 samples (9 GB) adjacent runs of
    ``bench/bench_scale.py`` made 1.08-1.17x the samples per second of runs without it on a
    quiet day, and 1.3-1.4x on a busy one (on a virtual machine a page the guest has not
    touched in a while costs a fault on first write); the final fsync finds little left to
    write. A no-op where the call does not exist or the file system refuses it."""
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
