"""Check a training recipe against the framework's own code: our export read by the framework's
dataset class and scored by its reward manager with our reward adapter.

    python bench/check_recipes.py --easyr1 ~/src/EasyR1 --python ~/venvs/easyr1/bin/python

The framework runs in its own environment (``--python``: EasyR1 pins transformers < 5; a venv
with ``--system-site-packages`` plus ``transformers==4.57.*``, ``huggingface_hub<1``,
``datasets<4.1``, ``codetiming``, ``qwen-vl-utils`` and ``tensordict`` serves), its source
checked out by hand (``--easyr1``; put on that interpreter's path). This environment makes the
data: a small easyr1 export with ``ssrl generate`` and a tiny Qwen2.5-VL (with the real
processor's pixel bounds), whose folder loads under transformers 4.57 as well. Then, in the framework's
environment:

- ``verl.utils.dataset.RLHFDataset`` reads the export with the recipe's settings
  (``prompt_key=problem``, ``format_prompt``, the paper's pixel bounds) and the
  ``data.max_prompt_length`` that ``ssrl stats`` gives: every row must load (none filtered), each
  row's image placeholders expand to the processor's image tokens; with EasyR1's default 2048
  the rows it would drop are counted;
- ``verl.workers.reward.function.AutoRewardManager`` loads ``spatial_ssrl/reward/easyr1.py`` by
  path (reading its ``REWARD_TYPE``) and scores a right and a wrong boxed answer per row: 1.0
  and the format reward alone.

Prints what it checked and exits 1 on any difference. verl and LLaMA-Factory are not covered by
this script yet (docs/training.md records what was checked by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

MIN_PIXELS, MAX_PIXELS = 262144, 4194304

EASYR1_DRIVER = r"""
import json, sys, torch
from transformers import AutoProcessor
from verl.utils.dataset import RLHFDataset, process_image
from verl.workers.reward.config import RewardConfig
from verl.workers.reward.function import AutoRewardManager
from verl.protocol import DataProto
import numpy as np

args = json.loads(sys.argv[1])
processor = AutoProcessor.from_pretrained(args["model"])
tok = processor.tokenizer
common = dict(tokenizer=tok, processor=processor, prompt_key="problem", answer_key="answer", image_key="images",
              format_prompt=args["format_prompt"], min_pixels=args["min_pixels"], max_pixels=args["max_pixels"],
              filter_overlong_prompts=True, filter_overlong_prompts_workers=1)
ds = RLHFDataset(data_path=args["data"] + "@train", max_prompt_length=args["max_prompt_length"], **common)
default = RLHFDataset(data_path=args["data"] + "@train", max_prompt_length=2048, **common)
tight = RLHFDataset(data_path=args["data"] + "@train", max_prompt_length=args["max_prompt_length"] - 1, **common)
image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
rows = []
for i in range(len(ds)):
    item = ds[i]
    images = [process_image(im, args["min_pixels"], args["max_pixels"]) for im in item["multi_modal_data"]["images"]]
    grid = processor.image_processor(images=images, return_tensors="pt")["image_grid_thw"]
    expected = int(grid.prod(-1).sum()) // (processor.image_processor.merge_size ** 2)
    got = int((item["input_ids"] == image_id).sum())
    rows.append({"ground_truth": item["ground_truth"], "image_tokens": got, "expected_image_tokens": expected})
config = RewardConfig(reward_function=args["reward"] + ":compute_score")
config.post_init()
manager = AutoRewardManager(config, tok)
texts, truths = [], []
for r in rows:
    texts += [f"<think>looked</think> \\boxed{{{r['ground_truth']}}}", "<think>looked</think> \\boxed{Z}"]
    truths += [r["ground_truth"], r["ground_truth"]]
ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
width = max(len(x) for x in ids)
responses = torch.full((len(ids), width), tok.pad_token_id or 0, dtype=torch.long)
mask = torch.zeros((len(ids), width), dtype=torch.long)
for k, x in enumerate(ids):
    responses[k, :len(x)] = torch.tensor(x)
    mask[k, :len(x)] = 1
data = DataProto.from_dict(tensors={"responses": responses, "response_mask": mask},
                           non_tensors={"ground_truth": np.array(truths, dtype=object)})
