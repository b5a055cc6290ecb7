"""Resume continues from the checkpoint's weights, tensor for tensor; checkpoints count only
when complete; one training per run folder.

The weight tests perturb a checkpoint and resume with learning rate 0: the next checkpoint
must hold exactly the perturbed tensors (the run started from the model's own weights, so a
resume that loads nothing, or loads it under the wrong keys, ends with those instead). They
cover full fine-tuning and LoRA, SFT and GRPO, Qwen2.5-VL and Qwen3-VL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deps import require, run_cli

torch = require("torch")
require("torchvision")
require("transformers")
require("trl")
require("peft")
safetensors_torch = require("safetensors.torch")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    data, cold = root / "data", root / "coldstart"
    run_cli("generate", "--out", data, "--num", 32, "--seed", 2, "--workers", 1, "-q", "--tasks", "flip,crop")
    run_cli("split", data, "--test-fraction", 0.2, "--coldstart-fraction", 0.3, "--seed", 0)
    run_cli("coldstart", "--data", data, "--out", cold, "--num", 6)
    models = {}
    for arch in ("qwen2_5_vl", "qwen3_vl"):
        models[arch] = root / f"tiny-{arch}"
        run_cli("tiny-model", "--arch", arch, "--out", models[arch])
    return {"root": root, "data": data, "cold": cold, "models": models}


def train(kind: str, inputs, arch: str, out: Path, *extra, ok: bool = True):
    data = inputs["cold"] if kind == "sft" else inputs["data"]
    args = ["train", kind, "-c", f"tiny_{kind}", "--model", inputs["models"][arch], "--data", data,
            "--output", out, "--set", "validation_steps=0", *extra]
    if kind == "grpo":
        args.append("--no-coldstart")
    return run_cli(*args, ok=ok)


def weights_file(checkpoint: Path) -> Path:
    adapter = checkpoint / "adapter_model.safetensors"
    return adapter if adapter.is_file() else checkpoint / "model.safetensors"


def perturb(checkpoint: Path) -> dict:
    """Add 0.5 to every tensor of the checkpoint's weights and re-mark it complete."""
    from spatial_ssrl.training.runs import mark_checkpoint

    path = weights_file(checkpoint)
    state = {k: v + 0.5 for k, v in safetensors_torch.load_file(str(path)).items()}
    safetensors_torch.save_file(state, str(path), metadata={"format": "pt"})
    mark_checkpoint(str(checkpoint), int(checkpoint.name.split("-")[1]))
    return state


CASES = [(kind, arch, lora) for kind in ("grpo", "sft") for arch in ("qwen2_5_vl", "qwen3_vl")
         for lora in (False, True)]


@pytest.mark.parametrize(("kind", "arch", "lora"), CASES,
                         ids=[f"{k}-{a}-{'lora' if lo else 'full'}" for k, a, lo in CASES])
def test_resume_continues_from_the_checkpoint_weights(inputs, tmp_path, kind, arch, lora):
    out = tmp_path / "run"
    settings = ["--set", "learning_rate=0", "--set", f"lora={str(lora).lower()}"]
    train(kind, inputs, arch, out, "--max-steps", 2, *settings)
    expected = perturb(out / "checkpoint-2")
    train(kind, inputs, arch, out, "--max-steps", 3, "--resume", *settings)
    got = safetensors_torch.load_file(str(weights_file(out / "checkpoint-3")))
    assert set(got) == set(expected)
    differ = [k for k in expected if not torch.equal(got[k], expected[k])]
    assert not differ, f"{len(differ)} of {len(expected)} tensors differ from the checkpoint, e.g. {differ[:3]}"
    # the optimizer and the scheduler went on from the checkpoint's (3 steps, not 1)
    optim = torch.load(out / "checkpoint-3" / "optimizer.pt", weights_only=True)
    assert {int(s["step"]) for s in optim["state"].values()} == {3}
    sched = torch.load(out / "checkpoint-3" / "scheduler.pt", weights_only=True)
    assert sched["last_epoch"] == 3
    # the merged / final model at the top is the resumed one too (LoRA: merged from it)
    if not lora:
        final = safetensors_torch.load_file(str(out / "model.safetensors"))
        assert all(torch.equal(final[k], expected[k]) for k in expected)


