"""The part writer: one batch's samples as files of the dataset's format, and the dataset
made of the parts once every batch is done.

Whoever runs a batch (a local worker process or a Ray task) writes its samples itself, as a
*part*, into the run's folder:

- parquet formats: ``data/.tmp-part-<stem>-<piece>.parquet``; a piece holds at most
  ``rows_per_shard`` rows and :data:`MAX_SHARD_BYTES` of images, in row groups of at most
  :data:`ROWS_PER_GROUP` rows and :data:`MAX_GROUP_BYTES` of images;
- llamafactory: each image under its final name in ``images/``, the records in
  ``.tmp-parts/<stem>.jsonl``.

Every file goes through a temporary name, is synced and renamed, and its folder synced,
before :meth:`PartWriter.close` returns, so a part it reports is on disk for good. A part's
bytes depend on its samples alone (no process id, time or host goes in, and every writer
setting that shapes the file is pinned, :func:`.base.parquet_writer_options`): the same batch
gives the same file wherever it runs, given the same library versions (the engine checks
them, :func:`environment`).

At the end the parts become the dataset, in plan order: :func:`stage_finals` prepares what
takes time and can be interrupted without harm (verl's row offsets, :func:`reindex_part`;
llamafactory's records joined into one file), :func:`put_finals` then only renames.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import re
from dataclasses import dataclass, field

from . import base
from .base import current_umask, hf_schema, parquet_writer_options
from .encoded import EncodedSample
from .llamafactory import DATA_FILE, IMAGE_DIR

ROWS_PER_GROUP = 64
MAX_GROUP_BYTES = 4 * 1024 * 1024
MAX_SHARD_BYTES = 512 * 1024 * 1024
PART_PREFIX = ".tmp-part-"
JSONL_PART_DIR = ".tmp-parts"
SPLIT = "train"
_PART_RE = re.compile(r"^(?:data/\.tmp-part-[\w-]+\.parquet|\.tmp-parts/[\w-]+\.jsonl)$")


def environment() -> dict:
    """The versions a part's bytes depend on (the writer's, the encoders', the package's).
    Two processes with the same environment write the same part for the same batch."""
    from importlib import metadata

    import numpy
    import pyarrow

    from .. import __version__
    from . import encoded

    env = {"spatial_ssrl": __version__, "pyarrow": pyarrow.__version__, "numpy": numpy.__version__,
           "png": "pillow" if encoded.DEFAULT_PNG_ENCODER == "pillow" or not encoded.FPNG_AVAILABLE else "fpng"}
    for dist in ("pillow", "fpng", "simplejpeg", "pyspng"):
        try:
            env[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            env[dist] = None
    return env


@functools.cache
def parquet_layout(fmt: str):
    """(schema with the Hugging Face features, to_row, ParquetWriter options) of a parquet format."""
    mod = importlib.import_module(f"{__package__}.{fmt}")
    schema = hf_schema(mod.SCHEMA, mod.FEATURES)
    return schema, mod.to_row, parquet_writer_options(schema)


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):  # a platform or file system that cannot
        base.fsync_path(path, directory=True)


def _synced_rename(tmp: str, path: str) -> None:
    os.chmod(tmp, 0o666 & ~current_umask())
    base.fsync_path(tmp, drop=True)
    os.replace(tmp, path)


@dataclass
class PartWriter:
    """Writes one batch's samples (:meth:`add`, in plan order) as its part files; ``stem``
    names them (the round and the batch). :attr:`parts` lists them as ``(path relative to
    the output folder, rows)``, :attr:`images` the llamafactory images written."""

    fmt: str
    out_dir: str
    stem: str
    rows_per_shard: int = 1000
    parts: list[tuple[str, int]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._temps: list[str] = []
        self._group: list[dict] = []
        self._group_bytes = self._piece_rows = self._piece_bytes = 0
        self._writer = None
        self._behind: int | None = None  # the piece being written, for base.drop_written
        self._records: list[str] = []
        self._rows_cap = max(1, int(self.rows_per_shard))

    def _tmp(self, folder: str, name: str) -> str:
        path = os.path.join(self.out_dir, folder, f".tmp-w{os.getpid()}-{name}")
        self._temps.append(path)
        return path

    def add(self, s: EncodedSample) -> None:
        if self.fmt == "llamafactory":
            from .llamafactory import to_record

            for data, name in zip(s.images, s.image_names):
                tmp = self._tmp(IMAGE_DIR, name)
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, os.path.join(self.out_dir, IMAGE_DIR, name))  # synced in close()
                self.images.append(f"{IMAGE_DIR}/{name}")
            self._records.append(json.dumps(to_record(s), ensure_ascii=False) + "\n")
            return
        _schema, to_row, _opts = parquet_layout(self.fmt)
        self._group.append(to_row(s, self._piece_rows))
        size = sum(len(b) for b in s.images)
        self._piece_rows += 1
        self._group_bytes += size
        self._piece_bytes += size
        piece_full = self._piece_rows >= self._rows_cap or self._piece_bytes >= MAX_SHARD_BYTES
        if piece_full or len(self._group) >= ROWS_PER_GROUP or self._group_bytes >= MAX_GROUP_BYTES:
            self._write_group()
        if piece_full:
            self._close_piece()

    def _write_group(self) -> None:
        if not self._group:
            return
        import pyarrow.parquet as pq

        from .arrow_rows import rows_to_table

        schema, _to_row, opts = parquet_layout(self.fmt)
        if self._writer is None:
            name = f"{PART_PREFIX}{self.stem}-{len(self.parts):03d}.parquet"
            self._writer = (pq.ParquetWriter(self._tmp("data", name), schema, **opts), name)
            self._behind = os.open(self._temps[-1], os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self._writer[0].write_table(rows_to_table(self._group, schema))
        base.drop_written(self._behind)
        self._group, self._group_bytes = [], 0

    def _let_go(self) -> None:
        fd, self._behind = self._behind, None
        if fd is not None:
            os.close(fd)

    def _close_piece(self) -> None:
        if self._writer is not None:
            writer, name = self._writer
            self._writer = None
            writer.close()
            self._let_go()
            _synced_rename(self._temps[-1], os.path.join(self.out_dir, "data", name))
            self.parts.append((f"data/{name}", self._piece_rows))
        self._piece_rows = self._piece_bytes = 0

    def close(self) -> None:
        """Finish the part: every file synced and in place, its folder synced."""
        if self.fmt == "llamafactory":
            if not self._records:
                return
            for rel in self.images:
                base.fsync_path(os.path.join(self.out_dir, rel), drop=True)
            _fsync_dir(os.path.join(self.out_dir, IMAGE_DIR))
            name = f"{self.stem}.jsonl"
            tmp = self._tmp(JSONL_PART_DIR, name)
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.writelines(self._records)
            _synced_rename(tmp, os.path.join(self.out_dir, JSONL_PART_DIR, name))
            self.parts.append((f"{JSONL_PART_DIR}/{name}", len(self._records)))
            _fsync_dir(os.path.join(self.out_dir, JSONL_PART_DIR))
            return
        self._write_group()
        self._close_piece()
        if self.parts:
            _fsync_dir(os.path.join(self.out_dir, "data"))

    def abort(self) -> None:
        """Remove the temporary files (a part cut short); finished pieces stay (the engine
        drops parts it did not record)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer[0].close()
            self._writer = None
        with contextlib.suppress(OSError):
            self._let_go()
        for path in self._temps:
            with contextlib.suppress(OSError):
                os.unlink(path)


