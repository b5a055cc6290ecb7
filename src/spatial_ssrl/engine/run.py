"""Planning and executing a generation run.

Plan: the requested count is split over the task mix (largest remainder), the resulting
task slots are shuffled with the run seed and dealt round-robin over the sources (in an
order also shuffled by the run seed). Each source's samples are numbered ``k = 0, 1, ...``
and each sample's random stream comes from (run seed, source id, task, k).

Execution: the plan is cut into units (one source, a few samples), run on a process pool
and collected in plan order, so the output is identical for any number of workers. Slots
that fail (unreadable source, or no unambiguous sample after the allowed draws) are dealt
again to the remaining sources in another round, until the count is met or no usable
source is left.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import os
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import __version__
from ..checks import AmbiguityThresholds
from ..sources import LoadOptions, SourceRef, cool_down, warm_up
from ..sources.naming import portable_names
from ..tasks import get_task_class
from ..writers import make_writer
from ..writers.base import atomic_write_json
from ..writers.encoded import DEFAULT_JPEG_QUALITY, DEFAULT_PNG_COMPRESS_LEVEL
from .journal import (
    Journal,
    ResumeError,
    fingerprint,
    matches,
    read_journal,
    replayed_result,
    unit_record,
)
from .mix import MixEntry, allocate
from .worker import (
    Job,
    UnitResult,
    WorkerConfig,
    WorkerPool,
    release_free_heap,
    run_unit,
)

MAX_JOBS_PER_UNIT = 8
MAX_ROUNDS = 8
MAX_LISTED_SKIPS = 200


class StrictModeError(RuntimeError):
    def __init__(self, path: str, reason: str, detail: str = ""):
        self.path, self.reason, self.detail = path, reason, detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


@dataclass
class GenerateConfig:
    num: int = 100
    seed: int = 0
    mix: list[MixEntry] = field(default_factory=list)
    format: str = "canonical"
    workers: int = 1
    strict: bool = False
    prompt_set: str = "paper"
    thresholds: AmbiguityThresholds = field(default_factory=AmbiguityThresholds)
    load: LoadOptions = field(default_factory=LoadOptions)
    max_attempts: int = 12
    png_compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL
    image_format: str = "auto"
    jpeg_quality: int = DEFAULT_JPEG_QUALITY
    task_options: dict[str, dict] = field(default_factory=dict)
    rows_per_shard: int = 1000

    def worker_config(self) -> WorkerConfig:
        return WorkerConfig(
            seed=self.seed,
            prompt_set=self.prompt_set,
            thresholds=self.thresholds,
            load=self.load,
            max_attempts=self.max_attempts,
            png_compress_level=self.png_compress_level,
            image_format=self.image_format,
            jpeg_quality=self.jpeg_quality,
            task_options=tuple(sorted((k, tuple(sorted(v.items()))) for k, v in self.task_options.items())),
        )


@dataclass
class RunResult:
    manifest: dict
    files: list[str]


DEPTH_KINDS = frozenset({"rgbd", "procedural"})


def _requires_depth(task: str) -> bool:
    return bool(getattr(get_task_class(task), "requires_depth", False))


def _source_kinds(task: str) -> frozenset | None:
    """The source kinds a task takes when it names them (``source_kinds``: the temporal
    task takes ``video`` and ``procedural``); None: the still sources (image, rgbd,
    procedural; only those with depth for a depth task). Videos go only to tasks that
    name them."""
    kinds = getattr(get_task_class(task), "source_kinds", None)
    return frozenset(kinds) if kinds else None


PHOTO_FIRST_QUOTA = 16
"""Depth-free samples each real photo takes before procedural scenes share that work."""


class _Dealer:
    """Deals task slots round-robin over usable sources, numbering each source's samples.

    Two pools with their own cursors: every source for depth-free tasks, sources with
    depth for tasks that need it. A source can be unusable altogether (``bad``) or only
    for depth tasks (``bad_depth``: its RGB still serves the depth-free tasks).

    Real photos come first for the depth-free tasks: while a usable photo (any source that
    is not a procedural scene) has had fewer than ``PHOTO_FIRST_QUOTA`` depth-free samples,
    those slots go round-robin over the photos only; after that over every source. With
    inputs of one's own (never procedural) this is plain round-robin; with the built-in
    inputs a small run shows mostly photos and the procedural scenes serve mainly the
    depth tasks.

    A task naming ``source_kinds`` (the temporal task: videos and procedural scenes) has a
    pool and cursor of its own over the sources of those kinds; videos are in no other
    pool."""

    def __init__(self, refs: list[SourceRef], seed: int):
        rng = np.random.default_rng([int(seed), 0x5EED])
        self.order = [refs[i] for i in rng.permutation(len(refs))]
        self.depth_order = [r for r in self.order if r.kind in DEPTH_KINDS]
        self.still_order = [r for r in self.order if r.kind != "video"]  # videos: only tasks naming them
        self.photo_order = [r for r in self.still_order if r.kind != "procedural"]
        if len(self.photo_order) == len(self.still_order):
            self.photo_order = []  # nothing to put first
        self.kind_orders: dict[frozenset, list[SourceRef]] = {}  # pools of tasks with source_kinds
        self.photo_cursor = 0
        self.depth_free_taken: dict[str, int] = defaultdict(int)
        self.cursors = {False: 0, True: 0}
        self.next_k: dict[str, int] = defaultdict(int)
        self.bad: set[str] = set()
        self.bad_depth: set[str] = set()

    def _ok(self, ref: SourceRef, depth: bool) -> bool:
        return ref.id not in self.bad and not (depth and ref.id in self.bad_depth)

    def usable(self, depth: bool = False) -> int:
        pool = self.depth_order if depth else self.still_order
        return sum(self._ok(r, depth) for r in pool)

    def _photo(self) -> SourceRef | None:
        """The next usable photo still under its depth-free quota, if any."""
        n = len(self.photo_order)
        for _ in range(n):
            ref = self.photo_order[self.photo_cursor % n]
            self.photo_cursor += 1
            if self._ok(ref, False) and self.depth_free_taken[ref.id] < PHOTO_FIRST_QUOTA:
                return ref
        return None

    def deal(self, slots: list[tuple[str, str]]) -> tuple[list[tuple[SourceRef, list[Job]]], list[tuple[str, str]]]:
        """Returns the units and the slots no usable source could take."""
        per_source: dict[str, list[Job]] = {}
        refs: dict[str, SourceRef] = {}
        undealt: list[tuple[str, str]] = []
        for task, variant in slots:
            depth = _requires_depth(task)
            kinds = _source_kinds(task)
            cursor: object = depth
            pool = self.depth_order if depth else self.still_order
            if kinds is not None:
                cursor = kinds
                if kinds not in self.kind_orders:
                    self.kind_orders[kinds] = [r for r in self.order if r.kind in kinds]
                    self.cursors[kinds] = 0
                pool = self.kind_orders[kinds]
            n = len(pool)
            chosen = None if depth or kinds is not None or not self.photo_order else self._photo()
            for _ in range(n if chosen is None else 0):
                ref = pool[self.cursors[cursor] % n]
                self.cursors[cursor] += 1
                if self._ok(ref, depth):
                    chosen = ref
                    break
            if chosen is not None and not depth and kinds is None:
                self.depth_free_taken[chosen.id] += 1
            if chosen is None:
                undealt.append((task, variant))
                continue
            k = self.next_k[chosen.id]
            self.next_k[chosen.id] += 1
            per_source.setdefault(chosen.id, []).append(Job(task, variant, k))
            refs[chosen.id] = chosen
        units = []
        for sid, jobs in per_source.items():
            for i in range(0, len(jobs), MAX_JOBS_PER_UNIT):
                units.append((refs[sid], jobs[i:i + MAX_JOBS_PER_UNIT]))
        return units, undealt


def _initial_slots(num: int, mix: list[MixEntry], seed: int) -> list[tuple[str, str]]:
    slots: list[tuple[str, str]] = []
    for entry, count in zip(mix, allocate(num, mix)):
        slots.extend([(entry.task, entry.variant)] * count)
    rng = np.random.default_rng([int(seed), 0x51075])
    return [slots[i] for i in rng.permutation(len(slots))]


def _execute(units, cfg: WorkerConfig, pool, check: Callable[[], None]) -> Iterator[UnitResult]:
    args = [(ref, jobs, cfg) for ref, jobs in units]
    if pool is None:
        return map(run_unit, args)
    return pool.imap(args, check=check, poll_interval=0.05, key=_source_of)


def _source_of(arg) -> str:
    return arg[0].id


class _Interrupts:
    """Ctrl-C during a run, made dependable.

    Python's default handler raises KeyboardInterrupt wherever the main thread happens to
    be, and where that is a weakref callback or a ``__del__`` (an import's module-lock
    callback was seen) the exception is printed as "Exception ignored" and dropped: the run
    went on as if nothing had happened. Here the handler records the signal, and the run
    raises KeyboardInterrupt itself at points it checks (:meth:`check`: every result, and
    every 50 ms while it waits on the workers). Without a pool the main thread computes
    the samples itself, so the handler also raises at once, as Python's would (the record
    still catches one that got dropped).

    Only when SIGINT has Python's default handler, in the main thread; otherwise nothing
    is installed and :meth:`check` never fires."""

    def __init__(self, raise_at_once: bool):
        self.hit = False
        self._raise_at_once = raise_at_once
        self._holding = 0
        self._old = None

    def __enter__(self) -> _Interrupts:  # noqa: PYI034 (Python 3.10 has no typing.Self)
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None

    def _handler(self, signum, frame) -> None:
        self.hit = True
        if self._raise_at_once and not self._holding:
            raise KeyboardInterrupt

    def check(self) -> None:
        if self.hit and not self._holding:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self):
        """No KeyboardInterrupt inside (a Ctrl-C is only recorded)."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1


