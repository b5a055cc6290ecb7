"""Training building blocks: configs (paper defaults, overrides, refusals), the split by source,
the reward functions against ``ssrl score``, multi-image prompts through the processor, and
bad input refused in one line before any model loads."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from deps import require, run_cli

torch = require("torch")
require("torchvision")
transformers = require("transformers")
trl = require("trl")
pq = require("pyarrow.parquet")
datasets = require("datasets")


from spatial_ssrl.training.config import ConfigError, build_config
from spatial_ssrl.training.split import SplitError, assign_sources


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "qwen"
    run_cli("tiny-model", "--arch", "qwen2_5_vl", "--out", out)
    return out


@pytest.fixture(scope="module")
def trl_data(tmp_path_factory):
    """A TRL-format dataset with every task (position rows carry option texts)."""
    out = tmp_path_factory.mktemp("trl") / "d"
    run_cli("generate", "--out", out, "--num", 30, "--seed", 4, "--format", "trl", "--workers", 1, "-q")
    return out


# ----------------------------------------------------------------------------------------
# configs


def test_grpo_defaults_are_the_papers_where_trl_differs(tmp_path):
    cfg = build_config("grpo", None, {"model": "m/x", "data": str(tmp_path), "output": str(tmp_path / "o")})
    args = cfg.trl_args(output_dir=str(tmp_path / "o"), use_cpu=True)
    assert isinstance(args, trl.GRPOConfig)
    assert (args.beta, args.num_generations, args.temperature, args.top_p) == (0.01, 5, 1.0, 1.0)
    assert (args.learning_rate, args.weight_decay, args.warmup_steps, args.max_grad_norm) == (1e-6, 0.01, 0, 1.0)
    assert args.max_completion_length == 2048 and args.loss_type == "grpo"
    assert (cfg["min_pixels"], cfg["max_pixels"]) == (262_144, 4_194_304)
    assert cfg["freeze_vision_tower"] is False
    sft = build_config("sft", None, {"model": "m/x", "data": str(tmp_path), "output": str(tmp_path / "o")})
    sargs = sft.trl_args(output_dir=str(tmp_path / "o"), use_cpu=True)
    assert isinstance(sargs, trl.SFTConfig)
    assert (sargs.learning_rate, sargs.num_train_epochs, sargs.warmup_steps) == (1e-5, 5, 0.1)
    assert (sargs.per_device_train_batch_size, sargs.gradient_accumulation_steps) == (4, 8)
    assert sargs.lr_scheduler_type == "cosine" and sargs.max_length is None
    assert sft["lora"] is True and sft["lora_r"] == 128 and sft["lora_target_modules"] == "all-linear"
    assert sft["max_pixels"] == 262_144


def test_config_file_then_options_then_sets(tmp_path):
    (tmp_path / "data").mkdir()
    f = tmp_path / "run.yaml"
    f.write_text("model: Qwen/Qwen2.5-VL-3B-Instruct\ndata: data\noutput: runs/a\nbeta: 0.05\n"
                 "task_weights: {shuffle: 1, crop: 2}\nnum_generations: 4\n")
    cfg = build_config("grpo", str(f), {"output": str(tmp_path / "b"), "max_steps": 7},
                       ["beta=0.02", "bf16=false", "tasks=[crop, shuffle]"])
    assert cfg["model"] == "Qwen/Qwen2.5-VL-3B-Instruct"  # a hub id stays as it is
    assert cfg["data"] == "data"  # relative to the working directory, as on the command line
    assert cfg["output"] == str(tmp_path / "b")  # the option wins over the file
    assert cfg.trl["beta"] == 0.02 and cfg.trl["bf16"] is False and cfg.trl["max_steps"] == 7
    assert cfg.trl["num_generations"] == 4
    assert cfg["task_weights"] == {"shuffle": 1, "crop": 2} and cfg["tasks"] == ["crop", "shuffle"]


@pytest.mark.parametrize("sets, words", [
    (["lerning_rate=1"], ["unknown config key 'lerning_rate'", "learning_rate"]),
    (["num_generations=4"], ["'num_generations'", "GRPO setting"]),  # asked of sft
    (["max_pixels=-3"], ["max_pixels must be a positive integer"]),
    (["task_weights={shuffle: 0}"], ["every task weight 0"]),
])
def test_bad_config_keys_are_one_line_errors(tmp_path, sets, words):
    with pytest.raises(ConfigError) as exc:
        build_config("sft", None, {"model": "m/x", "data": "d", "output": "o"}, sets)
    message = str(exc.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_unknown_key_stops_before_anything_is_written(tmp_path, tiny):
    out = tmp_path / "run"
    result = run_cli("train", "grpo", "--model", tiny, "--data", tmp_path, "--output", out,
                     "--set", "bogus_key=1", ok=False)
    assert result.exit_code == 1
    assert result.output.strip() == "Error: unknown config key 'bogus_key'"
    assert not out.exists()


def test_shipped_configs_are_valid(tmp_path):
    from spatial_ssrl.training.cli import shipped_configs

    configs = shipped_configs()
    names = set(configs)
    for needed in ("qwen2_5_vl_3b_sft", "qwen2_5_vl_3b_grpo", "qwen2_5_vl_7b_sft", "qwen2_5_vl_7b_grpo",
                   "qwen3_vl_4b_sft", "qwen3_vl_4b_grpo", "tiny_sft", "tiny_grpo"):
        assert needed in names, names
    for name, path in configs.items():
        kind = "sft" if name.endswith("sft") else "grpo"
        cfg = build_config(kind, path, {"data": str(tmp_path), "output": str(tmp_path / "o"),
                                        "model": "x/y"})
        args = cfg.trl_args(output_dir=str(tmp_path / "o"), use_cpu=True)
        if kind == "grpo" and "tiny" not in name:
            # the paper's batch: 128 prompts x 5 rollouts per optimizer step on 8 GPUs,
            # 256 prompts per generation round
            per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * 8
            assert per_step == 128 * 5, name
            assert args.per_device_train_batch_size * args.steps_per_generation * 8 == 256 * 5, name
            assert args.beta == 0.01 and args.loss_type == "grpo" and cfg["max_pixels"] == 4_194_304
            # vLLM colocate generates the rollouts where TRL allows it (not Qwen3-VL: TRL #6401)
            assert args.use_vllm == ("qwen3" not in name) and args.vllm_mode == "colocate", name


# ----------------------------------------------------------------------------------------
# split


def test_assign_sources_is_deterministic_exact_and_order_free():
    sources = [f"img{i}.jpg" for i in range(200)]
    a = assign_sources(sources, 0.05, 0.1, seed=3)
    b = assign_sources(list(reversed(sources)) * 2, 0.05, 0.1, seed=3)
    assert a == b
    counts = {s: list(a.values()).count(s) for s in ("train", "test", "coldstart")}
    assert counts == {"train": 170, "test": 10, "coldstart": 20}
    assert assign_sources(sources, 0.05, 0.1, seed=4) != a
    with pytest.raises(SplitError):
        assign_sources(["only.jpg"], 0.05)
    with pytest.raises(SplitError):
        assign_sources(sources, 0.6, 0.5)


@pytest.mark.parametrize("fmt", ["canonical", "trl", "easyr1", "verl", "llamafactory"])
def test_split_every_format_by_source(tmp_path, fmt):
    from spatial_ssrl.readers import open_dataset

    out = tmp_path / fmt
    run_cli("generate", "--out", out, "--num", 16, "--seed", 2, "--format", fmt, "--workers", 1,
            "--tasks", "shuffle,flip,crop", "-q")
    before = sorted((r.id, r.answer) for r in open_dataset(str(out)).index())
    run_cli("split", out, "--test-fraction", 0.3)
    reader = open_dataset(str(out))
    assert set(reader.splits) == {"train", "test"}
    by_split = {s: reader.index(s) for s in reader.splits}
    assert not {r.source for r in by_split["train"]} & {r.source for r in by_split["test"]}
    assert sorted((r.id, r.answer) for rs in by_split.values() for r in rs) == before
    if fmt != "llamafactory":
        # each shard still loads with the datasets library, images decoded
        ds = datasets.load_dataset(str(out))
        assert set(ds) == {"train", "test"} and len(ds["test"]) == len(by_split["test"])
        assert ds["test"][0]["images"][0].size[0] > 0
    if fmt == "verl":
        for name in ("train", "test"):
            infos = [r["extra_info"] for f in sorted((out / "data").glob(f"{name}-*.parquet"))
                     for r in pq.read_table(f, columns=["extra_info"]).to_pylist()]
            assert {i["split"] for i in infos} == {name}
    # splitting again re-deals all rows, same sources on the same side for the same seed
    run_cli("split", out, "--test-fraction", 0.3)
    again = open_dataset(str(out))
    assert {r.id for r in again.index("test")} == {r.id for r in by_split["test"]}


def test_split_refuses_foreign_files_and_leaves_them(tmp_path):
    out = tmp_path / "d"
    run_cli("generate", "--out", out, "--num", 8, "--seed", 2, "--workers", 1, "--tasks", "flip", "-q")
    foreign = out / "data" / "notes.txt"
    foreign.write_text("mine")
    result = run_cli("split", out, ok=False)
    assert result.exit_code == 1 and "did not write" in result.output and "notes.txt" in result.output
    assert foreign.read_text() == "mine"
    assert len(list((out / "data").glob("train-*.parquet"))) == 1


# ----------------------------------------------------------------------------------------
# rewards


def _responses(rows):
    """Responses of every kind for each row: right (several spellings), wrong, malformed."""
    out = []
    for r in rows:
        ans, opts = r["answer"], r["options"]
        wrong = {"choice": "A" if ans != "A" else "B"}.get(r["answer_type"], "9-9")
        variants = [f"<think>ok</think> \\boxed{{{ans}}}", f"\\boxed{{{ans}}}", f"<think>x</think> \\boxed{{{wrong}}}",
                    "<think>no box</think>", f"<think>a</think> \\boxed{{{ans}}} \\boxed{{{wrong}}}"]
        if opts and r["task"] == "position":
            variants.append(f"<think>t</think> \\boxed{{{opts['ABCD'.index(ans)]}}}")  # the option text
        out.extend((r, v) for v in variants)
    return out


def test_trl_rewards_agree_with_ssrl_score(tmp_path, trl_data):
    from spatial_ssrl.training.rewards import make_rewards

    ds = datasets.load_dataset(str(trl_data))["train"]
    rows = [ds[i] for i in range(len(ds))]
    assert any(r["task"] == "position" and r["options"] for r in rows)
    pairs = _responses(rows)
    funcs, weights = make_rewards(sorted({r["task"] for r in rows}))
    columns = {k: [r[k] for r, _ in pairs] for k in ("answer", "answer_type", "options", "task", "variant", "id")}
    completions = [[{"role": "assistant", "content": text}] for _, text in pairs]
    per_func = [f(completions, prompts=None, completion_ids=None, **columns) for f in funcs]
    # TRL: None -> NaN, weighted nansum over functions
    totals = [sum(w * v for w, v in zip(weights, vals) if v is not None) for vals in zip(*per_func)]
    for vals, (r, _) in zip(zip(*per_func), pairs):
        applied = [f.__name__ for f, v in zip(funcs, vals) if v is not None]
        assert applied == [f"accuracy_{r['task']}", "format_reward"]
    accuracy = [next(v for f, v in zip(funcs, vals) if v is not None and f.__name__.startswith("accuracy"))
                for vals in zip(*per_func)]
    # ssrl score on the same responses, one prediction file per response variant
    n_var = {}
    for r, text in pairs:
        n_var.setdefault(r["id"], []).append(text)
    k = 0
    for i in range(max(len(v) for v in n_var.values())):
        preds = tmp_path / f"p{i}.jsonl"
        chosen = [(sid, texts[i]) for sid, texts in n_var.items() if i < len(texts)]
        preds.write_text("".join(json.dumps({"id": sid, "response": t}) + "\n" for sid, t in chosen))
        report_path = tmp_path / f"r{i}.json"
        run_cli("score", "--data", trl_data, "--predictions", preds, "--out", report_path)
        report = json.loads(report_path.read_text())
        idx = [j for j, (r, t) in enumerate(pairs) if any(r["id"] == sid and t == tt for sid, tt in chosen)]
        assert len(idx) == len(chosen)
        assert math.isclose(report["accuracy"], 100 * sum(accuracy[j] for j in idx) / len(idx))
        assert math.isclose(report["mean_reward"], sum(totals[j] for j in idx) / len(idx))
        k += len(idx)
    assert k == len(pairs)
    # the option text of a position question is right in both
    pos = [j for j, (r, t) in enumerate(pairs) if r["task"] == "position" and t.endswith(f"{{{r['options']['ABCD'.index(r['answer'])]}}}")]
    assert pos and all(accuracy[j] == 1.0 for j in pos)


def test_five_image_crop_prompt_through_trl_and_the_processor(tiny, trl_data, tmp_path):
    from trl.data_utils import prepare_multimodal_messages

    from spatial_ssrl.models import load_processor
    from spatial_ssrl.training.data import grpo_dataset

    ds, stats = grpo_dataset(str(trl_data), "train", cache_dir=str(tmp_path), tasks=["crop"])
    row = ds[0]
    assert stats["per_task"] == {"crop": len(ds)} and len(row["images"]) == 5
    messages = prepare_multimodal_messages(row["prompt"], images=row["images"])
    processor = load_processor(str(tiny), 3136, 12544)
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=row["images"], return_tensors="pt")
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    grid = inputs["image_grid_thw"]
    assert grid.shape[0] == 5
    assert int((inputs["input_ids"] == pad).sum()) == int(grid.prod(dim=1).sum()) // 4
    # every image was resized within the run's pixel bounds
    patch = processor.image_processor.patch_size
    assert all(3136 <= int(h * w) * patch * patch <= 12544 for _t, h, w in grid.tolist())


def test_pixel_view_gives_vllm_the_trainers_bounds(tiny, tmp_path):
    from spatial_ssrl.models import load_processor, pixel_view

    processor = load_processor(str(tiny), 4096, 8192)
    view = Path(pixel_view(str(tiny), processor, str(tmp_path / "view")))
    again = transformers.AutoProcessor.from_pretrained(view)
    assert (again.image_processor.size["shortest_edge"], again.image_processor.size["longest_edge"]) == (4096, 8192)
    assert os.path.islink(view / "model.safetensors")
    assert os.path.realpath(view / "model.safetensors") == os.path.realpath(tiny / "model.safetensors")
    original = transformers.AutoProcessor.from_pretrained(tiny)
    assert original.image_processor.size["longest_edge"] != 8192  # the checkpoint itself is untouched


# ----------------------------------------------------------------------------------------
# bad input


def test_bad_inputs_are_one_line_errors_before_loading(tmp_path, tiny, trl_data):
    not_vlm = tmp_path / "llm"
    not_vlm.mkdir()
    (not_vlm / "config.json").write_text(json.dumps({"model_type": "llama"}))
    bare = tmp_path / "bare"
    (bare / "data").mkdir(parents=True)
    pq.write_table(__import__("pyarrow").table({"id": ["a"], "answer": ["A"]}), bare / "data" / "train-00000-of-00001.parquet")
    cases = [
        (["--model", tiny, "--data", tmp_path / "missing"], "does not exist"),
        (["--model", not_vlm, "--data", trl_data], "is not a vision-language model (model_type 'llama')"),
        (["--model", tmp_path / "nope", "--data", trl_data], "does not exist"),
        (["--model", tiny, "--data", bare], "matches none of the formats"),
        (["--model", tiny, "--data", trl_data, "--set", "train_split=coldstart"], "has no 'coldstart' split"),
        (["--model", tiny, "--data", trl_data, "--set", "tasks=[nosuch]"], "not in the data"),
        (["--model", tiny, "--data", trl_data, "--set", "validation_steps=2"], "needs the held-out 'test' split"),
    ]
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        cases.append((["--model", tiny, "--data", trl_data, "--set", "use_vllm=true"], "use_vllm needs vLLM"))
    for i, (args, words) in enumerate(cases):
        out = tmp_path / f"run{i}"
        result = run_cli("train", "grpo", "-c", "tiny_grpo", "--no-coldstart", "--output", out,
                         "--set", "validation_steps=0", *args, ok=False)
        assert result.exit_code == 1, (args, result.output)
        line = result.output.strip()
        assert line.startswith("Error: ") and "\n" not in line and words in line, (args, line)
    # an empty split
    empty = tmp_path / "empty"
    (empty / "data").mkdir(parents=True)
    table = pq.read_table(next((trl_data / "data").glob("*.parquet")))
    pq.write_table(table.slice(0, 0), empty / "data" / "train-00000-of-00001.parquet")
    result = run_cli("train", "grpo", "-c", "tiny_grpo", "--no-coldstart", "--model", tiny, "--data", empty,
                     "--output", tmp_path / "e", "--set", "validation_steps=0", ok=False)
    assert result.exit_code == 1 and "split of" in result.output and "is empty" in result.output
    # a folder that is not ours is never used as a run folder
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("x")
    result = run_cli("train", "sft", "--model", tiny, "--data", trl_data, "--output", theirs, ok=False)
    assert "did not write" in result.output and sorted(os.listdir(theirs)) == ["keep.txt"]
    # SFT on data that is not cold-start data
    result = run_cli("train", "sft", "-c", "tiny_sft", "--model", tiny, "--data", trl_data,
                     "--output", tmp_path / "s", ok=False)
    assert result.exit_code == 1 and "not cold-start data" in result.output


def test_split_and_coldstart_need_no_torch(tmp_path):
    """The core install is torch-free: the data side of training runs with torch unimportable."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; sys.modules['trl'] = None\n"
        "from spatial_ssrl.cli import main\n"
        f"d = {str(tmp_path / 'd')!r}\n"
        "for args in (['generate', '--out', d, '--num', '12', '--workers', '1', '-q', '--tasks', 'flip,crop'],\n"
        "             ['split', d, '--test-fraction', '0.25', '--coldstart-fraction', '0.25'],\n"
        f"             ['coldstart', '--data', d, '--out', {str(tmp_path / 'c')!r}, '--num', '2']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, (args, e.code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(shard_rows_any(tmp_path / "c")) == 2


def shard_rows_any(folder: Path) -> list[dict]:
    return [r for f in sorted((folder / "data").glob("*.parquet")) for r in pq.read_table(f, columns=["id"]).to_pylist()]
