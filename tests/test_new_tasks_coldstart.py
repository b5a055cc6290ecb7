"""The tasks beyond the paper's five reach the cold start like the five: each gets a rationale
of its own (not the generic one) ending in its stored answer, boxed."""

from __future__ import annotations

import json

from deps import run_cli

from spatial_ssrl.training.coldstart import FALLBACK

NEW = ("rotation", "distance", "camera_motion", "temporal", "correspondence", "counting")


def test_cold_start_rows_of_the_new_tasks(tmp_path):
    from spatial_ssrl.tasks import available_tasks

    tasks = [t for t in NEW if t in available_tasks()]
    data, cold = tmp_path / "data", tmp_path / "cold"
    run_cli("generate", "--out", data, "--num", 4 * len(tasks), "--seed", 2, "--workers", 1, "-q",
            "--tasks", ",".join(tasks))
    run_cli("split", data, "--test-fraction", 0.0, "--coldstart-fraction", 0.6)
    run_cli("coldstart", "--data", data, "--out", cold, "--num", 4 * len(tasks))
    rows = [json.loads(line) for line in (cold / "llamafactory" / "train.jsonl").read_text().splitlines()]
    seen = set()
    for row in rows:
        target = row["messages"][-1]["content"]
        think, boxed = target.split("</think>")
        assert FALLBACK not in think, row["task"]
        assert boxed.strip() == f"\\boxed{{{row['answer']}}}"
        seen.add(row["task"])
    assert len(seen) >= 3, seen  # the cold-start split holds several of them
