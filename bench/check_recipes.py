"""Check the training recipes against the frameworks' own code: our exports read by each
framework's dataset code and scored by its reward manager with our reward adapter.

    python bench/check_recipes.py --easyr1 ~/src/EasyR1 --easyr1-python ~/venvs/easyr1/bin/python \
        --verl ~/src/verl --verl-python ~/venvs/verl/bin/python \
        --llamafactory ~/src/LLaMA-Factory --llamafactory-python ~/venvs/llamafactory/bin/python

Any subset of the three may be given; each framework runs in its own environment (its
interpreter option) from a source checkout made by hand and put on that interpreter's path
(the checkout's ``src/`` for LLaMA-Factory). ``--python`` is the older spelling of
``--easyr1-python``. Environments that serve (a venv with ``--system-site-packages`` plus):

- EasyR1 (pins transformers < 5): ``transformers==4.57.*``, ``huggingface_hub<1``,
  ``datasets<4.1``, ``codetiming``, ``qwen-vl-utils``, ``tensordict``;
- verl (transformers < 5 as well): ``transformers==4.57.*``, ``huggingface_hub<1``,
  ``datasets<4.1``, ``codetiming``, ``omegaconf``, ``hydra-core``, ``cachetools``,
  ``tensordict>=0.8,<=0.10,!=0.9.0``, ``qwen-vl-utils``;
- LLaMA-Factory (the pins of its ``check_dependencies``): ``transformers==4.57.6``,
  ``huggingface_hub<1``, ``datasets==4.0.0``, ``accelerate==1.11.0``, ``peft==0.18.1``,
  ``trl==0.24.0``, ``torchdata``, ``omegaconf``, ``fire``, ``tyro<0.9`` and a ``torchaudio``
  (its multimodal plugin imports it; ``--no-deps`` next to the torch already there).

This environment makes the data (small ``ssrl generate`` exports, a cold start, tiny
Qwen2.5-VL folders from ``ssrl tiny-model``'s builder, which load under transformers 4.57 too)
and asks ``ssrl stats`` for the settings. Then, in each framework's environment:

- EasyR1: ``verl.utils.dataset.RLHFDataset`` reads an easyr1 export with the recipe's settings
  (``prompt_key=problem``, ``format_prompt``, the paper's pixel bounds, the
  ``data.max_prompt_length`` that ``ssrl stats`` prints): every row loads, each row's image
  placeholders expand to the processor's image tokens, one token less drops a row, the rows
  dropped at EasyR1's default 2048 are those ``ssrl stats`` counts;
  ``verl.workers.reward.function.AutoRewardManager`` loads ``spatial_ssrl/reward/easyr1.py``
  by path and scores a right and a wrong boxed answer per row: 1.0 and the format reward.
- verl: the recipe's overrides composed onto verl's own ``ppo_trainer`` config (hydra), its
  ``RLHFDataset`` on a verl export and its agent loop's own vision and chat-template steps
  (``SingleTurnAgentLoop.process_vision_info`` / ``apply_chat_template``), laid out the way the
  agent loop pads a prompt: every row fits ``rollout.prompt_length`` at the printed setting
  (and each image placeholder expands to the processor's tokens), one token less makes a
  prompt wider than the batch (the batch concatenation fails), the rows over verl's default
  512 are those ``ssrl stats`` counts; verl's own prompt filter (off by default) counts no
  image tokens. Rewards: the recipe's path (the reward loop's ``naive`` manager with
  ``compute_score``) and ``reward_model.reward_manager=batch`` with
  ``reward_model.use_reward_loop=false`` and ``compute_score_batched``: 1.0 and the format
  reward; the reward loop refuses ``batch``. verl has no pixel-bound setting: it sizes an
  image with qwen-vl-utils' defaults and then the processor saved in the model folder, so the
  tiny folder here carries the paper's bounds, as the recipe asks.
- LLaMA-Factory: its ``get_dataset`` (``dataset_info.json``, the ``qwen2_vl`` template and
  multimodal plugin, the supervised processor) on a llamafactory export and on the cold
  start's LLaMA-Factory copy, at the recipe's ``image_max_pixels`` and at LLaMA-Factory's
  default bounds, with the ``cutoff_len`` that ``ssrl stats`` prints: every row whole (its
  image tokens those of its images, sized as LLaMA-Factory documents, the whole response in
  the labels), one token less cuts a row, the rows cut at the default 2048 are those
  ``ssrl stats`` counts.
- EasyR1 and verl start from the cold start's folder (``runs/3b_sft``): a one-step
  ``ssrl train sft`` folder must load with the framework's own tokenizer and processor
  loaders and keep Qwen2.5-VL's multimodal rope; its processor's pixel bounds are printed.

Prints what it checked and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

MIN_PIXELS, MAX_PIXELS = 262144, 4194304  # the paper's GRPO bounds
COLDSTART_MAX_PIXELS = 262144  # the paper's cold-start bound
LLAMAFACTORY_BOUNDS = (1024, 589824)  # LLaMA-Factory's image_min_pixels / image_max_pixels defaults
ROWS = 24

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

VERL_DRIVER = r"""
import copy, glob, json, os, sys
import numpy as np, torch
from hydra import compose, initialize_config_dir
from qwen_vl_utils import fetch_image
import verl
from verl import DataProto
from verl.utils import hf_processor, hf_tokenizer
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.experimental.agent_loop.agent_loop import DictConfigWrap
from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop
from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls as loop_manager_cls
from verl.trainer.ppo.reward import get_custom_reward_fn, load_reward_manager

