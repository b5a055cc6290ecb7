"""GRPO with two training processes on the CPU (torchrun, gloo), as the paper's 8-GPU runs:
the ranks draw distinct prompts that together cover the plan; only the main process writes
logs, markers and the online record; the online curriculum moves once for the run (every
rank sees the whole step, so the ranks' feeders keep drawing one stream); resume restores
the weights and the data position on every rank.

``train_samples.jsonl`` (which prompt ids each rank trained on at each step) is the oracle."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from deps import require, run_cli

torch = require("torch")
require("torchvision")
require("transformers")
require("trl")
require("peft")
safetensors_torch = require("safetensors.torch")
pq = require("pyarrow.parquet")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "spatial_ssrl.cli", *map(str, args)]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiproc")
    data, tiny = root / "data", root / "tiny"
    run_cli("generate", "--out", data, "--num", 15, "--seed", 11, "--workers", 1, "-q", "--tasks", "flip,crop")
    run_cli("split", data, "--test-fraction", 0.2)
    run_cli("tiny-model", "--arch", "qwen2_5_vl", "--out", tiny)
    train_ids = [i for f in sorted((data / "data").glob("train-*.parquet"))
                 for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
    return {"root": root, "data": data, "tiny": tiny, "train_ids": train_ids}


def grpo(setup, out: Path, *extra):
    return torchrun("train", "grpo", "-c", "tiny_grpo", "--model", setup["tiny"], "--data", setup["data"],
                    "--output", out, "--no-coldstart", *extra)


def steps_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_samples.jsonl").read_text().splitlines()]


def log_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()
            if "reward" in json.loads(line)]


def test_two_processes_offline_and_resume(setup):
    n = len(setup["train_ids"])
    steps = n // 4  # 2 prompts per rank per step: every train row once (x2 rollouts), the last partial step left out
    full = setup["root"] / "full"
    grpo(setup, full, "--max-steps", steps, "--set", "validation_steps=1", "--set", "learning_rate=0")
    got = steps_of(full)
    assert [s["step"] for s in got] == list(range(1, steps + 1))
    seen: Counter = Counter()
    for s in got:
        rank0, rank1 = (set(r) for r in s["ids_by_rank"])
        assert rank0 and rank1 and not rank0 & rank1, s  # distinct prompts on the two ranks
        for r in s["ids_by_rank"]:
            seen.update(r)
    assert set(seen) <= set(setup["train_ids"]) and len(seen) == 4 * steps
    assert set(seen.values()) == {2}  # each prompt's 2 rollouts, on one rank
    # one writer: every log line, validation and checkpoint once; both ranks' RNG states saved
    assert log_steps(full) == list(range(1, steps + 1))
    val = [json.loads(line)["step"] for line in (full / "validation.jsonl").read_text().splitlines()]
    assert val == list(range(1, steps + 1))
    assert {p.name for p in (full / f"checkpoint-{steps}").glob("rng_state_*.pth")} == {"rng_state_0.pth",
                                                                                        "rng_state_1.pth"}

    # resume on two processes: the checkpoint's weights (perturbed) and the data position
    from spatial_ssrl.training.runs import mark_checkpoint

    part = setup["root"] / "part"
    grpo(setup, part, "--max-steps", steps - 1, "--set", "validation_steps=0", "--set", "learning_rate=0")
    ck = part / f"checkpoint-{steps - 1}"
    perturbed = {k: v + 0.5 for k, v in safetensors_torch.load_file(str(ck / "model.safetensors")).items()}
    safetensors_torch.save_file(perturbed, str(ck / "model.safetensors"), metadata={"format": "pt"})
    mark_checkpoint(str(ck), steps - 1)
    done = grpo(setup, part, "--max-steps", steps, "--set", "validation_steps=0", "--set", "learning_rate=0",
                "--resume")
    assert f"resumed from checkpoint-{steps - 1}" in done.stdout
    final = safetensors_torch.load_file(str(part / f"checkpoint-{steps}" / "model.safetensors"))
    assert all(torch.equal(final[k], perturbed[k]) for k in perturbed)
    # the resumed step trained on the rows the uninterrupted run's last step did, rank by rank
    assert steps_of(part)[-1] == got[-1]
    assert log_steps(part) == list(range(1, steps + 1))


def test_two_processes_online_draw_one_stream(setup):
    out = setup["root"] / "online"
    grpo(setup, out, "--max-steps", 4, "--online", "--curriculum", "adaptive", "--set", "validation_steps=0",
         "--set", "curriculum_min_groups=1", "--set", "curriculum_cooldown=0", "--set", "curriculum_band=0")
    record = [json.loads(line) for line in (out / "online_samples.jsonl").read_text().splitlines()]
    assert [r["i"] for r in record] == list(range(len(record)))  # one writer: each position once
    got = steps_of(out)
    trained = [i for s in got for r in s["ids_by_rank"] for i in r]
    assert len(trained) == 4 * 8
    for s in got:
        rank0, rank1 = (set(r) for r in s["ids_by_rank"])
        assert not rank0 & rank1, s
    # the prompts the two ranks trained on are exactly the first positions of the main
    # process's stream (rank 1 generates nothing: it receives the main process's rows)
    first = [r["id"] for r in record[:16]]
    assert sorted(set(trained)) == sorted(first)
    assert log_steps(out) == [1, 2, 3, 4]
    # the curriculum moved on the whole step: the tasks it saw are those of both ranks' prompts
    logs = {json.loads(line)["step"]: json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()
            if "reward" in json.loads(line)}
    for s in got:
        tasks = {i.split("-")[0] for r in s["ids_by_rank"] for i in r}
        seen = {k.split("/")[1] for k in logs[s["step"]] if k.endswith("/zero_variance_share")}
        assert seen == tasks, (s["step"], seen, tasks)
    moves = json.loads((out / "checkpoint-4" / "curriculum_state.json").read_text())
    assert moves["step"] == 4


def _stream_ids(n: int, plan_size: int) -> list[str]:
    """The first ``n`` prompt ids of the online stream a tiny_grpo run draws, made here in one
    process (the stream does not depend on the process count: only the main process draws)."""
    import itertools

    from spatial_ssrl.training.cli import resolve_config
    from spatial_ssrl.training.config import build_config
    from spatial_ssrl.training.online import online_plan

    cfg = build_config("grpo", resolve_config("tiny_grpo"), {"model": "m", "output": "o", "online": True,
                                                              "max_steps": 3})
    plan = online_plan(cfg)
    plan.plan_size, plan.workers = plan_size, 0
    with plan.feeder(".", None) as feeder:
        feeder.record_path = None
        return [r["id"] for r in itertools.islice(feeder.rows(), n)]


def test_two_processes_online_resume(setup):
    """An online run resumed on two processes trains its next step on the prompts the
    uninterrupted stream holds there, rank by rank (the fixed curriculum: the stream does not
    depend on timing), and keeps the fixed plan of the run it continues when resumed with a
    larger --max-steps; the record holds each generated position once."""
    flags = ("--online", "--set", "validation_steps=0", "--set", "save_steps=1")
    part = setup["root"] / "online-part"
    grpo(setup, part, "--max-steps", 2, *flags)  # max_steps sizes the fixed plan: 2 steps of 4 prompts, 8
    done = grpo(setup, part, "--max-steps", 3, *flags, "--resume")  # would be 12 for 3 steps
    assert "resumed from checkpoint-2" in done.stdout
    ids = _stream_ids(12, plan_size=8)
    # each step: 4 prompts x 2 rollouts, rank 0 the first two prompts, rank 1 the next two
    expected = [{"step": s + 1, "ids_by_rank": [[i for i in ids[4 * s:4 * s + 2] for _ in range(2)],
                                                [i for i in ids[4 * s + 2:4 * s + 4] for _ in range(2)]]}
                for s in range(3)]
    assert steps_of(part) == expected
    record = [json.loads(line) for line in (part / "online_samples.jsonl").read_text().splitlines()]
    assert [r["i"] for r in record] == list(range(len(record)))
    assert [r["id"] for r in record if "id" in r][:12] == ids


def test_two_processes_sft(setup):
    """The other ranks wait for the main one to set up the run folder before writing their
    dataset cache into it (they used to race it, and the main one refused the folder)."""
    import shutil

    data, cold = setup["root"] / "data-sft", setup["root"] / "cold"
    shutil.copytree(setup["data"], data)  # the other tests keep their split
    run_cli("split", data, "--test-fraction", 0.2, "--coldstart-fraction", 0.3)
    run_cli("coldstart", "--data", data, "--out", cold, "--num", 6)
    out = setup["root"] / "sft"
    done = torchrun("train", "sft", "-c", "tiny_sft", "--model", setup["tiny"], "--data", cold, "--output", out,
                    "--max-steps", 2)
    assert done.stdout.count("sft: 2 steps") == 1  # said once, by the main process
    assert log_steps_sft(out) == [1, 2]
    marker = json.loads((out / "ssrl_run.json").read_text())
    assert marker["status"] == "complete"


def log_steps_sft(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()
            if "loss" in json.loads(line)]
