"""Generation on Ray Data: the same plan as the local engine, run on a Ray cluster.

The plan, the dealing of slots to sources and every decision taken from unit outcomes are
the local engine's (:class:`.run.RunTally`); only where the units run differs. Each round's
units are cut into *batches* of consecutive units (about ``batch_samples`` samples); a Ray
Data dataset holds one row per batch and ``map_batches`` runs each batch on a Ray worker,
which calls :func:`.worker.run_unit` on its units, writes the samples they gave to one
*part* file in the output folder (a parquet shard with the format's schema; for
llamafactory the images under ``images/`` and a JSON-lines part) and returns only a small
summary: the unit results with the sample bytes taken out, the part's name and row count.

The driver takes the summaries in plan order (a batch waits for every earlier one), exactly
as the local engine takes unit results, so the next round is dealt identically and the
samples are the same set, in the same order, as a local run with the same seed and inputs.
At the end the parts are renamed to their final names in plan order
(``data/train-XXXXX-of-YYYYY.parquet``; llamafactory: the parts concatenated into
``train.jsonl``) and the manifest is written. Shard boundaries are the batch boundaries
(a batch that gave more than ``rows_per_shard`` samples is cut further): a shard holds about
``batch_samples`` rows, never more than ``rows_per_shard``, fewer where draws failed; the
boundaries depend on the plan alone, never on the number or speed of the workers.

verl rows carry ``extra_info.index``, the row's position in the dataset; a worker does not
know how many rows come before its part, so it writes positions within the part and the
parts after the first are rewritten with the right offset before they get their final names
(on Ray workers, one task per part). The value is then the same as a local run's.

Workers write into the output folder themselves: on a cluster of several machines it must
be a path every node sees the same (a shared file system, or an object store mounted with
s3fs, gcsfuse, ...). Nothing outside the package imports this module unless ``--engine
ray`` is asked for, and it imports Ray only when a run starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..sources import SourceRef
from ..writers.base import (
    atomic_write_bytes,
    atomic_write_json,
    current_umask,
    fsync_path,
    parquet_writer_options,
)
from .run import (
    GenerateConfig,
    RunResult,
    RunTally,
    StrictModeError,
    _Interrupts,
    _remove_files,
)
from .worker import Job, UnitResult, WorkerConfig, run_unit

BATCH_SAMPLES = 64
"""Samples a Ray task works on by default (the most rows a part, and so a shard, holds)."""

RAY_EXTRA = "pip install 'spatial-ssrl[ray]'"
PART_PREFIX = ".tmp-part-"
JSONL_PART_DIR = ".tmp-parts"


class RayEngineError(Exception):
    """A one-line reason the Ray engine cannot run (Ray missing, cluster unreachable)."""


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayEngineError(f"--engine ray needs Ray, which is not installed ({exc.name or exc}); "
                             f"install the ray extra: {RAY_EXTRA}") from None
    return ray


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".")
    return (text[:300] + "...") if len(text) > 300 else (text or type(exc).__name__)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) address must accept a TCP connection: Ray
    itself waits a minute or two on a wrong one before it gives up."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local" or something Ray itself rejects at once
    host = host.strip("[]") or "127.0.0.1"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        if isinstance(exc, socket.timeout):
            why = f"no answer in {timeout:g} s"
        raise RayEngineError(f"cannot reach a Ray cluster at --ray-address {address}: {why}") from None


_OWN_SESSION = False
"""Whether the Ray session of this process was started by :func:`connect` (so it is ours
to end)."""


def connect(address: str | None, num_cpus: int | None):
    """Ray, initialised: connected to ``address`` or, without one, a local Ray with
    ``num_cpus`` CPUs. A Ray session already open in this process (a notebook, a test, an
    earlier call) is used as it is. A session this starts is ended by :func:`end_session`."""
    global _OWN_SESSION
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address:
        _check_reachable(address)
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(address="local", num_cpus=num_cpus, **kwargs)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            ray.shutdown()
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt
        where = f"at --ray-address {address}" if address else "locally"
        raise RayEngineError(f"cannot start Ray {where}: {_one_line(exc)}") from None
    _OWN_SESSION = True
    return ray


def end_session() -> None:
    """Shut down the Ray session :func:`connect` started (a local Ray's processes end with
    it; on a cluster, the job's tasks); one opened by someone else is left alone."""
    global _OWN_SESSION
    if not _OWN_SESSION:
        return
    _OWN_SESSION = False
    import ray

    with contextlib.suppress(Exception):
        ray.shutdown()


@contextlib.contextmanager
def session(address: str | None, num_cpus: int | None):
    """Ray connected for the block (see :func:`connect`); ended after it when it started here."""
    import sys

    fresh = "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    ray = connect(address, num_cpus)
    try:
        yield ray
    finally:
        if fresh:
            end_session()


def _quiet_ray_data(ray) -> None:
    """No progress bars or per-dataset log lines from Ray Data on the terminal (the run has
    its own progress bar); warnings and errors still show."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


# --------------------------------------------------------------------------------------
# What runs on a Ray worker


@dataclass
class BatchSpec:
    round_no: int
    batch_no: int
    first_unit: int
    units: list[tuple[SourceRef, list[Job]]]
    cfg: WorkerConfig
    fmt: str
    out_dir: str
    rows_per_group: int = 64
    rows_per_shard: int = 1000


@dataclass
class BatchSummary:
    round_no: int
    batch_no: int
    first_unit: int
    results: list[UnitResult]
    """The units' results; each sample is replaced by its id (its row is in the part)."""
    parts: list[tuple[str, int]] = field(default_factory=list)
    """The part files, relative to the output folder, with their rows (none: no sample).
    One, unless the batch gave more than ``rows_per_shard`` samples (parquet formats)."""
    images: list[str] = field(default_factory=list)
    """llamafactory: the image files written, relative to the output folder."""
    host: str = ""
    seconds: float = 0.0


def part_name(fmt: str, round_no: int, batch_no: int, piece: int = 0) -> str:
    stem = f"r{round_no:02d}-{batch_no:06d}-{piece:03d}"
    if fmt == "llamafactory":
        return os.path.join(JSONL_PART_DIR, f"{stem}.jsonl")
    return os.path.join("data", f"{PART_PREFIX}{stem}.parquet")


def _write_new(path: str, data: bytes) -> None:
    """Write ``path`` through a temporary name and a rename (a retried task writes the same
    bytes again). Creates no folder: a worker still running after its driver gave up and
    removed the output folder writes nothing."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _parquet_part(fmt: str, path: str, samples: list, rows_per_group: int) -> None:
    import pyarrow as pa

    schema, to_row = _parquet_layout(fmt)
    groups = (pa.Table.from_pylist([to_row(s, i + j) for j, s in enumerate(samples[i:i + rows_per_group])],
                                   schema=schema) for i in range(0, len(samples), rows_per_group))
    _write_parquet(f"{path}.tmp-{os.getpid()}", path, schema, groups)


def _write_parquet(tmp: str, path: str, schema, groups) -> None:
    """Row groups (tables) into ``tmp``, synced, then renamed to ``path``; ``tmp`` is gone
    after any failure."""
    import pyarrow.parquet as pq

    try:
        with pq.ParquetWriter(tmp, schema, **parquet_writer_options(schema)) as w:
            for table in groups:
                w.write_table(table)
        os.chmod(tmp, 0o666 & ~current_umask())
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_LAYOUTS: dict[str, tuple] = {}


def _parquet_layout(fmt: str):
    """(schema with the Hugging Face feature metadata, to_row) of a parquet format, taken
    from its writer so that parts are byte for byte what the local writer would write."""
    got = _LAYOUTS.get(fmt)
    if got is None:
        import tempfile

        from ..writers import make_writer

        with tempfile.TemporaryDirectory(prefix="ssrl-layout-") as d:
            w = make_writer(fmt, d)
            got = (w.schema, w.to_row)
        _LAYOUTS[fmt] = got
    return got


def run_batch(spec: BatchSpec) -> BatchSummary:
    """Run one batch of units and write its samples to its part file (parquet: one per
    ``rows_per_shard`` rows)."""
    import json

    from ..writers.llamafactory import IMAGE_DIR, to_record

    t0 = time.perf_counter()
    results = [run_unit((ref, jobs, spec.cfg)) for ref, jobs in spec.units]
    samples = [jr.sample for res in results for jr in res.results if jr.sample is not None]
    out = BatchSummary(spec.round_no, spec.batch_no, spec.first_unit, results, host=socket.gethostname())
    if samples and spec.fmt == "llamafactory":
        rel = part_name(spec.fmt, spec.round_no, spec.batch_no)
        path = os.path.join(spec.out_dir, rel)
        for s in samples:
            for data, name in zip(s.images, s.image_names):
                _write_new(os.path.join(spec.out_dir, IMAGE_DIR, name), data)
                out.images.append(os.path.join(IMAGE_DIR, name))
        text = "".join(json.dumps(to_record(s), ensure_ascii=False) + "\n" for s in samples)
        _write_new(path, text.encode("utf-8"))
        out.parts.append((rel, len(samples)))
    elif samples:
        step = max(1, spec.rows_per_shard)
        for piece, i in enumerate(range(0, len(samples), step)):
            rel = part_name(spec.fmt, spec.round_no, spec.batch_no, piece)
            chunk = samples[i:i + step]
            _parquet_part(spec.fmt, os.path.join(spec.out_dir, rel), chunk, spec.rows_per_group)
            out.parts.append((rel, len(chunk)))
    for res in results:  # only the ids travel back
        for jr in res.results:
            if jr.sample is not None:
                jr.sample = jr.sample.id
    out.seconds = time.perf_counter() - t0
    return out


def _map_batch(batch: dict) -> dict:
    """The ``map_batches`` function: pickled :class:`BatchSpec` in, pickled summary out."""
    import numpy as np

    done = [pickle.dumps(run_batch(pickle.loads(p)), protocol=pickle.HIGHEST_PROTOCOL) for p in batch["spec"]]
    return {"summary": np.array(done, dtype=object)}


def reindex_verl_part(src: str, dst: str, offset: int, rows_per_group: int) -> int:
    """Write the verl part ``src`` to ``dst`` with ``extra_info.index`` shifted by
    ``offset`` (row positions in the dataset), then remove ``src``; returns the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(src)
    col = table.schema.get_field_index("extra_info")
    info = table.column(col).combine_chunks()
    names = [f.name for f in info.type]
    arrays = [info.field(i) for i in range(len(names))]
    k = names.index("index")
    arrays[k] = pa.array(range(offset, offset + len(table)), pa.int64())
    info = pa.StructArray.from_arrays(arrays, fields=list(info.type))
    table = table.set_column(col, table.schema.field(col), info)
    groups = (table.slice(i, rows_per_group) for i in range(0, len(table), rows_per_group))
    _write_parquet(f"{os.path.dirname(dst)}/.tmp-reindex-{os.path.basename(dst)}", dst, table.schema, groups)
    os.unlink(src)
    return len(table)


# --------------------------------------------------------------------------------------
# The driver


def cut_batches(units: list, batch_samples: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, end)`` ranges of units holding at most ``batch_samples`` jobs
    (a unit larger than that goes alone)."""
    out: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, (_ref, jobs) in enumerate(units):
        if i > start and size + len(jobs) > batch_samples:
            out.append((start, i))
            start, size = i, 0
        size += len(jobs)
    if start < len(units):
        out.append((start, len(units)))
    return out


def run_ray_generation(
    refs: list[SourceRef],
    out_dir: str,
    config: GenerateConfig,
    progress: Callable[[int], None] | None = None,
    inputs: Iterable[str] = (),
    extra_skips=None,
    extra_skipped_files=None,
    address: str | None = None,
    batch_samples: int = BATCH_SAMPLES,
) -> RunResult:
    """Generate ``config.num`` samples from ``refs`` into ``out_dir`` on Ray; return the
    manifest. Same samples as :func:`.run.run_generation` with the same config and refs.

    ``address``: a running cluster (``ray.init(address=...)``: ``auto``, ``host:port``,
    ``ray://host:port``); None starts a local Ray with ``config.workers`` CPUs. A Ray
    already initialised in this process is used as it is (and left running). A session this
    call started is shut down before it returns, whatever happens; after a failure or an
    interrupt one opened by :func:`connect` or :func:`session` is shut down too, before the
    run's files are removed."""
    with session(address, config.workers) as ray:
        out_dir = os.path.abspath(out_dir)
        made = _Made()
        try:
            with _Interrupts(raise_at_once=True) as interrupts:
                return _generate(ray, refs, out_dir, config, progress, inputs, extra_skips,
                                 extra_skipped_files, address, max(1, int(batch_samples)), interrupts, made)
        except BaseException:
            # the workers of a session of ours end first, the files go after: nothing of ours
            # is written behind the cleanup's back (Ray Data stops the tasks of a dataset whose
            # iteration was given up, in a session opened by someone else)
            end_session()
            made.remove(out_dir)
            raise


@dataclass
class _Made:
    """Everything a Ray run wrote into the output folder, for the cleanup after a failure."""

    parts: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    finals: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)

    def remove(self, out_dir: str) -> None:
        _remove_files(os.path.join(out_dir, p) for p in [*self.finals, *self.parts, *self.images])
        for d in self.dirs:
            # parts of batches that were still running when the run stopped
            with contextlib.suppress(OSError):
                for name in os.listdir(os.path.join(out_dir, d)):
                    if name.startswith(".tmp-") or d == JSONL_PART_DIR:
                        _remove_files([os.path.join(out_dir, d, name)])
        for d in reversed(self.dirs):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(out_dir, d))