args = json.loads(sys.argv[1])
config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
files = sorted(glob.glob(os.path.join(args["data"], "train-*.parquet")))
recipe = ["algorithm.adv_estimator=grpo", "data.train_files=[" + ",".join(files) + "]", "data.image_key=images",
          "data.train_batch_size=256", f"data.max_prompt_length={args['max_prompt_length']}",
          "data.max_response_length=2048", f"actor_rollout_ref.model.path={args['model']}",
          "actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.rollout.n=5",
          f"custom_reward_function.path={args['reward']}", "custom_reward_function.name=compute_score"]


def config(*extra):
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=[*recipe, *extra])


cfg = config()
tok = hf_tokenizer(cfg.actor_rollout_ref.model.path)
processor = hf_processor(cfg.actor_rollout_ref.model.path, use_fast=True)
if processor is None:
    raise SystemExit("verl loaded no processor from the model folder")


def dataset(limit=None, filtered=False):
    data = cfg.data.copy()
    data.filter_overlong_prompts = filtered
    if limit is not None:
        data.max_prompt_length = limit
    return RLHFDataset(data_files=list(cfg.data.train_files), tokenizer=tok, processor=processor, config=data)


ds = dataset()
agent = SingleTurnAgentLoop(trainer_config=DictConfigWrap(cfg), server_manager=None, tokenizer=tok,
                            processor=processor, dataset_cls=RLHFDataset, dataset_config=DictConfigWrap(cfg.data))
image_id = tok.convert_tokens_to_ids("<|image_pad|>")
start_id = tok.convert_tokens_to_ids("<|vision_start|>")
merge = processor.image_processor.merge_size ** 2
prompt_length = int(cfg.actor_rollout_ref.rollout.prompt_length)
response_length = int(cfg.actor_rollout_ref.rollout.response_length)


async def tokenize(item):
    messages = list(item["raw_prompt"])
    mm = await agent.process_vision_info(messages)
    return await agent.apply_chat_template(messages, images=mm.get("images"))


rows, items, prompts = [], [], []
for i in range(len(ds)):
    stored = ds.dataframe[i][cfg.data.image_key]
    item = ds[i]
    ids = agent.loop.run_until_complete(tokenize(item))
    # the tokens each stored image should have: qwen-vl-utils' resize (as the agent loop), the processor's grid
    sized = [fetch_image({"image": im}, image_patch_size=processor.image_processor.patch_size) for im in stored]
    grid = processor.image_processor(images=sized, return_tensors="pt")["image_grid_thw"]
    rows.append({"length": len(ids), "images": len(stored), "vision_starts": ids.count(start_id),
                 "image_tokens": ids.count(image_id), "expected_image_tokens": int(grid.prod(-1).sum()) // merge,
                 "ground_truth": item["reward_model"]["ground_truth"]})
    items.append(item)
    prompts.append(ids)


