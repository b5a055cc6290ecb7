"""``ssrl eval`` and ``ssrl infer`` end to end: pretext hold-out on a tiny model, scoring
predictions made elsewhere, resuming, comparing, refusing what is not ours."""

from __future__ import annotations

import json

import pytest
from deps import require, run_cli

require("torch")
require("torchvision")
require("transformers")
pq = require("pyarrow.parquet")






@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data, tiny = root / "data", root / "tiny"
    run_cli("generate", "--out", data, "--num", 24, "--seed", 5, "--workers", 1, "-q")
    run_cli("split", data, "--test-fraction", 0.3)
    run_cli("tiny-model", "--arch", "qwen2_5_vl", "--out", tiny)
    test_rows = [r for f in sorted((data / "data").glob("test-*.parquet"))
                 for r in pq.read_table(f, columns=["id", "task", "answer", "answer_type", "options"]).to_pylist()]
    return {"root": root, "data": data, "tiny": tiny, "test": test_rows}


def test_pretext_eval_on_a_tiny_model_agrees_with_ssrl_score(setup):
    out = setup["root"] / "ev"
    result = run_cli("eval", "dataset", "--model", setup["tiny"], "--data", setup["data"], "--out", out, "--max-new-tokens", 8, "--batch-size", 4, "-q")
    assert "pretext: accuracy" in result.output
    res = json.loads((out / "results.json").read_text())
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in preds) == sorted(r["id"] for r in setup["test"])  # the test split, each once
    assert res["n"] == len(setup["test"]) and res["benchmark"] == "pretext"
    assert set(res["per_category"]) == {r["task"] for r in setup["test"]}
    assert res["decoding"]["max_new_tokens"] == 8 and res["prompt"]["format_suffix"] is True
    assert (out / "results.md").read_text().startswith("# pretext")
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = setup["root"] / "score.json"
    run_cli("score", "--data", setup["data"], "--predictions", out / "predictions.jsonl", "--out", report)
    assert json.loads(report.read_text())["accuracy"] == res["accuracy"]
    # a second run finds every item done: nothing generated, the same results
    before = (out / "predictions.jsonl").read_text()
    run_cli("eval", "dataset", "--model", setup["tiny"], "--data", setup["data"], "--out", out, "--max-new-tokens", 8, "--batch-size", 4, "-q")
    assert (out / "predictions.jsonl").read_text() == before


def test_scoring_predictions_made_elsewhere(setup, tmp_path):
    rows = setup["test"]
    lines = []
    for i, r in enumerate(rows):
        right = i % 2 == 0
        if r["answer_type"] == "choice":
            box = r["answer"] if right else ("B" if r["answer"] != "B" else "C")
        elif r["answer_type"] == "flip":
            box = r["answer"] if right else ("0-1" if r["answer"] != "0-1" else "1-0")
        else:
            labels = r["answer"].split("-")
            box = r["answer"] if right else "-".join(labels[1:] + labels[:1])
        lines.append(json.dumps({"id": r["id"], "response": f"<think>t</think> \\boxed{{{box}}}"}))
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(lines) + "\n{not json\n")
    out = tmp_path / "scored"
    run_cli("eval", "predictions", preds, "--data", setup["data"], "--out", out)
    res = json.loads((out / "results.json").read_text())
    expected = 100.0 * sum(1 for i in range(len(rows)) if i % 2 == 0) / len(rows)
    assert res["accuracy"] == pytest.approx(expected)
    assert res["format_rate"] == 100.0 and res["parse_failures"] == 0
    assert res["malformed_prediction_lines"] == 1
    # an item without a prediction counts as wrong
    preds.write_text("\n".join(lines[1:]) + "\n")
    out2 = tmp_path / "scored2"
    run_cli("eval", "predictions", preds, "--data", setup["data"], "--out", out2)
    res2 = json.loads((out2 / "results.json").read_text())
    assert res2["accuracy"] == pytest.approx(100.0 * (sum(1 for i in range(len(rows)) if i % 2 == 0) - 1) / len(rows))


def test_infer_prints_the_response_and_the_parsed_answer(setup, tmp_path):
    from PIL import Image

    img = tmp_path / "a.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(img)
    result = run_cli("infer", "--model", setup["tiny"], "--image", img, "--image", img,
                     "--question", "Which is bigger?", "--max-new-tokens", 6)
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("answer: ")
    bad = run_cli("infer", "--model", setup["tiny"], "--image", img, "--question", "<image><image>?", ok=False)
    assert bad.exit_code == 2 and "2 <image> placeholder(s) but 1 --image" in bad.output