def part_folders(fmt: str) -> list[str]:
    """The folders parts (and their images) go to, relative to the output folder."""
    return [IMAGE_DIR, JSONL_PART_DIR] if fmt == "llamafactory" else ["data"]


def is_part(rel: str) -> bool:
    return bool(_PART_RE.match(rel))


def drop_stale(out_dir: str, fmt: str, keep: set[str]) -> None:
    """Remove part files not in ``keep`` (batches not recorded, or still running when a run
    stopped) and every temporary file of ours beside them; nothing else."""
    for d in part_folders(fmt):
        try:
            names = os.listdir(os.path.join(out_dir, d))
        except OSError:
            continue
        for n in names:
            rel = f"{d}/{n}"
            ours = n.startswith(".tmp-") or (d == JSONL_PART_DIR and n.endswith(".jsonl"))
            if ours and rel not in keep:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(out_dir, d, n))


def part_contents(out_dir: str, fmt: str, rel: str) -> tuple[int, list[str]]:
    """(rows, llamafactory images named by its records) of a part on disk; ValueError when
    it is missing or unreadable."""
    path = os.path.join(out_dir, rel)
    images: list[str] = []
    try:
        if fmt != "llamafactory":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows, images
        rows = 0
        with open(path, "rb") as fh:
            for line in fh:
                rows += 1
                for img in json.loads(line).get("images") or []:
                    norm = os.path.normpath(img)
                    if os.path.dirname(norm) != IMAGE_DIR or os.path.basename(norm).startswith("."):
                        raise ValueError(f"image path {img!r}")
                    images.append(norm)
        return rows, images
    except FileNotFoundError:
        raise ValueError(f"{path} is missing") from None
    except Exception as exc:  # noqa: BLE001 - any pyarrow or JSON failure is a damaged part
        raise ValueError(f"{path} is unreadable ({' '.join(str(exc).split())[:200]})") from None