def _remove_files(paths: Iterable[str]) -> None:
    for p in paths:
        try:
            if os.path.isfile(p) or os.path.islink(p):
                os.unlink(p)
        except OSError:
            pass


def run_generation(
    refs: list[SourceRef],
    out_dir: str,
    config: GenerateConfig,
    progress: Callable[[int], None] | None = None,
    inputs: Iterable[str] = (),
    extra_skips: Counter | None = None,
    extra_skipped_files: dict[str, list[str]] | None = None,
    resume: bool = False,
) -> RunResult:
    """Generate ``config.num`` samples from ``refs`` into ``out_dir``; return the manifest.

    The run keeps a journal in ``out_dir`` (see :mod:`.journal`) while it works. With
    ``resume``, a run killed earlier in ``out_dir`` with the same inputs and options is
    continued from its last durable part (:class:`ResumeError` when the journal belongs to
    another run); with nothing to resume it starts afresh. After a failure that left durable
    parts, :attr:`RunInterrupted.resumable` rows stay on disk for a later ``resume``."""
    inputs = list(inputs)
    refs, roots = portable_names(refs, inputs)
    with _Interrupts(raise_at_once=config.workers <= 1) as interrupts:
        return _generate(refs, out_dir, config, progress, inputs, extra_skips, extra_skipped_files,
                         interrupts, resume, roots)


