"""What one worker does with one unit of work: load a source once, generate the samples
planned for it, encode their images. A pure function of its arguments (plus a per-process
cache of task objects), so units can run in any process in any order."""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from ..checks import AmbiguityThresholds, is_near_uniform
from ..seeding import sample_rng, short_hash
from ..sources import (
    Item,
    LoadOptions,
    SourceRef,
    SourceSkip,
    load_item,
    load_source_item,
)
from ..tasks import get_task_class, make_task
from ..tasks.base import PretextTask, generate_sample
from ..writers.encoded import (
    DEFAULT_JPEG_QUALITY,
    DEFAULT_PNG_COMPRESS_LEVEL,
    EncodedSample,
    encode_sample,
    image_encoding,
)


@dataclass(frozen=True)
class WorkerConfig:
    seed: int = 0
    prompt_set: str = "paper"
    thresholds: AmbiguityThresholds = AmbiguityThresholds()
    load: LoadOptions = LoadOptions()
    max_attempts: int = 12
    png_compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL
    image_format: str = "auto"
    jpeg_quality: int = DEFAULT_JPEG_QUALITY
    task_options: tuple = ()
    """Per-task constructor options as ``((task name, ((key, value), ...)), ...)``."""


@dataclass(frozen=True)
class Job:
    task: str
    variant: str
    k: int
    """Index of this sample among the samples drawn from its source."""


@dataclass
class JobResult:
    job: Job
    sample: EncodedSample | None
    rejections: Counter


@dataclass
class UnitResult:
    ref: SourceRef
    jobs: list[Job]
    skip_reason: str | None = None
    skip_detail: str = ""
    depth_skip_reason: str | None = None
    depth_skip_detail: str = ""
    depth_jobs_refused: list[Job] = field(default_factory=list)
    conversions: dict = field(default_factory=dict)
    results: list[JobResult] = field(default_factory=list)


_TASK_CACHE: dict[tuple, PretextTask] = {}


def _needs_depth(task: str) -> bool:
    return bool(getattr(get_task_class(task), "requires_depth", False))


def _task(name: str, variant: str, cfg: WorkerConfig) -> PretextTask:
    key = (name, variant, cfg.prompt_set, cfg.thresholds, cfg.task_options)
    task = _TASK_CACHE.get(key)
    if task is None:
        extra = dict(dict(cfg.task_options).get(name, ()))
        task = make_task(name, variant, prompt_set=cfg.prompt_set, thresholds=cfg.thresholds, **extra)
        _TASK_CACHE[key] = task
    return task


def sample_id(seed: int, source_id: str, task_key: str, k: int) -> str:
    task, _, variant = task_key.partition("/")
    return f"{task}-{variant}-{short_hash(seed, source_id, task_key, k, length=12)}"


ITEM_CACHE_SIZE = 2
"""Loaded sources a process keeps (:func:`_load`). A run deals the units of one source one
after another, and a unit is at most 8 samples, so without this every unit decoded its
file (or built its scene), re-checked it for uniformity and re-analysed its depth."""

_ITEM_CACHE: OrderedDict = OrderedDict()


@dataclass
class _Loaded:
    item: Item | None = None
    skip: tuple[str, str, str] | None = None  # a SourceSkip's (reason, path, detail)
    uniform: tuple | None = None  # (thresholds, is_near_uniform(item.rgb, thresholds)), once asked


def _load(ref: SourceRef, load: LoadOptions, rgb_only: bool) -> _Loaded:
    """``ref`` loaded with ``load`` (the RGB alone when ``rgb_only``), or the reason it
    cannot be, from a small per-process cache. Loading is a pure function of these
    arguments and the file (items hold read-only arrays), so a hit changes no result."""
    key = (ref, load, rgb_only)
    hit = _ITEM_CACHE.get(key)
    if hit is not None:
        _ITEM_CACHE.move_to_end(key)
        return hit
    try:
        hit = _Loaded(item=load_item(ref, load) if rgb_only else load_source_item(ref, load))
    except SourceSkip as skip:
        hit = _Loaded(skip=(skip.reason, skip.path, skip.detail))
    _ITEM_CACHE[key] = hit
    while len(_ITEM_CACHE) > ITEM_CACHE_SIZE:
        _ITEM_CACHE.popitem(last=False)
    return hit


def _loaded_item(ref: SourceRef, load: LoadOptions, rgb_only: bool) -> tuple[Item, _Loaded]:
    hit = _load(ref, load, rgb_only)
    if hit.skip is not None:
        raise SourceSkip(*hit.skip)
    return hit.item, hit


