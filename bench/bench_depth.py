#!/usr/bin/env python
"""Per-sample cost and per-worker peak memory of the depth tasks (``depth``, ``position``)
on the real RGB-D fixtures, against a decode + depth-read + encode floor.

A benchmark, not a test. Sources (``../shared/fixtures/spatial-ssrl-samples/``):

    megadepth  RGB-D_img1.jpg (1600x1064 JPEG) + RGB-D_depth1.h5 (float32, gzip-9 chunks)
    diode      RGB-D_img3.png (1024x768 PNG) + RGB-D_depth3.npy + RGB-D_depth_mask3.npy

Tasks: ``depth/3-regions`` (the paper's variant) and ``position/auto`` (the default).
Everything is timed through ``spatial_ssrl.engine.worker.run_unit``, i.e. exactly what one
worker does with one unit of work:

    load_source_item (RGB decode + depth read + validity / NaN fill)  ->  is_near_uniform
    per job: generate_sample (make_params [depth analysis on the first job], check, render)
             ->  encode_sample (JPEG q95 by default for these tasks: ``image_encoding``)

Two ways of dealing the work:

    cold   a one-job unit: the source is loaded (and its depth analysed) for this sample
           alone -- the worst case, a source that gives one sample.
    x8     a unit of 8 jobs on the same source (the engine's MAX_JOBS_PER_UNIT when a
           source gives several samples), total / 8.

FLOOR of one sample: decoding the RGB file with the decoder the loader uses (the exact fast
decoders of ``sources/fast_decode.py`` when installed, else Pillow's ``load``), reading the
depth file with nothing else (the fast chunk reader of ``sources/hdf5_chunks.py`` /
``np.load`` of depth and mask) and encoding this sample's output image(s) with the same
encoder and settings. For x8 the floor is (decode + read) / 8 + encode. ``ratio`` = median
time / median floor. ``fl.pl`` is the same floor read the plain way (Pillow ``load`` + h5py
``ds[()]``), to show what the fast readers save.

Breakdown (median seconds per sample; steps are EXCLUSIVE, nested calls are subtracted):

    rgb      sources.rgbd.load_item (RGB decode + conversion + contiguous copy)
    d.read   sources.rgbd.read_depth_file (h5 / npy read, format's 0 / mask validity)
    d.prep   the rest of load_source_item (finite, negatives, validity checks, NaN fill)
    analyse  tasks.depth._analyse (percentiles, block / window min-max, candidates);
             once per loaded item, cached for the other jobs of a unit
    p+chk    make_params + check (every attempt) + is_near_uniform, analysis excluded
    render   render (markers drawn on a copy of the RGB)
    encode   encode_sample
    other    the rest of run_unit (rng, ids, meta, answer)

Memory: every configuration (fixture x task x cold / x8, plus one ``mixed`` worker doing
all of them) runs in a FRESH interpreter (``subprocess``: like a spawned worker) that
imports what a worker imports, records its RSS ("base": imports only; "+h5py": after the
lazily imported h5py too), then generates ``--mem-samples`` samples and reports its peak
RSS: ``VmHWM`` from /proc/self/status, with ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
beside it. The two agree for these children because they are started first, from a
small parent: Linux carries a parent's peak into ``ru_maxrss`` of a child across
fork + exec, which would hide any child smaller than the parent. MiB throughout. Note the
engine's ``multiprocessing`` pool forks on Linux, so a real worker also maps its parent's
pages (shared copy-on-write, counted in its RSS).

Targets (issue 3): <= 0.04 s per sample, <= 300 MiB peak per worker. Public script:
Position.py ~8.4 s / sample, Depth.py ~0.6 s / sample.

Usage::

    python bench/bench_depth.py                    # ~1 minute
    python bench/bench_depth.py --reps 21 --json /tmp/bench_depth.json
    python bench/bench_depth.py --no-mem           # timings only
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from _timing import StepTimer, floor_decode, floor_decode_pillow, med

perf = time.perf_counter
MIB = 1024.0  # ru_maxrss is in KiB on Linux

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "fixtures", "spatial-ssrl-samples"))
FIXTURES = {
    # name: (rgb, depth, mask, depth_format)
    "megadepth": ("RGB-D_img1.jpg", "RGB-D_depth1.h5", None, "megadepth"),
    "diode": ("RGB-D_img3.png", "RGB-D_depth3.npy", "RGB-D_depth_mask3.npy", "diode"),
}
TASKS = (("depth", "3-regions"), ("position", "auto"))
MODES = ("cold", "x8")
UNIT = 8
PUBLIC_S = {"depth": 0.6, "position": 8.4}
TARGET_S = 0.04
TARGET_MIB = 300.0
STEPS = ("rgb", "d_read", "d_prep", "analyse", "p_chk", "render", "encode", "other")
STEP_HEAD = {"rgb": "rgb", "d_read": "d.read", "d_prep": "d.prep", "analyse": "analyse",
             "p_chk": "p+chk", "render": "render", "encode": "encode", "other": "other"}


def _rss_now_mib() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except OSError:
        return float("nan")


def _peak_mib() -> float:
    """This process's peak RSS: VmHWM (the high-water mark of its own address space).

    ``ru_maxrss`` is reported next to it but is not used as the peak: Linux carries the
    parent's peak into a child across fork/vfork + exec, so in a child started from a big
    process ``ru_maxrss`` can never fall below the parent's peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return _ru_maxrss_mib()


