#!/usr/bin/env python
"""Seconds per sample of the tasks added by issue 24, beside their floor.

A benchmark, not a test. For each (task, variant, source set) of ``CASES`` it times what a
worker does for one sample -- ``spatial_ssrl.engine.worker.run_unit`` with a single job and
the worker's source cache emptied first, so the source is loaded anew:

    load the source  ->  uniformity check  ->  generate_sample  ->  encode the images

and the FLOOR of the same sample: loading the same source the way the worker does
(``load_item`` / ``load_source_item``, depth included where the task needs it), producing
every other view the sample shows from its source (a procedural scene rendered from each of
the sample's camera poses with the render caches emptied, a stereo pair's second file decoded,
a video's frames decoded: the counterpart of decoding one photo) plus encoding the sample's own
output images the way the writer does (PNG at the run's level and encoder for lossless tasks,
JPEG at the run's quality otherwise), without the task. The ratio says what the task itself
adds; the aim is at most 2x.

Each sample is timed ``--reps`` times per source (a different sample number each time) after
a warm-up pass, with the worker's source cache and the procedural render caches emptied before
the sample and before its floor (a scene is rendered anew as a photo is decoded anew); the
figures are medians. Adding a task is one line in ``CASES``.

Usage::

    python bench/bench_new_tasks.py
    python bench/bench_new_tasks.py --reps 7 --only rotation --json /tmp/new_tasks.json
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
from PIL import Image

from spatial_ssrl.engine import worker
from spatial_ssrl.engine.worker import Job, WorkerConfig
from spatial_ssrl.sources import builtin_photos, load_item, load_source_item
from spatial_ssrl.sources.procedural import procedural_refs
from spatial_ssrl.tasks import get_task_class, make_task
from spatial_ssrl.writers.encoded import encode_jpeg, encode_png, image_encoding

perf = time.perf_counter
TARGET = 2.0

# Where each case draws its sources from (name -> a function giving SourceRefs).
def _stereo():
    from spatial_ssrl.sources.middlebury import builtin_rgbd

    return builtin_rgbd()


def _videos():
    """Two clips made here with PyAV (a built-in photo panned across a 640x360 frame, 90
    frames at 30 fps, H.264 and VP9 where the codecs exist); none without PyAV."""
    import tempfile

    try:
        import av
    except ImportError:
        return []
    from spatial_ssrl.sources.video import video_ref

    folder = tempfile.mkdtemp(prefix="bench-video-")
    with Image.open(max(builtin_photos(), key=lambda r: os.path.getsize(r.path)).path) as im:
        texture = np.asarray(im.convert("RGB").resize((1280, 360)))
    refs = []
    for name, codec in (("drift.mp4", "libx264"), ("drift.webm", "libvpx-vp9")):
        path = os.path.join(folder, name)
        try:
            with av.open(path, "w") as out:
                stream = out.add_stream(codec, rate=30)
                stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
                for i in range(90):
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:, 4 * i:4 * i + 640]), format="rgb24")
                    for packet in stream.encode(frame):
                        out.mux(packet)
                for packet in stream.encode():
                    out.mux(packet)
        except (av.error.FFmpegError, ValueError):  # the codec is not built into this PyAV
            continue
        refs.append(video_ref(path, name))
    return refs


SOURCES = {
    "photos": builtin_photos,  # the nine built-in photos, 300x451 to 1411x1411
    "procedural": lambda: procedural_refs(3, seed=0),  # built-in scenes with metric depth
    "stereo": _stereo,  # the Middlebury motorcycle pair shipped with scikit-image
    "video": _videos,  # clips written at start-up with PyAV
}

# One line per measured case: (task, variant, source set).
CASES = (
    ("rotation", "2-way", "photos"),
    ("rotation", "4-way", "photos"),
    ("rotation", "patch-2x2", "photos"),
    ("rotation", "patch-3x3", "photos"),
    ("counting", "few", "photos"),
    ("counting", "distractors", "photos"),
    ("counting", "many", "photos"),
    ("distance", "camera", "procedural"),
    ("distance", "pair-lateral", "procedural"),
    ("distance", "pair", "procedural"),
    ("distance", "pair-depth", "procedural"),
    ("distance", "pair", "stereo"),
    ("camera_motion", "single-large", "procedural"),
    ("camera_motion", "combined-small", "procedural"),
    ("camera_motion", "single-large", "stereo"),
    ("temporal", "4-frames", "procedural"),
    ("temporal", "6-frames-close", "procedural"),
    ("temporal", "4-frames", "video"),
    ("correspondence", "4-candidates-far", "procedural"),
    ("correspondence", "6-candidates-near", "stereo"),
)


def forget_renders() -> None:
    """Empty the render caches of the procedural scenes (and of temporal's camera paths), so a
    scene is rendered anew as a photo is decoded anew; textures stay, read once per process."""
    from spatial_ssrl.sources import procedural
    from spatial_ssrl.tasks import temporal

    with procedural._RENDER_CACHE_LOCK:
        procedural._RENDER_CACHE.clear()
        procedural._VIEW_CACHE.clear()
    with temporal._PATH_CACHE_LOCK:
        temporal._PATH_CACHE.clear()


def _decoded(encoded: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(bytes(encoded))) as im:
        return np.asarray(im.convert("RGB"))


def views_seconds(ref, item, params: dict) -> float:
    """Seconds to produce the views a sample shows beyond its source item, from the source:
    each non-default camera pose of a procedural scene rendered (caches emptied first), the
    other file of a stereo pair decoded, the drawn frames of a video decoded."""
    from spatial_ssrl.sources import procedural
    from spatial_ssrl.tasks.camera_motion import stereo_partner

    t0 = perf()
    poses = [procedural.Pose.from_dict(p) for p in params.get("poses") or []]
    if ref.kind == "procedural" and poses:
        seed = params.get("scene_seed", params.get("scene"))
        size = tuple(params.get("frame_size") or params.get("size") or (item.width, item.height))
        for pose in poses:
            if not (pose.is_default and size == (item.width, item.height)):  # that one is the item
                procedural.render_view(seed, size, pose)
    elif ref.kind == "video" and params.get("frames"):
        item.clip.frames(params["frames"], tuple(params["frame_size"]))
    elif ref.kind == "rgbd" and params.get("source") != "procedural":
        partner = stereo_partner(item.file or item.path)
        if partner is not None:
            with Image.open(partner) as im:
                np.asarray(im.convert("RGB"))
    return perf() - t0


def floor_seconds(ref, task: str, images: list[np.ndarray], params: dict, cfg: WorkerConfig) -> tuple[float, float]:
    """(load, encode) seconds: the source loaded as the worker loads it and the sample's other
    views produced (:func:`views_seconds`), the output images encoded as the writer encodes them."""
    needs_depth = bool(get_task_class(task).requires_depth)
    forget_renders()
    t0 = perf()
    if ref.kind == "rgbd" and not needs_depth:
        item = load_item(ref, cfg.load)
    else:
        item = load_source_item(ref, cfg.load)
    views_seconds(ref, item, params)  # counted in the load column
    t1 = perf()
    encoding = image_encoding(cfg.image_format, make_task(task).lossless_output)
    for a in images:
        if encoding == "png":
            encode_png(a, cfg.png_compress_level)
        else:
            encode_jpeg(a, cfg.jpeg_quality)
    return t1 - t0, perf() - t1


def one_sample(ref, task: str, variant: str, k: int, cfg: WorkerConfig) -> tuple[float, list[np.ndarray], dict] | None:
    """Seconds of run_unit for one job (source cache emptied first), the images it made and
    its params."""
    worker._ITEM_CACHE.clear()
    forget_renders()
    t0 = perf()
    res = worker.run_unit((ref, [Job(task, variant, k)], cfg))
    total = perf() - t0
    if res.skip_reason or not res.results or res.results[0].sample is None:
        return None
    sample = res.results[0].sample
    return total, [_decoded(b) for b in sample.images], sample.meta.get("params") or {}


def measure(case, refs, reps: int, cfg: WorkerConfig) -> dict:
    task, variant, _ = case
    totals, floors, loads, encodes, ratios = [], [], [], [], []
    missing = 0
    for rep in range(reps):
        for ref in refs:
            got = one_sample(ref, task, variant, rep, cfg)
            if got is None:
                missing += 1
                continue
            total, images, params = got
            load, enc = floor_seconds(ref, task, images, params, cfg)
            totals.append(total)
            floors.append(load + enc)
            loads.append(load)
            encodes.append(enc)
            ratios.append(total / (load + enc))
    med = statistics.median
    out = {"task": task, "variant": variant, "samples": len(totals), "no_sample": missing}
    if totals:
        out.update(median_s=med(totals), median_floor_s=med(floors), median_load_s=med(loads),
                   median_encode_s=med(encodes), ratio=med(totals) / med(floors), median_of_ratios=med(ratios))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5, help="samples timed per source and case (default 5)")
    p.add_argument("--only", action="append", metavar="TASK[/VARIANT]", help="restrict to these cases (repeatable)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    args = p.parse_args(argv)
    cases = [c for c in CASES if not args.only
             or any(c[0] == o.partition("/")[0] and (not o.partition("/")[2] or c[1] == o.partition("/")[2])
                    for o in args.only)]
    if not cases:
        sys.exit(f"--only {args.only} matches no case of {[f'{t}/{v}' for t, v, _ in CASES]}")
    cfg = WorkerConfig(seed=1000)
    refs = {name: SOURCES[name]() for name in {c[2] for c in cases}}
    print(f"reps={args.reps}; python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; target ratio <= {TARGET:g}")
    for case in cases:  # warm-up: fonts, allocator, code paths
        for ref in refs[case[2]]:
            one_sample(ref, case[0], case[1], 10_000, cfg)
    gc.collect()
    print(f"{'task/variant':<22}{'sources':<12}{'n':>4}{'s/sample':>10}{'floor s':>10}{'load':>8}{'encode':>8}"
          f"{'ratio':>7}{'med(t/f)':>9}")
    results = []
    for case in cases:
        r = measure(case, refs[case[2]], args.reps, cfg)
        r["sources"] = case[2]
        results.append(r)
        if not r["samples"]:
            print(f"{case[0] + '/' + case[1]:<22}{case[2]:<12}   0  (no sample came out)")
            continue
        flag = "" if r["ratio"] <= TARGET else "  over target"
        print(f"{case[0] + '/' + case[1]:<22}{case[2]:<12}{r['samples']:>4}{r['median_s']:>10.4f}"
              f"{r['median_floor_s']:>10.4f}{r['median_load_s']:>8.4f}{r['median_encode_s']:>8.4f}"
              f"{r['ratio']:>7.2f}{r['median_of_ratios']:>9.2f}{flag}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"reps": args.reps, "target": TARGET, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