def run_unit(args: tuple[SourceRef, list[Job], WorkerConfig]) -> UnitResult:
    ref, jobs, cfg = args
    out = UnitResult(ref=ref, jobs=jobs)
    # an RGB-D file whose unit holds only depth-free samples needs no depth read
    rgb_only = ref.kind == "rgbd" and not any(_needs_depth(j.task) for j in jobs)
    try:
        item, loaded = _loaded_item(ref, cfg.load, rgb_only)
    except SourceSkip as skip:
        if ref.kind != "rgbd" or not skip.reason.startswith("depth"):
            out.skip_reason, out.skip_detail = skip.reason, skip.detail
            return out
        # the depth is unusable but the RGB may still serve the depth-free tasks
        out.depth_skip_reason, out.depth_skip_detail = skip.reason, skip.detail
        out.depth_jobs_refused = [j for j in jobs if _needs_depth(j.task)]
        jobs = [j for j in jobs if not _needs_depth(j.task)]
        if not jobs:
            return out
        try:
            item, loaded = _loaded_item(ref, cfg.load, True)
        except SourceSkip as skip2:
            out.skip_reason, out.skip_detail = skip2.reason, skip2.detail
            out.jobs = jobs
            return out
    out.conversions = {k: v for k, v in item.info.items() if k in ("conversion", "exif_orientation", "resize")}
    if loaded.uniform is None or loaded.uniform[0] != cfg.thresholds:
        loaded.uniform = (cfg.thresholds, is_near_uniform(item.rgb, cfg.thresholds))
    if loaded.uniform[1]:
        out.skip_reason, out.skip_detail = "near_uniform_image", "no content to build a question from"
        return out
    for job in jobs:
        task = _task(job.task, job.variant, cfg)
        rng = sample_rng(cfg.seed, ref.id, task.key, job.k)
        sid = sample_id(cfg.seed, ref.id, task.key, job.k)
        sample, rejections = generate_sample(task, item, rng, sid, cfg.max_attempts)
        encoded = None
        if sample is not None:
            encoding = image_encoding(cfg.image_format, task.lossless_output)
            encoded = encode_sample(sample, cfg.png_compress_level, encoding, cfg.jpeg_quality)
        out.results.append(JobResult(job=job, sample=encoded, rejections=rejections))
    return out


# --------------------------------------------------------------------------------------
# The local process pool.
#
# Not ``multiprocessing.Pool``: a SIGINT sent to the whole process group (Ctrl-C in a
# terminal) raised KeyboardInterrupt inside its workers, which printed tracebacks and could
# die holding a lock of the queues shared by every process (a worker in the middle of
# sending a result holds the result queue's write lock, one taking a task the task queue's
# read lock); ``Pool.terminate`` then waits on that lock forever (it takes the task queue's
# read lock and puts a sentinel on the result queue). Here the workers ignore SIGINT (only
# the parent handles it); every worker has a task pipe and a result pipe of its own, so no
# lock is shared by two processes; at most ``WINDOW_PER_WORKER`` units per worker are in
# flight, so finished results never pile up unread; and stopping is SIGTERM, then SIGKILL,
# with every join bounded by a timeout.
#
# The parent decides which worker runs which unit (:meth:`WorkerPool.imap`): a unit goes
# to the worker that ran the last unit of the same source when it can, so a source is
# loaded (decoded, rendered, analysed) by one worker rather than by every worker in turn.
# A worker sends its results from a thread of its own, so it computes the next unit while
# the parent, busy writing shards, drains the pipe.

WINDOW_PER_WORKER = 24
"""Units dispatched ahead of the next one due in plan order, per worker: how far ahead a
worker may run while another is busy with a slow unit (three units of 8 samples from the
1,411 px retina photo take about 0.4 s each, and a worker that stops early waits that
long), and how far it may look for a source of its own. With 12, two workers at 2,000
samples still waited 0.4-0.9 s at a time behind such units; with 6 they also shared 29
of their 33 sources and spent 5 s more CPU."""

HELD_BYTES_LIMIT = 96 * 1024 * 1024
"""Results held back for the plan order, in bytes of their frames, above which the look-ahead
shrinks to the units next due: a worker running ahead on a source of large images (a
unit of 8 samples from a 1,400 px photo is over 20 MB) cannot fill the parent's memory.
At 48 MB the limit itself stalled a worker behind three such units. With the workers'
rings mapped too (:mod:`.wire`, 48 MB of the parent's resident size), the parent's peak at
20,000 samples was 368-379 MB at 128 MB and 324 MB at 96 MB."""

