"""CV-Bench: test_2d.parquet / test_3d.parquet written here in the Hub layout, loaded, and scored
by the official rule (cambrian-mllm/cambrian at 539ffc3, eval/eval/{ade,coco,omni}/*_test.py
extract_mcq_answer; overall = mean of 2D (ADE20K, COCO averaged) and 3D (Omni3D), as the
dataset card computes it) and by the strict boxed rule."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spatial_ssrl.eval.base import BenchmarkError
from spatial_ssrl.eval.benchmarks import available, get_benchmark
from spatial_ssrl.eval.benchmarks.cvbench import official_letter


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (30, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _row(idx, kind, task, source, answer, choices, image=None):
    prompt = f"Question {kind}{idx}? Select from the following choices.\n" + "\n".join(
        f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
    return {"idx": idx, "type": kind, "task": task, "image": {"bytes": image or _png(), "path": f"img/{idx}.png"},
            "question": f"Question {kind}{idx}?", "choices": choices, "answer": answer, "prompt": prompt,
            "filename": f"img/{kind}/{idx}.png", "source": source, "source_dataset": "x", "source_filename": "y",
            "target_class": None, "target_size": None, "bbox": None}


def _write(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.fixture()
def cv_root(tmp_path):
    four = ["3", "2", "1", "0"]
    lr = ["left", "right"]
    rows_2d = [_row(0, "2D", "Count", "ADE20K", "(C)", four), _row(1, "2D", "Relation", "ADE20K", "(A)", lr),
               _row(2, "2D", "Count", "COCO", "(B)", four), _row(3, "2D", "Relation", "COCO", "(B)", lr)]
    rows_3d = [_row(0, "3D", "Depth", "Omni3D", "(A)", ["lamp", "chair"]),
               _row(1, "3D", "Distance", "Omni3D", "(B)", ["table", "sofa"]),
               _row(2, "3D", "Depth", "Omni3D", "(A)", ["cup", "bed"], image=b"broken bytes")]
    _write(tmp_path / "test_2d.parquet", rows_2d)
    _write(tmp_path / "test_3d.parquet", rows_3d)
    _write(tmp_path / "test.parquet", rows_2d + rows_3d)  # an older snapshot's combined file: not read twice
    return tmp_path


def test_cvbench_loads_and_scores_official_and_strict(cv_root):
    assert "cv-bench" in available()
    bench = get_benchmark("cv_bench")
    assert bench.hub_repo == "nyu-visionx/CV-Bench"
    items, skipped = bench.load(str(cv_root))
    assert [(s.id, s.reason) for s in skipped] == [("3D_2", "undecodable_image")]
    assert [it.id for it in items] == ["2D_0", "2D_1", "2D_2", "2D_3", "3D_0", "3D_1"]
    first = items[0]
    assert first.question == "<image>Question 2D0? Select from the following choices.\n(A) 3\n(B) 2\n(C) 1\n(D) 0"
    assert first.answer == "C" and first.category == "Count" and first.meta == {"type": "2D", "source": "ADE20K"}

    responses = {
        "2D_0": "<think>three trees</think>\\boxed{C}",   # official c (right), strict C (right)
        "2D_1": "A. left",                                # first character a (right); no box
        "2D_2": "The answer is (B) 2",                    # after 'answer is': (b) 2 -> b (right)
        "2D_3": "I think it is on the right.",            # reads 'i': no option, a parse failure
        "3D_0": "B",                                      # b (wrong)
        # 3D_1: no response
    }
    report = bench.score(items, responses)
    # official: ADE20K 2/2 = 100, COCO 1/2 = 50 -> 2D = 75; Omni3D 0/2 -> 3D = 0; overall (75 + 0) / 2 = 37.5.
    assert report["accuracy"] == pytest.approx(37.5)
    m = report["metrics"]
    assert m["accuracy_2d"] == pytest.approx(75.0) and m["accuracy_3d"] == 0.0
    assert m["item_mean"] == pytest.approx(50.0)
    assert m["per_source"] == {"ADE20K": {"n": 2, "accuracy": 100.0}, "COCO": {"n": 2, "accuracy": 50.0},
                               "Omni3D": {"n": 2, "accuracy": 0.0}}
    assert report["per_category"] == {"Count": {"n": 2, "accuracy": 100.0}, "Depth": {"n": 1, "accuracy": 0.0},
                                      "Distance": {"n": 1, "accuracy": 0.0}, "Relation": {"n": 2, "accuracy": 50.0}}
    assert report["parse_failures"] == 1
    # strict: only 2D_0 is boxed: ADE20K 50, COCO 0 -> 2D 25; 3D 0; overall 12.5.
    assert report["strict"] == pytest.approx(12.5)
    assert report["strict_parse_failures"] == 4 and report["missing"] == 1

    # split=2D keeps one half; its overall is the 2D figure alone.
    items_2d, _ = bench.load(str(cv_root), split="2d")
    assert len(items_2d) == 4 and bench.score(items_2d, responses)["accuracy"] == pytest.approx(75.0)


def test_cvbench_official_extraction():
    assert official_letter("Answer: (c).", "COCO") == "c"
    # the official split at "answer is" leaves ": b", whose first character is ":" (no option):
    # the published rule misreads this shape, and so do we
    assert official_letter("The answer is: b", "ADE20K") == ":"
    assert official_letter("(A)", "Omni3D") == "a"
    assert official_letter(None, "COCO") == "" and official_letter("   ", "COCO") == ""


def test_cvbench_bad_input(cv_root, tmp_path):
    bench = get_benchmark("CV-Bench")
    with pytest.raises(BenchmarkError, match="split must be 2D or 3D"):
        bench.load(str(cv_root), split="4D")
    bad = tmp_path / "bad.parquet"
    _write(bad, [{"idx": 0, "type": "2D", "task": "Count", "question": "q", "answer": "(A)"}])
    with pytest.raises(BenchmarkError) as err:
        bench.load(str(bad))
    assert "missing column 'image'" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BenchmarkError, match="no such file"):
        bench.load(str(tmp_path / "nowhere"))
