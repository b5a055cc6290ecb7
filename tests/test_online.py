"""Online generation during GRPO and the adaptive curriculum on real runs: online rows equal
the offline samples, every difficulty level re-derives from the pixels, the curriculum moves
levels from a stub policy's rewards inside a real GRPOTrainer on a tiny model, and a 2-step
online run through the CLI."""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deps import require, run_cli

from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
from spatial_ssrl.prompts import content_parts
from spatial_ssrl.sources import default_refs
from spatial_ssrl.tasks.levels import PAPER_LEVEL, task_levels
from spatial_ssrl.training.curriculum import CurriculumSettings, GroupRecorder
from spatial_ssrl.training.online import OnlineFeeder, curriculum_for

DEPTH_FREE = "shuffle,flip,crop"


def _digest(answer: str, images: list[bytes], prompt: list) -> str:
    h = hashlib.sha256(answer.encode() + b"\0" + json.dumps(prompt, sort_keys=True).encode())
    for b in images:
        h.update(hashlib.sha256(b).digest())
    return h.hexdigest()


def _offline(tmp: Path, num: int, seed: int, spec: str) -> dict[str, str]:
    out = tmp / f"offline-{seed}-{num}"
    run_generation(default_refs(), str(out), GenerateConfig(num=num, seed=seed, mix=parse_mix(spec, with_depth=True)))
    got = {}
    for f in glob.glob(str(out / "data" / "*.parquet")):
        for r in pq.read_table(f).to_pylist():
            prompt = [{"role": "user", "content": content_parts(r["problem"])}]  # what GRPO is shown
            got[r["id"]] = _digest(r["answer"], [i["bytes"] for i in r["images"]], prompt)
    return got


@pytest.mark.parametrize("workers", [0, 2])
def test_online_fixed_stream_equals_offline_generation(tmp_path, workers):
    n = 30
    offline = _offline(tmp_path, n, seed=7, spec=DEPTH_FREE)
    mix = parse_mix(DEPTH_FREE, with_depth=True)
    record = tmp_path / f"record-{workers}.jsonl"
    with OnlineFeeder(default_refs(), mix, seed=7, plan_size=n, workers=workers, record=str(record)) as feeder:
        it = feeder.rows()
        rows = [next(it) for _ in range(n)]
    online = {r["id"]: _digest(r["answer"], [i["bytes"] for i in r["images"]], r["prompt"]) for r in rows}
    assert online == offline
    # the record lists every drawn sample with the params that re-create it
    recs = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r["id"] for r in recs] == [r["id"] for r in rows]
    assert all(r["params"] and r["source"] and isinstance(r["k"], int) for r in recs)


def test_every_difficulty_level_re_derives_from_the_pixels(tmp_path):
    """One sample of every variant of every level, generated and then checked by
    `ssrl validate`, which re-derives each answer from the pixels by its own code path."""
    variants = sorted({(t, v) for t in PAPER_LEVEL for lv in task_levels(t) for v, _w in lv.variants})
    spec = ",".join(f"{t}:{v}=1" for t, v in variants)
    out = tmp_path / "levels"
    run_cli("generate", "--out", out, "-n", 2 * len(variants), "--tasks", spec, "--seed", 3, "-q")
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert sum(len(v) for v in counts.values()) == len(variants)  # every variant made it in
    checked = run_cli("validate", out)
    assert "all checked samples pass" in checked.output