def test_resume_with_weights_of_another_shape_is_one_line(inputs, tmp_path):
    out = tmp_path / "run"
    train("grpo", inputs, "qwen2_5_vl", out, "--max-steps", 1)
    ck = out / "checkpoint-1"
    state = safetensors_torch.load_file(str(ck / "model.safetensors"))
    dropped = min(k for k in state if "layers.1." in k)
    del state[dropped]
    state["model.extra.weight"] = torch.zeros(2)
    safetensors_torch.save_file(state, str(ck / "model.safetensors"), metadata={"format": "pt"})
    from spatial_ssrl.training.runs import mark_checkpoint

    mark_checkpoint(str(ck), 1)
    result = train("grpo", inputs, "qwen2_5_vl", out, "--max-steps", 2, "--resume", ok=False)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    assert "do not fit the model" in line and "missing model.language_model.layers.1." in line
    assert "unexpected model.language_model.extra.weight" in line  # named as the model names it
    marker = json.loads((out / "ssrl_run.json").read_text())
    assert marker["status"] == "failed"


def test_torn_and_truncated_checkpoints_fall_back_in_one_line(inputs, tmp_path):
    out = tmp_path / "run"
    train("grpo", inputs, "qwen2_5_vl", out, "--max-steps", 3)
    # checkpoint-3: killed while trainer_state.json was written (no marker, an empty file);
    # checkpoint-2: optimizer.pt cut short after the save
    (out / "checkpoint-3" / "ssrl_checkpoint.json").unlink()
    (out / "checkpoint-3" / "trainer_state.json").write_bytes(b"")
    with open(out / "checkpoint-2" / "optimizer.pt", "r+b") as fh:
        fh.truncate(100)
    from spatial_ssrl.training.runs import last_checkpoint

    assert last_checkpoint(str(out)).endswith("checkpoint-1")
    result = subprocess.run([sys.executable, "-m", "spatial_ssrl.cli", "train", "grpo", "-c", "tiny_grpo",
                             "--model", str(inputs["models"]["qwen2_5_vl"]), "--data", str(inputs["data"]),
                             "--output", str(out), "--no-coldstart", "--set", "validation_steps=0",
                             "--max-steps", "4", "--resume"],
                            capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"}, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    said = [line for line in result.stderr.splitlines() if line.startswith("incomplete checkpoint")]
    assert len(said) == 1, result.stderr[-3000:]
    assert "checkpoint-2 (optimizer.pt has 100 of" in said[0] and "checkpoint-3 (its save did not finish)" in said[0]
    assert said[0].endswith("resuming from checkpoint-1")
    assert "resumed from checkpoint-1" in result.stdout
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert [h["step"] for h in state["log_history"] if "reward" in h] == [1, 2, 3, 4]
    assert last_checkpoint(str(out)).endswith("checkpoint-4")
    marker = json.loads((out / "ssrl_run.json").read_text())
    assert marker["status"] == "complete"


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_sigkill_while_trainer_state_is_written(inputs, tmp_path):
    """The fault itself: SIGKILL on the first write to checkpoint-2/trainer_state.json."""
    out = tmp_path / "k2"
    out.mkdir()
    cmd = [sys.executable, "-m", "spatial_ssrl.cli", "train", "grpo", "-c", "tiny_grpo",
           "--model", str(inputs["models"]["qwen2_5_vl"]), "--data", str(inputs["data"]), "--output", str(out),
           "--no-coldstart", "--set", "validation_steps=0", "--max-steps", "3"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    target = out / "checkpoint-2" / "trainer_state.json"
    killed = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-P", str(target), "-e", "trace=write",
                             "-e", "inject=write:signal=KILL", *cmd], capture_output=True, text=True, env=env,
                            timeout=600, check=False)
    if "ptrace" in killed.stderr and "Operation not permitted" in killed.stderr:
        pytest.skip("ptrace is not permitted here")
    assert killed.returncode != 0
    assert target.exists() and target.stat().st_size == 0
    from spatial_ssrl.training.runs import last_checkpoint

    assert last_checkpoint(str(out)).endswith("checkpoint-1")
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    assert "incomplete checkpoint removed: checkpoint-2 (its save did not finish); resuming from checkpoint-1" \
        in resumed.stderr
    assert json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == 3
    assert json.loads((out / "ssrl_run.json").read_text())["status"] == "complete"


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_rotation_never_leaves_no_complete_checkpoint(inputs, tmp_path):
    """save_total_limit=1: killed as checkpoint-2 is being marked, checkpoint-1
    (the only complete one) is still there; rotation waits for the new one to be complete."""
    out = tmp_path / "rot"
    out.mkdir()
    cmd = [sys.executable, "-m", "spatial_ssrl.cli", "train", "grpo", "-c", "tiny_grpo",
           "--model", str(inputs["models"]["qwen2_5_vl"]), "--data", str(inputs["data"]), "--output", str(out),
           "--no-coldstart", "--set", "validation_steps=0", "--set", "save_total_limit=1", "--max-steps", "3"]
    # the second opening of the checkpoint-2 folder is our marking walk, after the trainer has
    # saved every file (the first is the weights writer's listing)
    folder = out / "checkpoint-2"
    killed = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-P", str(folder), "-e", "trace=openat",
                             "-e", "inject=openat:signal=KILL:when=2", *cmd], capture_output=True, text=True,
                            env={**os.environ, "TQDM_DISABLE": "1"}, timeout=600, check=False)
    if "Operation not permitted" in killed.stderr:
        pytest.skip("ptrace is not permitted here")
    assert killed.returncode != 0
    from spatial_ssrl.training.runs import complete_checkpoints

    assert [Path(p).name for p in complete_checkpoints(str(out))] == ["checkpoint-1"]
    assert (folder / "trainer_state.json").is_file() and not (folder / "ssrl_checkpoint.json").exists()
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"}, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [Path(p).name for p in complete_checkpoints(str(out))] == ["checkpoint-3"]  # rotated, one kept