DEPTH_PER_WORKER = 3
"""Units handed to one worker and not yet answered: one running, the rest queued in its
pipe so it never waits for the parent between units."""


class WorkerDied(RuntimeError):
    pass


TRIM_ABOVE_BYTES = 256 * 1024 * 1024
"""Resident size above which a worker gives freed heap back after a unit (see
:func:`_trimmer`)."""


def _malloc_trim():
    """glibc's ``malloc_trim``, or None where there is none."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _trimmer(exempt: int = 0):
    """A callable that runs glibc's ``malloc_trim(0)`` when this process's resident size,
    less ``exempt`` bytes (the result ring, which is no heap), is above
    :data:`TRIM_ABOVE_BYTES` (a no-op without glibc). Over a long run the large temporary
    arrays of each unit fragment the heap and the resident size creeps up; trimming after
    every unit stops that but costs a third more CPU, so it only happens once the process
    is big."""
    import os

    trim = _malloc_trim()
    try:
        page = os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        trim = None
    if trim is None:
        return lambda: None

    def maybe_trim() -> None:
        try:
            with open("/proc/self/statm", "rb") as fh:
                resident = int(fh.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            return
        if resident - exempt > TRIM_ABOVE_BYTES:
            trim(0)

    return maybe_trim


def release_free_heap() -> None:
    """Give the heap this process has freed back to the system (glibc's ``malloc_trim``;
    a no-op elsewhere). Before forking workers, so they do not start with the freed
    memory resident (the threads that read the textures left about 14 MB of it)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _send_loop(result_conn, outbox) -> None:
    """A worker's sending thread: framed results (:mod:`.wire`) from ``outbox`` to the
    parent, ``None`` ends it. Returns (and so ends the worker) when the parent is gone. It
    only writes: the pickling happens on the main thread, so this thread allocates nothing
    (a thread's own malloc arena kept tens of MB of freed pickles resident)."""
    from .wire import write_frame

    fd = result_conn.fileno()
    while True:
        parts = outbox.get()
        if parts is None:
            return
        try:
            write_frame(fd, parts)
        except OSError:
            return  # the parent is gone
        del parts


def _framed(reply, ring=None) -> list:
    """``reply`` as a frame (:func:`.wire.encode`), its images out of band (in ``ring``, a
    :class:`.wire.RingWriter`, when they fit); a result that does not pickle becomes its
    error."""
    from .wire import encode, out_of_band

    index, ok, value = reply
    if ok:
        for r in value.results:
            if r.sample is not None:
                out_of_band(r.sample)
    try:
        return encode(reply, ring)
    except Exception as exc:  # the result did not pickle
        return encode((index, False, _portable_exception(exc)))


def _worker_main(task_conn, result_conn, parent_pid: int, ring=None) -> None:
    """A worker's loop: take ``(index, args, tail)`` from its task pipe, answer ``(index,
    ok, result)`` on its result pipe; ``None`` ends it once every answer is sent. ``ring``
    (a :class:`.wire.Ring`, shared with the parent) carries the images when they fit;
    ``tail`` says how much of it the parent has given back."""
    import os
    import queue
    import signal
    import threading

    from .wire import RingWriter

    trim = _trimmer(ring.size if ring is not None else 0)
    ring = RingWriter(ring) if ring is not None else None

    # the parent blocked SIGINT around the fork, so no Ctrl-C reaches this process before
    # it is ignored here; the parent alone decides what an interrupt means
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    outbox: queue.Queue = queue.Queue(maxsize=1)
    sender = threading.Thread(target=_send_loop, args=(result_conn, outbox), name="ssrl-send", daemon=True)
    sender.start()

    def post(reply) -> bool:
        while sender.is_alive():
            try:
                outbox.put(reply, timeout=1.0)
                return True
            except queue.Full:
                continue
        return False

    try:
        while True:
            # wake now and then to notice a parent that died without a word
            while not task_conn.poll(1.0):
                if os.getppid() != parent_pid or not sender.is_alive():
                    return
            msg = task_conn.recv()
            if msg is None:
                post(None)
                sender.join()
                return
            index, args, tail = msg
            if ring is not None:
                ring.heard(tail)
            try:
                reply = (index, True, run_unit(args))
            except Exception as exc:  # a bug in a task: the parent re-raises it
                reply = (index, False, _portable_exception(exc))
            del args, msg
            if not post(_framed(reply, ring)):
                return  # the parent is gone
            del reply
            trim()
    except (EOFError, OSError):
        return  # the parent is gone or closed the pipes
    finally:
        task_conn.close()
        if not sender.is_alive():
            result_conn.close()


