"""Shared machinery: atomic files and parquet shards with Hugging Face feature metadata."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .arrow_rows import rows_to_table
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


def image_cells(sample: EncodedSample) -> list[dict]:
    return [{"bytes": b, "path": n} for b, n in zip(sample.images, sample.image_names)]


class DatasetWriter:
    """Receives encoded samples in output order; ``close()`` returns the files written."""

    format_name = ""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def add(self, sample: EncodedSample) -> None:
        raise NotImplementedError

    def close(self) -> list[str]:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop partial output (temporary files) after a failure."""

    def release(self) -> None:
        """Close open files after a failure, keeping everything on disk (a run that can be
        resumed keeps its durable parts; the part cut short is dropped by ``resume``)."""

    #: Called with the writer's resume state each time a part of the output becomes durable
    #: (synced to disk, complete); the run journal records it. ``None``: nobody listens.
    on_checkpoint: Callable[[dict], None] | None = None

    @property
    def rows(self) -> int:
        """Rows added so far, those of a resumed run's durable parts included."""
        raise NotImplementedError

    def resume(self, state: dict) -> None:
        """Continue after the checkpoint ``state`` (one this writer class reported): keep what
        it covers, drop anything written after it."""
        raise NotImplementedError


def parquet_leaf_paths(schema: pa.Schema) -> list[str]:
    """Dotted paths of every leaf column parquet stores for ``schema``, read back from an
    empty file written with it (not through ``schema.empty_table()``, which imports pandas:
    0.3-0.5 s before a run could start)."""
    buf = pa.BufferOutputStream()
    pq.ParquetWriter(buf, schema, store_schema=False).close()
    ps = pq.ParquetFile(pa.BufferReader(buf.getvalue())).schema
    return [ps.column(i).path for i in range(len(ps))]


def parquet_writer_options(schema: pa.Schema) -> dict:
    """ParquetWriter settings: zstd for every column except the image bytes, which are PNG or
    JPEG already (compressing them again cost the writing process ~5 ms per MB for a few
    percent), and neither dictionary nor statistics for those bytes."""
    paths = parquet_leaf_paths(schema)
    blobs = {p for p in paths if p.endswith(".bytes")}
    rest = [p for p in paths if p not in blobs]
    return {"compression": {p: ("none" if p in blobs else "zstd") for p in paths},
            "use_dictionary": rest, "write_statistics": rest}


