#!/usr/bin/env python
"""Per-sample generation cost of the depth-free tasks, against a decode+encode floor.

A benchmark, not a test. For every task/variant of shuffle, flip and crop it measures
what one worker does per sample when a source yields one sample -- a call of
``spatial_ssrl.engine.worker.run_unit`` with a single job:

    load_item (decode + conversion)  ->  is_near_uniform
    generate_sample (make_params, check, render)  ->  encode_sample (PNG)

and compares it with the FLOOR for the same sample: decoding the same source file
with the fastest exact decoder installed (``_timing.floor_decode``), nothing else, plus
PNG-encoding that sample's output images with the fastest exact encoder installed
(``_timing.floor_encode``: fpng where it installs, else Pillow at the same compress level).
``SPATIAL_SSRL_PNG_ENCODER=pillow`` times the run itself with Pillow (the floor stays on
the fastest encoder).

Reported per (source, task/variant): median seconds/sample, median floor seconds,
ratio = median time / median floor (target: <= 1.5), two paired versions of the ratio
(``med(t/f)``: median of per-sample time/floor; ``set``: sum over images of the median time
over the sum of the median floor -- on the nine built-in photos of very different sizes the
pooled medians can fall on different images, which makes ``ratio`` jumpy), and a breakdown
of the median time of each step divided by the median floor:

    decode   load_item (file decode + mode conversion + resize + contiguous copy)
    p+chk    make_params + check (every attempt, rejected ones included) + is_near_uniform
    render   render
    encode   encode_sample (PNG-encode of the output images)
    other    the rest of run_unit / generate_sample (rng, ids, meta, answer)

Steps are timed by wrapping the functions ``run_unit`` calls (in this process only;
nothing on disk is changed), so the total is the real ``run_unit`` wall time. Medians of
the steps need not add up exactly to the median total.

Usage::

    python bench/bench_generate.py                 # default reps
    python bench/bench_generate.py --reps 5 --json /tmp/bench.json
    python bench/bench_generate.py --only shuffle/1x4 --per-image
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict

import numpy as np
import PIL
from PIL import Image

from _timing import StepTimer, fastest_png_encoder, floor_decode, floor_encode, med

import spatial_ssrl.engine.worker as worker
from spatial_ssrl.engine.worker import Job, WorkerConfig
from spatial_ssrl.sources import SourceRef, builtin_photos
from spatial_ssrl.writers import encoded

perf = time.perf_counter

TASK_VARIANTS = (
    ("shuffle", "2x2"),
    ("shuffle", "2x2-masked"),
    ("shuffle", "1x3"),
    ("shuffle", "1x4"),
    ("shuffle", "3x1"),
    ("shuffle", "4x1"),
    ("flip", "2x2"),
    ("crop", "4-options"),
)
STEPS = ("decode", "params_check", "render", "encode", "other")
STEP_HEAD = {"decode": "decode", "params_check": "p+chk", "render": "render", "encode": "encode", "other": "other"}
TARGET = 1.5
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO_ROOT, "..", "shared", "fixtures", "spatial-ssrl-samples", "RGB_img.png")


# --------------------------------------------------------------------------------------
# Instrumentation: wrap what run_unit calls so one timed call also yields a breakdown.
# --------------------------------------------------------------------------------------
class Acc(StepTimer):
    """Per-sample step times plus the output images the wrappers saw."""

    def reset(self) -> None:
        super().reset()
        self.images: list[np.ndarray] | None = None


ACC = Acc(STEPS)


def install_instrumentation() -> None:
    """Patch the names ``run_unit`` looks up in its module (this process only)."""
    worker.load_source_item = ACC.wrap(worker.load_source_item, "decode")
    worker.is_near_uniform = ACC.wrap(worker.is_near_uniform, "params_check")
    timed_encode = ACC.wrap(worker.encode_sample, "encode")

    def encode_sample(sample, *args, **kwargs):
        ACC.images = sample.images
        return timed_encode(sample, *args, **kwargs)

    worker.encode_sample = encode_sample


def instrument_task(name: str, variant: str, cfg: WorkerConfig) -> None:
    """Wrap the (cached) task object's steps; run_unit gets the same object from the cache."""
    ACC.wrap_task(worker._task(name, variant, cfg), "params_check", "render")