def _portable_exception(exc: BaseException) -> BaseException:
    import pickle
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"worker error (not picklable): {text}")
    return exc


RESULT_PIPE_BYTES = 1024 * 1024
"""What a result pipe holds (Linux's default is 64 KB). A result that does not fit the ring
crosses the pipe, often 1-18 MB at once: in 64 KB pieces that is a wake-up of the parent and
of the worker's sending thread for every piece. At 600 samples the 1 MB pipe took the
parent's CPU in the run from 0.83-0.97 s to 0.74-0.91 s, lower in each of 5 rounds."""


def widen_pipe(fd: int, size: int = RESULT_PIPE_BYTES) -> int:
    """Ask the kernel to let pipe ``fd`` hold ``size`` bytes, or as much as an unprivileged
    process may (``/proc/sys/fs/pipe-max-size``); returns the size it now has, or 0 where
    pipes cannot be resized (not Linux). Never fails: the default size works, only slower."""
    try:
        import fcntl
    except ImportError:  # Windows
        return 0
    setsz = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsz is None:
        return 0
    try:
        return fcntl.fcntl(fd, setsz, size)
    except OSError:  # over this user's limit, or not a pipe
        pass
    try:
        with open("/proc/sys/fs/pipe-max-size", "rb") as fh:
            limit = int(fh.read())
        if 0 < limit < size:
            return fcntl.fcntl(fd, setsz, limit)
    except (OSError, ValueError):
        pass
    return 0