def _generate(ray, refs, out_dir, config: GenerateConfig, progress, inputs, extra_skips, extra_skipped_files,
              address, batch_samples, interrupts: _Interrupts, made: _Made) -> RunResult:
    t0 = time.perf_counter()
    _quiet_ray_data(ray)
    fmt = config.format
    from ..writers import WRITERS

    if fmt not in WRITERS:
        raise ValueError(f"unknown format {fmt!r}; available: {', '.join(WRITERS)}")
    os.makedirs(out_dir, exist_ok=True)
    for d in (["images", JSONL_PART_DIR] if fmt == "llamafactory" else ["data"]):
        if not os.path.isdir(os.path.join(out_dir, d)):
            os.makedirs(os.path.join(out_dir, d))
            made.dirs.append(d)
    batch_samples = min(batch_samples, max(1, int(config.rows_per_shard)))
    wcfg = config.worker_config()
    tally = RunTally(refs, config, progress, extra_skips, extra_skipped_files)
    cpus = int(ray.cluster_resources().get("CPU", 0)) or config.workers
    parts: list[tuple[str, int]] = []  # (part, rows), plan order
    hosts: set[str] = set()
    rows_per_group = max(1, min(64, int(config.rows_per_shard)))
    for round_no, units in tally.rounds():
        if not units:  # every slot left is undealt: no usable source
            continue
        batches = cut_batches(units, batch_samples)
        specs = [pickle.dumps(BatchSpec(round_no, b, start, units[start:end], wcfg, fmt, out_dir, rows_per_group,
                                        config.rows_per_shard),
                              protocol=pickle.HIGHEST_PROTOCOL)
                 for b, (start, end) in enumerate(batches)]
        ds = ray.data.from_items([{"spec": s} for s in specs], override_num_blocks=len(specs))
        ds = ds.map_batches(_map_batch, batch_size=1, num_cpus=1, zero_copy_batch=True)
        done: dict[int, BatchSummary] = {}
        next_due = 0
        for row in ds.iter_rows():
            interrupts.check()
            s: BatchSummary = pickle.loads(row["summary"])
            made.parts.extend(rel for rel, _rows in s.parts)
            made.images.extend(s.images)
            done[s.batch_no] = s
            while next_due in done:  # plan order, whatever order the batches finished in
                s = done.pop(next_due)
                next_due += 1
                hosts.add(s.host)
                _take(tally, s, units, batches, parts)
        interrupts.check()
        if next_due != len(batches):
            raise RuntimeError(f"Ray returned {next_due} of the {len(batches)} batches of round {round_no}")
    interrupts.check()
    files = _finish(ray, out_dir, fmt, parts, rows_per_group, interrupts, made)
    with interrupts.held():
        seconds = time.perf_counter() - t0
        manifest = tally.manifest(
            out_dir, files, inputs, seconds,
            options={"workers": cpus, "engine": "ray", "ray_address": address or "local",
                     "ray_batch_samples": batch_samples},
            timing={"ray_nodes": len(hosts)},
        )
        atomic_write_json(os.path.join(out_dir, "manifest.json"), manifest)
        made.finals.append("manifest.json")
    interrupts.check()
    return RunResult(manifest=manifest, files=files)