rewards, metrics = manager.compute_reward(data)
print(json.dumps({"rows": len(ds), "rows_at_default_2048": len(default), "rows_one_below": len(tight), "items": rows,
                  "reward_type": manager.reward_type, "overall": rewards.sum(-1).tolist()}))
"""


def _ssrl(*args) -> None:
    subprocess.run([sys.executable, "-m", "spatial_ssrl.cli", *map(str, args)], check=True,
                   env={**os.environ, "TQDM_DISABLE": "1"})


def check_easyr1(root: str, python: str, tmp: str) -> list[str]:
    problems = []
    data, tiny = os.path.join(tmp, "easyr1-data"), os.path.join(tmp, "tiny")
    _ssrl("generate", "--out", data, "--format", "easyr1", "--num", 24, "--seed", 3, "--workers", 1, "-q")
    from spatial_ssrl.tiny import build_tiny_model

    # the pixel bounds of the real Qwen2.5-VL processor (3,136 to 12,845,056), so that, as with
    # the real model, EasyR1's own resizing to the recipe's bounds is what decides the image size
    build_tiny_model("qwen2_5_vl", tiny, min_pixels=3136, max_pixels=12845056)
    stats = subprocess.run([sys.executable, "-m", "spatial_ssrl.cli", "stats", "--data", data, "--model", tiny,
                            "--min-pixels", str(MIN_PIXELS), "--max-pixels", str(MAX_PIXELS), "--json"],
                           capture_output=True, text=True, check=True)
    setting = json.loads(stats.stdout)["settings"]["EasyR1"]
    import spatial_ssrl.reward.easyr1 as adapter

    args = {"model": tiny, "data": os.path.join(data, "data"), "format_prompt": os.path.join(data, "format_prompt.jinja"),
            "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS, "max_prompt_length": setting["value"],
            "reward": adapter.__file__}
    done = subprocess.run([python, "-c", EASYR1_DRIVER, json.dumps(args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": root}, check=False, timeout=900)
    if done.returncode != 0:
        return [f"EasyR1 driver failed: {done.stderr[-3000:]}"]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    if got["rows"] != 24:
        problems.append(f"EasyR1 kept {got['rows']} of 24 rows at data.max_prompt_length={setting['value']}")
    if got["rows_one_below"] >= 24:
        problems.append(f"data.max_prompt_length={setting['value'] - 1} keeps every row: ssrl stats is not tight")
    dropped = 24 - got["rows_at_default_2048"]
    if dropped != setting["rows_over_default"]:
        problems.append(f"at 2048 EasyR1 drops {dropped} rows, ssrl stats said {setting['rows_over_default']}")
    for item in got["items"]:
        if item["image_tokens"] is not None and item["image_tokens"] != item["expected_image_tokens"]:
            problems.append(f"image tokens {item['image_tokens']} != {item['expected_image_tokens']}")
    if got["reward_type"] != "batch":
        problems.append(f"EasyR1 read REWARD_TYPE {got['reward_type']!r}")
    right, wrong = got["overall"][0::2], got["overall"][1::2]
    if any(abs(v - 1.0) > 1e-6 for v in right) or any(abs(v - 0.1) > 1e-6 for v in wrong):
        problems.append(f"rewards: right {right}, wrong {wrong}")
    print(f"EasyR1 ({root}): {got['rows']}/24 rows at data.max_prompt_length={setting['value']}; "
          f"{24 - got['rows_one_below']} dropped at one token less; {dropped} dropped at the default 2048 (ssrl stats: {setting['rows_over_default']}); "
          f"reward type {got['reward_type']}; right answers {min(right):.2f}-{max(right):.2f}, "
          f"wrong {min(wrong):.2f}-{max(wrong):.2f}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--easyr1", required=True, help="an EasyR1 checkout")
    ap.add_argument("--python", required=True, help="the interpreter of EasyR1's environment")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssrl-recipes-") as tmp:
        problems = check_easyr1(os.path.abspath(args.easyr1), args.python, tmp)
    for p in problems:
        print("PROBLEM:", p)
    print("recipes agree with the framework code" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