def resumable_rows(out_dir: str) -> int:
    """Rows a killed or interrupted run left durable in ``out_dir`` (0: nothing to resume)."""
    state = read_journal(out_dir)
    return state.rows if state.resumable else 0


def _png_encoder_name() -> str:
    from ..writers import encoded

    enc = encoded.DEFAULT_PNG_ENCODER
    return "pillow" if enc == "pillow" or not encoded.FPNG_AVAILABLE else "fpng"


class RunTally:
    """What a run decides from the outcomes of its units, taken in plan order: which sources
    are unusable, which slots are dealt again in the next round, and every counter of the
    manifest. Both engines (the local pool here, Ray in :mod:`.ray_engine`) feed it, so a
    run's samples and manifest do not depend on where the units ran.

    :meth:`rounds` yields each round's units; every unit of a round goes through
    :meth:`process` (in plan order) before the next round is asked for."""

    def __init__(self, refs: list[SourceRef], config: GenerateConfig,
                 progress: Callable[[int], None] | None = None,
                 extra_skips: Counter | None = None,
                 extra_skipped_files: dict[str, list[str]] | None = None):
        self.refs = refs
        self.source_roots: dict[str, str] = {}  # label -> input root the sources' names start from
        self.config = config
        self.progress = progress
        self.dealer = _Dealer(refs, config.seed)
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.rejections: Counter = Counter()
        self.skips: Counter = Counter(extra_skips or {})
        self.skipped_files: dict[str, list[str]] = defaultdict(list)
        for reason, places in (extra_skipped_files or {}).items():
            self.skipped_files[reason].extend(list(places)[:MAX_LISTED_SKIPS])
        self.conversions: Counter = Counter()
        self.seen_sources: set[str] = set()
        self.unfilled: Counter = Counter()
        self.written = 0
        self.pending: list[tuple[str, str]] = []
        # a video no task of the mix takes (image-only tasks never get one) is a named skip
        clip_kinds = {k for k in (_source_kinds(e.task) for e in config.mix) if k}
        for ref in refs:
            if ref.kind == "video" and not any("video" in k for k in clip_kinds):
                self.skips["video_not_used_by_image_tasks"] += 1
                if len(self.skipped_files["video_not_used_by_image_tasks"]) < MAX_LISTED_SKIPS:
                    self.skipped_files["video_not_used_by_image_tasks"].append(ref.path)

    def rounds(self) -> Iterator[tuple[int, list[tuple[SourceRef, list[Job]]]]]:
        """``(round number, units)`` for each round; the slots left at the end (rounds used up,
        or no usable source) are counted as unfilled."""
        self.pending = _initial_slots(self.config.num, self.config.mix, self.config.seed)
        round_no = 0
        undealt: list[tuple[str, str]] = []
        while self.pending and round_no < MAX_ROUNDS:
            round_no += 1
            units, more_undealt = self.dealer.deal(self.pending)
            undealt.extend(more_undealt)
            self.pending = []
            yield round_no, units
        for task, variant in [*self.pending, *undealt]:
            self.unfilled[f"{task}/{variant}"] += 1

    def process(self, res: UnitResult, add: Callable[[object], None] | None = None) -> None:
        """Take one unit's outcome; ``add(sample)`` is called for each sample it gave, in
        order, before :attr:`written` counts it."""
        config, dealer = self.config, self.dealer
        skips, skipped_files, pending = self.skips, self.skipped_files, self.pending
        ref = res.ref
        if res.depth_skip_reason:
            if config.strict:
                raise StrictModeError(ref.depth or ref.path, res.depth_skip_reason, res.depth_skip_detail)
            if ref.id not in dealer.bad_depth:
                dealer.bad_depth.add(ref.id)
                skips[res.depth_skip_reason] += 1
                if len(skipped_files[res.depth_skip_reason]) < MAX_LISTED_SKIPS:
                    skipped_files[res.depth_skip_reason].append(ref.depth or ref.path)
            pending.extend((j.task, j.variant) for j in res.depth_jobs_refused)
        if res.skip_reason:
            if config.strict:
                raise StrictModeError(ref.path, res.skip_reason, res.skip_detail)
            if ref.id not in dealer.bad:
                dealer.bad.add(ref.id)
                if res.skip_reason == "near_uniform_image":
                    self.rejections[res.skip_reason] += 1
                else:
                    skips[res.skip_reason] += 1
                if len(skipped_files[res.skip_reason]) < MAX_LISTED_SKIPS:
                    skipped_files[res.skip_reason].append(ref.path)
            # every planned slot of this unit goes back to the pool
            pending.extend((j.task, j.variant) for j in res.jobs)
            return
        if ref.id not in self.seen_sources:
            self.seen_sources.add(ref.id)
            if "conversion" in res.conversions:
                self.conversions[res.conversions["conversion"]] += 1
            if "exif_orientation" in res.conversions:
                self.conversions["exif_orientation_applied"] += 1
            if "resize" in res.conversions:
                self.conversions["resized"] += 1
        for jr in res.results:
            self.rejections.update(jr.rejections)
            if jr.sample is None:
                skips["ambiguous_after_max_attempts"] += 1
                pending.append((jr.job.task, jr.job.variant))
                continue
            if add is not None:
                add(jr.sample)
            self.written += 1
            self.counts[jr.job.task][jr.job.variant] += 1
            if self.progress:
                self.progress(1)

    def manifest(self, out_dir: str, files: list[str], inputs: Iterable[str], seconds: float,
                 options: dict | None = None, timing: dict | None = None) -> dict:
        """The run's ``manifest.json``; ``options`` and ``timing`` add engine-specific keys."""
        config, dealer, written = self.config, self.dealer, self.written
        return {
            "spatial_ssrl_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "format": config.format,
            "seed": config.seed,
            "num_requested": config.num,
            "num_written": written,
            "counts": {t: dict(sorted(v.items())) for t, v in sorted(self.counts.items())},
            "counts_by_task": {t: sum(v.values()) for t, v in sorted(self.counts.items())},
            "mix": [
                {"task": e.task, "variant": e.variant, "weight": e.weight, "planned": n}
                for e, n in zip(config.mix, allocate(config.num, config.mix))
            ],
            "rejections": dict(sorted(self.rejections.items())),
            "skips": dict(sorted(self.skips.items())),
            "skipped_files": {k: v for k, v in sorted(self.skipped_files.items())},
            "conversions": dict(sorted(self.conversions.items())),
            "unfilled": dict(sorted(self.unfilled.items())),
            "inputs": list(inputs),
            "source_roots": dict(self.source_roots),
            "sources": {
                "found": len(self.refs),
                "with_depth": len(dealer.depth_order),
                "used": len(self.seen_sources),
                "unusable": len(dealer.bad),
                "depth_unusable": len(dealer.bad_depth),
            },
            "options": {
                "workers": config.workers,
                "strict": config.strict,
                "prompt_set": config.prompt_set,
                "max_attempts": config.max_attempts,
                "png_compress_level": config.png_compress_level,
                "image_format": config.image_format,
                "jpeg_quality": config.jpeg_quality,
                "task_options": config.task_options,
                "rows_per_shard": config.rows_per_shard,
                "load": asdict(config.load),
                "thresholds": asdict(config.thresholds),
                **(options or {}),
            },
            "timing": {
                "seconds": round(seconds, 3),
                "samples_per_second": round(written / seconds, 3) if seconds > 0 else None,
                **(timing or {}),
            },
            "files": sorted(os.path.relpath(f, out_dir) for f in files),
        }


