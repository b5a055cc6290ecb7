"""MindCube-Tiny: the authors' jsonl and images (unzipped, or inside data.zip), the official
extractor and the overall that leaves translation out."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from PIL import Image

from spatial_ssrl.eval.base import BenchmarkError
from spatial_ssrl.eval.benchmarks import available
from spatial_ssrl.eval.benchmarks.mindcube import BENCHMARK as MC
from spatial_ssrl.eval.benchmarks.mindcube import official_letter

Q = "Based on these views, what is behind the sofa? A. Lamp B. Table C. Plant D. Chair"


def _png(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (5, 4), (shade, 120, 30)).save(buf, format="PNG")
    return buf.getvalue()


ROWS = [  # id, answer, images
    ("among_group7_q1_1", "A", ["other_all_image/among/s1_front.png", "other_all_image/among/s1_left.png"]),
    ("around_sceneB_q2_1", "C", ["other_all_image/around/s2_a.png", "other_all_image/around/s2_b.png"]),
    ("rotation_r3_q1_2", "B", ["other_all_image/rotation/s3_0.png", "other_all_image/rotation/s3_90.png"]),
    ("translation_t4_q1", "A", ["other_all_image/among/s1_front.png", "other_all_image/around/s2_a.png"]),
    ("among_group8_q2_3", "D", ["other_all_image/among/s1_left.png", "other_all_image/among/s1_front.png"]),
    ("among_group9_q3_2", "B", ["other_all_image/among/s1_front.png", "other_all_image/among/s1_left.png"]),
    ("among_group9_q4_1", "", ["other_all_image/among/s1_front.png", "other_all_image/among/s1_left.png"]),
    ("around_gone_q1_1", "A", ["other_all_image/around/s2_a.png", "other_all_image/around/not_there.png"]),
]


def _lines(rows) -> str:
    return "".join(json.dumps({"id": i, "category": ["x"], "type": "t", "meta_info": [], "question": Q,
                               "images": imgs, "gt_answer": a}) + "\n" for i, a, imgs in rows)


def _media() -> dict[str, bytes]:
    names = {p for _, _, imgs in ROWS for p in imgs if "not_there" not in p}
    return {p: _png(7 * k) for k, p in enumerate(sorted(names))}


def _unzipped(root):
    data = root / "data"
    (data / "raw").mkdir(parents=True)
    (data / "raw" / "MindCube_tinybench.jsonl").write_text(_lines(ROWS), encoding="utf-8")
    for rel, blob in _media().items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(blob)
    return root


RESPONSES = {
    "among_group7_q1_1": "\\boxed{A}",  # A: official right, strict right
    "around_sceneB_q2_1": "<answer>C. Plant</answer>",  # C: official right ("C."); strict: no box
    "rotation_r3_q1_2": "The answer is (B) Table",  # B: official right (standalone B); strict: no box
    "translation_t4_q1": "A",  # A: right, but translation is outside the official overall
    "among_group8_q2_3": "I think it is behind the sofa.",  # D: no letter
    # "among_group9_q3_2" (B): missing
}


def test_registered():
    assert "mindcube" in available()
    assert MC.hub_repo == "MLL-Lab/MindCube" and "MindCubeBench_tiny_raw_qa" in MC.aliases


def test_load_and_score_every_response_shape(tmp_path):
    items, skipped = MC.load(str(_unzipped(tmp_path)))
    assert {s.id: s.reason for s in skipped} == {"among_group9_q4_1": "no_answer", "around_gone_q1_1": "missing_image"}
    assert [it.category for it in items] == ["among", "around", "rotation", "translation", "among", "among"]
    first = items[0]
    assert first.question.startswith("<image><image>Based on") and len(first.images) == 2
    assert first.images[0] == (tmp_path / "data/other_all_image/among/s1_front.png").read_bytes()
    assert first.options == ["Lamp", "Table", "Plant", "Chair"]
    r = MC.score(items, RESPONSES)
    # official overall leaves translation out: among7, around, rotation right of 5 -> 60%
    assert r["accuracy"] == pytest.approx(60.0) and r["n"] == 5
    assert r["parse_failures"] == 1 and r["missing"] == 1  # the free sentence; the missing response
    # per setting: among 1 of 3, around 1/1, rotation 1/1, translation 1/1
    assert r["per_category"]["among"] == {"n": 3, "accuracy": pytest.approx(100 / 3)}
    assert r["per_category"]["translation"] == {"n": 1, "accuracy": 100.0}
    assert r["metrics"]["n_translation"] == 1
    # strict: only the boxed A of 5 -> 20%; around, rotation, translation and the sentence unboxed
    assert r["strict"] == pytest.approx(20.0)
    assert r["strict_parse_failures"] == 4 and r["metrics"]["strict_failure_reasons"] == {"no_box": 4}


def test_reads_the_hub_download_inside_data_zip(tmp_path):
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as zf:
        zf.writestr("data/raw/MindCube_tinybench.jsonl", _lines(ROWS))
        for rel, blob in _media().items():
            zf.writestr(f"data/{rel}", blob)
    items, skipped = MC.load(str(tmp_path))
    assert len(items) == 6 and len(skipped) == 2
    assert items[2].images[1] == _media()["other_all_image/rotation/s3_90.png"]
    assert MC.score(items, RESPONSES)["accuracy"] == pytest.approx(60.0)
    assert not (tmp_path / "data").exists()  # read in place, nothing extracted


def test_official_extractor_order():
    assert official_letter("Between B. Table and A. Lamp") == "A"  # the last "X." wins
    assert official_letter("<Answer> my answer is C") == "C"
    assert official_letter("A chair is behind it") == "A"  # a letter starting a line, as the official reads it
    assert official_letter("none of them") is None


def test_wrong_layout_is_one_clear_line(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "MindCube_tinybench.jsonl").write_text(json.dumps({"id": "among_1", "question": Q, "images": []}) + "\n")
    with pytest.raises(BenchmarkError) as err:
        MC.load(str(tmp_path))
    assert "\n" not in str(err.value) and "line 1 has no 'gt_answer'" in str(err.value)
    (tmp_path / "other").mkdir()
    with pytest.raises(BenchmarkError, match="no MindCube_tinybench.jsonl here"):
        MC.load(str(tmp_path / "other"))
    with pytest.raises(BenchmarkError, match="split must be one of"):
        MC.load(str(tmp_path), split="train")