def test_adaptive_stream_follows_the_curriculum(tmp_path):
    mix = parse_mix("shuffle", with_depth=True)
    cur = curriculum_for(mix, CurriculumSettings(mode="adaptive"), start={"shuffle": "1x3"})
    with OnlineFeeder(default_refs(), mix, seed=1, curriculum=cur, workers=0) as feeder:
        it = feeder.rows()
        first = [next(it) for _ in range(4)]
        assert {r["variant"] for r in first} == {"1x3"} and {r["level"] for r in first} == {"1x3"}
        cur.state["shuffle"].level = [lv.name for lv in task_levels("shuffle")].index("3x3")
        later = [next(it) for _ in range(4)]
    assert {r["variant"] for r in later} == {"3x3"}
    # the same seed and curriculum path give the same stream
    cur2 = curriculum_for(mix, CurriculumSettings(mode="adaptive"), start={"shuffle": "1x3"})
    with OnlineFeeder(default_refs(), mix, seed=1, curriculum=cur2, workers=0) as feeder:
        it = feeder.rows()
        again = [next(it) for _ in range(4)]
    assert [r["id"] for r in again] == [r["id"] for r in first]


def test_adaptive_curriculum_inside_grpo_on_a_tiny_model(tmp_path):
    """A real GRPOTrainer on a tiny model, fed by the online stream. The policy is a stub
    whose pass rate per level is known: it solves shuffle at levels up to 1x4 always, at
    4x1 half the time (decided by a hash of the sample id, so the run is reproducible) and
    never above. The level nearest the 0.5 target is 4x1: the curriculum must climb there
    from 1x3 within a bounded number of steps and stay; samples drawn after each move carry
    the new level."""
    require("torch")
    require("trl")
    from trl import GRPOConfig, GRPOTrainer

    from spatial_ssrl.models import load_model, load_processor
    from spatial_ssrl.tiny import build_tiny_model
    from spatial_ssrl.training.callbacks import CurriculumCallback
    from spatial_ssrl.training.rewards import _task_accuracy

    names = [lv.name for lv in task_levels("shuffle")]
    always, half = names.index("1x4"), names.index("4x1")
    base = tmp_path / "tiny"
    build_tiny_model("qwen2_5_vl", str(base))
    mix = parse_mix("shuffle", with_depth=True)
    cur = curriculum_for(mix, CurriculumSettings(mode="adaptive", min_groups=1, cooldown=0, band=0.2),
                         start={"shuffle": "1x3"})
    recorder = GroupRecorder()
    calls = {"n": 0}

    def stub_policy(completions, level, id, **_):
        calls["n"] += 1
        out = []
        for i, (lv, sid) in enumerate(zip(level, id)):
            k = names.index(lv)
            coin = hashlib.sha256(f"{sid}:{calls['n']}:{i}".encode()).digest()[0] < 128
            out.append(1.0 if k <= always or (k == half and coin) else 0.0)
        return out

    reward = _task_accuracy("shuffle", stub_policy, recorder)
    feeder = OnlineFeeder(default_refs(), mix, seed=0, curriculum=cur, workers=0,
                          record=str(tmp_path / "online_samples.jsonl"))
    steps = 16
    args = GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=steps, per_device_train_batch_size=16,
                      num_generations=4, max_completion_length=2, learning_rate=1e-5, logging_steps=1,
                      save_strategy="no", report_to="none", use_cpu=True, shuffle_dataset=False,
                      remove_unused_columns=False, seed=0)
    cb = CurriculumCallback(cur, recorder, feeder)
    trainer = GRPOTrainer(model=load_model(str(base), "float32"), reward_funcs=[reward], args=args,
                          train_dataset=feeder.dataset(), callbacks=[cb],
                          processing_class=load_processor(str(base), 3136, 3136, padding_side="left"))
    cb.trainer = trainer
    try:
        trainer.train()
    finally:
        feeder.close()
    levels = [int(h["curriculum/shuffle/level"]) for h in trainer.state.log_history if "curriculum/shuffle/level" in h]
    assert len(levels) == steps
    assert all(abs(a - b) <= 1 for a, b in itertools.pairwise(levels))   # one level at a time
    # one batch is drawn ahead of each step, so a level shows its first groups a step after
    # the move: two steps per level on the way up
    first = levels.index(half)
    assert first <= 2 * half + 1, levels                                # climbed without detours
    assert levels[-4:] == [half] * 4, levels                            # settled on the nearest level
    assert max(levels) <= half + 1                                      # at most one probe above
    drawn = [json.loads(line) for line in (tmp_path / "online_samples.jsonl").read_text().splitlines()]
    assert {d["level"] for d in drawn} >= {names[i] for i in range(half + 1)}
    assert all(d["variant"] == d["level"] for d in drawn)              # single-variant levels
    waits = [h["online/wait_share"] for h in trainer.state.log_history if "online/wait_share" in h]
    assert waits and all(0.0 <= w <= 1.0 for w in waits)