def _generate(refs, out_dir, config, progress, inputs, extra_skips, extra_skipped_files,
              interrupts: _Interrupts, resume: bool, roots: dict[str, str] | None = None) -> RunResult:
    t0 = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    wcfg = config.worker_config()
    pool = None
    if config.workers > 1:
        warm_up(refs)  # the forked workers inherit it
        pool = WorkerPool(config.workers)  # its workers start while the writer is set up
        cool_down()  # this process renders nothing: room for results held back for the plan order
        release_free_heap()
    try:
        writer = make_writer(config.format, out_dir, config.rows_per_shard)
        tally = RunTally(refs, config, progress, extra_skips, extra_skipped_files)
        tally.source_roots = roots or {}
        fp = fingerprint(config, refs, _png_encoder_name())
        state = read_journal(out_dir) if resume else None
        if state is not None and not state.resumable:
            state = None
        if state is not None:
            if state.fingerprint != fp:
                raise ResumeError(_mismatch(state.about, config))
            try:
                writer.resume(state.checkpoint)
            except (ValueError, OSError) as exc:
                raise ResumeError(f"the interrupted run's files are not as it left them: {exc}") from None
        journal = Journal(out_dir, fp, {"num": config.num, "seed": config.seed, "format": config.format},
                          resume_from=state)
        replay = collections.deque(state.replay if state else ())
        durable = state.rows if state else 0
        earlier_seconds = state.seconds if state else 0.0
    except BaseException:
        if pool is not None:
            pool.terminate()
        raise

    def on_checkpoint(ck: dict) -> None:
        journal.checkpoint(ck, ck["rows"], earlier_seconds + time.perf_counter() - t0)

    writer.on_checkpoint = on_checkpoint

    def add(sample) -> None:
        if tally.written >= durable:  # rows before it are on disk already (a resumed run)
            writer.add(sample)

    finals: list[str] = []
    closed = False

    try:
        for round_no, units in tally.rounds():
            done = 0
            while replay and done < len(units):  # a resumed run: outcomes already known
                ref, jobs = units[done]
                rec = replay.popleft()
                if not matches(rec, round_no, done, ref, jobs):
                    raise ResumeError("the interrupted run's journal does not follow this run's plan; "
                                      "run again without --resume")
                tally.process(replayed_result(rec, ref), add)
                done += 1
            for i, res in enumerate(_execute(units[done:], wcfg, pool, interrupts.check), start=done):
                interrupts.check()
                tally.process(res, add)
                journal.unit(unit_record(round_no, i, units[i][1], res, tally.written))
        if replay:
            raise ResumeError("the interrupted run's journal does not follow this run's plan; "
                              "run again without --resume")
        if pool is not None:
            pool.close()
        interrupts.check()
        # from here on a Ctrl-C waits until the files are in place, then takes them away
        # again: never a shard under its final name without its manifest
        with interrupts.held():
            closed = True
            writer.on_checkpoint = None
            files = writer.close()
            journal.close()
            os.unlink(journal.path)
            finals = [f for f in files if not os.path.isdir(f)]
            total_seconds = earlier_seconds + time.perf_counter() - t0
            manifest = tally.manifest(out_dir, files, inputs, total_seconds, options={"engine": "local"},
                                      timing={"resumed_at_row": durable} if durable else None)
            atomic_write_json(os.path.join(out_dir, "manifest.json"), manifest)
            finals.append(os.path.join(out_dir, "manifest.json"))
        interrupts.check()
    except BaseException as exc:
        # no second Ctrl-C may cut the cleanup short; every step below is bounded in time
        with interrupts.held():
            if pool is not None:
                pool.terminate()
            journal.close()
            keep = (not closed and not isinstance(exc, (StrictModeError, ResumeError))
                    and resumable_rows(out_dir) > 0)
            if keep:
                writer.release()
            else:
                writer.abort()
                _remove_files([*finals, journal.path])
        raise
    return RunResult(manifest=manifest, files=files)


def _mismatch(about: dict, config: GenerateConfig, engine: dict | None = None) -> str:
    diffs = [f"{k} {about[k]} (now {getattr(config, k)})" for k in ("num", "seed", "format")
             if k in about and about[k] != getattr(config, k)]
    now = {"engine": "local", **(engine or {})}  # the Ray engine adds its batch size
    if about.get("engine", "local") != now["engine"]:
        diffs.append(f"engine {about.get('engine', 'local')} (now {now['engine']})")
    else:
        diffs += [f"{k.replace('_', '-')} {about[k]} (now {v})" for k, v in now.items()
                  if k != "engine" and k in about and about[k] != v]
    what = ", ".join(diffs) if diffs else "other inputs or options"
    return (f"the interrupted run in this folder was made with {what}; run the same command "
            "again with --resume, or start afresh with --overwrite")
