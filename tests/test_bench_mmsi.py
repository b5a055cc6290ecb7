"""MMSI-Bench: the Hub parquet as distributed, the official letter rule and circular evaluation."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spatial_ssrl.eval.base import BenchmarkError
from spatial_ssrl.eval.benchmarks import available, get_benchmark
from spatial_ssrl.eval.benchmarks.mmsi import BENCHMARK as MMSI

OPTS = "Options: A: left, B: right, C: front, D: back"
PR, MSR = "Positional Relationship (Cam.-Obj.)", "MSR"


def _png(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 5), (shade, 40, 90)).save(buf, format="PNG")
    return buf.getvalue()


def _parquet(path, rows, drop=()):
    cols = {
        "id": [r[0] for r in rows],
        "images": [[_png(10 * r[0]), _png(10 * r[0] + 5)] for r in rows],
        "question_type": [r[2] for r in rows],
        "question": [f"Where is the chair relative to the camera in image {r[0]}?\n{OPTS}" for r in rows],
        "answer": [r[1] for r in rows],
        "thought": ["..." for _ in rows],
    }
    schema = {"images": pa.list_(pa.binary())}
    table = pa.table({k: pa.array(v, type=schema.get(k)) for k, v in cols.items() if k not in drop})
    pq.write_table(table, path)
    return path


ROWS = [(0, "B", PR), (1, "A", PR), (2, "D", PR), (3, "C", PR), (4, "A", MSR), (5, "D", MSR), (6, "C", MSR)]


def test_registered():
    assert "mmsi-bench" in available()
    assert get_benchmark("MMSI_Bench") is MMSI
    assert MMSI.hub_repo == "RunsenXu/MMSI-Bench" and "mmsi" in MMSI.aliases


def test_load_and_score_every_response_shape(tmp_path):
    _parquet(tmp_path / "MMSI_Bench.parquet", ROWS)
    items, skipped = MMSI.load(str(tmp_path))
    assert skipped == [] and [it.id for it in items] == [str(r[0]) for r in ROWS]
    first = items[0]
    assert first.question.count("<image>") == 2 == len(first.images)
    assert Image.open(io.BytesIO(first.images[1])).size == (6, 5)
    assert first.options == ["left", "right", "front", "back"] and first.category == PR
    responses = {
        "0": "<think>the chair is right of me</think>\\boxed{B}",  # answer B: official right, strict right
        "1": "A. left",  # A: official right; strict: no box
        "2": "The answer is (B) right",  # D: official reads B (wrong); strict: no box
        "3": "C",  # C: official right; strict: no box
        "4": "I think the chair is on the left side.",  # A: official reads no letter; strict: no box
        # "5" (D) missing
        "6": "\\boxed{front}",  # C: official reads no letter; strict reads the option text, C: right
    }
    r = MMSI.score(items, responses)
    # official: 0, 1, 3 right of 7 -> 3/7; no letter: 4 and 6
    assert r["accuracy"] == pytest.approx(100 * 3 / 7) and r["n"] == 7
    assert r["parse_failures"] == 2 and r["missing"] == 1
    # per type: PR 0,1,3 of 0..3 -> 75%; MSR none of 4..6 -> 0%
    assert r["per_category"][PR] == {"n": 4, "accuracy": 75.0}
    assert r["per_category"][MSR] == {"n": 3, "accuracy": 0.0}
    # strict: 0 and 6 right of 7; 1, 2, 3, 4 unboxed
    assert r["strict"] == pytest.approx(100 * 2 / 7)
    assert r["strict_parse_failures"] == 4
    assert r["metrics"]["strict_failure_reasons"] == {"no_box": 4}
    assert r["metrics"]["vanilla"] == r["accuracy"] and r["metrics"]["circular"] is None


def test_circular_rotations_and_score(tmp_path):
    _parquet(tmp_path / "MMSI_Bench.parquet", [(0, "B", PR), (1, "A", MSR)])
    items, skipped = MMSI.load(str(tmp_path / "MMSI_Bench.parquet"), circular=True)
    assert skipped == [] and len(items) == 8
    q0 = [it for it in items if it.meta["group"] == "0"]
    # the official cyclic orders ABCD, BCDA, CDAB, DABC: B's text "right" moves to A, D, C
    assert [it.answer for it in q0] == ["B", "A", "D", "C"]
    assert [it.id for it in q0] == ["0", "0#rot1", "0#rot2", "0#rot3"]
    assert "Options: A: right, B: front, C: back, D: left" in q0[1].question
    assert q0[1].options == ["right", "front", "back", "left"]
    # question 0: every rotation boxed right -> right; question 1 (A, A->D->C->B): always "A" -> only rot0 right
    responses = {it.id: f"\\boxed{{{it.answer}}}" for it in q0}
    responses.update({it.id: "A" for it in items if it.meta["group"] == "1"})
    r = MMSI.score(items, responses)
    assert r["accuracy"] == 50.0 and r["metrics"]["circular"] == 50.0  # 1 of 2 questions
    assert r["metrics"]["vanilla"] == 100.0  # both unrotated rows right
    assert r["strict"] == 50.0 and r["metrics"]["strict_vanilla"] == 50.0  # bare "A" is not boxed
    assert r["n"] == 8 and r["metrics"]["n_questions"] == 2
    assert r["per_category"] == {MSR: {"n": 1, "accuracy": 0.0}, PR: {"n": 1, "accuracy": 100.0}}


def test_wrong_layout_is_one_clear_line(tmp_path):
    bad = _parquet(tmp_path / "MMSI_Bench.parquet", ROWS[:2], drop=("answer",))
    with pytest.raises(BenchmarkError) as err:
        MMSI.load(str(bad))
    msg = str(err.value)
    assert "\n" not in msg and "missing column 'answer'" in msg and "MMSI_Bench.parquet" in msg
    with pytest.raises(BenchmarkError, match="unknown option"):
        MMSI.load(str(bad), rotate=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchmarkError, match="no \\*.parquet file"):
        MMSI.load(str(tmp_path / "empty"))
