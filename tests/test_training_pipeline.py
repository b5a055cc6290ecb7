"""The whole training loop through the CLI on tiny models (CPU): generate -> split ->
cold-start data -> SFT (LoRA, merged) -> GRPO -> reload -> per-task rewards in the log ->
resume; a Qwen3-VL GRPO step on crop samples (5 images each); Ctrl-C during training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from deps import require, run_cli

torch = require("torch")
require("torchvision")
transformers = require("transformers")
require("trl")
require("peft")
pq = require("pyarrow.parquet")



REPO = Path(__file__).resolve().parents[1]




def shard_rows(folder: Path, split: str, columns: list[str]) -> list[dict]:
    """Rows of ``split`` read straight from the shard files (independently of our readers)."""
    rows = []
    for f in sorted((folder / "data").glob(f"{split}-*.parquet")):
        rows.extend(pq.read_table(f, columns=columns).to_pylist())
    return rows


def log_history(checkpoint: Path) -> list[dict]:
    return json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]


def load_state(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    data, cold, base = root / "data", root / "coldstart", root / "tiny"
    run_cli("generate", "--out", data, "--num", 40, "--seed", 1, "--workers", 1, "-q")
    ids_before = sorted(r["id"] for r in shard_rows(data, "train", ["id"]))
    split = run_cli("split", data, "--test-fraction", 0.2, "--coldstart-fraction", 0.25, "--seed", 0)
    run_cli("coldstart", "--data", data, "--out", cold, "--num", 8)
    run_cli("tiny-model", "--arch", "qwen2_5_vl", "--out", base)
    return {"root": root, "data": data, "cold": cold, "base": base, "ids_before": ids_before,
            "split_output": split.output}


def test_split_keeps_every_source_in_one_split(pipeline):
    data = pipeline["data"]
    by_split = {s: shard_rows(data, s, ["id", "source"]) for s in ("train", "test", "coldstart")}
    sources = {s: {r["source"] for r in rows} for s, rows in by_split.items()}
    assert all(rows for rows in by_split.values()), {s: len(r) for s, r in by_split.items()}
    assert not sources["train"] & sources["test"]
    assert not sources["train"] & sources["coldstart"]
    assert not sources["test"] & sources["coldstart"]
    # nothing lost, nothing duplicated
    assert sorted(r["id"] for rows in by_split.values() for r in rows) == pipeline["ids_before"]
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["splits"]["rows"] == {s: len(r) for s, r in sorted(by_split.items())}
    assert sorted(os.listdir(data / "data")) == sorted(Path(f).name for f in manifest["files"] if f.startswith("data/"))
    # the datasets library reads the shard names as splits
    from datasets import load_dataset

    ds = load_dataset(str(data))
    assert {s: len(ds[s]) for s in ds} == {s: len(r) for s, r in by_split.items()}


def test_coldstart_rows_answer_and_images(pipeline):
    data, cold = pipeline["data"], pipeline["cold"]
    rows = shard_rows(cold, "train", ["id", "messages", "images", "task", "variant", "answer", "source"])
    assert len(rows) == 8
    cold_sources = {r["source"] for r in shard_rows(data, "coldstart", ["source"])}
    grpo_sources = {r["source"] for r in shard_rows(data, "train", ["source"])}
    originals = {r["id"]: r for r in shard_rows(data, "coldstart", ["id", "images", "answer"])}
    for r in rows:
        assert r["source"] in cold_sources and r["source"] not in grpo_sources
        user, assistant = r["messages"]
        n_image_parts = sum(p["type"] == "image" for p in user["content"])
        assert n_image_parts == len(r["images"]) == len(originals[r["id"]]["images"])
        assert [i["bytes"] for i in r["images"]] == [i["bytes"] for i in originals[r["id"]]["images"]]
        text = "".join(p["text"] for p in user["content"] if p["type"] == "text")
        assert text.endswith("The final answer MUST BE put in \\boxed{}.")
        reply = assistant["content"][0]["text"]
        assert reply.startswith("<think>\n") and reply.endswith(f"</think>\n\\boxed{{{originals[r['id']]['answer']}}}")
    # spread evenly: no (task, variant) group gets two more than another that still had rows left
    available = Counter((r["task"], r["variant"]) for r in shard_rows(data, "coldstart", ["task", "variant"]))
    got = Counter((r["task"], r["variant"]) for r in rows)
    full = [got[k] for k in available if got[k] < available[k]]
    assert not full or max(got.values()) <= min(full) + 1, (got, available)
    # the LLaMA-Factory copy says the same
    lf = [json.loads(line) for line in (cold / "llamafactory" / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lf] == [r["id"] for r in rows]
    for rec, row in zip(lf, rows):
        assert rec["messages"][1]["content"] == row["messages"][1]["content"][0]["text"]
        assert rec["messages"][0]["content"].count("<image>") == len(rec["images"])
        for rel, img in zip(rec["images"], row["images"]):
            assert (cold / "llamafactory" / rel).read_bytes() == img["bytes"]
    info = json.loads((cold / "llamafactory" / "dataset_info.json").read_text())
    assert info["spatial_ssrl_coldstart"]["file_name"] == "train.jsonl"


@pytest.fixture(scope="module")
def sft_run(pipeline):
    out = pipeline["root"] / "sft"
    run_cli("train", "sft", "-c", "tiny_sft", "--model", pipeline["base"], "--data", pipeline["cold"],
            "--output", out, "--max-steps", 2)
    return out


def test_sft_writes_a_merged_plain_checkpoint(pipeline, sft_run):
    names = set(os.listdir(sft_run))
    assert {"config.json", "model.safetensors"} <= names
    assert not [n for n in names if n.startswith("adapter")], names
    model = transformers.AutoModelForImageTextToText.from_pretrained(sft_run)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    transformers.AutoProcessor.from_pretrained(sft_run)
    # the merged LoRA update changed the weights it targets, and only weights of the same names exist
    before, after = load_state(pipeline["base"]), load_state(sft_run)
    assert set(before) == set(after)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(k.endswith(".weight") for k in changed)
    assert (sft_run / "checkpoint-2" / "adapter_model.safetensors").is_file()
    marker = json.loads((sft_run / "ssrl_run.json").read_text())
    assert marker["kind"] == "sft" and marker["status"] == "complete" and marker["steps"] == 2


@pytest.fixture(scope="module")
def grpo_run(pipeline, sft_run):
    out = pipeline["root"] / "grpo"
    run_cli("train", "grpo", "-c", "tiny_grpo", "--model", sft_run, "--data", pipeline["data"],
            "--output", out, "--max-steps", 2)
    return out


def test_grpo_logs_our_per_task_rewards(pipeline, grpo_run):
    history = log_history(grpo_run / "checkpoint-2")
    train_tasks = {r["task"] for r in shard_rows(pipeline["data"], "train", ["task"])}
    step_logs = [h for h in history if "reward" in h]
    assert len(step_logs) == 2
    for h in step_logs:
        keys = {k for k in h if k.startswith("rewards/") and k.endswith("/mean")}
        assert keys == {f"rewards/accuracy_{t}/mean" for t in train_tasks} | {"rewards/format_reward/mean"}
        # the logged total is 0.9 x (the task accuracy of each row) + 0.1 x format: with a random
        # tiny model both are 0, and never above what the weights allow
        assert 0.0 <= h["reward"] <= 1.0
    marker = json.loads((grpo_run / "ssrl_run.json").read_text())
    assert marker["reward_functions"] == [f"accuracy_{t}" for t in sorted(train_tasks)] + ["format_reward"]
    assert marker["reward_weights"] == [0.9] * len(train_tasks) + [0.1]
    # in-training validation ran on the held-out split, scored per task
    val = [json.loads(line) for line in (grpo_run / "validation.jsonl").read_text().splitlines()]
    test_ids = {r["id"] for r in shard_rows(pipeline["data"], "test", ["id"])}
    assert val and all({p["id"] for p in v["predictions"]} <= test_ids for v in val)
    assert "val/accuracy" in val[-1]["metrics"]


def test_grpo_checkpoint_reloads_and_resume_adds_steps(pipeline, grpo_run):
    model = transformers.AutoModelForImageTextToText.from_pretrained(grpo_run)
    assert model.config.model_type == "qwen2_5_vl"
    run_cli("train", "grpo", "-c", "tiny_grpo", "--model", pipeline["root"] / "sft", "--data", pipeline["data"],
            "--output", grpo_run, "--max-steps", 3, "--resume", "--set", "validation_steps=0")
    state = json.loads((grpo_run / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    # the resumed run kept the first two steps' log and added the third
    assert [h["step"] for h in state["log_history"] if "reward" in h][-3:] == [1, 2, 3]
    transformers.AutoModelForImageTextToText.from_pretrained(grpo_run)


def test_qwen3_vl_grpo_step_on_five_image_crop_prompts(pipeline):
    base, out = pipeline["root"] / "tiny3", pipeline["root"] / "grpo3"
    run_cli("tiny-model", "--arch", "qwen3_vl", "--out", base)
    refused = run_cli("train", "grpo", "-c", "tiny_grpo", "--model", base, "--data", pipeline["data"],
                      "--output", out, ok=False)
    assert refused.exit_code == 1 and "--no-coldstart" in refused.output and not out.exists()
    run_cli("train", "grpo", "-c", "tiny_grpo", "--model", base, "--data", pipeline["data"], "--output", out,
            "--max-steps", 1, "--no-coldstart", "--set", "tasks=[crop]", "--set", "validation_steps=0")
    step = next(h for h in log_history(out / "checkpoint-1") if "reward" in h)
    assert "rewards/accuracy_crop/mean" in step and step["rewards/accuracy_crop/mean"] is not None
    assert not [k for k in step if k.startswith("rewards/accuracy_") and "crop" not in k]
    assert transformers.AutoModelForImageTextToText.from_pretrained(out).config.model_type == "qwen3_vl"


def test_ctrl_c_during_training_leaves_a_usable_checkpoint(pipeline, tmp_path):
    out = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "spatial_ssrl.cli", "train", "grpo", "-c", "tiny_grpo", "--model",
           str(pipeline["base"]), "--data", str(pipeline["data"]), "--output", str(out), "--no-coldstart",
           "--max-steps", "400", "--set", "validation_steps=0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "TQDM_DISABLE": "1"})
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoint-2" / "ssrl_checkpoint.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it
        t0 = time.monotonic()
        _stdout, stderr = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr[-2000:]
    assert elapsed < 2, elapsed  # the promise: about 2 s
    assert "Traceback" not in stderr
    assert "interrupted; last complete checkpoint" in stderr
    from spatial_ssrl.training.runs import last_checkpoint

    last = Path(last_checkpoint(str(out)))
    transformers.AutoModelForImageTextToText.from_pretrained(last)
    assert json.loads((last / "trainer_state.json").read_text())["global_step"] >= 2