def padded(limit):
    # each prompt left-padded to the limit as the agent loop's postprocess does; a longer prompt stays longer,
    # and the batch concatenation that follows (agent_loop.py, torch.cat of the prompts) then fails
    tok.padding_side = "left"
    outs = [tok.pad({"input_ids": ids}, padding="max_length", max_length=limit, return_tensors="pt")["input_ids"]
            for ids in prompts]
    outs = [o.unsqueeze(0) if o.dim() == 1 else o for o in outs]
    try:
        torch.cat(outs, dim=0)
        batched = True
    except RuntimeError:
        batched = False
    return {"over": sum(o.shape[-1] > limit for o in outs), "batched": batched}


fits = {"setting": padded(prompt_length), "one_below": padded(prompt_length - 1), "default": padded(512)}
filter_kept = {"one_below": len(dataset(prompt_length - 1, filtered=True)), "default": len(dataset(512, filtered=True))}

# a right and a wrong boxed answer per row, laid out as the agent loop lays out a rollout
texts, row_of = [], []
for k, r in enumerate(rows):
    texts += [f"<think>looked</think> \\boxed{{{r['ground_truth']}}}", "<think>looked</think> \\boxed{Z}"]
    row_of += [k, k]
tok.padding_side = "left"
p = tok.pad({"input_ids": [prompts[k] for k in row_of]}, padding="max_length", max_length=prompt_length,
            return_tensors="pt", return_attention_mask=True)
tok.padding_side = "right"
r = tok.pad({"input_ids": [tok(t, add_special_tokens=False)["input_ids"] for t in texts]}, padding="max_length",
            max_length=response_length, return_tensors="pt", return_attention_mask=True)
batch = {"prompts": p["input_ids"], "responses": r["input_ids"],
         "attention_mask": torch.cat([p["attention_mask"], r["attention_mask"]], dim=1)}
non_tensors = {key: np.array([items[k][key] for k in row_of], dtype=object)
               for key in ("data_source", "reward_model", "extra_info")}


def proto():
    return DataProto.from_dict(tensors={k: v.clone() for k, v in batch.items()},
                               non_tensors={k: copy.deepcopy(v) for k, v in non_tensors.items()})


# the recipe's path: the reward loop (reward_model.use_reward_loop=true, verl's default) and the manager
# it registers under reward_model.reward_manager, built as its RewardLoopWorker builds it
manager = loop_manager_cls(cfg.reward_model.reward_manager)(cfg, tok, get_custom_reward_fn(cfg), None, None)
data = proto()


async def score_all():
    import asyncio
    return await asyncio.gather(*[manager.run_single(data[i:i + 1]) for i in range(len(data))])


loop_out = manager.loop.run_until_complete(score_all())
try:
    loop_manager_cls("batch")
    batch_in_loop = "accepted"
except Exception as exc:
    batch_in_loop = str(exc)

# the batch manager with the batched function, outside the reward loop
bcfg = config("reward_model.reward_manager=batch", "reward_model.use_reward_loop=false",
              "custom_reward_function.name=compute_score_batched")
bmanager = load_reward_manager(bcfg, tok, num_examine=0, **bcfg.reward_model.get("reward_kwargs", {}))
out = bmanager(proto(), return_dict=True)
print(json.dumps({"rows": len(ds), "prompt_length": prompt_length, "fits": fits, "filter_kept": filter_kept,
                  "items": rows, "bounds": [processor.image_processor.size["shortest_edge"],
                                            processor.image_processor.size["longest_edge"]],
                  "loop_manager": f"{cfg.reward_model.reward_manager} ({type(manager).__name__})",
                  "loop_scores": [o["reward_score"] for o in loop_out],
                  "loop_extra": sorted(loop_out[0]["reward_extra_info"]),
                  "batch_manager": type(bmanager).__name__, "batch_scores": out["reward_tensor"].sum(-1).tolist(),
                  "batch_extra": sorted(out["reward_extra_info"]), "batch_in_loop": batch_in_loop}))
"""

LLAMAFACTORY_DRIVER = r"""
import json, os, sys
from PIL import Image
from transformers import AutoProcessor
from llamafactory.extras.constants import IGNORE_INDEX
from llamafactory.train.test_utils import load_dataset_module