def test_two_step_online_grpo_through_the_cli(tmp_path):
    require("torch")
    require("trl")
    base, out = tmp_path / "tiny", tmp_path / "run"
    run_cli("tiny-model", "--arch", "qwen2_5_vl", "--out", base)
    run_cli("train", "grpo", "-c", "tiny_grpo", "--model", base, "--output", out, "--online", "--no-coldstart",
            "--max-steps", 2, "--set", "validation_steps=0", "--set", f"online_tasks={DEPTH_FREE}",
            "--set", "online_workers=1", "--curriculum", "adaptive")
    logs = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert any("online/wait_seconds" in row for row in logs)
    assert any(k.startswith("curriculum/") and k.endswith("/level") for row in logs for k in row)
    assert any("rewards/accuracy_shuffle/mean" in row or "rewards/accuracy_crop/mean" in row for row in logs)
    drawn = [json.loads(line) for line in (out / "online_samples.jsonl").read_text().splitlines()]
    assert drawn and all(d["task"] in DEPTH_FREE.split(",") for d in drawn if "id" in d)
    marker = json.loads((out / "ssrl_run.json").read_text())
    assert marker["status"] == "complete" and marker["steps"] == 2
    # a drawn sample is the offline sample of the same identity: regenerate one and compare
    rng = random.Random(0)
    d = rng.choice([d for d in drawn if "id" in d])
    assert d["id"].startswith(f"{d['task']}-{d['variant']}-")


def test_online_needs_max_steps_and_valid_settings(tmp_path):
    require("torch")
    require("trl")
    base = tmp_path / "tiny"
    run_cli("tiny-model", "--arch", "qwen2_5_vl", "--out", base)
    r = run_cli("train", "grpo", "--model", base, "--output", tmp_path / "r", "--online", "--no-coldstart",
                "--set", "validation_steps=0", ok=False)
    assert r.exit_code == 1 and "max_steps" in r.output
    r = run_cli("train", "grpo", "-c", "tiny_grpo", "--model", base, "--output", tmp_path / "r2", "--online",
                "--no-coldstart", "--set", "validation_steps=0", "--set", "curriculum_target=1.5", ok=False)
    assert r.exit_code == 1 and "between 0 and 1" in r.output
    r = run_cli("train", "grpo", "-c", "tiny_grpo", "--model", base, "--output", tmp_path / "r3",
                "--curriculum", "adaptive", "--data", tmp_path, ok=False)
    assert r.exit_code == 2 and "needs --online" in r.output
    assert not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()


def test_ssrl_tasks_lists_the_levels():
    lines = run_cli("tasks").output.splitlines()
    for task in PAPER_LEVEL:
        at = next(i for i, line in enumerate(lines) if line.startswith(task + " "))
        listed = lines[at + 1].split(":", 1)[1].strip().split(" < ")
        assert listed == [f"[{lv.name}]" if lv.name == PAPER_LEVEL[task] else lv.name for lv in task_levels(task)]