def fsync_path(path: str, directory: bool = False) -> None:
    """Sync a file (or, with ``directory``, a folder's entries) to the disk."""
    fd = os.open(path, (os.O_RDONLY | os.O_DIRECTORY) if directory else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteBehind:
    """Keeps a file being written from piling up in the page cache: :meth:`push` starts
    writing its dirty pages to disk without waiting, and drops the pages an earlier push
    saw written (``posix_fadvise(DONTNEED)``, which never discards unwritten data).

    Two gains. The final fsync finds little left to write (at 600 samples it took
    0.15-0.2 s for a 230 MB shard, with every worker done and waiting). And the kernel
    hands the freed pages straight to the next writes: on a virtual machine a page the
    guest has not touched for a while can cost the host a fault when it is written first,
    and copying a run's shards into such pages took 1.2 s of the writing process's CPU at
    600 samples, against a tenth of that on recycled ones. A gigabyte-sized dataset also
    no longer evicts the rest of the machine's cache. Where the call does not exist
    (macOS) or the file system refuses it, it is a no-op."""

    def __init__(self, path: str):
        self.fd: int | None = None
        if hasattr(os, "posix_fadvise"):
            try:
                self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                self.fd = None

    def push(self) -> None:
        if self.fd is not None:
            try:
                os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                self.close()

    def finish(self, path: str) -> None:
        """The file is complete: sync it to disk (through the descriptor this holds, or by
        ``path``), drop it from the cache and close."""
        try:
            self.push()  # what is still dirty (the footer) starts for disk
            if self.fd is not None:
                os.fsync(self.fd)
            else:
                fsync_path(path)
            self.push()  # all of it is written now: out of the cache
        finally:
            self.close()

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


class ParquetShardWriter(DatasetWriter):
    """Rows go to ``data/train-XXXXX-of-YYYYY.parquet``.

    Rows are written in row groups of at most ``rows_per_group`` rows (or
    ``max_group_bytes`` of images), so memory holds one row group, not one shard. A shard
    closes after ``rows_per_shard`` rows or ``max_shard_bytes`` of images. Shards are
    written under hidden temporary names and renamed into place only when the run
    completes, so a crash never leaves a half-written shard under a final name. A closed
    shard is synced to disk and reported to ``on_checkpoint``: a resumed run keeps it."""

    split = "train"

    def __init__(
        self,
        out_dir: str,
        schema: pa.Schema,
        features: dict,
        to_row: Callable[[EncodedSample, int], dict],
        rows_per_shard: int = 1000,
        max_shard_bytes: int = 512 * 1024 * 1024,
        rows_per_group: int = 64,
        max_group_bytes: int = 8 * 1024 * 1024,
    ):
        super().__init__(out_dir)
        meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
        self.schema = schema.with_metadata(meta)
        self.to_row = to_row
        self.rows_per_shard = max(1, int(rows_per_shard))
        self.max_shard_bytes = max(1, int(max_shard_bytes))
        self.rows_per_group = max(1, min(int(rows_per_group), self.rows_per_shard))
        self.max_group_bytes = max(1, int(max_group_bytes))
        self.data_dir = os.path.join(out_dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self._writer_options = parquet_writer_options(self.schema)
        # closing a shard (footer, fsync, checkpoint) happens on one background thread, so the
        # run keeps reading results meanwhile; shards are closed one at a time, in order
        self._closer = None
        self._closing = None
        self._group: list[dict] = []
        self._group_bytes = 0
        self._shard: pq.ParquetWriter | None = None
        self._behind: WriteBehind | None = None
        self._shard_rows = 0
        self._shard_bytes = 0
        self._tmp_shards: list[str] = []
        self._final_shards: list[str] = []
        self._done_rows: list[int] = []  # rows of each closed shard
        self._count = 0

    def add(self, sample: EncodedSample) -> None:
        self._group.append(self.to_row(sample, self._count))
        self._count += 1
        size = sum(len(b) for b in sample.images)
        self._group_bytes += size
        self._shard_rows += 1
        self._shard_bytes += size
        shard_full = self._shard_rows >= self.rows_per_shard or self._shard_bytes >= self.max_shard_bytes
        if shard_full or len(self._group) >= self.rows_per_group or self._group_bytes >= self.max_group_bytes:
            self._write_group()
        if shard_full:
            self._close_shard()

    def _write_group(self) -> None:
        if not self._group:
            return
        if self._shard is None:
            path = os.path.join(self.data_dir, f".tmp-{self.split}-{len(self._tmp_shards):05d}.parquet")
            self._shard = pq.ParquetWriter(path, self.schema, **self._writer_options)
            self._tmp_shards.append(path)
            self._behind = WriteBehind(path)
        self._shard.write_table(rows_to_table(self._group, self.schema))
        self._group = []
        self._group_bytes = 0
        self._behind.push()

    def _close_shard(self) -> None:
        if self._shard is not None:
            shard, path, rows, behind = self._shard, self._tmp_shards[-1], self._shard_rows, self._behind
            self._shard = self._behind = None
            self._wait_closing()
            if self._closer is None:
                from concurrent.futures import ThreadPoolExecutor

                self._closer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ssrl-shard-close")
            self._closing = self._closer.submit(self._finish_shard, shard, path, rows, behind)
        self._shard_rows = 0
        self._shard_bytes = 0

    def _finish_shard(self, shard, path: str, rows: int, behind: WriteBehind) -> None:
        try:
            shard.close()
        except BaseException:
            behind.close()
            raise
        behind.finish(path)
        self._done_rows.append(rows)
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.checkpoint_state())

    def _wait_closing(self) -> None:
        """Wait for the shard being closed; its error, if any, is raised here."""
        if self._closing is not None:
            fut, self._closing = self._closing, None
            fut.result()

    def _stop_closer(self) -> None:
        if self._closer is not None:
            try:
                self._wait_closing()
            finally:
                self._closer.shutdown(wait=True)
                self._closer = None

    @property
    def rows(self) -> int:
        return self._count

    def checkpoint_state(self) -> dict:
        done = self._tmp_shards[:len(self._done_rows)]
        return {"shards": [[os.path.basename(p), n] for p, n in zip(done, self._done_rows)],
                "rows": sum(self._done_rows)}

    def resume(self, state: dict) -> None:
        shards = state.get("shards") or []
        keep: list[str] = []
        rows: list[int] = []
        for name, n in shards:
            path = os.path.join(self.data_dir, os.path.basename(str(name)))
            try:
                found = pq.ParquetFile(path).metadata.num_rows
            except (OSError, pa.ArrowException) as exc:  # missing, cut short, a corrupt footer
                raise ValueError(f"{path}: a finished shard of the interrupted run is unreadable ({exc})") from None
            if found != int(n):
                raise ValueError(f"{path}: the interrupted run recorded {n} rows, the file holds {found}")
            keep.append(path)
            rows.append(int(n))
        for name in os.listdir(self.data_dir):
            p = os.path.join(self.data_dir, name)
            if name.startswith(".tmp-") and p not in keep and os.path.isfile(p):
                os.unlink(p)  # a shard cut short by the kill
        self._tmp_shards = keep
        self._done_rows = rows
        self._count = sum(rows)

    def close(self) -> list[str]:
        self._write_group()
        self._close_shard()
        self._stop_closer()
        n = len(self._tmp_shards)
        for i, tmp in enumerate(self._tmp_shards):
            path = os.path.join(self.data_dir, f"{self.split}-{i:05d}-of-{n:05d}.parquet")
            os.replace(tmp, path)
            self._final_shards.append(path)
        return list(self._final_shards)

    def release(self) -> None:
        with contextlib.suppress(Exception):
            self._stop_closer()  # a shard being closed becomes durable (or is redone on resume)
        if self._shard is not None:
            with contextlib.suppress(Exception):
                self._shard.close()
            self._shard = None
        self._drop_behind()

    def _drop_behind(self) -> None:
        if self._behind is not None:
            self._behind.close()
            self._behind = None

    def abort(self) -> None:
        """Remove every shard this writer made, temporary or already renamed (a failure after
        ``close()``, e.g. while writing the manifest, must not leave shards without one)."""
        with contextlib.suppress(Exception):  # the disk may be full
            self._stop_closer()
        if self._shard is not None:
            with contextlib.suppress(Exception):  # the disk may be full; the file goes anyway
                self._shard.close()
            self._shard = None
        self._drop_behind()
        for path in [*self._tmp_shards, *self._final_shards]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._tmp_shards = []
        self._final_shards = []
        try:
            os.rmdir(self.data_dir)
        except OSError:
            pass
