"""Step times of the training loop on tiny models (CPU by default, the GPU when there is one).

    python bench/bench_train.py [--steps 6] [--arch qwen2_5_vl qwen3_vl] [--bf16]

For each architecture: SFT (LoRA) seconds per step on cold-start data, and GRPO seconds per
step (TRL's own ``step_time``) on 1-image prompts (flip) and 5-image prompts (crop), medians
over the steps after the first. Everything runs in a temporary folder through the same code
as ``ssrl train``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time


def _median_step_time(run_dir: str, key: str = "step_time") -> tuple[float, int]:
    times = []
    with open(os.path.join(run_dir, "train_log.jsonl"), encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if isinstance(row.get(key), (int, float)):
                times.append(float(row[key]))
    times = times[1:] or times  # the first step pays for warm-up
    return statistics.median(times), len(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--arch", nargs="+", default=["qwen2_5_vl", "qwen3_vl"])
    ap.add_argument("--bf16", action="store_true", help="train in bfloat16 (a GPU with bf16)")
    args = ap.parse_args()

    import torch

    from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
    from spatial_ssrl.sources import default_refs
    from spatial_ssrl.tiny import build_tiny_model
    from spatial_ssrl.training.cli import resolve_config
    from spatial_ssrl.training.coldstart import make_coldstart
    from spatial_ssrl.training.config import build_config
    from spatial_ssrl.training.grpo import run_grpo
    from spatial_ssrl.training.sft import run_sft
    from spatial_ssrl.training.split import split_dataset

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    dtype = ["--set", "torch_dtype=bfloat16", "--set", "bf16=true"] if args.bf16 else []
    sets = [s for s in dtype if s != "--set"]
    print(f"device: {device}; torch {torch.__version__}; {args.steps} steps per run")
    with tempfile.TemporaryDirectory(prefix="ssrl-bench-train-") as tmp:
        data = os.path.join(tmp, "data")
        run_generation(default_refs(), data, GenerateConfig(num=60, seed=0, mix=parse_mix(None), workers=1))
        split_dataset(data, test_fraction=0.1, coldstart_fraction=0.3)
        cold = os.path.join(tmp, "cold")
        make_coldstart(data, cold, num=24)
        rows = []
        for arch in args.arch:
            base = build_tiny_model(arch, os.path.join(tmp, f"tiny-{arch}"))
            out = os.path.join(tmp, f"sft-{arch}")
            cfg = build_config("sft", resolve_config("tiny_sft"), {"model": base, "data": cold, "output": out,
                                                                    "max_steps": args.steps},
                               ["save_steps=1000", *sets])
            t0 = time.perf_counter()
            outcome = run_sft(cfg)
            wall = time.perf_counter() - t0
            with open(os.path.join(out, "train_log.jsonl"), encoding="utf-8") as fh:
                runtime = [json.loads(x).get("train_runtime") for x in fh]
            runtime = next(r for r in runtime if r is not None)
            rows.append((arch, "sft (LoRA)", runtime / outcome.steps, outcome.steps, wall))
            for task, label in (("flip", "grpo, 1 image"), ("crop", "grpo, 5 images")):
                out = os.path.join(tmp, f"grpo-{arch}-{task}")
                cfg = build_config("grpo", resolve_config("tiny_grpo"),
                                   {"model": base, "data": data, "output": out, "max_steps": args.steps},
                                   [f"tasks=[{task}]", "validation_steps=0", "save_steps=1000", *sets])
                t0 = time.perf_counter()
                run_grpo(cfg, no_coldstart=True)
                wall = time.perf_counter() - t0
                median, n = _median_step_time(out)
                rows.append((arch, label, median, n, wall))
    print(f"{'arch':<11} {'run':<15} {'s/step (median)':>16} {'steps':>6} {'run wall s':>11}")
    for arch, label, s, n, wall in rows:
        print(f"{arch:<11} {label:<15} {s:>16.3f} {n:>6} {wall:>11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