def _take(tally: RunTally, s: BatchSummary, units, batches, parts: list) -> None:
    """Process one batch's unit results (in plan order) like the local engine does."""
    start, end = batches[s.batch_no]
    if len(s.results) != end - start:
        raise RuntimeError(f"batch {s.batch_no} of round {s.round_no}: {len(s.results)} results "
                           f"for {end - start} units")
    before = tally.written
    for res in s.results:
        tally.process(res)
    rows = sum(n for _rel, n in s.parts)
    if tally.written - before != rows:
        raise RuntimeError(f"batch {s.batch_no} of round {s.round_no}: {rows} rows written "
                           f"for {tally.written - before} samples")
    parts.extend(s.parts)


def _finish(ray, out_dir: str, fmt: str, parts: list[tuple[str, int]], rows_per_group: int,
            interrupts: _Interrupts, made: _Made) -> list[str]:
    """Give the parts their final names, in plan order; returns the dataset's files."""
    if fmt == "llamafactory":
        from ..writers.llamafactory import DATA_FILE, IMAGE_DIR, dataset_info

        final = os.path.join(out_dir, DATA_FILE)
        tmp = os.path.join(out_dir, f".tmp-{DATA_FILE}")
        made.finals.append(f".tmp-{DATA_FILE}")
        with open(tmp, "wb") as fh:
            for rel, _rows in parts:
                interrupts.check()
                with open(os.path.join(out_dir, rel), "rb") as part:
                    while chunk := part.read(1 << 20):
                        fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        with interrupts.held():
            os.replace(tmp, final)
            made.finals.append(DATA_FILE)
            info = os.path.join(out_dir, "dataset_info.json")
            atomic_write_json(info, dataset_info())
            made.finals.append("dataset_info.json")
            _remove_files(os.path.join(out_dir, rel) for rel, _ in parts)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(out_dir, JSONL_PART_DIR))
        return [final, info, os.path.join(out_dir, IMAGE_DIR)]

    n = len(parts)
    finals = [os.path.join("data", f"train-{i:05d}-of-{n:05d}.parquet") for i in range(n)]
    made.finals.extend(finals)
    if fmt == "verl":
        # extra_info.index: the row's position in the dataset, as the local writer numbers it
        reindex = ray.remote(num_cpus=1, max_retries=2)(reindex_verl_part)
        pending = []
        offset = 0
        for (rel, rows), dst in zip(parts, finals):
            if offset:
                pending.append(reindex.remote(os.path.join(out_dir, rel), os.path.join(out_dir, dst),
                                              offset, rows_per_group))
            offset += rows
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0.1)
            ray.get(ready)
            interrupts.check()
    with interrupts.held():
        for (rel, _rows), dst in zip(parts, finals):
            src = os.path.join(out_dir, rel)
            if os.path.exists(src):
                os.replace(src, os.path.join(out_dir, dst))
        files = [os.path.join(out_dir, f) for f in finals]
        if fmt == "easyr1":
            from ..writers.easyr1 import FORMAT_TEMPLATE

            path = os.path.join(out_dir, "format_prompt.jinja")
            atomic_write_bytes(path, FORMAT_TEMPLATE.encode())
            made.finals.append("format_prompt.jinja")
            files.append(path)
    return files


__all__ = [
    "BATCH_SAMPLES",
    "RayEngineError",
    "StrictModeError",
    "connect",
    "cut_batches",
    "end_session",
    "import_ray",
    "run_ray_generation",
    "session",
]