def _ru_maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MIB


def make_ref(name: str):
    from spatial_ssrl.sources import SourceRef

    rgb, depth, mask, fmt = FIXTURES[name]
    return SourceRef(
        id=f"fixture/{rgb}", path=os.path.join(FIXTURE_DIR, rgb), kind="rgbd",
        depth=os.path.join(FIXTURE_DIR, depth), mask=os.path.join(FIXTURE_DIR, mask) if mask else None,
        depth_format=fmt,
    )


def jobs_for(task: str, variant: str, mode: str, first_k: int):
    from spatial_ssrl.engine.worker import Job

    n = 1 if mode == "cold" else UNIT
    return [Job(task, variant, first_k + i) for i in range(n)]


# --------------------------------------------------------------------------------------
# Memory: one fresh interpreter per configuration
# --------------------------------------------------------------------------------------
def child_main(spec_json: str) -> int:
    """Runs in a fresh interpreter: imports, baseline RSS, N samples, peak RSS -> stdout."""
    spec = json.loads(spec_json)
    rss0 = _rss_now_mib()
    import spatial_ssrl.engine.worker as worker  # what a worker imports
    from spatial_ssrl.engine.worker import WorkerConfig

    gc.collect()
    base, base_now = _peak_mib(), _rss_now_mib()
    import h5py  # noqa: F401  (imported lazily by the MegaDepth reader)

    base_h5, base_h5_now = _peak_mib(), _rss_now_mib()
    cfg = WorkerConfig(seed=spec["seed"])
    plan = spec["plan"]  # [[fixture, task, variant, mode], ...] cycled until n samples
    made, failed, k, i = 0, 0, 0, 0
    refs = {}
    t0 = perf()
    while made + failed < spec["n"]:
        fixture, task, variant, mode = plan[i % len(plan)]
        i += 1
        ref = refs.get(fixture) or refs.setdefault(fixture, make_ref(fixture))
        jobs = jobs_for(task, variant, mode, k)
        k += len(jobs)
        res = worker.run_unit((ref, jobs, cfg))
        for r in res.results:
            made += r.sample is not None
            failed += r.sample is None
        if res.skip_reason or res.depth_skip_reason:
            failed += len(jobs)
    elapsed = perf() - t0
    print(json.dumps({
        "start_rss_mib": rss0, "base_peak_mib": base, "base_rss_mib": base_now,
        "base_h5py_peak_mib": base_h5, "base_h5py_rss_mib": base_h5_now,
        "peak_mib": _peak_mib(), "ru_maxrss_mib": _ru_maxrss_mib(), "end_rss_mib": _rss_now_mib(),
        "samples": made, "failed": failed, "units": i, "elapsed_s": elapsed,
    }))
    return 0


