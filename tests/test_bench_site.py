"""SITE (image part): the annotation table and zipped media, the official letter parser and the
chance-adjusted accuracy."""

from __future__ import annotations

import io
import json
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spatial_ssrl.eval.base import BenchmarkError
from spatial_ssrl.eval.benchmarks import available
from spatial_ssrl.eval.benchmarks.site import BENCHMARK as SITE
from spatial_ssrl.eval.benchmarks.site import official_letter

SRR, CE = "spatial relationship reasoning", "counting & existence"


def _png(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (shade, shade, 200)).save(buf, format="PNG")
    return buf.getvalue()


ROWS = [  # question, options, answer, category, dataset, visual
    ("Is the cup left of the plate?", ["left", "right", "above", "below"], "B", SRR, "CV-Bench", ["data/img/a.png"]),
    ("Are the two views of one room?", ["yes", "no"], "A", SRR, "MindCube", ["data/img/b.png", "data/img/c.png"]),
    ("Where is the lamp?", ["left", "right", "front", "back"], "D", SRR, "CV-Bench", ["data/img/a.png"]),
    ("How many chairs?", ["1", "2", "3"], "C", CE, "CountBench", ["data/img/c.png"]),
    ("Which is nearest?", ["cup", "plate", "lamp", "sofa"], "A", CE, "CountBench", ["data/img/b.png"]),
    ("Is there a dog?", ["no", "yes"], "B", CE, "CountBench", ["data/img/a.png"]),
    ("Where does the car go?", ["left", "right"], "A", SRR, "Video", ["data/vid/x.mp4"]),
    ("Lost image?", ["a", "b"], "A", CE, "CountBench", ["data/img/missing.png"]),
]
MEDIA = {"data/img/a.png": _png(10), "data/img/b.png": _png(90), "data/img/c.png": _png(170)}


def _site_folder(root, rows=ROWS, drop=()):
    (root / "image_test").mkdir(parents=True)
    cols = {"question": [r[0] for r in rows], "options": [r[1] for r in rows], "answer": [r[2] for r in rows],
            "category": [r[3] for r in rows], "dataset": [r[4] for r in rows], "visual": [r[5] for r in rows]}
    pq.write_table(pa.table({k: v for k, v in cols.items() if k not in drop}),
                   root / "image_test" / "test-00000-of-00001.parquet")
    with zipfile.ZipFile(root / "data_chunked_01.zip", "w") as zf:
        for name, blob in MEDIA.items():
            zf.writestr(name, blob)
    return root


RESPONSES = {
    "0": "\\boxed{B}",  # B of 4: right (official and strict)
    "1": "A. yes",  # A of 2: official right ("A."); strict: no box
    "2": "The answer is (B) right",  # D of 4: official reads (B), wrong; strict: no box
    "3": "C",  # C of 3: official right (" C "); strict: no box
    "4": "I think the chair is on the left side.",  # A of 4: no letter (the official script would guess)
    # "5" (B of 2): missing
}


def test_registered():
    assert "site" in available()
    assert SITE.hub_repo == "franky-veteran/SITE-Bench" and SITE.hub_config == "image_test"


def test_load_and_caa_of_every_response_shape(tmp_path):
    items, skipped = SITE.load(str(_site_folder(tmp_path)))
    assert {s.id: s.reason for s in skipped} == {"6": "video_item", "7": "missing_image"}
    assert [it.id for it in items] == ["0", "1", "2", "3", "4", "5"]
    two = items[1]
    assert two.images == [MEDIA["data/img/b.png"], MEDIA["data/img/c.png"]]
    assert two.question.startswith("<image><image>Are the two views") and "\nA. yes\nB. no\n" in two.question
    assert two.meta["dataset"] == "MindCube" and two.category == SRR
    r = SITE.score(items, RESPONSES)
    # official hits 0, 1, 3. hit - 1/n: .75 + .5 - .25 + 2/3 - .25 - .5 = 11/12;
    # 1 - 1/n: .75 + .5 + .75 + 2/3 + .75 + .5 = 47/12; CAA = 11/47
    assert r["accuracy"] == pytest.approx(100 * 11 / 47)
    assert r["metrics"]["raw_accuracy"] == 50.0 and r["n"] == 6
    assert r["parse_failures"] == 1 and r["missing"] == 1
    # per category: SRR (0,1,2) (.75 + .5 - .25) / (.75 + .5 + .75) = 1/2;
    # C&E (3,4,5) (2/3 - .25 - .5) / (2/3 + .75 + .5) = (-1/12) / (23/12) = -1/23
    assert r["per_category"][SRR]["accuracy"] == pytest.approx(50.0)
    assert r["per_category"][CE]["accuracy"] == pytest.approx(-100 / 23)
    assert r["metrics"]["per_dataset"]["CV-Bench"]["n"] == 2
    # strict: only 0 right: .75 - .5 - .25 - 1/3 - .25 - .5 = -13/12 -> -13/47
    assert r["strict"] == pytest.approx(-100 * 13 / 47)
    assert r["strict_parse_failures"] == 4 and r["metrics"]["strict_failure_reasons"] == {"no_box": 4}


def test_jsonl_annotations_and_media_on_disk(tmp_path):
    (tmp_path / "data" / "img").mkdir(parents=True)
    for name, blob in MEDIA.items():
        (tmp_path / name).write_bytes(blob)
    rows = [{"id": f"q{i}", "question": r[0], "options": r[1], "answer": r[2], "category": r[3], "dataset": r[4],
             "visual": r[5]} for i, r in enumerate(ROWS[:4])]
    file = tmp_path / "site_image_test.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    items, skipped = SITE.load(str(file))
    assert skipped == [] and [it.id for it in items] == ["q0", "q1", "q2", "q3"]
    assert items[0].images == [MEDIA["data/img/a.png"]]


def test_official_parser():
    assert official_letter("(C)", 4) == "C"
    assert official_letter("B or C, I pick C", 4) == "C"  # several candidates: the latest " X " wins
    assert official_letter("E", 4) is None  # beyond the options
    assert official_letter("Answer:D", 4) == "D"


def test_wrong_layout_is_one_clear_line(tmp_path):
    _site_folder(tmp_path, drop=("visual",))
    with pytest.raises(BenchmarkError) as err:
        SITE.load(str(tmp_path))
    assert "\n" not in str(err.value) and "missing column 'visual'" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchmarkError, match="no SITE image annotation file"):
        SITE.load(str(tmp_path / "empty"))