args = json.loads(sys.argv[1])
common = dict(stage="sft", do_train=True, finetuning_type="lora", model_name_or_path=args["model"],
              dataset_dir=args["data"], dataset=args["dataset"], template="qwen2_vl",
              image_max_pixels=args["image_max_pixels"], output_dir=args["out"], overwrite_output_dir=True,
              overwrite_cache=True, preprocessing_num_workers=1, report_to="none")
if args["image_min_pixels"] is not None:
    common["image_min_pixels"] = args["image_min_pixels"]
min_pixels = args["image_min_pixels"] or 32 * 32  # LLaMA-Factory's default


def encoded(cutoff):
    return load_dataset_module(cutoff_len=cutoff, **common)["train_dataset"]


full = encoded(10 ** 7)  # nothing cut
info = json.load(open(os.path.join(args["data"], "dataset_info.json")))[args["dataset"]]
records = [json.loads(line) for line in open(os.path.join(args["data"], info["file_name"]))]
processor = AutoProcessor.from_pretrained(args["model"])
tok = processor.tokenizer
ids = {name: tok.convert_tokens_to_ids(name) for name in ("<|image_pad|>", "<|vision_start|>", "<|vision_end|>")}
merge = processor.image_processor.merge_size ** 2
rows = []
for rec, ex in zip(records, full):
    # the tokens each image should have, from the file: LLaMA-Factory's documented resize (an area over
    # image_max_pixels, or under image_min_pixels, scaled to it with the sides truncated), then the processor
    sizes = []
    for path in rec["images"]:
        w, h = Image.open(os.path.join(args["data"], path)).size
        if w * h > args["image_max_pixels"]:
            f = (args["image_max_pixels"] / (w * h)) ** 0.5
            w, h = int(w * f), int(h * f)
        if w * h < min_pixels:
            f = (min_pixels / (w * h)) ** 0.5
            w, h = int(w * f), int(h * f)
        sizes.append((w, h))
    grid = processor.image_processor(images=[Image.new("RGB", s) for s in sizes], return_tensors="pt")["image_grid_thw"]
    answer = tok(rec["messages"][-1]["content"], add_special_tokens=False)["input_ids"]
    labels = [t for t in ex["labels"] if t != IGNORE_INDEX]
    rows.append({"length": len(ex["input_ids"]), "images": len(rec["images"]),
                 "vision_starts": ex["input_ids"].count(ids["<|vision_start|>"]),
                 "vision_ends": ex["input_ids"].count(ids["<|vision_end|>"]),
                 "image_tokens": ex["input_ids"].count(ids["<|image_pad|>"]),
                 "expected_image_tokens": int(grid.prod(-1).sum()) // merge,
                 "response_in_labels": labels[:len(answer)] == answer})
cut, kept = {}, {}
for name, cutoff in (("setting", args["cutoff_len"]), ("one_below", args["cutoff_len"] - 1), ("default", 2048)):
    ds = encoded(cutoff)
    kept[name] = len(ds)
    cut[name] = sum(a["input_ids"] != b["input_ids"] for a, b in zip(ds, full))
print(json.dumps({"rows": len(full), "items": rows, "cut": cut, "kept": kept}))
"""

FOLDER_DRIVER = r"""
import json, sys
from transformers import AutoConfig

args = json.loads(sys.argv[1])
out = {}
try:
    if args["framework"] == "verl":
        from verl.utils import hf_processor, hf_tokenizer
        tok = hf_tokenizer(args["model"])
        processor = hf_processor(args["model"], use_fast=True)  # verl returns None when loading fails
    else:
        from verl.utils.tokenizer import get_processor, get_tokenizer
        tok = get_tokenizer(args["model"], use_fast=True)
        processor = get_processor(args["model"], use_fast=True)
    out["tokenizer"] = type(tok).__name__
    out["processor"] = type(processor).__name__ if processor is not None else None
    if processor is not None:
        ip = processor.image_processor
        out["bounds"] = [ip.size.get("shortest_edge"), ip.size.get("longest_edge")]
except Exception as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
try:
    cfg = AutoConfig.from_pretrained(args["model"])
    text = getattr(cfg, "text_config", None) or cfg
    out["rope_scaling"] = getattr(text, "rope_scaling", None) or getattr(cfg, "rope_scaling", None)