def test_resuming_a_finished_run_is_a_no_op(inputs, tmp_path):
    out = tmp_path / "run"
    train("sft", inputs, "qwen2_5_vl", out, "--max-steps", 1)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = train("sft", inputs, "qwen2_5_vl", out, "--max-steps", 1, "--resume")
    assert "already complete (1 steps); nothing to do" in again.output
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_two_trainings_into_one_folder(inputs, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "spatial_ssrl.cli", "train", "grpo", "-c", "tiny_grpo",
           "--model", str(inputs["models"]["qwen2_5_vl"]), "--data", str(inputs["data"]), "--output", str(out),
           "--no-coldstart", "--set", "validation_steps=0", "--max-steps"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    first = subprocess.Popen([*cmd, "400"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (out / "ssrl_run.json").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = subprocess.run([*cmd, "3"], capture_output=True, text=True, env=env, timeout=300, check=False)
        assert first.poll() is None, "the first run ended before the second was refused"
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 1
    assert "Traceback" not in second.stderr
    assert second.stderr.strip().splitlines() == [
        (f"Error: {out} is in use by another ssrl command (PID {first.pid}); wait for it to finish or choose "
         "another folder")]
    assert first.returncode == 130, err[-3000:]
    # one writer: every logged step once, in order
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()
             if "reward" in json.loads(line)]
    assert steps == list(range(1, len(steps) + 1))
    assert json.loads((out / "ssrl_run.json").read_text())["status"] == "interrupted"


def test_failed_start_keeps_the_users_empty_folder(inputs, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    broken = tmp_path / "broken-tokenizer"
    shutil.copytree(inputs["models"]["qwen2_5_vl"], broken)
    (broken / "tokenizer.json").write_text("{not json")  # fails once the run folder is set up
    result = train("grpo", {**inputs, "models": {"x": broken}}, "x", out, "--max-steps", 1, ok=False)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"cannot load a processor from {broken}" in result.output.strip().splitlines()[-1]
    assert out.is_dir() and os.listdir(out) == []
    # a retry is not refused as "files this program did not write"
    train("sft", inputs, "qwen2_5_vl", out, "--max-steps", 1)


def test_model_folder_problems_are_one_line_before_loading(inputs, tmp_path):
    truncated = tmp_path / "truncated"
    shutil.copytree(inputs["models"]["qwen2_5_vl"], truncated)
    weights = truncated / "model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])
    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(inputs["models"]["qwen2_5_vl"], no_tokenizer)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        if (no_tokenizer / name).exists():
            (no_tokenizer / name).unlink()
    for model, expected in ((truncated, f"model.safetensors is truncated ({size // 2} of {size} bytes)"),
                            (no_tokenizer, "has no tokenizer files")):
        out = tmp_path / f"out-{model.name}"
        result = train("grpo", {**inputs, "models": {"x": model}}, "x", out, "--max-steps", 1, ok=False)
        assert result.exit_code == 1
        assert "Traceback" not in result.output and "Loading weights" not in result.output
        assert expected in result.output.strip().splitlines()[-1]
        assert not out.exists()


def test_online_resume_continues_the_stream(inputs, tmp_path):
    """An online run resumed from checkpoint-2 trains step 3 on the prompts the uninterrupted
    run's step 3 had (the fixed plan: the data position and the stream are restored), samples
    the same completions (the RNG state is restored) and generates nothing for the rows it
    skips to get there."""
    ref = tmp_path / "ref"
    # near-flat sampling: the completions depend on the RNG state; generation in the trainer's
    # process: the count of samples made is exact
    hot = ("--set", "temperature=8", "--set", "online_workers=0")
    train("grpo", inputs, "qwen2_5_vl", ref, "--online", "--max-steps", 3, *hot)
    cut = tmp_path / "cut"
    shutil.copytree(ref, cut)
    shutil.rmtree(cut / "checkpoint-3")  # as if killed during step 3
    marker = json.loads((cut / "ssrl_run.json").read_text())
    marker["status"] = "running"
    (cut / "ssrl_run.json").write_text(json.dumps(marker))
    for log in ("train_samples.jsonl", "train_log.jsonl"):  # what a run killed in step 3 had written
        lines = [line for line in (cut / log).read_text().splitlines() if json.loads(line)["step"] <= 2]
        (cut / log).write_text("\n".join(lines) + "\n")
    result = train("grpo", inputs, "qwen2_5_vl", cut, "--online", "--max-steps", 3, "--resume", *hot)
    assert "resumed from checkpoint-2" in result.output
    got = [json.loads(line) for line in (cut / "train_samples.jsonl").read_text().splitlines()]
    want = [json.loads(line) for line in (ref / "train_samples.jsonl").read_text().splitlines()]
    assert got == want
    # the same weights, prompts and restored RNG state sample the same completions: step 3's
    # entropy and KL are the uninterrupted run's, to the bit
    keys = ("entropy", "kl", "reward", "completions/mean_length")

    def step3(run):
        rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
        row = next(r for r in rows if r["step"] == 3 and "entropy" in r)
        return {k: row[k] for k in keys}

    assert step3(cut) == step3(ref)
    # the resumed run generated no sample for the two rounds it skipped: by its first step it
    # had made as many as the uninterrupted run by its first
    def made(run, step):
        rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
        return next(r["online/samples"] for r in rows if r["step"] == step and "online/samples" in r)

    assert made(cut, 3) == made(ref, 1)
    # the record holds each position once, though the resumed run drew the stream again
    positions = [json.loads(line)["i"] for line in (cut / "online_samples.jsonl").read_text().splitlines()]
    assert positions == list(range(len(positions)))


def test_online_resume_restores_the_curriculum_state(inputs, tmp_path):
    """The adaptive curriculum's state comes back from the checkpoint: a level changed in
    checkpoint-2's curriculum_state.json is the level the resumed step 3 runs at."""
    from spatial_ssrl.training.runs import mark_checkpoint

    out = tmp_path / "cur"
    settings = ["--online", "--curriculum", "adaptive", "--set", "curriculum_min_groups=100000"]  # no moves
    train("grpo", inputs, "qwen2_5_vl", out, "--max-steps", 2, *settings)
    path = out / "checkpoint-2" / "curriculum_state.json"
    state = json.loads(path.read_text())
    task = "flip"
    before = state["tasks"][task]["level"]
    state["tasks"][task]["level"] = new = 1 if before != 1 else 0
    path.write_text(json.dumps(state))
    mark_checkpoint(str(out / "checkpoint-2"), 2)
    train("grpo", inputs, "qwen2_5_vl", out, "--max-steps", 3, "--resume", *settings)
    logs = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    step3 = [row for row in logs if row["step"] == 3 and f"curriculum/{task}/level" in row]
    assert step3 and step3[-1][f"curriculum/{task}/level"] == new
    after = json.loads((out / "checkpoint-3" / "curriculum_state.json").read_text())
    assert after["step"] == 3 and after["tasks"][task]["level"] == new
