"""Rows whose stored image bytes do not decode are counted and skipped by name wherever a
dataset is read (coldstart, SFT, GRPO, the pretext eval), never copied or crashed on;
coldstart says why it fell short, cleans the working folders of killed runs and refuses a
second run into the same folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from deps import require, run_cli

pa = require("pyarrow")
pq = require("pyarrow.parquet")
require("torch")
require("torchvision")
require("transformers")
require("trl")
require("peft")

GARBAGE = b"\x89PNG\r\n\x1a\n" + b"not really a picture" * 4


def spoil(folder: Path, split: str, every: int = 1, limit: int | None = None) -> list[str]:
    """Replace the first image of every ``every``-th row of ``split`` with bytes that are not an
    image; returns the ids spoiled (read back from the files)."""
    spoiled = []
    for f in sorted((folder / "data").glob(f"{split}-*.parquet")):
        table = pq.read_table(f)
        rows = table.to_pylist()
        for i, row in enumerate(rows):
            if i % every == 0 and (limit is None or len(spoiled) < limit):
                row["images"][0]["bytes"] = GARBAGE
                spoiled.append(row["id"])
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), f)
    return spoiled


def ids(folder: Path, split: str = "train") -> list[str]:
    return [r for f in sorted((folder / "data").glob(f"{split}-*.parquet"))
            for r in pq.read_table(f, columns=["id"]).column("id").to_pylist()]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("badrows")
    data = root / "data"
    run_cli("generate", "--out", data, "--num", 40, "--seed", 6, "--workers", 1, "-q", "--tasks", "flip,crop")
    run_cli("split", data, "--test-fraction", 0.25, "--coldstart-fraction", 0.3)
    tiny = root / "tiny"
    run_cli("tiny-model", "--arch", "qwen2_5_vl", "--out", tiny)
    spoiled = {s: spoil(data, s, every=2) for s in ("train", "test", "coldstart")}
    assert all(spoiled.values())
    return {"root": root, "data": data, "tiny": tiny, "spoiled": spoiled}


def test_coldstart_skips_undecodable_rows_by_name_and_says_why_it_fell_short(setup):
    out = setup["root"] / "cold"
    result = run_cli("coldstart", "--data", setup["data"], "--out", out, "--num", 1000)
    bad = setup["spoiled"]["coldstart"]
    written = ids(out)
    assert written and not set(written) & set(bad)
    assert set(written) | set(bad) == set(ids(setup["data"], "coldstart"))
    assert f"skipped {len(bad)} samples with an undecodable image: {bad[0]}" in result.output
    assert (f"note: 1000 were asked for and {len(written)} written: the coldstart split has "
            f"{len(written) + len(bad)} samples; {len(bad)} had an undecodable image") in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped_undecodable_image"] == sorted(bad) or set(manifest["skipped_undecodable_image"]) == set(bad)


def test_sft_skips_undecodable_examples(setup):
    cold = setup["root"] / "cold-sft"
    run_cli("coldstart", "--data", setup["data"], "--out", cold, "--num", 1000)
    bad = spoil(cold, "train", every=3)
    out = setup["root"] / "sft"
    result = run_cli("train", "sft", "-c", "tiny_sft", "--model", setup["tiny"], "--data", cold, "--output", out,
                     "--max-steps", 3)
    assert f"skipped {len(bad)} cold-start examples with an undecodable image: {min(bad)}" in result.output
    marker = json.loads((out / "ssrl_run.json").read_text())
    assert set(marker["data_stats"]["skipped_undecodable_image"]) == set(bad)
    assert marker["data_stats"]["rows"] == len(ids(cold)) - len(bad)


def test_grpo_skips_undecodable_rows_and_trains_on_the_rest(setup):
    out = setup["root"] / "grpo"
    bad = setup["spoiled"]["train"]
    good = [i for i in ids(setup["data"]) if i not in bad]
    # enough steps to draw every row once: the old code crashed on the first spoiled one
    steps = -(-len(good) // 2)
    result = run_cli("train", "grpo", "-c", "tiny_grpo", "--model", setup["tiny"], "--data", setup["data"],
                     "--output", out, "--no-coldstart", "--max-steps", steps, "--set", "validation_steps=0")
    assert f"skipped {len(bad)} training rows with an undecodable image: {min(bad)}" in result.output
    marker = json.loads((out / "ssrl_run.json").read_text())
    assert marker["steps"] == steps and marker["data_stats"]["rows"] == len(good)
    cache = [r for f in sorted((out / "dataset_cache").rglob("*.arrow"))
             for r in pa.ipc.open_stream(f).read_all().column("id").to_pylist()]
    assert sorted(cache) == sorted(good)


def test_pretext_eval_counts_undecodable_items_as_skipped(setup):
    out = setup["root"] / "ev"
    bad = setup["spoiled"]["test"]
    result = run_cli("eval", "dataset", "--model", setup["tiny"], "--data", setup["data"], "--out", out, "--max-new-tokens", 4, "--batch-size", 4, "-q")
    assert f"{len(bad)} items skipped (undecodable_image {len(bad)})" in result.output
    res = json.loads((out / "results.json").read_text())
    assert res["n"] == len(ids(setup["data"], "test")) - len(bad)


def test_coldstart_cleans_killed_runs_and_refuses_a_second_writer(setup, tmp_path):
    from spatial_ssrl.locking import FolderLock
    from spatial_ssrl.training.coldstart import WORK_PREFIX, _work_key

    killed = tmp_path / f"{WORK_PREFIX}0123456789abcdef"
    (killed / "data").mkdir(parents=True)
    (killed / "data" / ".tmp-00000.parquet").write_bytes(b"x" * 1000)
    busy_out = tmp_path / "busy"
    running = tmp_path / (WORK_PREFIX + _work_key(str(busy_out)))
    running.mkdir()
    with FolderLock(str(running)):
        refused = run_cli("coldstart", "--data", setup["data"], "--out", busy_out, "--num", 2, ok=False)
        assert refused.exit_code == 1
        assert f"another ssrl coldstart is writing {busy_out}" in refused.output
        run_cli("coldstart", "--data", setup["data"], "--out", tmp_path / "other", "--num", 2)
        assert not killed.exists()  # the killed run's folder, no longer locked, is gone
        assert running.is_dir()  # the running one's stays
    assert sorted(os.listdir(tmp_path / "other")) == ["data", "llamafactory", "manifest.json"]


def test_coldstart_overwrite_replaces_only_its_own_folder(setup, tmp_path):
    out = tmp_path / "cold"
    run_cli("coldstart", "--data", setup["data"], "--out", out, "--num", 3, "--seed", 1)
    first = json.loads((out / "manifest.json").read_text())
    again = run_cli("coldstart", "--data", setup["data"], "--out", out, "--num", 3, ok=False)
    assert again.exit_code == 1 and "--overwrite" in again.output
    run_cli("coldstart", "--data", setup["data"], "--out", out, "--num", 4, "--seed", 2, "--overwrite")
    second = json.loads((out / "manifest.json").read_text())
    assert (first["seed"], second["seed"]) == (1, 2) and second["num_requested"] == 4
    rows = [json.loads(line) for line in (out / "llamafactory" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == second["num_written"]
    assert sorted(os.listdir(tmp_path)) == ["cold"]  # no working or old folder left beside it
    # a file of the user's inside: refused with --overwrite too, and nothing moves
    (out / "data" / "notes.txt").write_text("mine")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    refused = run_cli("coldstart", "--data", setup["data"], "--out", out, "--num", 3, "--overwrite", ok=False)
    assert refused.exit_code == 1 and "did not write (data/notes.txt)" in refused.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    # a folder that is not a cold start of ours at all
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("mine")
    refused = run_cli("coldstart", "--data", setup["data"], "--out", other, "--num", 3, "--overwrite", ok=False)
    assert refused.exit_code == 1 and "not a cold-start folder of ours" in refused.output
    assert os.listdir(other) == ["x.txt"]


def test_one_evaluation_per_output_folder(setup, tmp_path):
    from spatial_ssrl.locking import FolderLock

    out = tmp_path / "ev"
    out.mkdir()
    with FolderLock(str(out)):
        result = run_cli("eval", "dataset", "--model", setup["tiny"], "--data", setup["data"], "--out", out, "--max-new-tokens", 4, "-q", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {out} is in use by another ssrl command (PID {os.getpid()}); wait for it to finish or choose "
        "another folder")
    assert not (out / "predictions.jsonl").exists()