def test_compare_puts_models_beside_the_paper(setup, tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "ssrl").mkdir()
    a, b = tmp_path / "base" / "results.json", tmp_path / "ssrl" / "results.json"
    a.write_text(json.dumps({"benchmark": "3dsrbench", "accuracy": 50.0, "model": "/m/base"}))
    b.write_text(json.dumps({"benchmark": "3dsrbench", "accuracy": 52.5, "model": "/m/ssrl"}))
    out = tmp_path / "cmp"
    result = run_cli("eval", "compare", a, b, "--out", out)
    lines = result.output.strip().splitlines()
    assert lines[0] == "| model | 3dsrbench |"
    assert "| base | 50.00 |" in lines and "| ssrl | 52.50 |" in lines
    assert "| *Spatial-SSRL-7B (paper)* | 56.53 |" in lines
    assert (out / "compare.md").read_text().strip() == result.output.strip()
    assert (out / "compare.png").is_file()


def test_eval_refusals_are_one_line(setup, tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep")
    cases = [
        (["dataset", "--model", setup["tiny"], "--data", setup["data"], "--out", theirs], "did not write"),
        (["dataset", "--model", setup["tiny"], "--data", setup["data"], "--split", "nope", "--out", tmp_path / "o"],
         "has no 'nope' split"),
        (["dataset", "--model", tmp_path, "--data", setup["data"], "--out", tmp_path / "o2"], "no config.json"),
        (["benchmark", "nosuch", "--model", setup["tiny"], "--bench-path", tmp_path, "--out", tmp_path / "o3"],
         "unknown benchmark 'nosuch'"),
    ]
    for args, words in cases:
        result = run_cli("eval", *args, "-q", ok=False)
        assert result.exit_code == 1, result.output
        assert words in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert sorted(p.name for p in theirs.iterdir()) == ["notes.txt"]
    # the same folder for another evaluation is refused, the first one's files are kept
    out = setup["root"] / "ev"
    if out.exists():
        result = run_cli("eval", "dataset", "--model", setup["tiny"], "--data", setup["data"], "--out", out, "--max-new-tokens", 9, "-q", ok=False)
        assert result.exit_code == 1 and "holds another evaluation (its decoding differ)" in result.output


def test_a_benchmark_end_to_end_on_a_tiny_model(setup, tmp_path):
    """3DSRBench files in their distributed layout -> ssrl eval -> circular report, the
    undecodable image counted as a skip, the run resumable."""
    from test_bench_scoring_a import _srb_rows, _write_tsv

    folder = tmp_path / "3dsr"
    folder.mkdir()
    _write_tsv(folder / "3dsrbench_v1_vlmevalkit_circular.tsv", _srb_rows())
    out = tmp_path / "out"
    result = run_cli("eval", "benchmark", "3dsrbench", "--model", setup["tiny"], "--bench-path", folder, "--out", out, "--max-new-tokens", 6, "-q")
    assert "3dsrbench: accuracy" in result.output and "1 items skipped (undecodable_image 1)" in result.output
    res = json.loads((out / "results.json").read_text())
    assert res["benchmark"] == "3dsrbench" and res["items"] == 18 and res["skipped"]["count"] == 1
    first = res["skipped"]["first"]  # the undecodable image, named by its place in the file
    assert first["reason"] == "undecodable_image" and first["detail"]
    assert {"vanilla", "flip", "flip_circular"} <= set(res["metrics"])
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 18 and len({p["id"] for p in preds}) == 18
    assert all(isinstance(p["response"], str) for p in preds)


def test_a_benchmark_with_image_files_on_a_tiny_model(setup, tmp_path):
    """ViewSpatial-Bench gives its images as file paths (not bytes): the in-process backend
    opens them (it used to fail on the first item with "'str' object has no attribute 'mode'")."""
    from test_bench_scoring_b import view_repo

    root, _ = view_repo(tmp_path)
    out = tmp_path / "out"
    result = run_cli("eval", "benchmark", "viewspatial", "--model", setup["tiny"], "--bench-path", root, "--out", out, "--max-new-tokens", 4, "-q")
    res = json.loads((out / "results.json").read_text())
    assert res["benchmark"] == "viewspatial" and res["items"] >= 1, result.output
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == res["items"] and all(isinstance(p["response"], str) for p in preds)
