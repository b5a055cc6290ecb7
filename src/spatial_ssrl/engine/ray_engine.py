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

Resume: the run keeps the local engine's journal (:mod:`.journal`) in the output folder. As
each batch is taken, in plan order, a line per unit of the batch goes to it, then a
checkpoint line naming the batch's parts and their rows; a worker has synced and renamed its
parts (and images) before its summary comes back, so a checkpointed batch is on disk for
good. ``resume=True`` replays the unit lines of the checkpointed batches (no sample is made
again), keeps their parts, drops the parts of batches that were not checkpointed when the
run stopped, and runs the remaining batches: the batches, their parts and so the dataset are
those of an uninterrupted run. The fingerprint adds the engine and the batch size (they
decide the parts); the worker count plays no part.

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

import collections
import contextlib
import dataclasses
import json
import logging
import os
import pickle
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..sources import SourceRef
from ..sources.naming import portable_names
from ..writers.base import (
    WriteBehind,
    atomic_write_bytes,
    atomic_write_json,
    current_umask,
    parquet_writer_options,
)
from .journal import (
    Journal,
    JournalState,
    ResumeError,
    fingerprint,
    matches,
    read_journal,
    replayed_result,
    unit_record,
)
from .run import (
    GenerateConfig,
    RunResult,
    RunTally,
    StrictModeError,
    _Interrupts,
    _mismatch,
    _png_encoder_name,
    _remove_files,
    resumable_rows,
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
    """Write ``path`` through a temporary name (``.tmp-<pid>-<name>``, ours by name) and a
    rename, synced (a retried task writes the same bytes again). Creates no folder: a worker
    still running after its driver gave up and removed the output folder writes nothing."""
    tmp = os.path.join(os.path.dirname(path), f".tmp-{os.getpid()}-{os.path.basename(path)}")
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
    from ..writers.arrow_rows import rows_to_table

    schema, to_row = _parquet_layout(fmt)
    groups = (rows_to_table([to_row(s, i + j) for j, s in enumerate(samples[i:i + rows_per_group])], schema)
              for i in range(0, len(samples), rows_per_group))
    _write_parquet(f"{path}.tmp-{os.getpid()}", path, schema, groups)


def _write_parquet(tmp: str, path: str, schema, groups) -> None:
    """Row groups (tables) into ``tmp``, synced, then renamed to ``path``; ``tmp`` is gone
    after any failure."""
    import pyarrow.parquet as pq

    behind = None
    try:
        with pq.ParquetWriter(tmp, schema, **parquet_writer_options(schema)) as w:
            behind = WriteBehind(tmp)
            for table in groups:
                w.write_table(table)
                behind.push()
        os.chmod(tmp, 0o666 & ~current_umask())
        behind.finish(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        if behind is not None:
            behind.close()


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


def _fsync_dir(path: str) -> None:
    """Make the renames into the folder ``path`` durable (where the platform allows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def run_batch(spec: BatchSpec) -> BatchSummary:
    """Run one batch of units and write its samples to its part file (parquet: one per
    ``rows_per_shard`` rows). Every file is synced and in place (its folder synced too)
    before this returns: the driver may record the batch as durable."""
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
        _fsync_dir(os.path.join(spec.out_dir, IMAGE_DIR))
        _fsync_dir(os.path.dirname(path))
    elif samples:
        step = max(1, spec.rows_per_shard)
        for piece, i in enumerate(range(0, len(samples), step)):
            rel = part_name(spec.fmt, spec.round_no, spec.batch_no, piece)
            chunk = samples[i:i + step]
            _parquet_part(spec.fmt, os.path.join(spec.out_dir, rel), chunk, spec.rows_per_group)
            out.parts.append((rel, len(chunk)))
        _fsync_dir(os.path.join(spec.out_dir, "data"))
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
    resume: bool = False,
) -> RunResult:
    """Generate ``config.num`` samples from ``refs`` into ``out_dir`` on Ray; return the
    manifest. Same samples as :func:`.run.run_generation` with the same config and refs.

    ``address``: a running cluster (``ray.init(address=...)``: ``auto``, ``host:port``,
    ``ray://host:port``); None starts a local Ray with ``config.workers`` CPUs. A Ray
    already initialised in this process is used as it is (and left running). A session this
    call started is shut down before it returns, whatever happens; after a failure or an
    interrupt one opened by :func:`connect` or :func:`session` is shut down too, before the
    run's files are removed.

    ``resume``: continue the run that a kill or an interrupt stopped in ``out_dir`` (same
    refs, config and ``batch_samples``) after its last checkpointed batch
    (:class:`.journal.ResumeError` when the journal there belongs to another run); with
    nothing to resume it starts afresh. A failure or an interrupt after some batches were
    checkpointed keeps their parts and the journal for a later resume
    (:func:`.run.resumable_rows` gives their rows) and removes the rest of what it wrote;
    with nothing checkpointed everything the run wrote is removed."""
    out_dir = os.path.abspath(out_dir)
    inputs = list(inputs)
    refs, roots = portable_names(refs, inputs)
    batch_samples = min(max(1, int(batch_samples)), max(1, int(config.rows_per_shard)))
    prep = _prepare(out_dir, config, refs, batch_samples, resume)  # a resume that cannot be: before Ray
    with session(address, config.workers) as ray:
        made = _Made(config.format)
        try:
            with _Interrupts(raise_at_once=True) as interrupts:
                return _generate(ray, refs, out_dir, config, progress, inputs, extra_skips,
                                 extra_skipped_files, address, batch_samples, interrupts, made, prep, roots)
        except BaseException as exc:
            # the workers of a session of ours end first, the files go after: nothing of ours
            # is written behind the cleanup's back (Ray Data stops the tasks of a dataset whose
            # iteration was given up, in a session opened by someone else)
            end_session()
            made.close_journal()
            keep = (made.journal is not None and not made.closing
                    and not isinstance(exc, (StrictModeError, ResumeError)) and resumable_rows(out_dir) > 0)
            made.remove(out_dir, keep_durable=keep)
            raise


@dataclass
class _Made:
    """Everything a Ray run wrote into the output folder, for the cleanup after a failure."""

    fmt: str
    parts: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    finals: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    durable: set[str] = field(default_factory=set)
    """Parts and images of the checkpointed batches (a resume keeps them)."""
    journal: Journal | None = None
    closing: bool = False
    """Set once the parts start turning into the dataset: past that a run cannot be resumed."""

    def close_journal(self) -> None:
        if self.journal is not None:
            self.journal.close()

    def begin_closing(self) -> None:
        """The journal goes before the first part is renamed or rewritten, so a kill from
        here on leaves nothing that looks resumable."""
        self.closing = True
        if self.journal is not None:
            self.journal.close()
            _remove_files([self.journal.path])

    def remove(self, out_dir: str, keep_durable: bool = False) -> None:
        if keep_durable:
            # the checkpointed batches and the journal stay; parts of batches taken but not
            # checkpointed, or still running, go
            _remove_files(os.path.join(out_dir, p) for p in [*self.finals, *self.parts, *self.images]
                          if p not in self.durable)
            _drop_stale(out_dir, self.fmt, self.durable)
            return
        _remove_files(os.path.join(out_dir, p) for p in [*self.finals, *self.parts, *self.images])
        if self.journal is not None:
            _remove_files([self.journal.path])
        _drop_stale(out_dir, self.fmt, set())  # parts of batches that were still running
        for d in reversed(self.dirs):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(out_dir, d))


def _drop_stale(out_dir: str, fmt: str, keep: set[str]) -> None:
    """Remove the part files of batches not in ``keep`` (those running or not yet taken when a
    run stopped) and our temporary files next to them; only names that are ours: parts, and
    ``.tmp-*`` files."""
    if fmt == "llamafactory":
        from ..writers.llamafactory import IMAGE_DIR

        where = [(JSONL_PART_DIR, ""), (IMAGE_DIR, ".tmp-")]  # everything in .tmp-parts is ours
    else:
        where = [("data", PART_PREFIX), ("data", ".tmp-reindex-")]
    for d, prefix in where:
        try:
            names = os.listdir(os.path.join(out_dir, d))
        except OSError:
            continue
        _remove_files(os.path.join(out_dir, d, n) for n in names
                      if n.startswith(prefix) and os.path.join(d, n) not in keep)


_OFF_PLAN = "the interrupted run's journal does not follow this run's plan; run again without --resume"
_PART_RE = re.compile(r"^(?:data/\.tmp-part-r\d+-\d+-\d+\.parquet|\.tmp-parts/r\d+-\d+-\d+\.jsonl)$")


def _checkpointed(state: JournalState) -> tuple[JournalState, list[tuple[str, int]]]:
    """The journal up to its last checkpoint (lines of a batch that was taken but not
    checkpointed when the run stopped are dropped) and the parts of the checkpointed
    batches with their rows, in plan order."""
    recs = [json.loads(line) for line in state.keep]
    last = max(i for i, rec in enumerate(recs) if "ckpt" in rec)
    replay: list[dict] = []
    parts: list[tuple[str, int]] = []
    try:
        for rec in recs[1:last + 1]:
            if "u" in rec:
                replay.append(rec)
            elif "ckpt" in rec:
                for rel, n in rec["ckpt"].get("parts") or []:
                    if not (isinstance(rel, str) and _PART_RE.match(rel)):
                        raise ValueError(rel)
                    parts.append((rel, int(n)))
    except (AttributeError, KeyError, TypeError, ValueError):
        raise ResumeError("the interrupted run's journal is damaged; start afresh with --overwrite") from None
    return dataclasses.replace(state, keep=state.keep[:last + 1], replay=replay), parts


def _check_parts(out_dir: str, fmt: str, parts: list[tuple[str, int]], rows: int) -> list[str]:
    """Each part of a checkpointed batch must be there with its rows (and, llamafactory, its
    images); returns those images."""
    def bad(why: str) -> ResumeError:
        return ResumeError(f"the interrupted run's files are not as it left them: {why}")

    if sum(n for _rel, n in parts) != rows:
        raise bad(f"its journal records {rows} rows and parts of {sum(n for _rel, n in parts)}")
    images: list[str] = []
    for rel, n in parts:
        path = os.path.join(out_dir, rel)
        if not os.path.isfile(path):
            raise bad(f"{path} is missing")
        try:
            if fmt == "llamafactory":
                found = 0
                with open(path, "rb") as fh:
                    for line in fh:
                        found += 1
                        for img in json.loads(line).get("images") or []:
                            norm = os.path.normpath(img)
                            if os.path.dirname(norm) != "images" or norm.startswith("."):
                                raise ValueError(f"image path {img!r}")
                            images.append(norm)
            else:
                import pyarrow.parquet as pq

                found = pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # noqa: BLE001 - any pyarrow or JSON failure is a damaged part
            raise bad(f"{path} is unreadable ({_one_line(exc)})") from None
        if found != n:
            raise bad(f"{path}: the interrupted run recorded {n} rows, the file holds {found}")
    for rel in images:
        if not os.path.isfile(os.path.join(out_dir, rel)):
            raise bad(f"{os.path.join(out_dir, rel)} is missing")
    return images


@dataclass
class _Prepared:
    """How a run starts: its fingerprint and journal header and, for a resumed run, the
    interrupted run's journal (up to its last checkpoint) and checkpointed files."""

    fp: str
    about: dict
    state: JournalState | None = None
    kept: list[tuple[str, int]] = field(default_factory=list)  # parts of the checkpointed batches
    kept_images: list[str] = field(default_factory=list)


def _prepare(out_dir: str, config: GenerateConfig, refs, batch_samples: int, resume: bool) -> _Prepared:
    """Read and check the interrupted run to resume (:class:`ResumeError` when it is another
    run's or its files are not as it left them); touches nothing."""
    from ..writers import WRITERS

    if config.format not in WRITERS:
        raise ValueError(f"unknown format {config.format!r}; available: {', '.join(WRITERS)}")
    engine = {"engine": "ray", "ray_batch_samples": batch_samples}
    out = _Prepared(fingerprint(config, refs, _png_encoder_name(), engine=engine),
                 {"num": config.num, "seed": config.seed, "format": config.format, **engine})
    state = read_journal(out_dir) if resume else None
    if state is None or not state.resumable:
        return out
    if state.fingerprint != out.fp:
        raise ResumeError(_mismatch(state.about, config, engine))
    out.state, out.kept = _checkpointed(state)
    out.kept_images = _check_parts(out_dir, config.format, out.kept, state.rows)
    return out


def _generate(ray, refs, out_dir, config: GenerateConfig, progress, inputs, extra_skips, extra_skipped_files,
              address, batch_samples, interrupts: _Interrupts, made: _Made, prep: _Prepared,
              roots: dict[str, str] | None = None) -> RunResult:
    t0 = time.perf_counter()
    _quiet_ray_data(ray)
    fmt = config.format
    state, kept = prep.state, prep.kept
    os.makedirs(out_dir, exist_ok=True)
    for d in (["images", JSONL_PART_DIR] if fmt == "llamafactory" else ["data"]):
        if not os.path.isdir(os.path.join(out_dir, d)):
            os.makedirs(os.path.join(out_dir, d))
            made.dirs.append(d)
    _drop_stale(out_dir, fmt, {rel for rel, _n in kept})
    made.journal = Journal(out_dir, prep.fp, prep.about, resume_from=state)
    made.parts.extend(rel for rel, _n in kept)
    made.images.extend(prep.kept_images)
    made.durable.update([*made.parts, *made.images])
    replay = collections.deque(state.replay if state else ())
    durable = state.rows if state else 0
    earlier_seconds = state.seconds if state else 0.0

    wcfg = config.worker_config()
    tally = RunTally(refs, config, progress, extra_skips, extra_skipped_files)
    tally.source_roots = roots or {}
    cpus = int(ray.cluster_resources().get("CPU", 0)) or config.workers
    parts: list[tuple[str, int]] = list(kept)  # (part, rows), plan order
    hosts: set[str] = set()
    rows_per_group = max(1, min(64, int(config.rows_per_shard)))
    replayed = False

    def checkpoint(s: BatchSummary, recs: list[dict]) -> None:
        """The batch's unit lines, then its checkpoint (its parts are on disk already)."""
        with interrupts.held():  # never a checkpoint whose parts the cleanup takes for stale
            for rec in recs:
                made.journal.unit(rec)
            made.durable.update([*(rel for rel, _n in s.parts), *s.images])
            made.journal.checkpoint({"batch": [s.round_no, s.batch_no], "parts": [list(p) for p in s.parts]},
                                    tally.written, earlier_seconds + time.perf_counter() - t0)

    for round_no, units in tally.rounds():
        if not units:  # every slot left is undealt: no usable source
            continue
        batches = cut_batches(units, batch_samples)
        done = 0
        while replay and done < len(units):  # a resumed run: these batches are on disk
            ref, jobs = units[done]
            rec = replay.popleft()
            if not matches(rec, round_no, done, ref, jobs):
                raise ResumeError(_OFF_PLAN)
            tally.process(replayed_result(rec, ref))
            done += 1
        starts = [start for start, _end in batches] + [len(units)]
        if done not in starts:  # checkpoints fall between batches
            raise ResumeError(_OFF_PLAN)
        if durable and not replay and not replayed:
            replayed = True
            if tally.written != durable:  # the unit lines and the parts tell the same
                raise ResumeError(_OFF_PLAN)
        first = starts.index(done)
        next_due = first
        if first < len(batches):
            specs = [pickle.dumps(BatchSpec(round_no, b, start, units[start:end], wcfg, fmt, out_dir,
                                            rows_per_group, config.rows_per_shard),
                                  protocol=pickle.HIGHEST_PROTOCOL)
                     for b, (start, end) in enumerate(batches) if b >= first]
            ds = ray.data.from_items([{"spec": s} for s in specs], override_num_blocks=len(specs))
            ds = ds.map_batches(_map_batch, batch_size=1, num_cpus=1, zero_copy_batch=True)
            taken: dict[int, BatchSummary] = {}
            for row in ds.iter_rows():
                interrupts.check()
                s: BatchSummary = pickle.loads(row["summary"])
                made.parts.extend(rel for rel, _rows in s.parts)
                made.images.extend(s.images)
                taken[s.batch_no] = s
                while next_due in taken:  # plan order, whatever order the batches finished in
                    s = taken.pop(next_due)
                    next_due += 1
                    hosts.add(s.host)
                    checkpoint(s, _take(tally, s, units, batches, parts))
            interrupts.check()
        if next_due != len(batches):
            raise RuntimeError(f"Ray returned {next_due - first} of the {len(batches) - first} batches "
                               f"of round {round_no}")
    if replay or (durable and not replayed):
        raise ResumeError(_OFF_PLAN)
    interrupts.check()
    files = _finish(ray, out_dir, fmt, parts, rows_per_group, interrupts, made)
    with interrupts.held():
        seconds = earlier_seconds + time.perf_counter() - t0
        timing = {"ray_nodes": len(hosts)}
        if durable:
            timing["resumed_at_row"] = durable
        manifest = tally.manifest(
            out_dir, files, inputs, seconds,
            options={"workers": cpus, "engine": "ray", "ray_address": address or "local",
                     "ray_batch_samples": batch_samples},
            timing=timing,
        )
        atomic_write_json(os.path.join(out_dir, "manifest.json"), manifest)
        made.finals.append("manifest.json")
    interrupts.check()
    return RunResult(manifest=manifest, files=files)


def _take(tally: RunTally, s: BatchSummary, units, batches, parts: list) -> list[dict]:
    """Process one batch's unit results (in plan order) like the local engine does; returns
    their journal lines."""
    start, end = batches[s.batch_no]
    if len(s.results) != end - start:
        raise RuntimeError(f"batch {s.batch_no} of round {s.round_no}: {len(s.results)} results "
                           f"for {end - start} units")
    before = tally.written
    recs = []
    for i, res in enumerate(s.results, start=start):
        tally.process(res)
        recs.append(unit_record(s.round_no, i, units[i][1], res, tally.written))
    rows = sum(n for _rel, n in s.parts)
    if tally.written - before != rows:
        raise RuntimeError(f"batch {s.batch_no} of round {s.round_no}: {rows} rows written "
                           f"for {tally.written - before} samples")
    parts.extend(s.parts)
    return recs


def _finish(ray, out_dir: str, fmt: str, parts: list[tuple[str, int]], rows_per_group: int,
            interrupts: _Interrupts, made: _Made) -> list[str]:
    """Give the parts their final names, in plan order; returns the dataset's files. Every
    batch is done: anything of ours beside the parts (a retried task's temporary file) goes."""
    _drop_stale(out_dir, fmt, {rel for rel, _rows in parts})
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
            made.begin_closing()
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
        made.begin_closing()  # the parts are rewritten under their final names
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
        made.begin_closing()
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