# --------------------------------------------------------------------------------------
# One measurement
# --------------------------------------------------------------------------------------
def measure(ref: SourceRef, name: str, variant: str, cfg: WorkerConfig, floor_first: bool) -> dict | None:
    """Time one sample the way a worker makes it, and its floor. None if no sample came out."""
    instrument_task(name, variant, cfg)
    fd = floor_decode(ref.path) if floor_first else None
    ACC.reset()
    t0 = perf()
    res = worker.run_unit((ref, [Job(name, variant, 0)], cfg))
    total = perf() - t0
    if res.skip_reason or not res.results or res.results[0].sample is None or ACC.images is None:
        return None
    if fd is None:
        fd = floor_decode(ref.path)
    fe = floor_encode(ACC.images, cfg.png_compress_level)
    steps = dict(ACC.t)
    steps["other"] = max(0.0, total - sum(v for k, v in steps.items() if k != "other"))
    return {
        "total": total,
        "floor": fd + fe,
        "floor_decode": fd,
        "floor_encode": fe,
        "steps": steps,
        "image": os.path.basename(ref.path),
        "n_images": len(ACC.images),
        "out_pixels": int(sum(a.shape[0] * a.shape[1] for a in ACC.images)),
        "attempts": int(sum(res.results[0].rejections.values())) + 1,
    }


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------
def summarize(recs: list[dict]) -> dict:
    mt, mf = med([r["total"] for r in recs]), med([r["floor"] for r in recs])
    by_image: dict[str, list[dict]] = defaultdict(list)
    for r in recs:
        by_image[r["image"]].append(r)
    set_t = sum(med([r["total"] for r in rs]) for rs in by_image.values())
    set_f = sum(med([r["floor"] for r in rs]) for rs in by_image.values())
    return {
        "n": len(recs),
        "median_s": mt,
        "median_floor_s": mf,
        "ratio": mt / mf if mf else float("nan"),
        "median_of_ratios": med([r["total"] / r["floor"] for r in recs]),
        # Pooled medians over images of very different sizes can land on different images
        # for time and floor; these two paired figures do not have that problem.
        "set_ratio": set_t / set_f if set_f else float("nan"),
        "median_floor_decode_s": med([r["floor_decode"] for r in recs]),
        "median_floor_encode_s": med([r["floor_encode"] for r in recs]),
        "steps_median_s": {s: med([r["steps"][s] for r in recs]) for s in STEPS},
        "steps_over_floor": {s: med([r["steps"][s] for r in recs]) / mf if mf else float("nan") for s in STEPS},
        "mean_attempts": statistics.fmean([r["attempts"] for r in recs]) if recs else float("nan"),
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per (built-in image, task/variant), each with its own seed (default 5)")
    p.add_argument("--fixture-reps", type=int, default=None, help="timed repetitions per task/variant for the fixture image (default 2.5 x --reps: it is one image against nine)")
    p.add_argument("--warmup", type=int, default=1, help="untimed run_unit passes over every (image, task/variant) first (default 1)")
    p.add_argument("--seed", type=int, default=1000, help="seed of the first repetition; repetition r uses seed+r")
    p.add_argument("--only", action="append", default=None, metavar="TASK[/VARIANT]", help="restrict to these tasks/variants (repeatable)")
    p.add_argument("--sources", default="builtin,fixture", help="comma list of builtin, fixture (default both)")
    p.add_argument("--per-image", action="store_true", help="also print the per-image ratio for every task/variant")
    p.add_argument("--json", metavar="PATH", help="write all figures as JSON here")
    return p.parse_args(argv)


def fixture_reps_of(args) -> int:
    return max(args.reps, round(2.5 * args.reps)) if args.fixture_reps is None else args.fixture_reps


def selected_tasks(only) -> list[tuple[str, str]]:
    if not only:
        return list(TASK_VARIANTS)
    out = []
    for tv in TASK_VARIANTS:
        for o in only:
            name, _, variant = o.partition("/")
            if tv[0] == name and (not variant or tv[1] == variant):
                out.append(tv)
                break
    if not out:
        sys.exit(f"--only {only} matches none of {[f'{a}/{b}' for a, b in TASK_VARIANTS]}")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    tasks = selected_tasks(args.only)
    wanted = {s.strip() for s in args.sources.split(",") if s.strip()}
    sources: dict[str, list[SourceRef]] = {}
    notes = []
    if "builtin" in wanted:
        sources["builtin"] = builtin_photos()
    if "fixture" in wanted:
        if os.path.isfile(FIXTURE):
            sources["RGB_img.png"] = [SourceRef(id="fixture/RGB_img.png", path=os.path.normpath(FIXTURE))]
        else:
            notes.append(f"NOTE: fixture {os.path.normpath(FIXTURE)} is absent; skipping that source.")
    for n in notes:
        print(n)
    if not sources:
        print("nothing to measure")
        return 1

    install_instrumentation()
    cfg0 = WorkerConfig(seed=args.seed)
    for label, refs in sources.items():
        for ref in refs:
            with Image.open(ref.path) as im:
                desc = f"{im.size[0]}x{im.size[1]} {im.mode} {im.format}"
            print(f"  source {label:12s} {os.path.basename(ref.path):24s} {desc}")
    print(f"tasks: {', '.join(f'{a}/{b}' for a, b in tasks)}; reps={args.reps} (fixture {fixture_reps_of(args)}), warmup={args.warmup}, "
          f"png compress_level={cfg0.png_compress_level}, png encoder {encoded.DEFAULT_PNG_ENCODER} "
          f"(floor: {fastest_png_encoder()}); python {platform.python_version()}, "
          f"numpy {np.__version__}, Pillow {PIL.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")

    pairs = [(label, ref) for label, refs in sources.items() for ref in refs]
    t_start = perf()
    for w in range(args.warmup):  # fonts per label size, allocator, code paths
        cfg = WorkerConfig(seed=args.seed - 1 - w)
        for name, variant in tasks:
            for _, ref in pairs:
                instrument_task(name, variant, cfg)
                worker.run_unit((ref, [Job(name, variant, 0)], cfg))
    fixture_reps = fixture_reps_of(args)
    n_reps = {label: (args.reps if label == "builtin" else fixture_reps) for label in sources}

    recs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    per_image: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    failures: dict[tuple[str, str], int] = defaultdict(int)
    gc.collect()
    # Repetition-outer order spreads slow drift (thermal, other load) over every cell; the
    # floor decode runs before our sample on even repetitions and after it on odd ones so
    # neither side always gets the warmer file cache.
    for rep in range(max(n_reps.values())):
        cfg = WorkerConfig(seed=args.seed + rep)
        for name, variant in tasks:
            key_t = f"{name}/{variant}"
            for label, ref in pairs:
                if rep >= n_reps[label]:
                    continue
                r = measure(ref, name, variant, cfg, floor_first=(rep % 2 == 0))
                if r is None:
                    failures[(label, key_t)] += 1
                    continue
                recs[(label, key_t)].append(r)
                per_image[(label, key_t, os.path.basename(ref.path))].append(r)
    elapsed = perf() - t_start

    # ---- table ----------------------------------------------------------------------
    rows = []
    for label in sources:
        for name, variant in tasks:
            key_t = f"{name}/{variant}"
            s = summarize(recs[(label, key_t)])
            s.update(source=label, task=name, variant=variant, failures=failures.get((label, key_t), 0))
            rows.append(s)

    head = (f"{'source':12s} {'task/variant':20s} {'med s/smp':>10s} {'med floor':>10s} {'ratio':>6s} "
            f"{'med(t/f)':>8s} {'set':>5s} | " + " ".join(f"{STEP_HEAD[s]:>6s}" for s in STEPS)
            + f" | {'fl.dec':>6s} {'fl.enc':>6s} {'n':>4s}")
    print()
    print("ratio = median time / median floor (pooled over images and seeds); med(t/f) = median of per-sample\n"
          "time/floor; set = sum over images of median time / sum of median floor. Steps: median step time /\n"
          "median floor; fl.dec, fl.enc: median floor parts / median floor.")
    print(head)
    print("-" * len(head))
    last = None
    for s in rows:
        if last is not None and s["source"] != last:
            print()
        last = s["source"]
        flag = "" if s["ratio"] <= TARGET else " !"
        mf = s["median_floor_s"]
        print(f"{s['source']:12s} {s['task'] + '/' + s['variant']:20s} {s['median_s']:10.4f} {mf:10.4f} "
              f"{s['ratio']:6.2f} {s['median_of_ratios']:8.2f} {s['set_ratio']:5.2f} | "
              + " ".join(f"{s['steps_over_floor'][k]:6.2f}" for k in STEPS)
              + f" | {s['median_floor_decode_s'] / mf:6.2f} {s['median_floor_encode_s'] / mf:6.2f} {s['n']:4d}"
              + (f"  ({s['failures']} without sample)" if s["failures"] else "") + flag)

    print()
    summary = {}
    for name in dict.fromkeys(t for t, _ in tasks):
        mine = [s for s in rows if s["task"] == name and s["n"]]
        worst = max(mine, key=lambda s: s["ratio"])
        gmean = float(np.exp(np.mean([np.log(s["ratio"]) for s in mine])))
        ok = all(s["ratio"] <= TARGET for s in mine)
        worst_paired = max(max(s["median_of_ratios"], s["set_ratio"]) for s in mine)
        summary[name] = {"worst_ratio": worst["ratio"], "worst": f"{worst['variant']} on {worst['source']}",
                         "geomean_ratio": gmean, "worst_paired_ratio": worst_paired, "pass": ok}
        print(f"SUMMARY {name:8s} worst ratio {worst['ratio']:.2f} ({worst['variant']} on {worst['source']}), "
              f"geomean {gmean:.2f} over {len(mine)} cells, worst med(t/f)/set {worst_paired:.2f}; "
              f"target <= {TARGET}: {'PASS' if ok else 'FAIL'}")
    print(f"measured in {elapsed:.1f} s; load average now {os.getloadavg()[0]:.2f} "
          f"(other processes on these {os.cpu_count()} CPUs inflate and scatter the times)")

    if args.per_image:
        print()
        print("per image: median(time) / median(floor), and median time in ms")
        names = sorted({k[2] for k in per_image}, key=lambda n: [os.path.basename(r.path) for _, r in pairs].index(n))
        print(f"{'task/variant':20s} " + " ".join(f"{n[:14]:>14s}" for n in names))
        for name, variant in tasks:
            key_t = f"{name}/{variant}"
            cells = []
            for n in names:
                rs = next((v for (lab, kt, im), v in per_image.items() if kt == key_t and im == n), [])
                if rs:
                    t, f = med([r["total"] for r in rs]), med([r["floor"] for r in rs])
                    cells.append(f"{t / f:5.2f} {1e3 * t:7.1f}ms")
                else:
                    cells.append(f"{'-':>14s}")
            print(f"{key_t:20s} " + " ".join(f"{c:>14s}" for c in cells))

    if args.json:
        out = {
            "config": {"reps": args.reps, "fixture_reps": fixture_reps, "warmup": args.warmup, "seed": args.seed,
                       "png_compress_level": cfg0.png_compress_level, "target_ratio": TARGET,
                       "png_encoder": encoded.DEFAULT_PNG_ENCODER, "floor_png_encoder": fastest_png_encoder()},
            "environment": {"python": platform.python_version(), "numpy": np.__version__,
                            "pillow": PIL.__version__, "cpus": os.cpu_count(), "platform": platform.platform()},
            "sources": {label: [r.path for r in refs] for label, refs in sources.items()},
            "notes": notes,
            "rows": rows,
            "summary": summary,
            "per_image": [
                {"source": lab, "task_variant": kt, "image": im,
                 "median_s": med([r["total"] for r in rs]), "median_floor_s": med([r["floor"] for r in rs]),
                 "steps_median_s": {s: med([r["steps"][s] for r in rs]) for s in STEPS},
                 "n_images": rs[0]["n_images"], "out_pixels": rs[0]["out_pixels"], "n": len(rs)}
                for (lab, kt, im), rs in per_image.items()
            ],
            "elapsed_s": elapsed,
            "loadavg_end": os.getloadavg()[0],
        }
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