def run_memory(configs: list[tuple[str, list]], n: int, seed: int, jobs: int) -> dict[str, dict]:
    def one(item):
        label, plan = item
        spec = json.dumps({"plan": plan, "n": n, "seed": seed})
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--_child", spec],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            return label, {"error": (p.stderr or p.stdout).strip()[-2000:]}
        return label, json.loads(p.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        return dict(ex.map(one, configs))


# --------------------------------------------------------------------------------------
# Instrumentation (this process only): exclusive step times per run_unit call
# --------------------------------------------------------------------------------------
class Acc(StepTimer):
    """Per-call step times plus what the encode wrapper saw of each sample."""

    def reset(self) -> None:
        super().reset()
        self.images: list = []
        self.encodings: list[str] = []
        self.modes: list[str] = []


ACC = Acc(STEPS)


def install_instrumentation() -> None:
    import spatial_ssrl.engine.worker as worker
    import spatial_ssrl.sources.rgbd as rgbd
    import spatial_ssrl.tasks.depth as depth_mod

    rgbd.load_item = ACC.wrap(rgbd.load_item, "rgb")
    rgbd.read_depth_file = ACC.wrap(rgbd.read_depth_file, "d_read")
    worker.load_source_item = ACC.wrap(worker.load_source_item, "d_prep")
    depth_mod._analyse = ACC.wrap(depth_mod._analyse, "analyse")  # looked up by analyse_depth
    worker.is_near_uniform = ACC.wrap(worker.is_near_uniform, "p_chk")
    timed_encode = ACC.wrap(worker.encode_sample, "encode")

    def encode_sample(sample, compress_level, encoding="png", jpeg_quality=95):
        ACC.images.append(sample.images)
        ACC.encodings.append(encoding)
        ACC.modes.append(str(sample.meta.get("params", {}).get("mode", "-")))
        return timed_encode(sample, compress_level, encoding, jpeg_quality)

    worker.encode_sample = encode_sample


def instrument_task(name: str, variant: str, cfg) -> None:
    import spatial_ssrl.engine.worker as worker

    ACC.wrap_task(worker._task(name, variant, cfg), "p_chk", "render")


# --------------------------------------------------------------------------------------
# Floor
# --------------------------------------------------------------------------------------
def floor_depth_read(fixture: str, plain: bool = False) -> float:
    """Seconds to read the raw depth (and mask) arrays and nothing else: MegaDepth through
    the fast chunk reader (``plain``: h5py's ``ds[()]``), DIODE with ``np.load``."""
    import numpy as np

    _, depth, mask, fmt = FIXTURES[fixture]
    t0 = perf()
    if fmt == "megadepth":
        import h5py

        from spatial_ssrl.sources.hdf5_chunks import read_dataset

        with h5py.File(os.path.join(FIXTURE_DIR, depth), "r") as fh:
            if plain or read_dataset(fh["depth"]) is None:
                fh["depth"][()]
    else:
        np.load(os.path.join(FIXTURE_DIR, depth))
        if mask:
            np.load(os.path.join(FIXTURE_DIR, mask))
    return perf() - t0


def floor_encode(images_per_sample: list[list], encodings: list[str], cfg) -> float:
    from spatial_ssrl.writers.encoded import encode_jpeg, encode_png

    t0 = perf()
    for images, enc in zip(images_per_sample, encodings):
        for a in images:
            if enc == "jpeg":
                encode_jpeg(a, cfg.jpeg_quality)
            else:
                encode_png(a, cfg.png_compress_level)
    return perf() - t0


# --------------------------------------------------------------------------------------
# One timed unit
# --------------------------------------------------------------------------------------
def measure(fixture: str, ref, task: str, variant: str, mode: str, cfg, k0: int, floor_first: bool) -> dict | None:
    import spatial_ssrl.engine.worker as worker

    instrument_task(task, variant, cfg)
    jobs = jobs_for(task, variant, mode, k0)
    n = len(jobs)
    fl_in = None
    if floor_first:
        fl_in = floor_decode(ref.path) + floor_depth_read(fixture)
        fl_plain = floor_decode_pillow(ref.path) + floor_depth_read(fixture, plain=True)
    ACC.reset()
    t0 = perf()
    res = worker.run_unit((ref, jobs, cfg))
    total = perf() - t0
    made = sum(r.sample is not None for r in res.results)
    if res.skip_reason or res.depth_skip_reason or made == 0:
        return None
    if fl_in is None:
        fl_in = floor_decode(ref.path) + floor_depth_read(fixture)
        fl_plain = floor_decode_pillow(ref.path) + floor_depth_read(fixture, plain=True)
    fl_enc = floor_encode(ACC.images, ACC.encodings, cfg)
    steps = {k: v / made for k, v in ACC.t.items()}
    steps["other"] = max(0.0, total / made - sum(v for s, v in steps.items() if s != "other"))
    return {
        "per_sample": total / made,
        "floor": fl_in / n + fl_enc / made,
        "floor_in": fl_in / n,
        "floor_encode": fl_enc / made,
        "floor_plain": fl_plain / n + fl_enc / made,
        "steps": steps,
        "made": made,
        "jobs": n,
        "attempts": sum(sum(r.rejections.values()) for r in res.results) + made,
        "encoding": ACC.encodings[0],
        "mode": ACC.modes[0],
        "out_bytes": statistics.fmean(len(b) for r in res.results if r.sample for b in r.sample.images),
    }


def summarize(recs: list[dict]) -> dict:
    mt, mf = med([r["per_sample"] for r in recs]), med([r["floor"] for r in recs])
    return {
        "n_units": len(recs),
        "n_samples": sum(r["made"] for r in recs),
        "median_s": mt,
        "min_s": min((r["per_sample"] for r in recs), default=float("nan")),
        "median_floor_s": mf,
        "median_floor_in_s": med([r["floor_in"] for r in recs]),
        "median_floor_encode_s": med([r["floor_encode"] for r in recs]),
        "median_floor_plain_s": med([r["floor_plain"] for r in recs]),
        "ratio": mt / mf if mf else float("nan"),
        "steps_median_s": {s: med([r["steps"][s] for r in recs]) for s in STEPS},
        "mean_attempts_per_sample": statistics.fmean(r["attempts"] / r["made"] for r in recs) if recs else float("nan"),
        "encoding": recs[0]["encoding"] if recs else None,
        "position_mode": recs[0]["mode"] if recs else None,
        "mean_out_bytes": statistics.fmean(r["out_bytes"] for r in recs) if recs else float("nan"),
    }


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=15,
                   help="timed units per (fixture, task, cold|x8); x8 units give 8 samples each (default 15)")
    p.add_argument("--warmup", type=int, default=1, help="untimed units per cell first (default 1)")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--mem-samples", type=int, default=24,
                   help="samples generated by each memory subprocess (default 24)")
    p.add_argument("--mem-jobs", type=int, default=2, help="memory subprocesses run at once (default 2)")
    p.add_argument("--no-mem", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--json", metavar="PATH", help="write all figures as JSON here")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._child:
        return child_main(args._child)

    t_all = perf()
    missing = [os.path.join(FIXTURE_DIR, f) for spec in FIXTURES.values() for f in spec[:3]
               if f and not os.path.isfile(os.path.join(FIXTURE_DIR, f))]
    if missing:
        print("fixtures absent, nothing to measure:\n  " + "\n  ".join(missing))
        return 1

    # ---- memory first: the children must be started from a small process (see _peak_mib)
    cells = [(f, t, v, m) for f in FIXTURES for t, v in TASKS for m in MODES]
    mem: dict[str, dict] = {}
    elapsed_mem = 0.0
    if not args.no_mem:
        configs = [(f"{f} {t}/{v} {m}", [[f, t, v, m]]) for f, t, v, m in cells]
        configs.append(("mixed (all of the above)", [list(c) for c in cells]))
        t1 = perf()
        mem = run_memory(configs, args.mem_samples, args.seed, args.mem_jobs)
        elapsed_mem = perf() - t1

    import numpy as np
    import PIL
    from PIL import Image

    import spatial_ssrl.engine.worker as worker
    from spatial_ssrl.engine.worker import WorkerConfig

    try:
        import h5py

        h5v = h5py.__version__
    except ImportError:
        h5v = "absent"
    cfg0 = WorkerConfig(seed=args.seed)
    refs = {name: make_ref(name) for name in FIXTURES}
    for name, ref in refs.items():
        with Image.open(ref.path) as im:
            desc = f"{im.size[0]}x{im.size[1]} {im.mode} {im.format}"
        print(f"  source {name:10s} {os.path.basename(ref.path):16s} {desc:22s} depth {os.path.basename(ref.depth)}"
              + (f" + {os.path.basename(ref.mask)}" if ref.mask else ""))
    print(f"tasks: {', '.join(f'{a}/{b}' for a, b in TASKS)}; reps={args.reps} units per cell, warmup={args.warmup}; "
          f"image_format={cfg0.image_format}, jpeg q={cfg0.jpeg_quality}; python {platform.python_version()}, "
          f"numpy {np.__version__}, Pillow {PIL.__version__}, h5py {h5v}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    from spatial_ssrl.sources.fast_decode import backends
    from spatial_ssrl.sources.hdf5_chunks import inflate_backend

    dec = backends()
    print(f"decoders: JPEG {dec['JPEG']}, PNG {dec['PNG']}, h5 chunks inflated with {inflate_backend()}")

    install_instrumentation()
    for w in range(args.warmup):
        cfg = WorkerConfig(seed=args.seed - 1 - w)
        for f, t, v, m in cells:
            instrument_task(t, v, cfg)
            worker.run_unit((refs[f], jobs_for(t, v, m, 0), cfg))

    recs: dict[tuple, list[dict]] = defaultdict(list)
    failures: dict[tuple, int] = defaultdict(int)
    gc.collect()
    t0 = perf()
    # repetition-outer spreads drift over every cell; the floor is read before the unit on
    # even repetitions and after it on odd ones so neither side always gets the warmer cache
    for rep in range(args.reps):
        cfg = WorkerConfig(seed=args.seed + rep)
        for f, t, v, m in cells:
            r = measure(f, refs[f], t, v, m, cfg, k0=0, floor_first=(rep % 2 == 0))
            if r is None:
                failures[(f, t, v, m)] += 1
            else:
                recs[(f, t, v, m)].append(r)
    elapsed_timing = perf() - t0

    rows = []
    for f, t, v, m in cells:
        s = summarize(recs[(f, t, v, m)])
        s.update(fixture=f, task=t, variant=v, mode=m, failures=failures.get((f, t, v, m), 0),
                 speedup_vs_public=PUBLIC_S[t] / s["median_s"] if s["median_s"] == s["median_s"] else float("nan"))
        rows.append(s)

    print()
    print("s/smp = median seconds per sample; floor = RGB decode + depth read (/8 for x8) + encode of the output,\n"
          "with the fastest readers the loader has (fast decoders, fast h5 chunk reader); fl.pl = the same floor\n"
          "read the plain way (Pillow load + h5py ds[()]); steps = median EXCLUSIVE seconds per sample;\n"
          "pub x = public script time / median.")
    head = (f"{'fixture':10s} {'task/variant':19s} {'deal':4s} {'s/smp':>7s} {'floor':>7s} {'ratio':>5s} {'pub x':>6s} | "
            + " ".join(f"{STEP_HEAD[s]:>7s}" for s in STEPS) + f" | {'fl.in':>6s} {'fl.enc':>6s} {'fl.pl':>6s} {'n':>4s}")
    print(head)
    print("-" * len(head))
    last = None
    for s in rows:
        if last is not None and s["fixture"] != last:
            print()
        last = s["fixture"]
        flag = "" if s["median_s"] <= TARGET_S else " !"
        print(f"{s['fixture']:10s} {s['task'] + '/' + s['variant']:19s} {s['mode']:4s} {s['median_s']:7.4f} "
              f"{s['median_floor_s']:7.4f} {s['ratio']:5.2f} {s['speedup_vs_public']:6.0f} | "
              + " ".join(f"{s['steps_median_s'][k]:7.4f}" for k in STEPS)
              + f" | {s['median_floor_in_s']:6.4f} {s['median_floor_encode_s']:6.4f} {s['median_floor_plain_s']:6.4f} {s['n_samples']:4d}"
              + (f"  ({s['failures']} units without sample)" if s["failures"] else "") + flag)
    modes = {(s["fixture"], s["task"]): s["position_mode"] for s in rows if s["task"] == "position"}
    print("position mode used: " + ", ".join(f"{f}: {m}" for (f, _), m in modes.items())
          + f"; output encoding: {rows[0]['encoding']} (mean {rows[0]['mean_out_bytes'] / 1e3:.0f} kB on {rows[0]['fixture']})")

    # ---- memory table ---------------------------------------------------------------
    if mem:
        print()
        print(f"peak memory per worker: a fresh interpreter per configuration, {args.mem_samples} samples each; MiB.\n"
              "base = peak RSS (VmHWM) after importing the worker module; +h5py = after importing h5py too;\n"
              "peak = VmHWM after the samples; delta = peak - (+h5py); end = RSS at the end;\n"
              "maxrss = ru_maxrss (same peak unless inherited from the launching process).")
        mh = (f"{'configuration':34s} {'base':>6s} {'+h5py':>6s} {'peak':>6s} {'delta':>6s} {'end':>6s} "
              f"{'maxrss':>6s} {'smp':>4s}")
        print(mh)
        print("-" * len(mh))
        for label, r in mem.items():
            if "error" in r:
                print(f"{label:34s} ERROR {r['error'][-300:]}")
                continue
            flag = "" if r["peak_mib"] <= TARGET_MIB else " !"
            print(f"{label:34s} {r['base_peak_mib']:6.1f} {r['base_h5py_peak_mib']:6.1f} {r['peak_mib']:6.1f} "
                  f"{r['peak_mib'] - r['base_h5py_peak_mib']:6.1f} {r['end_rss_mib']:6.1f} {r['ru_maxrss_mib']:6.1f} "
                  f"{r['samples']:4d}" + (f" ({r['failed']} failed)" if r["failed"] else "") + flag)

    # ---- summary --------------------------------------------------------------------
    print()
    summary = {}
    for t, v in TASKS:
        mine = [s for s in rows if s["task"] == t and s["n_units"]]
        by_mode = {}
        for m in MODES:
            ms = [s for s in mine if s["mode"] == m]
            worst = max(ms, key=lambda s: s["median_s"])
            by_mode[m] = {"worst_s": worst["median_s"], "worst_fixture": worst["fixture"],
                          "worst_ratio": max(s["ratio"] for s in ms),
                          "min_speedup_vs_public": min(s["speedup_vs_public"] for s in ms),
                          "pass": all(s["median_s"] <= TARGET_S for s in ms)}
        peaks = [r["peak_mib"] for label, r in mem.items() if "error" not in r and f" {t}/" in label]
        summary[t] = {**by_mode, "worst_peak_mib": max(peaks) if peaks else None,
                      "mem_pass": (max(peaks) <= TARGET_MIB) if peaks else None}
        c, a = by_mode["cold"], by_mode["x8"]
        print(f"SUMMARY {t:8s} cold worst {c['worst_s']:.4f} s ({c['worst_fixture']}, ratio {c['worst_ratio']:.2f}, "
              f">= {c['min_speedup_vs_public']:.0f}x public) {'PASS' if c['pass'] else 'FAIL'}; "
              f"x8 worst {a['worst_s']:.4f} s ({a['worst_fixture']}, ratio {a['worst_ratio']:.2f}, "
              f">= {a['min_speedup_vs_public']:.0f}x public) {'PASS' if a['pass'] else 'FAIL'}"
              + (f"; peak {max(peaks):.0f} MiB {'PASS' if summary[t]['mem_pass'] else 'FAIL'}" if peaks else "")
              + f"  [targets <= {TARGET_S} s, <= {TARGET_MIB:.0f} MiB]")
    cold_floor = {}
    for s in rows:
        if s["mode"] == "cold" and s["n_units"]:
            cold_floor[s["fixture"]] = max(cold_floor.get(s["fixture"], 0.0), s["median_floor_s"])
    print("SUMMARY cold floor alone (fastest readers, no work of ours): "
          + ", ".join(f"{f} {v:.4f} s{' (above the target)' if v > TARGET_S else ''}" for f, v in cold_floor.items()))
    if "mixed (all of the above)" in mem and "error" not in mem["mixed (all of the above)"]:
        print(f"SUMMARY mixed worker peak {mem['mixed (all of the above)']['peak_mib']:.0f} MiB")
    total = perf() - t_all
    print(f"timing {elapsed_timing:.1f} s, memory {elapsed_mem:.1f} s, total {total:.1f} s; "
          f"load average now {os.getloadavg()[0]:.2f} (other processes on these {os.cpu_count()} CPUs inflate the times)")

    if args.json:
        out = {
            "config": {"reps": args.reps, "warmup": args.warmup, "seed": args.seed, "unit": UNIT,
                       "mem_samples": args.mem_samples, "image_format": cfg0.image_format,
                       "jpeg_quality": cfg0.jpeg_quality, "target_s": TARGET_S, "target_mib": TARGET_MIB,
                       "public_s": PUBLIC_S},
            "environment": {"python": platform.python_version(), "numpy": np.__version__,
                            "pillow": PIL.__version__, "h5py": h5v, "cpus": os.cpu_count(),
                            "platform": platform.platform()},
            "fixtures": {k: [os.path.join(FIXTURE_DIR, f) if f else None for f in v[:3]] for k, v in FIXTURES.items()},
            "rows": rows,
            "memory": mem,
            "summary": summary,
            "elapsed_s": total,
            "loadavg_end": os.getloadavg()[0],
        }
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
