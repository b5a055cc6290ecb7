"""Online generation: how fast the feeder makes samples, and how long GRPO waits for them.

    python bench/bench_online.py [--samples 300] [--steps 12] [--tasks SPEC]

1. Feeder throughput: an :class:`~spatial_ssrl.training.online.OnlineFeeder` on the built-in
   inputs and the paper's task mix, read as fast as possible, with 1 and 2 generator
   processes (and 0: in the reading thread). Samples per second after the first 20 samples
   (process start-up and imports excluded; printed apart).
2. Waiting inside training: a real GRPOTrainer on a tiny Qwen2.5-VL model (CPU) fed by the
   feeder with 2 generator processes. For each step, the seconds the trainer spent blocked on
   the next sample; printed as the share of the wall time of the steps after the first (the
   first step also waits for the workers to start), and over the whole run.
   Target: under 5 % with 2 generator processes on this machine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time


def throughput(refs, mix, workers: int, n: int, warm: int = 20) -> tuple[float, float]:
    from spatial_ssrl.training.online import OnlineFeeder

    with OnlineFeeder(refs, mix, seed=0, plan_size=n + warm, workers=workers) as feeder:
        t0 = time.perf_counter()
        it = feeder.rows()
        for _ in range(warm):
            next(it)
        t1 = time.perf_counter()
        for _ in range(n):
            next(it)
        t2 = time.perf_counter()
    return n / (t2 - t1), t1 - t0


def training_wait(refs, mix, steps: int, workers: int, tmp: str) -> dict:
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from spatial_ssrl.models import load_model, load_processor
    from spatial_ssrl.tiny import build_tiny_model
    from spatial_ssrl.training.callbacks import CurriculumCallback
    from spatial_ssrl.training.curriculum import CurriculumSettings, GroupRecorder
    from spatial_ssrl.training.online import OnlineFeeder, curriculum_for
    from spatial_ssrl.training.rewards import make_rewards

    base = os.path.join(tmp, "tiny")
    build_tiny_model("qwen2_5_vl", base)
    recorder = GroupRecorder()
    cur = curriculum_for(mix, CurriculumSettings(mode="adaptive"))
    funcs, weights = make_rewards(sorted({e.task for e in mix}), recorder=recorder)
    feeder = OnlineFeeder(refs, mix, seed=0, curriculum=cur, workers=workers)
    feeder.start()  # as `ssrl train grpo --online` does: the workers start while the model loads
    marks: list[tuple[float, float]] = []

    class Marks(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            marks.append((time.perf_counter(), feeder.wait_seconds))

    args = GRPOConfig(output_dir=os.path.join(tmp, "run"), max_steps=steps, per_device_train_batch_size=4,
                      num_generations=2, max_completion_length=16, learning_rate=1e-5, logging_steps=1,
                      save_strategy="no", report_to="none", use_cpu=True, shuffle_dataset=False,
                      remove_unused_columns=False, seed=0, reward_weights=weights)
    cb = CurriculumCallback(cur, recorder, feeder)
    trainer = GRPOTrainer(model=load_model(base, "float32"), reward_funcs=funcs, args=args,
                          train_dataset=feeder.dataset(), callbacks=[cb, Marks()],
                          processing_class=load_processor(base, 3136, 12544, padding_side="left"))
    cb.trainer = trainer
    t0 = time.perf_counter()
    try:
        trainer.train()
    finally:
        feeder.close()
    (t1, w1), (tn, wn) = marks[0], marks[-1]
    steps_s = [b[0] - a[0] for a, b in itertools.pairwise(marks)]
    return {
        "steps": len(marks),
        "median_step_s": statistics.median(steps_s) if steps_s else float("nan"),
        "first_step_wait_s": w1,
        "wait_share_after_first": (wn - w1) / (tn - t1) if tn > t1 else float("nan"),
        "wait_share_total": wn / (tn - t0),
        "samples": feeder.produced,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=300, help="samples per throughput measurement")
    ap.add_argument("--steps", type=int, default=12, help="GRPO steps of the waiting measurement")
    ap.add_argument("--tasks", default=None, help="task mix (ssrl generate --tasks); default: the paper's")
    ap.add_argument("--skip-training", action="store_true")
    a = ap.parse_args()

    from spatial_ssrl.engine import parse_mix
    from spatial_ssrl.sources import default_refs

    refs = default_refs()
    mix = parse_mix(a.tasks, with_depth=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; mix: {a.tasks or 'paper'}")
    print(f"{'generators':>10}  {'samples/s':>9}  {'start-up s':>10}")
    rates = {}
    for w in (0, 1, 2):
        rate, startup = throughput(refs, mix, w, a.samples)
        rates[w] = rate
        print(f"{w:>10}  {rate:9.1f}  {startup:10.2f}")
    print(f"speed-up 1 -> 2 generators: {rates[2] / rates[1]:.2f}x")
    if a.skip_training:
        return 0
    with tempfile.TemporaryDirectory(prefix="ssrl-bench-online-") as tmp:
        r = training_wait(refs, mix, a.steps, 2, tmp)
    print(f"GRPO on a tiny model, 2 generators, {r['steps']} steps ({r['samples']} samples drawn): "
          f"median step {r['median_step_s']:.3f} s; first step waited {r['first_step_wait_s']:.2f} s")
    print(f"SUMMARY wait share after the first step {100 * r['wait_share_after_first']:.2f} % "
          f"(target < 5 %); over the whole run {100 * r['wait_share_total']:.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