def test_fast_forward_reaches_the_stream_position_without_generating(tmp_path):
    """A resumed run passes the rows its trainer skips without generating them: the feeder
    replays the draws, takes the outcomes of failed positions from the saved state (here a
    broken input that condemns its source), and its first real row is the uninterrupted
    stream's row at that place."""
    from spatial_ssrl.sources.base import SourceRef

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    refs = [SourceRef(id="broken", path=str(broken)), *default_refs()]
    mix = parse_mix("flip,shuffle,crop", with_depth=False)
    with OnlineFeeder(refs, mix, seed=3, plan_size=40, workers=0) as first:
        rows = list(itertools.islice(first.rows(), 14))
        state = first.state()
    assert any(f[1] == "broken" and f[2] for f in state["failures"])  # the broken source failed, was condemned
    # resumed with another max_steps (which sizes the plan): the checkpoint's plan size holds
    with OnlineFeeder(refs, mix, seed=3, plan_size=60, workers=0) as resumed:
        resumed.fast_forward(10, json.loads(json.dumps(state)))  # as saved in a checkpoint
        stream = resumed.rows()
        skipped = list(itertools.islice(stream, 10))
        assert resumed.produced == 0  # nothing generated for the skipped rows
        assert all(r["id"] == "" and r["images"] == [] for r in skipped)
        rest = list(itertools.islice(stream, 4))
        assert [r["id"] for r in rest] == [r["id"] for r in rows[10:]]
        assert resumed.produced == 4


def _shared_rank(rank: int, port: int, out: str, broken: bool, resume: int) -> None:
    """One of two gloo processes reading the launch's online stream, as two trainer ranks do."""
    import os

    import torch.distributed as dist

    from spatial_ssrl.training.online import OnlineError

    os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        refs = default_refs()
        if broken:
            from spatial_ssrl.sources.base import SourceRef

            refs = [SourceRef(id=f"broken{i}", path=os.path.join(out, "not-an-image.png")) for i in range(3)]
        mix = parse_mix("flip,shuffle", with_depth=False)
        feeder = OnlineFeeder(refs, mix, seed=5, plan_size=30, workers=0, receive=rank != 0,
                              max_consecutive_failures=5)
        if resume:
            feeder.fast_forward(resume, {"failures": []})
        got: dict = {"ids": [], "error": None}
        try:
            got["ids"] = [r["id"] for r in itertools.islice(feeder.shared_rows(), resume + 6)]
        except OnlineError as exc:
            got["error"] = str(exc)
        got["produced"] = feeder.produced
        got["pool"] = feeder._pool is not None
        Path(out, f"rank{rank}.json").write_text(json.dumps(got))
        feeder.close()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("case", ["stream", "resume", "failure"])
def test_two_processes_share_one_online_stream(tmp_path, case):
    """With two processes only the main one generates: the other receives the same rows in
    the same order (it makes none and starts no generator process), placeholders of a resumed
    run are made on both sides, and a stream that fails on the main process fails on the
    other with its reason instead of leaving it waiting for a row."""
    require("torch")
    import socket

    import torch.multiprocessing as mp

    (tmp_path / "not-an-image.png").write_bytes(b"not an image")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    resume = 4 if case == "resume" else 0
    mp.start_processes(_shared_rank, args=(port, str(tmp_path), case == "failure", resume), nprocs=2,
                       start_method="spawn")
    main, other = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    if case == "failure":
        assert main["ids"] == other["ids"] == []
        assert main["error"]  # no usable source among the three broken files
        assert other["error"] == f"the main process's online stream stopped (OnlineError: {main['error']})"
        return
    assert main["error"] is None and other["error"] is None
    assert len(main["ids"]) == resume + 6 and all(main["ids"][resume:])
    assert other["ids"] == main["ids"]
    assert main["ids"][:resume] == [""] * resume  # the rows a resumed trainer skips
    assert main["produced"] == 6 and other["produced"] == 0 and not other["pool"]
    with OnlineFeeder(default_refs(), parse_mix("flip,shuffle", with_depth=False), seed=5, plan_size=30,
                      workers=0) as alone:  # the one stream is the stream of a single process
        assert [r["id"] for r in itertools.islice(alone.rows(), 6 + resume)][resume:] == main["ids"][resume:]
