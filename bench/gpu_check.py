"""The GPU check: what only a machine with an accelerator can show, in one run of a few minutes.

    python bench/gpu_check.py [--steps 4] [--out DIR]

On the first GPU lent to the project (see docs/gpu.md for how it gets our dependencies):
tiny SFT and GRPO in bf16 on the GPU (seconds per step), a GRPO run stopped and resumed (the
resumed model equals the checkpoint tensor for tensor: learning rate 0 and a checkpoint shifted
by +0.5, as tests/test_resume_exact.py does on the CPU), ``ssrl infer`` and ``ssrl eval
--backend transformers`` with ``device_map`` auto. Each step runs the real command in a child
process; the figures go to stdout and, with ``--out``, to ``DIR/gpu_check.json``. Exit status 0
only when every step passed. Runs on the CPU too (slowly, without bf16), which is how it is
tested before a GPU is at hand.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _cli(*args, timeout: float = 600) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "spatial_ssrl.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, check=False, env={**os.environ, "TQDM_DISABLE": "1"})
    return done, time.perf_counter() - t0


def _step_times(run_dir: str, key: str) -> list[float]:
    out = []
    with open(os.path.join(run_dir, "train_log.jsonl"), encoding="utf-8") as fh:
        for line in fh:
            value = json.loads(line).get(key)
            if isinstance(value, (int, float)):
                out.append(float(value))
    return out


def _photos(folder: str, n: int = 12) -> None:
    """Photos with structure enough for the tasks' ambiguity checks: gradients and boxes."""
    import numpy as np
    from PIL import Image

    os.makedirs(folder)
    rng = np.random.default_rng(0)
    for k in range(n):
        yy, xx = np.mgrid[0:240, 0:320]
        img = np.stack([xx * 255 // 320, yy * 255 // 240, (xx + yy + 20 * k) % 256], -1).astype(np.uint8)
        for _ in range(14):
            y, x = rng.integers(0, 200, 2)
            img[y:y + rng.integers(8, 40), x:x + rng.integers(8, 60)] = rng.integers(0, 256, 3)
        Image.fromarray(img).save(os.path.join(folder, f"photo{k}.png"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--out", default=None, help="folder for gpu_check.json")
    args = ap.parse_args()

    import torch

    gpu = torch.cuda.is_available()
    bf16 = gpu and torch.cuda.is_bf16_supported()
    device = torch.cuda.get_device_name(0) if gpu else "CPU"
    print(f"device: {device}; torch {torch.__version__}; bf16: {bf16}", flush=True)
    dtype = ["--set", "torch_dtype=bfloat16", "--set", "bf16=true"] if bf16 else []
    results: dict = {"device": device, "torch": torch.__version__, "bf16": bf16, "steps": {}}
    ok = True

    def record(name: str, done: subprocess.CompletedProcess, seconds: float, **figures) -> bool:
        nonlocal ok
        passed = done.returncode == 0 and figures.pop("passed", True)
        ok &= passed
        results["steps"][name] = {"passed": passed, "seconds": round(seconds, 2), **figures}
        shown = ", ".join(f"{k} {v}" for k, v in figures.items())
        print(f"{name:<14} {'ok ' if passed else 'FAILED'} {seconds:7.1f} s  {shown}", flush=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
        return passed

    with tempfile.TemporaryDirectory(prefix="ssrl-gpu-check-") as tmp:
        data, cold, tiny, photos = (os.path.join(tmp, n) for n in ("data", "cold", "tiny", "photos"))
        _photos(photos)  # made here: the built-in photos need scikit-image, which the machine may lack
        for step in (("generate", "-i", photos, "--out", data, "--num", 40, "--tasks", "flip,crop", "--workers", 2,
                      "-q"),
                     ("split", data, "--test-fraction", 0.2, "--coldstart-fraction", 0.3),
                     ("coldstart", "--data", data, "--out", cold, "--num", 8),
                     ("tiny-model", "--arch", "qwen2_5_vl", "--out", tiny)):
            done, seconds = _cli(*step)
            if not record(step[0], done, seconds):
                return 1

        sft = os.path.join(tmp, "sft")
        done, seconds = _cli("train", "sft", "-c", "tiny_sft", "--model", tiny, "--data", cold, "--output", sft,
                             "--max-steps", args.steps, *dtype)
        runtime = [t for t in _step_times(sft, "train_runtime")] if done.returncode == 0 else []
        record("train sft", done, seconds, s_per_step=round(runtime[0] / args.steps, 3) if runtime else None)

        grpo = os.path.join(tmp, "grpo")
        done, seconds = _cli("train", "grpo", "-c", "tiny_grpo", "--model", sft, "--data", data, "--output", grpo,
                             "--max-steps", args.steps, "--set", "validation_steps=0", *dtype)
        times = _step_times(grpo, "step_time")[1:] if done.returncode == 0 else []
        record("train grpo", done, seconds, s_per_step_median=round(statistics.median(times), 3) if times else None)

        # resume: stop at step 2, shift checkpoint-2 by +0.5, resume with lr 0: the final
        # weights must be the shifted checkpoint's
        part = os.path.join(tmp, "part")
        flags = ["--set", "validation_steps=0", "--set", "learning_rate=0", *dtype]
        first, s1 = _cli("train", "grpo", "-c", "tiny_grpo", "--model", sft, "--data", data, "--output", part,
                         "--max-steps", 2, *flags)
        equal = None
        if first.returncode == 0:
            from safetensors.torch import load_file, save_file

            from spatial_ssrl.training.runs import mark_checkpoint

            ck = os.path.join(part, "checkpoint-2")
            shifted = {k: v + 0.5 for k, v in load_file(os.path.join(ck, "model.safetensors")).items()}
            save_file(shifted, os.path.join(ck, "model.safetensors"), metadata={"format": "pt"})
            mark_checkpoint(ck, 2)
            done, s2 = _cli("train", "grpo", "-c", "tiny_grpo", "--model", sft, "--data", data, "--output", part,
                            "--max-steps", 3, "--resume", *flags)
            if done.returncode == 0:
                final = load_file(os.path.join(part, "checkpoint-3", "model.safetensors"))
                equal = sum(torch.equal(final[k].float(), shifted[k].float()) for k in shifted)
            record("resume", done, s1 + s2, tensors_equal=f"{equal}/{len(shifted)}", passed=equal == len(shifted))
        else:
            record("resume", first, s1)

        image = os.path.join(tmp, "photo.png")
        from PIL import Image

        Image.new("RGB", (320, 240), (120, 60, 30)).save(image)
        done, seconds = _cli("infer", "--model", grpo, "--image", image, "--question", "Which side is darker?",
                             "--max-new-tokens", 16)
        record("infer", done, seconds)

        ev = os.path.join(tmp, "eval")
        done, seconds = _cli("eval", "dataset", "--model", grpo, "--data", data, "--out", ev, "--backend", "transformers",
                             "--max-new-tokens", 32, "-q")
        figures = {}
        if done.returncode == 0:
            with open(os.path.join(ev, "results.json"), encoding="utf-8") as fh:
                res = json.load(fh)
            figures = {"items": res.get("items"), "accuracy": res.get("accuracy")}
        record("eval", done, seconds, **figures)

    results["passed"] = ok
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "gpu_check.json"), "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    print("all steps passed" if ok else "some steps FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