def reindex_part(args: tuple[str, str, str, int]) -> int:
    """verl: write the part ``src`` to ``dst`` (both relative to the folder) with
    ``extra_info.index`` counted from ``offset`` (the row's position in the dataset), row
    group by row group as the part has them; returns the rows. ``src`` stays."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir, src, dst, offset = args
    schema, _to_row, opts = parquet_layout("verl")
    pf = pq.ParquetFile(os.path.join(out_dir, src))
    tmp = os.path.join(out_dir, os.path.dirname(dst), f".tmp-w{os.getpid()}-{os.path.basename(dst)}")
    done = 0
    try:
        with pq.ParquetWriter(tmp, schema, **opts) as w:
            for g in range(pf.num_row_groups):
                table = pf.read_row_group(g)
                col = table.schema.get_field_index("extra_info")
                info = table.column(col).combine_chunks()
                arrays = [info.field(i) for i in range(info.type.num_fields)]
                arrays[info.type.get_field_index("index")] = pa.array(range(offset + done, offset + done + len(table)),
                                                                      pa.int64())
                info = pa.StructArray.from_arrays(arrays, fields=list(info.type))
                w.write_table(table.set_column(col, schema.field(col), info))
                done += len(table)
        _synced_rename(tmp, os.path.join(out_dir, dst))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return done


def _extras(fmt: str) -> dict[str, bytes]:
    """The files a format writes beside its data."""
    if fmt == "easyr1":
        from .easyr1 import FORMAT_TEMPLATE

        return {"format_prompt.jinja": FORMAT_TEMPLATE.encode()}
    if fmt == "llamafactory":
        from .llamafactory import dataset_info

        return {"dataset_info.json": (json.dumps(dataset_info(), indent=2) + "\n").encode()}
    return {}


@dataclass
class Finals:
    """How the parts become the dataset: ``renames`` (from, to) done by :func:`put_finals`,
    the parts it removes, the files the dataset is made of (relative to the folder)."""

    renames: list[tuple[str, str]] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    extras: dict[str, bytes] = field(default_factory=dict)


def stage_finals(out_dir: str, fmt: str, parts: list[tuple[str, int]], run_all, check=lambda: None) -> Finals:
    """Prepare the dataset from ``parts`` (plan order) without touching them: verl's parts
    after the first rewritten with their row offsets (``run_all(fn, args)``, the engine's
    executor, does it, in parallel where it can), llamafactory's records joined. What this
    writes has temporary names; an interrupted run is still resumable afterwards."""
    out = Finals(extras=_extras(fmt))
    if fmt == "llamafactory":
        if parts:
            tmp = os.path.join(out_dir, f".tmp-{DATA_FILE}")
            with open(tmp, "wb") as fh:
                for rel, _rows in parts:
                    check()
                    with open(os.path.join(out_dir, rel), "rb") as part:
                        while chunk := part.read(1 << 20):
                            fh.write(chunk)
            base.fsync_path(tmp)
            out.renames.append((f".tmp-{DATA_FILE}", DATA_FILE))
            out.drop = [rel for rel, _ in parts]
            out.files = [DATA_FILE, *out.extras, IMAGE_DIR]
        return out
    n = len(parts)
    finals = [f"data/{SPLIT}-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    jobs, offset = [], 0
    for (rel, rows), dst in zip(parts, finals):
        if fmt == "verl" and offset:
            staged = f"data/.tmp-reindexed-{os.path.basename(dst)}"
            jobs.append((out_dir, rel, staged, offset))
            out.renames.append((staged, dst))
            out.drop.append(rel)
        else:
            out.renames.append((rel, dst))
        offset += rows
    if jobs:
        for _ in run_all(reindex_part, jobs):
            check()
    out.files = [*finals, *out.extras] if n else []
    return out


def put_finals(out_dir: str, finals: Finals) -> list[str]:
    """Rename the staged files to their final names, remove the parts they replace, write
    the format's files beside them; returns the dataset's files (absolute paths)."""
    for src, dst in finals.renames:
        os.replace(os.path.join(out_dir, src), os.path.join(out_dir, dst))
    for rel in finals.drop:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(out_dir, rel))
    with contextlib.suppress(OSError):
        os.rmdir(os.path.join(out_dir, JSONL_PART_DIR))
    if finals.files:
        for name, data in finals.extras.items():
            base.atomic_write_bytes(os.path.join(out_dir, name), data)
    return [os.path.join(out_dir, f) for f in finals.files]