class WorkerPool:
    """``workers`` processes running :func:`run_unit`; :meth:`imap` yields in input order."""

    def __init__(self, workers: int, context=None):
        import multiprocessing
        import os
        import signal
        import threading

        from .wire import Ring, RingReader

        ctx = context or multiprocessing.get_context()
        release_free_heap()
        self._procs = []
        self._task_conns = []
        self._result_conns = []
        # a forked worker shares a ring with this process (a spawned one could not inherit it)
        forked = ctx.get_start_method() == "fork"
        self._rings: list[RingReader | None] = []
        self._closed = False
        self.assigned: dict[int, int] = {}
        main = threading.current_thread() is threading.main_thread()
        # SIGINT stays blocked from before each fork until the child ignores it; in the
        # parent a Ctrl-C that arrives meanwhile is delivered when the mask is restored
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if main else None
        started = False
        try:
            for _ in range(max(1, int(workers))):
                task_r, task_w = ctx.Pipe(duplex=False)
                result_r, result_w = ctx.Pipe(duplex=False)
                widen_pipe(result_r.fileno())
                ring = Ring() if forked else None
                self._rings.append(RingReader(ring) if ring is not None else None)
                p = ctx.Process(target=_worker_main, args=(task_r, result_w, os.getpid(), ring),
                                name="ssrl-worker", daemon=True)
                self._task_conns.append(task_w)
                self._result_conns.append(result_r)
                try:
                    p.start()
                finally:
                    task_r.close()
                    result_w.close()
                self._procs.append(p)
            started = True
        finally:
            if not started:
                self.terminate()
            if old_mask is not None:
                try:
                    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)  # a held Ctrl-C lands here
                except BaseException:
                    self.terminate()
                    raise

    def imap(self, args: Iterable, check=None, poll_interval: float = 0.05,
             key=None) -> Iterator[UnitResult]:
        """Run :func:`run_unit` on each of ``args``; yield the results in order.

        ``check()``, when given, is called at least every ``poll_interval`` seconds while
        waiting (it may raise to stop the run). ``key(arg)``, when given, names what a unit
        loads (its source): units with the key a worker had last go to that worker when it
        has room, and a worker with room takes the first unit whose key no other worker has
        before one whose key another has. Which worker runs a unit changes nothing in its
        result, only how often a source is loaded."""
        from multiprocessing.connection import wait

        from .wire import read_frame

        if self._closed:
            raise RuntimeError("the worker pool is closed")
        todo = iter(enumerate(args))
        self.assigned = {}  # unit index -> the worker it went to (for tests and benchmarks)
        n_workers = len(self._procs)
        window = WINDOW_PER_WORKER * n_workers
        ahead: list[tuple[int, object, object]] = []  # fetched, not dispatched yet
        outstanding = [0] * n_workers
        last_key: list[object] = [None] * n_workers
        done: dict[int, UnitResult] = {}
        fetched = 0
        next_due = 0
        exhausted = False
        conn_index = {c: i for i, c in enumerate(self._result_conns)}
        sentinel_index = {p.sentinel: i for i, p in enumerate(self._procs)}

        held = [0]  # bytes of the results in ``done``
        sizes: dict[int, int] = {}

        def pick(w: int) -> int | None:
            """Position in ``ahead`` of the unit worker ``w`` takes next (None: none yet).
            While the results held back exceed HELD_BYTES_LIMIT, only units close to the
            one due next are handed out."""
            reach = window if held[0] < HELD_BYTES_LIMIT else n_workers * DEPTH_PER_WORKER
            others = {last_key[v] for v in range(n_workers) if v != w}
            first_free = None
            for pos, (index, _, k) in enumerate(ahead):
                if index >= next_due + reach:
                    break
                if k is not None and k == last_key[w]:
                    return pos
                if first_free is None and k not in others:
                    first_free = pos
            if first_free is None and ahead and ahead[0][0] < next_due + reach:
                return 0
            return first_free

        def top_up() -> None:
            """Fetch units up to the window and hand every worker with room its next."""
            nonlocal fetched, exhausted
            while not exhausted and fetched - next_due < window:
                item = next(todo, None)
                if item is None:
                    exhausted = True
                    break
                ahead.append((item[0], item[1], None if key is None else key(item[1])))
                fetched += 1
            sent_one = True
            while ahead and sent_one:
                sent_one = False
                for w in sorted(range(n_workers), key=outstanding.__getitem__):
                    if not ahead or outstanding[w] >= DEPTH_PER_WORKER:
                        continue
                    pos = pick(w)
                    if pos is None:
                        continue
                    index, arg, k = ahead.pop(pos)
                    ring = self._rings[w]
                    tail = ring.tail() if ring is not None else 0
                    self._task_conns[w].send((index, arg, tail))  # small; the pipe holds far more
                    self.assigned[index] = w
                    outstanding[w] += 1
                    last_key[w] = k
                    sent_one = True

        def take(timeout: float | None) -> None:
            """Read every result that arrives within ``timeout`` seconds (None: wait for one)."""
            ready = wait([*self._result_conns, *sentinel_index], timeout)
            for obj in ready:
                w = conn_index.get(obj)
                if w is None:
                    continue
                try:
                    (index, ok, value), size = read_frame(obj.fileno(), self._rings[w])
                except (EOFError, OSError):
                    raise self._died(w) from None
                outstanding[w] -= 1
                if not ok:
                    raise value
                done[index] = value
                sizes[index] = size
                held[0] += size
            for obj in ready:
                w = sentinel_index.get(obj)
                # a worker never exits during a run; an answer it left is read first
                if w is not None and not self._result_conns[w].poll(0):
                    raise self._died(w)

        # Taking a result (writing its rows) can take the caller a good part of a second
        # for a unit of large photos, so between any two results handed over, the workers
        # get their next units and their finished results are read: a worker never waits
        # for the caller to get through a run of results it had held back.
        while True:
            top_up()
            if next_due in done:
                held[0] -= sizes.pop(next_due)
                result = done.pop(next_due)
                next_due += 1
                yield result
                del result
                take(0)
                continue
            if exhausted and next_due == fetched:
                return
            if check is not None:
                check()
            take(None if check is None else poll_interval)

    def _died(self, w: int) -> WorkerDied:
        p = self._procs[w]
        p.join(0.5)
        return WorkerDied(f"a worker process died (exit code {p.exitcode})")

    def close(self, timeout: float = 5.0) -> None:
        """Let the workers finish and exit; :meth:`terminate` any that do not in time."""
        import time

        if self._closed:
            return
        self._closed = True
        for conn in self._task_conns:
            try:
                conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for p in self._procs:
            p.join(max(0.0, deadline - time.monotonic()))
        self.terminate()

    def terminate(self, timeout: float = 1.0) -> None:
        """Stop every worker now: SIGTERM, then SIGKILL for any still alive after ``timeout``.
        Waits on no pipe and no lock; returns when every worker has exited (or after at most
        ``2 * timeout``)."""
        import time

        self._closed = True
        for p in self._procs:
            if p.exitcode is None:
                try:
                    p.terminate()
                except OSError:
                    pass
        for kill in (False, True):
            deadline = time.monotonic() + timeout
            for p in self._procs:
                p.join(max(0.0, deadline - time.monotonic()))
            alive = [p for p in self._procs if p.exitcode is None]
            if not alive:
                break
            if not kill:
                for p in alive:
                    try:
                        p.kill()
                    except OSError:
                        pass
        for c in (*self._task_conns, *self._result_conns):
            try:
                c.close()
            except OSError:
                pass
