"""Planning and executing a generation run.

Plan: the requested count is split over the task mix (largest remainder), the resulting
task slots are shuffled with the run seed and dealt round-robin over the sources (in an
order also shuffled by the run seed). Each source's samples are numbered ``k = 0, 1, ...``
and each sample's random stream comes from (run seed, source id, task, k). The slots a
source got are cut into units (one source, up to 8 samples) and a round's units into
batches of consecutive units (:func:`cut_batches`: the batch size follows from the options
alone).

Execution: an executor (:mod:`.executors`: local processes, or Ray Data in
:mod:`.ray_engine`) runs each batch where it likes; whoever runs it makes its samples and
writes them as the batch's part (:mod:`..writers.parts`) before it reports a small summary.
The driver (this process) takes the summaries in plan order: :class:`RunTally` decides from
them, the journal (:mod:`.journal`) records them. Slots that failed (an unusable source, or
no unambiguous sample after the allowed draws) are dealt again to the remaining sources in
another round, until the count is met or no usable source is left. At the end the parts are
renamed, in plan order, to the dataset's files. Shard boundaries follow the plan alone, so
the files are the same, byte for byte, for any number of workers and either engine.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import __version__
from ..checks import AmbiguityThresholds
from ..interrupt import Interrupts
from ..sources import LoadOptions, SourceRef, cool_down, warm_up
from ..sources.naming import portable_names
from ..tasks import get_task_class
from ..writers import check_format
from ..writers.base import atomic_write_json
from ..writers.encoded import DEFAULT_JPEG_QUALITY, DEFAULT_PNG_COMPRESS_LEVEL
from ..writers.parts import (
    drop_stale,
    environment,
    part_folders,
    put_finals,
    stage_finals,
)
from .journal import (
    Journal,
    JournalState,
    ResumeError,
    check_parts,
    fingerprint,
    matches,
    read_journal,
    replayed_result,
    unit_record,
)
from .mix import MixEntry, allocate
from .worker import BatchSpec, BatchSummary, Job, UnitResult, WorkerConfig, run_batch

MAX_JOBS_PER_UNIT = 8
MAX_ROUNDS = 8
MAX_LISTED_SKIPS = 200
BATCHES_PER_RUN = 64
"""The default batch size aims at this many batches per run (within MIN_BATCH and
``--shard-rows``): enough to keep 2-64 workers busy to the end, few enough that each batch
is a sizeable shard."""
MIN_BATCH = 64


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
    batch_samples: int | None = None
    """The most samples a batch (and so a shard) holds; None: :func:`batch_limit` picks."""

    def worker_config(self) -> WorkerConfig:
        same = ("seed", "prompt_set", "thresholds", "load", "max_attempts", "png_compress_level", "image_format",
                "jpeg_quality")
        return WorkerConfig(**{k: getattr(self, k) for k in same}, task_options=tuple(
            sorted((k, tuple(sorted(v.items()))) for k, v in self.task_options.items())))


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


def batch_limit(config: GenerateConfig) -> int:
    """The most samples a batch holds: ``batch_samples``, or num / BATCHES_PER_RUN (at least
    MIN_BATCH); never more than ``rows_per_shard``. Options alone decide it, never the
    worker count or the engine."""
    n = config.batch_samples or max(MIN_BATCH, -(-int(config.num) // BATCHES_PER_RUN))
    return max(1, min(int(n), int(config.rows_per_shard)))


def cut_batches(units: list, limit: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, end)`` ranges of units holding at most ``limit`` jobs (a unit
    larger than that goes alone). A source's units (consecutive in the plan) stay in one
    batch when they fit in one: a batch that cannot take the next source whole ends there.
    A source with more than ``limit`` jobs is cut into near-equal batches of its own, the
    last of which later sources may join. So a source is loaded by few workers, and
    consecutive batches of one source can go to one worker (:class:`.executors.ProcessPool`)."""
    out: list[tuple[int, int]] = []
    start = size = i = 0
    while i < len(units):
        j = i
        while j < len(units) and units[j][0].id == units[i][0].id:
            j += 1
        jobs = [len(u[1]) for u in units[i:j]]
        if size + sum(jobs) > limit and size:
            out.append((start, i))
            start, size = i, 0
        if sum(jobs) > limit:
            cap = -(-sum(jobs) // -(-sum(jobs) // limit))  # near-equal parts of at most limit
            for k, n in enumerate(jobs, start=i):
                if size and size + n > cap:
                    out.append((start, k))
                    start, size = k, 0
                size += n
        else:
            size += sum(jobs)
        i = j
    if start < len(units):
        out.append((start, len(units)))
    return out


def _remove_files(paths: Iterable[str]) -> None:
    for p in paths:
        try:
            if os.path.isfile(p) or os.path.islink(p):
                os.unlink(p)
        except OSError:
            pass


def resumable_rows(out_dir: str) -> int:
    """Rows a killed or interrupted run left durable in ``out_dir`` (0: nothing to resume)."""
    state = read_journal(out_dir)
    return state.rows if state.resumable else 0


class RunTally:
    """What a run decides from the outcomes of its units, taken in plan order: which sources
    are unusable, which slots are dealt again in the next round, and every counter of the
    manifest. The driver feeds it the batches' summaries in plan order, whichever executor
    ran them, so a run's samples and manifest do not depend on where the units ran.

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

    def process(self, res: UnitResult) -> None:
        """Take one unit's outcome (in plan order)."""
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


_OFF_PLAN = "the interrupted run's journal does not follow this run's plan; run again without --resume"


def _mismatch(then: dict, now: dict) -> str:
    diffs = [f"{k.replace('_', '-')} {then[k]} (now {v})" for k, v in now.items() if k in then and then[k] != v]
    what = ", ".join(diffs) if diffs else "other inputs or options"
    return (f"the interrupted run in this folder was made with {what}; run the same command "
            "again with --resume, or start afresh with --overwrite")


@dataclass
class _Prepared:
    """How a run starts: its batch size, fingerprint and journal header and, for a resumed
    run, the interrupted run's journal (up to its last checkpoint) and its images."""

    limit: int
    fp: str
    about: dict
    state: JournalState | None = None
    images: list[str] = field(default_factory=list)


def _prepare(out_dir: str, config: GenerateConfig, refs, resume: bool) -> _Prepared:
    """Read and check the interrupted run to resume (:class:`ResumeError` when it is another
    run's, or its files are not as it left them); touches nothing."""
    check_format(config.format)
    limit = batch_limit(config)
    about = {"num": config.num, "seed": config.seed, "format": config.format, "batch_samples": limit}
    prep = _Prepared(limit, fingerprint(config, refs, environment()["png"], limit), about)
    state = read_journal(out_dir) if resume else None
    if state is None or not state.resumable:
        return prep
    if state.fingerprint != prep.fp:
        raise ResumeError(_mismatch(state.about, about))
    prep.images = check_parts(out_dir, config.format, state)
    prep.state = state
    return prep


def _local_executor(workers: int, refs):
    from .executors import InProcess, ProcessPool

    if workers <= 1:
        return InProcess()
    warm_up(refs)  # the forked workers inherit it
    try:
        return ProcessPool(workers)
    finally:
        cool_down()  # this process renders nothing


def run_generation(
    refs: list[SourceRef],
    out_dir: str,
    config: GenerateConfig,
    progress: Callable[[int], None] | None = None,
    inputs: Iterable[str] = (),
    extra_skips: Counter | None = None,
    extra_skipped_files: dict[str, list[str]] | None = None,
    resume: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
) -> RunResult:
    """Generate ``config.num`` samples from ``refs`` into ``out_dir``; return the manifest.

    ``engine``: ``local`` (``config.workers`` processes; 1: this process) or ``ray`` (Ray
    Data tasks on the Ray at ``ray_address``, a running one in this process, or a local Ray
    with ``config.workers`` CPUs). The files are the same either way.

    The run keeps a journal in ``out_dir`` (:mod:`.journal`) while it works. With
    ``resume``, a run stopped earlier in ``out_dir`` with the same inputs and options (on
    either engine, with any worker count) is continued after its last checkpointed batch
    (:class:`ResumeError` when the journal belongs to another run); with nothing to resume
    it starts afresh. After a failure or an interrupt, checkpointed batches stay on disk
    for a later ``resume`` (:func:`resumable_rows` gives their rows); the rest of what the
    run wrote is removed."""
    out_dir = os.path.abspath(out_dir)
    inputs = list(inputs)
    refs, roots = portable_names(refs, inputs)
    prep = _prepare(out_dir, config, refs, resume)  # a resume that cannot be: before any worker starts
    args = (refs, out_dir, config, progress, inputs, extra_skips, extra_skipped_files, roots, prep)
    if engine == "ray":
        from .ray_engine import RayData, session

        with session(ray_address, config.workers) as ray, Interrupts(raise_at_once=True) as interrupts:
            return _drive(*args, lambda: RayData(ray, ray_address), interrupts)
    if engine != "local":
        raise ValueError(f"unknown engine {engine!r}")
    with Interrupts(raise_at_once=config.workers <= 1) as interrupts:
        return _drive(*args, lambda: _local_executor(config.workers, refs), interrupts)


def _sources(spec: BatchSpec) -> tuple[str, str]:
    """The first and the last source of a batch (which worker has them loaded)."""
    return spec.units[0][0].id, spec.units[-1][0].id


def _take(tally: RunTally, s: BatchSummary, units, batches) -> list[dict]:
    """Process one batch's unit results (in plan order); returns their journal lines."""
    start, end = batches[s.batch_no]
    if len(s.results) != end - start:
        raise RuntimeError(f"batch {s.batch_no} of round {s.round_no}: {len(s.results)} results for {end - start} units")
    before = tally.written
    recs = []
    for i, res in enumerate(s.results, start=start):
        tally.process(res)
        recs.append(unit_record(s.round_no, i, units[i][1], res, tally.written))
    rows = sum(n for _rel, n in s.parts)
    if tally.written - before != rows:
        raise RuntimeError(f"batch {s.batch_no} of round {s.round_no}: {rows} rows written "
                           f"for {tally.written - before} samples")
    return recs


def _drive(refs, out_dir, config, progress, inputs, extra_skips, extra_skipped_files, roots, prep: _Prepared,
           make_executor, interrupts: Interrupts) -> RunResult:
    t0 = time.perf_counter()
    fmt, state = config.format, prep.state
    made_dirs = [d for d in part_folders(fmt) if not os.path.isdir(os.path.join(out_dir, d))]
    for d in made_dirs:
        os.makedirs(os.path.join(out_dir, d))
    parts: list[tuple[str, int]] = list(state.parts) if state else []  # the dataset's, plan order
    durable = {rel for rel, _n in parts}
    drop_stale(out_dir, fmt, durable)
    journal = Journal(out_dir, prep.fp, prep.about, resume_from=state)
    tally = RunTally(refs, config, progress, extra_skips, extra_skipped_files)
    tally.source_roots = roots or {}
    replay = deque(state.replay if state else ())
    earlier = state.seconds if state else 0.0
    wrote: list[str] = []  # every part and image this run wrote, for the cleanup
    taken_images: list[str] = []  # images of the batches taken but not checkpointed
    executor, closing, finals = None, False, []
    env, wcfg, hosts = environment(), config.worker_config(), set()
    try:
        executor = make_executor()
        for round_no, units in tally.rounds():
            batches = cut_batches(units, prep.limit)
            first = 0
            while replay and first < len(batches):  # a resumed run: these batches are on disk
                for i in range(*batches[first]):
                    rec = replay.popleft() if replay else {}
                    if not matches(rec, round_no, i, *units[i]):
                        raise ResumeError(_OFF_PLAN)
                    tally.process(replayed_result(rec, units[i][0]))
                first += 1
                if not replay and tally.written != state.rows:
                    raise ResumeError(_OFF_PLAN)
            specs = [BatchSpec(round_no, b, units[s:e], wcfg, fmt, out_dir, config.rows_per_shard, env)
                     for b, (s, e) in enumerate(batches) if b >= first]
            for summary in executor.map(run_batch, specs, interrupts.check, key=_sources):
                wrote += [rel for rel, _n in summary.parts] + summary.images
                taken_images = summary.images
                recs = _take(tally, summary, units, batches)
                hosts.add(summary.host)
                with interrupts.held():  # never a checkpoint whose parts the cleanup takes for stale
                    journal.batch(recs, [round_no, summary.batch_no], summary.parts, tally.written,
                                  earlier + time.perf_counter() - t0)
                    parts += summary.parts
                    durable.update(rel for rel, _n in summary.parts)
                    taken_images = []
                interrupts.check()
        if replay:
            raise ResumeError(_OFF_PLAN)
        staged = stage_finals(out_dir, fmt, parts, lambda fn, a: executor.map(fn, a, interrupts.check),
                              interrupts.check)
        executor.close()
        interrupts.check()
        # from here on a Ctrl-C waits until the files are in place, then takes them away
        # again: never a shard under its final name without its manifest
        with interrupts.held():
            closing = True
            journal.close()
            os.unlink(journal.path)
            finals = [os.path.join(out_dir, f) for f in staged.files]
            files = put_finals(out_dir, staged)
            options = {"engine": executor.name, "workers": executor.workers, "batch_samples": prep.limit}
            timing = {"resumed_at_row": state.rows} if state else {}
            if executor.name == "ray":
                options["ray_address"] = executor.address
                timing["ray_nodes"] = len(hosts)
            manifest = tally.manifest(out_dir, files, inputs, earlier + time.perf_counter() - t0,
                                      options=options, timing=timing)
            finals.append(os.path.join(out_dir, "manifest.json"))
            atomic_write_json(finals[-1], manifest)
        interrupts.check()
    except BaseException as exc:
        # no second Ctrl-C may cut the cleanup short; every step below is bounded in time.
        # The workers stop first: nothing of ours is written behind the cleanup's back.
        with interrupts.held():
            if executor is not None:
                executor.terminate()
            journal.close()
            keep = (not closing and not isinstance(exc, (StrictModeError, ResumeError))
                    and resumable_rows(out_dir) > 0)
            if keep:  # the checkpointed batches and the journal stay for --resume
                _remove_files(os.path.join(out_dir, p) for p in taken_images)
                drop_stale(out_dir, fmt, durable)
            else:
                _remove_files(os.path.join(out_dir, p) for p in [*wrote, *durable, *prep.images])
                _remove_files([*finals, journal.path])
                drop_stale(out_dir, fmt, set())
                for d in reversed(made_dirs):
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(out_dir, d))
        raise
    return RunResult(manifest=manifest, files=files)