except Exception as exc:
    out["config_error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


class Refusal(Exception):
    """A bad command line, said in one line."""


def _ssrl(*args) -> None:
    subprocess.run([sys.executable, "-m", "spatial_ssrl.cli", *map(str, args)], check=True,
                   env={**os.environ, "TQDM_DISABLE": "1"})


def _stats(data: str, model: str, min_pixels: int | None, max_pixels: int | None) -> dict:
    bounds = [x for flag, v in (("--min-pixels", min_pixels), ("--max-pixels", max_pixels)) if v for x in (flag, str(v))]
    done = subprocess.run([sys.executable, "-m", "spatial_ssrl.cli", "stats", "--data", data, "--model", model,
                           *bounds, "--json"], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _drive(label: str, python: str, driver: str, args: dict, path: str) -> tuple[dict | None, list[str]]:
    """Run a driver in a framework's interpreter; its last output line is its JSON answer."""
    done = subprocess.run([python, "-c", driver, json.dumps(args)], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"},
                          timeout=1800)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return None, [f"{label} driver failed: {done.stderr[-3000:]}"]
    return json.loads(lines[-1]), []


def _commit(root: str) -> str:
    done = subprocess.run(["git", "-C", root, "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() if done.returncode == 0 else "not a git checkout"


def _tiny(tmp: str, name: str, min_pixels: int, max_pixels: int) -> str:
    path = os.path.join(tmp, name)
    if not os.path.isdir(path):
        from spatial_ssrl.tiny import build_tiny_model

        build_tiny_model("qwen2_5_vl", path, min_pixels=min_pixels, max_pixels=max_pixels)
    return path


def _real_bounds_model(tmp: str) -> str:
    # the pixel bounds of the real Qwen2.5-VL processor (3,136 to 12,845,056), so that, as with the
    # real model, a framework's own resizing to the recipe's bounds is what decides the image size
    return _tiny(tmp, "tiny", 3136, 12845056)


def _coldstart(tmp: str) -> str:
    out = os.path.join(tmp, "coldstart")
    if not os.path.isdir(out):
        data = os.path.join(tmp, "canonical-data")
        _ssrl("generate", "--out", data, "--num", ROWS, "--seed", 3, "--workers", 1, "-q")
        _ssrl("split", "--data", data, "--test-fraction", 0.1, "--coldstart-fraction", 0.5)
        _ssrl("coldstart", "--data", data, "--out", out, "--num", 8)
    return out


def _sft_folder(tmp: str) -> str:
    out = os.path.join(tmp, "runs-3b_sft")
    if not os.path.isdir(out):
        _ssrl("train", "sft", "--model", _real_bounds_model(tmp), "--data", _coldstart(tmp), "--out", out,
              "--max-steps", 1, "--set", "per_device_train_batch_size=1", "--set", "gradient_accumulation_steps=1")
    return out


def _image_problems(label: str, items: list[dict]) -> list[str]:
    problems = []
    for k, item in enumerate(items):
        if item["image_tokens"] != item["expected_image_tokens"]:
            problems.append(f"{label} row {k}: {item['image_tokens']} image tokens, its images have "
                            f"{item['expected_image_tokens']}")
        if item["vision_starts"] != item["images"] or item.get("vision_ends", item["images"]) != item["images"]:
            problems.append(f"{label} row {k}: {item['vision_starts']} image blocks for {item['images']} images")
    return problems


def _reward_problems(label: str, scores: list[float]) -> list[str]:
    right, wrong = scores[0::2], scores[1::2]
    if any(abs(v - 1.0) > 1e-6 for v in right) or any(abs(v - 0.1) > 1e-6 for v in wrong):
        return [f"{label} rewards: right {right}, wrong {wrong}"]
    return []


def check_easyr1(root: str, python: str, tmp: str) -> list[str]:
    problems = []
    data, tiny = os.path.join(tmp, "easyr1-data"), _real_bounds_model(tmp)
    _ssrl("generate", "--out", data, "--format", "easyr1", "--num", ROWS, "--seed", 3, "--workers", 1, "-q")
    setting = _stats(data, tiny, MIN_PIXELS, MAX_PIXELS)["settings"]["EasyR1"]
    import spatial_ssrl.reward.easyr1 as adapter

    args = {"model": tiny, "data": os.path.join(data, "data"), "format_prompt": os.path.join(data, "format_prompt.jinja"),
            "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS, "max_prompt_length": setting["value"],
            "reward": adapter.__file__}
    got, failed = _drive("EasyR1", python, EASYR1_DRIVER, args, root)
    if got is None:
        return failed
    if got["rows"] != ROWS:
        problems.append(f"EasyR1 kept {got['rows']} of {ROWS} rows at data.max_prompt_length={setting['value']}")
    if got["rows_one_below"] >= ROWS:
        problems.append(f"data.max_prompt_length={setting['value'] - 1} keeps every row: ssrl stats is not tight")
    dropped = ROWS - got["rows_at_default_2048"]
    if dropped != setting["rows_over_default"]:
        problems.append(f"at 2048 EasyR1 drops {dropped} rows, ssrl stats said {setting['rows_over_default']}")
    for item in got["items"]:
        if item["image_tokens"] is not None and item["image_tokens"] != item["expected_image_tokens"]:
            problems.append(f"image tokens {item['image_tokens']} != {item['expected_image_tokens']}")
    if got["reward_type"] != "batch":
        problems.append(f"EasyR1 read REWARD_TYPE {got['reward_type']!r}")
    problems += _reward_problems("EasyR1", got["overall"])
    right, wrong = got["overall"][0::2], got["overall"][1::2]
    print(f"EasyR1 {_commit(root)} ({root}): {got['rows']}/{ROWS} rows at data.max_prompt_length={setting['value']}; "
          f"{ROWS - got['rows_one_below']} dropped at one token less; {dropped} dropped at the default 2048 "
          f"(ssrl stats: {setting['rows_over_default']}); reward type {got['reward_type']}; "
          f"right answers {min(right):.2f}-{max(right):.2f}, wrong {min(wrong):.2f}-{max(wrong):.2f}")
    return problems


def check_verl(root: str, python: str, tmp: str) -> list[str]:
    problems = []
    data = os.path.join(tmp, "verl-data")
    # verl has no pixel-bound setting: the model folder's processor carries the bounds (the recipe sets the paper's)
    model = _tiny(tmp, "tiny-paper-bounds", MIN_PIXELS, MAX_PIXELS)
    _ssrl("generate", "--out", data, "--format", "verl", "--num", ROWS, "--seed", 3, "--workers", 1, "-q")
    setting = _stats(data, model, MIN_PIXELS, MAX_PIXELS)["settings"]["verl"]
    import spatial_ssrl.reward.verl as adapter

    args = {"model": model, "data": os.path.join(data, "data"), "max_prompt_length": setting["value"],
            "reward": adapter.__file__}
    got, failed = _drive("verl", python, VERL_DRIVER, args, root)
    if got is None:
        return failed
    fits = got["fits"]
    if got["rows"] != ROWS:
        problems.append(f"verl's RLHFDataset read {got['rows']} of {ROWS} rows")
    if got["prompt_length"] != setting["value"]:
        problems.append(f"rollout.prompt_length is {got['prompt_length']}, data.max_prompt_length {setting['value']}")
    if fits["setting"]["over"] or not fits["setting"]["batched"]:
        problems.append(f"{fits['setting']['over']} prompts longer than data.max_prompt_length={setting['value']}")
    if fits["one_below"]["over"] == 0:
        problems.append(f"data.max_prompt_length={setting['value'] - 1} fits every prompt: ssrl stats is not tight")
    if fits["default"]["over"] != setting["rows_over_default"]:
        problems.append(f"{fits['default']['over']} prompts over verl's default 512, ssrl stats said "
                        f"{setting['rows_over_default']}")
    if got["filter_kept"]["one_below"] != ROWS:
        problems.append(f"verl's prompt filter drops {ROWS - got['filter_kept']['one_below']} rows one token below "
                        f"the setting: it counts image tokens now (docs/training.md says it does not)")
    problems += _image_problems("verl", got["items"])
    problems += _reward_problems("verl reward loop", got["loop_scores"])
    problems += _reward_problems("verl batch manager", got["batch_scores"])
    for name in ("loop_extra", "batch_extra"):
        if not {"acc", "format", "score"} <= set(got[name]):
            problems.append(f"verl {name}: {got[name]}")
    if got["batch_in_loop"] != "Unknown reward manager: batch":
        problems.append(f"verl's reward loop answered {got['batch_in_loop']!r} for reward_manager=batch "
                        f"(docs/reward.md says it refuses it)")
    right = got["loop_scores"][0::2] + got["batch_scores"][0::2]
    wrong = got["loop_scores"][1::2] + got["batch_scores"][1::2]
    print(f"verl {_commit(root)} ({root}): {got['rows']}/{ROWS} rows read, every prompt within "
          f"data.max_prompt_length={setting['value']} (= rollout.prompt_length; image tokens as the processor's, "
          f"bounds {got['bounds'][0]}-{got['bounds'][1]} from the model folder); at one token less "
          f"{fits['one_below']['over']} prompt too long (batch {'built' if fits['one_below']['batched'] else 'fails'}); "
          f"{fits['default']['over']} over the default 512 (ssrl stats: {setting['rows_over_default']}); its prompt "
          f"filter keeps {got['filter_kept']['default']}/{ROWS} at 512 (no image tokens counted); rewards via "
          f"{got['loop_manager']} + compute_score and {got['batch_manager']} + compute_score_batched: right "
          f"{min(right):.2f}-{max(right):.2f}, wrong {min(wrong):.2f}-{max(wrong):.2f}; reward loop with batch: "
          f"{got['batch_in_loop']!r}")
    return problems


def check_llamafactory(root: str, python: str, tmp: str) -> list[str]:
    problems = []
    export = os.path.join(tmp, "llamafactory-data")
    _ssrl("generate", "--out", export, "--format", "llamafactory", "--num", ROWS, "--seed", 3, "--workers", 1, "-q")
    coldstart = _coldstart(tmp)
    model = _real_bounds_model(tmp)  # stands in for Qwen/Qwen2.5-VL-3B-Instruct
    cases = [  # (what, data for ssrl stats, LLaMA-Factory dataset_dir, dataset, image_min_pixels, image_max_pixels)
        ("export, image_max_pixels=262144", export, export, "spatial_ssrl", None, COLDSTART_MAX_PIXELS),
        ("export, LLaMA-Factory's default bounds", export, export, "spatial_ssrl", *LLAMAFACTORY_BOUNDS),
        ("cold start, image_max_pixels=262144", coldstart, os.path.join(coldstart, "llamafactory"),
         "spatial_ssrl_coldstart", None, COLDSTART_MAX_PIXELS),
    ]
    commit = _commit(root)
    for what, stats_data, data, dataset, min_pixels, max_pixels in cases:
        summary = _stats(stats_data, model, min_pixels, max_pixels)
        setting = summary["settings"]["LLaMA-Factory"]
        args = {"model": model, "data": data, "dataset": dataset, "image_min_pixels": min_pixels,
                "image_max_pixels": max_pixels, "cutoff_len": setting["value"], "out": os.path.join(tmp, "lf-out")}
        label = f"LLaMA-Factory ({what})"
        got, failed = _drive(label, python, LLAMAFACTORY_DRIVER, args, os.path.join(root, "src"))
        if got is None:
            problems += failed
            continue
        rows = summary["rows"]
        longest = max(item["length"] for item in got["items"])
        if got["rows"] != rows or any(v != rows for v in got["kept"].values()):
            problems.append(f"{label}: {got['rows']} rows encoded ({got['kept']}), ssrl stats counted {rows}")
        if longest != setting["value"]:
            problems.append(f"{label}: the longest row has {longest} tokens, ssrl stats said {setting['value']}")
        if got["cut"]["setting"]:
            problems.append(f"{label}: {got['cut']['setting']} rows cut at cutoff_len={setting['value']}")
        if not got["cut"]["one_below"]:
            problems.append(f"{label}: cutoff_len={setting['value'] - 1} cuts no row: ssrl stats is not tight")
        if got["cut"]["default"] != setting["rows_over_default"]:
            problems.append(f"{label}: {got['cut']['default']} rows cut at 2048, ssrl stats said "
                            f"{setting['rows_over_default']}")
        problems += _image_problems(label, got["items"])
        if not all(item["response_in_labels"] for item in got["items"]):
            problems.append(f"{label}: a response is not whole in its labels")
        print(f"LLaMA-Factory {commit} ({root}), {what}: {got['rows']}/{rows} rows whole at "
              f"cutoff_len={setting['value']} (image tokens those of the images, responses whole in the labels); "
              f"{got['cut']['one_below']} cut at one token less; {got['cut']['default']} cut at the default 2048 "
              f"(ssrl stats: {setting['rows_over_default']})")
    return problems


def check_model_folder(name: str, root: str, python: str, tmp: str) -> list[str]:
    """The recipe's model folder, as ``ssrl train sft`` writes it, loaded by the framework's own loaders."""
    folder = _sft_folder(tmp)
    got, failed = _drive(f"{name} model folder", python, FOLDER_DRIVER, {"framework": name, "model": folder}, root)
    if got is None:
        return failed
    problems = []
    for key in ("error", "config_error"):
        if key in got:
            problems.append(f"{name} cannot load an `ssrl train sft` folder: {got[key]}")
    if "error" not in got and got.get("processor") is None:
        problems.append(f"{name} loads no processor from an `ssrl train sft` folder")
    rope = got.get("rope_scaling") or {}
    if "config_error" not in got and "mrope_section" not in rope:
        problems.append(f"{name} reads no multimodal rope from an `ssrl train sft` folder (rope_scaling {rope})")
    print(f"{name} and an `ssrl train sft` folder: tokenizer {got.get('tokenizer')}, processor {got.get('processor')}"
          f" (pixel bounds {got.get('bounds')}), rope_scaling {rope or None}")
    return problems


FRAMEWORKS = {  # option -> (name, a file its checkout holds)
    "easyr1": ("EasyR1", "verl/utils/dataset.py"),
    "verl": ("verl", "verl/utils/dataset/rl_dataset.py"),
    "llamafactory": ("LLaMA-Factory", "src/llamafactory/data/mm_plugin.py"),
}


def parse(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    """The frameworks to check, as (option, checkout, interpreter); a bad command line is a Refusal."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--easyr1", metavar="CHECKOUT", help="an EasyR1 checkout")
    ap.add_argument("--easyr1-python", "--python", dest="easyr1_python", metavar="PYTHON",
                    help="the interpreter of EasyR1's environment (--python: the older spelling)")
    ap.add_argument("--verl", metavar="CHECKOUT", help="a verl checkout")
    ap.add_argument("--verl-python", metavar="PYTHON", help="the interpreter of verl's environment")
    ap.add_argument("--llamafactory", metavar="CHECKOUT", help="a LLaMA-Factory checkout")
    ap.add_argument("--llamafactory-python", metavar="PYTHON", help="the interpreter of LLaMA-Factory's environment")
    args = ap.parse_args(argv)
    chosen = []
    for option, (name, marker) in FRAMEWORKS.items():
        root, python = getattr(args, option), getattr(args, f"{option}_python")
        flag = f"--{option}"
        if root is None:
            if python is not None:
                raise Refusal(f"{flag}-python names an interpreter but no {flag} CHECKOUT is given")
            continue
        if python is None:
            raise Refusal(f"{flag} needs {flag}-python, the interpreter of {name}'s environment")
        if not os.path.isfile(os.path.join(root, marker)):
            raise Refusal(f"{flag} {root}: not a checkout of {name} (no {marker})")
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            raise Refusal(f"{flag}-python {python}: not an executable file")
        chosen.append((option, os.path.abspath(root), python))
    if not chosen:
        raise Refusal("name at least one framework: --easyr1, --verl or --llamafactory (each with its interpreter)")
    return chosen


def main(argv: list[str] | None = None) -> int:
    try:
        chosen = parse(argv)
    except Refusal as exc:
        print(f"check_recipes.py: {exc}", file=sys.stderr)
        return 2
    checks = {"easyr1": check_easyr1, "verl": check_verl, "llamafactory": check_llamafactory}
    problems = []
    with tempfile.TemporaryDirectory(prefix="ssrl-recipes-") as tmp:
        for option, root, python in chosen:
            problems += checks[option](root, python, tmp)
            if option in ("easyr1", "verl"):  # the GRPO recipes start from the cold start's folder
                problems += check_model_folder(FRAMEWORKS[option][0], root, python, tmp)
    for p in problems:
        print("PROBLEM:", p)
    print("recipes agree with the framework code" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
