"""``ssrl eval --suite``: each benchmark of a suite scored from predictions (no model) into
OUT/<benchmark>/, the missing ones skipped with their reason, one table for the suite, and
several suite folders compared, a row per folder."""

from __future__ import annotations

import json

import pytest
from deps import require, run_cli
from test_eval_hub import _image, _preds, _srb_tsv, hub_cache

from spatial_ssrl.eval.suites import SUITES

pa = require("pyarrow")
pq = require("pyarrow.parquet")


def bench_root(tmp_path):
    """3DSRBench, ViewSpatial-Bench and SpatialEval (vqa) under one folder, three questions each."""
    root = tmp_path / "benchmarks"
    (root / "3dsrbench").mkdir(parents=True)
    (root / "3dsrbench" / "3dsrbench_v1_vlmevalkit_circular.tsv").write_bytes(_srb_tsv())
    vs = root / "ViewSpatial-Bench"  # found by the benchmark's name, case and '-' aside
    rows = [{"question_type": "Camera perspective - Relative Direction", "question": f"Where is thing {i}?",
             "image_path": [f"ViewSpatial-Bench/val2017/{i}.jpg"], "answer": answer,
             "choices": "A. left\nB. right"} for i, answer in enumerate(("A. left", "B. right", "B. right"))]
    (vs / "val2017").mkdir(parents=True)
    (vs / "ViewSpatial-Bench.json").write_text(json.dumps(rows))
    for i in range(3):
        (vs / "val2017" / f"{i}.jpg").write_bytes(_image("JPEG"))
    se = root / "spatialeval" / "vqa"  # spatialreal questions: the official substring rule reads the whole answer
    se.mkdir(parents=True)
    text = "Which way is the cat? Available options:\nA. north\nB. south."
    pq.write_table(pa.table({
        "id": [f"spatialreal.vqa.{i}.0" for i in range(3)],
        "text": [text] * 3,
        "image": [{"bytes": _image(), "path": None}] * 3,
        "oracle_answer": ["north", "south", "north"],
        "oracle_option": ["A", "B", "A"],
        "oracle_full_answer": ["north", "south", "north"],
    }), se / "test-00000-of-00001.parquet")
    return root


def predictions(folder, right: int):
    """Predictions for the three benchmarks, the first ``right`` answers right of three each;
    SpatialEval's as a previous run's <name>/predictions.jsonl."""
    folder.mkdir()
    wrong = {"A": "B", "B": "A"}
    srb, vs, se = ["A", "B", "A"], ["A", "B", "B"], ["north", "south", "north"]
    _preds(folder / "3dsrbench.jsonl", {str(i): a if i < right else wrong[a] for i, a in enumerate(srb)})
    _preds(folder / "viewspatial.jsonl", {str(i): a if i < right else wrong[a] for i, a in enumerate(vs)})
    (folder / "spatialeval").mkdir()
    _preds(folder / "spatialeval" / "predictions.jsonl",
           {f"spatialreal.vqa.{i}.0": a if i < right else "east" for i, a in enumerate(se)})
    return folder


def test_paper_suite_from_a_bench_root_then_compared(tmp_path):
    root = bench_root(tmp_path)
    out1, out2 = tmp_path / "base", tmp_path / "trained"
    result = run_cli("eval", "predictions", predictions(tmp_path / "p1", 1), "--suite", "paper", "--bench-root", root, "--out", out1)
    assert "suite paper: 3 benchmarks run, 4 skipped" in result.output
    summary = json.loads((out1 / "suite.json").read_text())
    assert summary["benchmarks"] == ["viewspatial", "vsi-bench", "3dsrbench", "spatial457", "spatialeval",
                                     "qspatial-plus", "whatsup"]
    assert set(summary["results"]) == {"3dsrbench", "viewspatial", "spatialeval"}
    for name, cell in summary["results"].items():
        res = json.loads((out1 / name / "results.json").read_text())  # each as --bench would write it
        assert res["benchmark"] == name and res["n"] == 3
        assert cell["accuracy"] == pytest.approx(100 / 3) == res["accuracy"]
        assert cell["strict"] == res.get("strict")
    assert sorted(summary["skipped"]) == ["qspatial-plus", "spatial457", "vsi-bench", "whatsup"]
    assert summary["skipped"]["whatsup"] == f"no whatsup/ in {root}"
    table = (out1 / "suite.md").read_text()
    assert "| run | viewspatial | vsi-bench | 3dsrbench |" in table
    assert "| base | 33.33 (" in table and f"- base: whatsup skipped: no whatsup/ in {root}" in table
    assert (out1 / "suite.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    run_cli("eval", "predictions", predictions(tmp_path / "p2", 3), "--suite", "paper", "--bench-root", root, "--out", out2)
    cmp_out = tmp_path / "cmp"
    result = run_cli("eval", "compare", out1, out2, "--out", cmp_out)
    rows = [line for line in (cmp_out / "suite.md").read_text().splitlines() if line.startswith(("| base", "| trained"))]
    assert [r.split(" | ")[0] for r in rows] == ["| base", "| trained"]  # a row per run, labelled by folder
    assert rows[1].split(" | ")[3].startswith("100.00 (")  # 3dsrbench column of the second run
    assert (cmp_out / "suite.png").exists() and "| trained |" in result.output


def test_suite_from_the_hub_cache_skips_what_cannot_be_had(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_cache(cache, "ccvl/3DSRBench", {"3dsrbench_v1_vlmevalkit_circular.tsv": _srb_tsv()})
    out = tmp_path / "easi"
    result = run_cli("eval", "predictions", predictions(tmp_path / "p", 2), "--suite", "easi", "--out", out)
    summary = json.loads((out / "suite.json").read_text())
    assert list(summary["results"]) == ["3dsrbench"]
    assert summary["results"]["3dsrbench"]["accuracy"] == pytest.approx(200 / 3)
    skipped = summary["skipped"]
    assert len(skipped) == len(SUITES["easi"]) - 1
    assert "not in the Hugging Face cache" in skipped["viewspatial"]
    assert "Traceback" not in result.output


def test_suite_refuses_a_folder_of_foreign_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run_cli("eval", "predictions", predictions(tmp_path / "p", 1), "--suite", "paper", "--bench-root", bench_root(tmp_path), "--out", out, ok=False)
    assert result.exit_code == 1 and "holds files this program did not write (notes.txt)" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_suite_where_nothing_runs_is_an_error_and_writes_no_table(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    result = run_cli("eval", "predictions", predictions(tmp_path / "p", 1), "--suite", "paper", "--bench-root", empty, "--out", out, ok=False)
    assert result.exit_code == 1
    assert f"suite paper: no benchmark could run (7 skipped; viewspatial: no viewspatial/ in {empty})" in result.output
    assert not (out / "suite.json").exists()
