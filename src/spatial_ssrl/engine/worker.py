"""What a worker does: :func:`run_unit` loads a source once, generates the samples planned
for it and encodes their images; :func:`run_batch` runs a batch of units and writes the
samples they gave as the batch's part (:mod:`..writers.parts`). Pure functions of their
arguments (plus per-process caches of task objects and loaded sources), so batches can run
in any process, on any machine, in any order."""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

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
    thresholds: AmbiguityThresholds = AmbiguityThresholds()  # noqa: RUF009 (frozen: shared safely)
    load: LoadOptions = LoadOptions()  # noqa: RUF009 (frozen: shared safely)
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


def run_unit(args: tuple[SourceRef, list[Job], WorkerConfig], sink=None) -> UnitResult:
    """Load the unit's source and make its samples. With ``sink``, each encoded sample is
    handed to ``sink`` as soon as it is made and its result holds the sample's id."""
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
            del sample  # its pixels go before the next sample is drawn
            if sink is not None:  # written at once: a unit's samples are never all held
                sink(encoded)
                encoded = encoded.id
        out.results.append(JobResult(job=job, sample=encoded, rejections=rejections))
    return out


@dataclass
class BatchSpec:
    """A batch of consecutive units of one round, and where and how its part is written."""

    round_no: int
    batch_no: int
    units: list[tuple[SourceRef, list[Job]]]
    cfg: WorkerConfig
    fmt: str
    out_dir: str
    rows_per_shard: int
    env: dict
    """The driver's :func:`..writers.parts.environment`: a worker with another refuses."""

    @property
    def stem(self) -> str:
        return f"r{self.round_no:02d}-{self.batch_no:06d}"


@dataclass
class BatchSummary:
    """What comes back from a batch: the units' results with each sample replaced by its
    id (its row is in the part), the part files with their rows, the images written."""

    round_no: int
    batch_no: int
    results: list[UnitResult]
    parts: list[tuple[str, int]]
    images: list[str]
    host: str = ""
    seconds: float = 0.0


class EnvironmentMismatch(RuntimeError):
    """A worker's library versions differ from the driver's: its parts would differ."""


_ENV: dict | None = None


def _check_environment(wanted: dict) -> None:
    global _ENV
    from ..writers.parts import environment

    if _ENV is None:
        _ENV = environment()
    diff = [f"{k} {_ENV.get(k)} (driver: {v})" for k, v in wanted.items() if _ENV.get(k) != v]
    if diff:
        import socket

        raise EnvironmentMismatch(f"the worker on {socket.gethostname()} has {', '.join(diff)}: its files "
                                  "would differ from the driver's; install the same versions on every node")


def run_batch(spec: BatchSpec) -> BatchSummary:
    """Run a batch's units and write the samples they gave as the batch's part. Every file
    of the part is synced and in place before this returns."""
    import socket
    import time

    from ..writers.parts import PartWriter

    t0 = time.perf_counter()
    _check_environment(spec.env)
    writer = PartWriter(spec.fmt, spec.out_dir, spec.stem, spec.rows_per_shard)
    results = []
    try:
        for ref, jobs in spec.units:
            results.append(run_unit((ref, jobs, spec.cfg), sink=writer.add))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return BatchSummary(spec.round_no, spec.batch_no, results, writer.parts, writer.images,
                        socket.gethostname(), time.perf_counter() - t0)
