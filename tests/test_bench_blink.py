"""BLINK's spatial subtasks: parquet files written here in the Hub layout (one folder per
subtask), loaded, and scored by the official rule (zeyofu/BLINK_Benchmark at 2d6a779,
eval/test_benchmark.py analyze_answer + eval/evaluate.py) and by the strict boxed rule."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spatial_ssrl.eval.base import BenchmarkError
from spatial_ssrl.eval.benchmarks import available, get_benchmark
from spatial_ssrl.eval.benchmarks.blink import official_choice


def _png(color=(10, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def _row(idx, answer, choices, n_images=1, image=None):
    image = image if image is not None else _png()
    prompt = f"Question {idx}?\nSelect from the following choices.\n" + "\n".join(
        f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
    row = {"idx": idx, "question": f"Question {idx}?", "sub_task": idx.split("_", 1)[1].rsplit("_", 1)[0],
           "choices": choices, "answer": answer, "prompt": prompt, "explanation": ""}
    for k in range(1, 5):
        row[f"image_{k}"] = {"bytes": image, "path": None} if k <= n_images else None
    return row


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.fixture()
def blink_root(tmp_path):
    yn = ["yes", "no"]
    ab = ["A is closer", "B is closer"]
    _write(tmp_path / "Spatial_Relation" / "val-00000-of-00001.parquet", [
        _row("val_Spatial_Relation_1", "(A)", yn), _row("val_Spatial_Relation_2", "(B)", yn),
        _row("val_Spatial_Relation_3", "(A)", yn)])
    _write(tmp_path / "Spatial_Relation" / "test-00000-of-00001.parquet", [
        _row("test_Spatial_Relation_1", "hidden", yn)])
    _write(tmp_path / "Relative_Depth" / "val-00000-of-00001.parquet", [
        _row("val_Relative_Depth_1", "(A)", ab), _row("val_Relative_Depth_2", "(B)", ab),
        _row("val_Relative_Depth_3", "(A)", ab, image=b"not an image at all")])
    _write(tmp_path / "Multi-view_Reasoning" / "val-00000-of-00001.parquet", [
        _row("val_Multi-view_Reasoning_1", "(B)", ["left", "right"], n_images=2)])
    _write(tmp_path / "Counting" / "val-00000-of-00001.parquet", [
        _row("val_Counting_1", "(C)", ["1", "2", "3", "4"])])
    return tmp_path


def test_blink_loads_spatial_subtasks_and_scores_official_and_strict(blink_root):
    assert "blink" in available()
    bench = get_benchmark("blink")
    assert bench.hub_repo == "BLINK-Benchmark/BLINK" and "Spatial_Relation" in bench.hub_config
    items, skipped = bench.load(str(blink_root))
    assert [(s.id, s.reason) for s in skipped] == [("val_Relative_Depth_3", "undecodable_image")]
    by_id = {it.id: it for it in items}
    # Counting is not a spatial subtask; the test split (hidden answers) is not read.
    assert sorted(by_id) == ["val_Multi-view_Reasoning_1", "val_Relative_Depth_1", "val_Relative_Depth_2",
                             "val_Spatial_Relation_1", "val_Spatial_Relation_2", "val_Spatial_Relation_3"]
    mv = by_id["val_Multi-view_Reasoning_1"]
    assert mv.category == "Multi-view_Reasoning" and len(mv.images) == 2
    assert mv.question.startswith("<image><image>Question val_Multi-view_Reasoning_1?\nSelect")
    assert mv.question.endswith("(A) left\n(B) right") and mv.answer == "B" and mv.options == ["left", "right"]

    responses = {
        "val_Spatial_Relation_1": "<think>on top</think> \\boxed{A}",   # official A (right), strict A (right)
        "val_Spatial_Relation_2": "A. yes",                              # no (X) token: stand-in reads A (wrong)
        "val_Spatial_Relation_3": "The answer is (A) yes",               # the one (A) token (right); no box
        "val_Relative_Depth_1": "B",                                     # exact letter B (wrong)
        "val_Relative_Depth_2": "I think the second point is closer.",   # GPT would be asked: unread
        # val_Multi-view_Reasoning_1: no response
    }
    report = bench.score(items, responses)
    # official per subtask: Spatial_Relation 2/3, Relative_Depth 0/2, Multi-view 0/1;
    # accuracy = mean of subtasks = (66.67 + 0 + 0) / 3 = 22.22; item mean 2/6 = 33.33.
    assert report["accuracy"] == pytest.approx(200 / 9)
    assert report["metrics"]["item_mean"] == pytest.approx(100 / 3)
    assert report["per_category"]["Spatial_Relation"] == {"n": 3, "accuracy": pytest.approx(200 / 3)}
    assert report["per_category"]["Relative_Depth"] == {"n": 2, "accuracy": 0.0}
    assert report["parse_failures"] == 1 and report["metrics"]["judge_stand_in"] == 1
    assert report["metrics"]["official_failure_reasons"] == {"needs_llm_judge": 1}
    # strict: only the boxed reply counts: Spatial_Relation 1/3, others 0 -> 33.33 / 3 = 11.11.
    assert report["strict"] == pytest.approx(100 / 9)
    assert report["strict_parse_failures"] == 4 and report["missing"] == 1
    assert report["metrics"]["strict_failure_reasons"] == {"no_box": 4}
    assert report["n"] == 6


def test_blink_official_rule_shapes():
    # exact letters / (X), the one (X) token of the last paragraph first, else of the whole reply
    assert official_choice("B", 2) == ("B", "rule")
    assert official_choice("(A)", 2) == ("A", "rule")
    assert official_choice("Either (A) or (B).\n\nSo (B) it is", 2) == ("B", "rule")
    # two choice tokens: the authors ask GPT-3.5; our stand-in reads the leading letter
    assert official_choice("(A) or (B)", 2) == ("A", "judge_stand_in")
    assert official_choice("(C) is best", 2) == (None, "needs_llm_judge")  # (C) is not a choice of a 2-way item
    assert official_choice("B) no", 2) == ("B", "judge_stand_in")


def test_blink_options_and_bad_layout(blink_root, tmp_path):
    bench = get_benchmark("BLINK")
    items, _ = bench.load(str(blink_root), tasks="all")
    assert "val_Counting_1" in {it.id for it in items}
    items, _ = bench.load(str(blink_root / "Relative_Depth"), tasks="Relative_Depth")
    assert [it.id for it in items] == ["val_Relative_Depth_1", "val_Relative_Depth_2"]
    # a subtask folder gives its subtask; one parquet file is read whole, whatever its subtask
    items, _ = bench.load(str(blink_root / "Counting"))
    assert [it.id for it in items] == ["val_Counting_1"]
    items, _ = bench.load(str(blink_root / "Counting" / "val-00000-of-00001.parquet"))
    assert [(it.id, it.category, it.answer) for it in items] == [("val_Counting_1", "Counting", "C")]
    with pytest.raises(BenchmarkError, match="unknown task"):
        bench.load(str(blink_root), tasks="Spatial_Relations")
    with pytest.raises(BenchmarkError, match="hidden"):
        bench.load(str(blink_root), split="test")
    with pytest.raises(BenchmarkError, match="unknown option"):
        bench.load(str(blink_root), mode="vqa")
    bad = tmp_path / "bad" / "val-00000-of-00001.parquet"
    _write(bad, [{"idx": "val_Spatial_Relation_1", "question": "q", "choices": ["a", "b"], "answer": "(A)"}])
    with pytest.raises(BenchmarkError) as err:
        bench.load(str(bad))
    assert "missing column 'prompt'" in str(err.value) and "\n" not in str(err.value)
