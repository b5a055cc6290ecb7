"""What one worker does with one unit of work: load a source once, generate the samples
planned for it, encode their images. A pure function of its arguments (plus a per-process
cache of task objects), so units can run in any process in any order."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..checks import AmbiguityThresholds, is_near_uniform
from ..seeding import sample_rng, short_hash
from ..sources import LoadOptions, SourceRef, SourceSkip, load_item, load_source_item
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


def run_unit(args: tuple[SourceRef, list[Job], WorkerConfig]) -> UnitResult:
    ref, jobs, cfg = args
    out = UnitResult(ref=ref, jobs=jobs)
    # an RGB-D file whose unit holds only depth-free samples needs no depth read
    rgb_only = ref.kind == "rgbd" and not any(_needs_depth(j.task) for j in jobs)
    try:
        item = load_item(ref, cfg.load) if rgb_only else load_source_item(ref, cfg.load)
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
            item = load_item(ref, cfg.load)
        except SourceSkip as skip2:
            out.skip_reason, out.skip_detail = skip2.reason, skip2.detail
            out.jobs = jobs
            return out
    out.conversions = {k: v for k, v in item.info.items() if k in ("conversion", "exif_orientation", "resize")}
    if is_near_uniform(item.rgb, cfg.thresholds):
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
