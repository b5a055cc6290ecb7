"""3DSRBench, Spatial457, SpatialEval and QSpatial-plus: files built here in each benchmark's
distributed layout, loaded, and scored from hand-made responses with the expected figures
worked out by hand."""

from __future__ import annotations

import base64
import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spatial_ssrl.eval.base import BenchmarkError
from spatial_ssrl.eval.benchmarks import get_benchmark


def _png(color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BAD_B64 = _b64(b"this is not an image at all, only some bytes" * 3)


def boxed(x: str) -> str:
    return f"<think>reasoning</think> The answer is \\boxed{{{x}}}."


# ------------------------------------------------------------------------------- 3DSRBench

def _srb_rows():
    """A and B: 4 rotations each, and their flips (4 rotations each); C: a two-option question
    and its rotation; D: an undecodable image. Every row of A's flip stores its image as the
    index of row 0 (VLMEvalKit's space saving)."""
    img = _b64(_png())
    rows = []

    def add(qid, category, answer, options, image=img):
        opts = list(options) + [""] * (4 - len(options))
        rows.append({"index": len(rows), "qid": qid, "question": f"Question {qid}?", "A": opts[0], "B": opts[1],
                     "C": opts[2], "D": opts[3], "answer": answer, "category": category, "image": image,
                     "image_source": "coco", "image_url": "http://example/x.jpg"})

    four = ["yes", "no", "maybe", "None"]
    for base, cat in (("aaaaaaaa", "height_higher"), ("bbbbbbbb", "location_above")):
        for flip in ("", "-flip"):
            for rot in range(4):
                qid = base + flip + (f"-{rot}" if rot else "")
                image = "0" if base == "aaaaaaaa" and flip else img
                add(qid, cat, "ABCD"[rot], four, image)
    add("cccccccc", "orientation_on_the_left", "A", ["left", "right"])
    add("cccccccc-1", "orientation_on_the_left", "B", ["right", "left"])
    add("dddddddd", "multi_object_facing", "A", ["x", "y"], image=BAD_B64)
    return rows


def _write_tsv(path, rows, drop=()):
    df = pd.DataFrame(rows)
    df = df.drop(columns=list(drop))
    df.to_csv(path, sep="\t", index=False)


def test_3dsrbench_circular_scoring(tmp_path):
    folder = tmp_path / "3DSRBench"
    folder.mkdir()
    _write_tsv(folder / "3dsrbench_v1_vlmevalkit_circular.tsv", _srb_rows())
    (folder / "3dsrbench_v1.csv").write_text("raw annotations\n")
    bench = get_benchmark("3dsrbench")
    items, skipped = bench.load(str(folder))
    assert [(s.id, s.reason) for s in skipped] == [("18", "undecodable_image")]
    assert len(items) == 18
    by_qid = {it.meta["qid"]: it for it in items}
    c = by_qid["cccccccc"]
    assert c.options == ["left", "right"]
    assert c.question.startswith("<image>Question cccccccc?\nA. left\nB. right\nAnswer with")
    assert "C." not in c.question and c.category == "orientation"
    a = by_qid["aaaaaaaa"]
    assert a.options == ["yes", "no", "maybe", "None"]  # "None" stays an option text
    assert by_qid["aaaaaaaa-flip-2"].images == a.images  # image by index reference
    assert a.question.count("<image>") == 1 and a.category == "height"
    assert by_qid["bbbbbbbb-flip-3"].meta["group"] == "bbbbbbbb-flip"

    responses = {it.id: boxed(it.answer) for it in items}
    responses[by_qid["bbbbbbbb-2"].id] = "\\boxed{A} or maybe \\boxed{B}"  # hedged: parse failure, wrong
    del responses[by_qid["cccccccc-1"].id]  # unanswered: wrong
    report = bench.score(items, responses)
    # rows: 18, right 16 -> vanilla 88.89. Circular groups: A ok, A-flip ok, B no, B-flip ok, C no -> 3/5.
    # flip pairs: A, A-1..3 ok (4); B, B-1, B-3 ok (3), B-2 no; C ok (1), C-1 no -> 8/10.
    # flip+circular: A ok, B no, C no -> 1/3.
    m = report["metrics"]
    assert report["accuracy"] == pytest.approx(60.0)
    assert m["circular"] == pytest.approx(60.0)
    assert m["vanilla"] == pytest.approx(100 * 16 / 18)
    assert m["flip"] == pytest.approx(80.0)
    assert m["flip_circular"] == pytest.approx(100 / 3)
    assert m["n_groups"] == 5 and report["n"] == 18
    # The hedge reads as its last box (B, wrong) by the official rule; strict refuses it.
    assert report["parse_failures"] == 0 and report["missing"] == 1
    assert report["strict"] == pytest.approx(60.0) and report["strict_parse_failures"] == 1
    assert m["strict_failure_reasons"] == {"hedged": 1}
    assert report["per_category"] == {
        "height": {"n": 2, "accuracy": 100.0},
        "location": {"n": 2, "accuracy": 50.0},
        "orientation": {"n": 1, "accuracy": 0.0},
    }
    assert m["per_subcategory"]["location_above"] == {"n": 2, "accuracy": 50.0}
    assert "circular" in report["metric"]

    # A letter beyond a two-option question's options is a parse failure, not a guess.
    one = {c.id: boxed("C")}
    r = bench.score([c], one)
    assert r["parse_failures"] == 1 and r["accuracy"] == 0.0

    # circular=False keeps the unrotated rows only (bases and flips).
    base_items, _ = bench.load(str(folder / "3dsrbench_v1_vlmevalkit_circular.tsv"), circular=False)
    assert sorted(it.meta["qid"] for it in base_items) == [
        "aaaaaaaa", "aaaaaaaa-flip", "bbbbbbbb", "bbbbbbbb-flip", "cccccccc"]


def test_3dsrbench_missing_column(tmp_path):
    f = tmp_path / "3dsrbench_v1_vlmevalkit_circular.tsv"
    _write_tsv(f, _srb_rows(), drop=("category",))
    with pytest.raises(BenchmarkError) as err:
        get_benchmark("3dsrbench").load(str(f))
    assert str(f) in str(err.value) and "'category'" in str(err.value)


# ------------------------------------------------------------------------------- Spatial457

SPATIAL457_CASES = [
    # (category, truth, response, right by strict?, right by the official rule?); the official
    # rule (VLMEvalKit is_correct, 401916c0/ec096a01) reads the whole answer, nothing cleaned.
    ("L1_single", "Yes", boxed("3"), True, True),               # a digit 1-9 counts as Yes
    ("L1_single", "No", boxed("0"), True, True),                # 0 counts as No
    ("L2_objects", "No", boxed("None"), True, True),            # none reads as no
    ("L2_objects", "2", boxed("two"), True, True),              # number word
    ("L3_2d_spatial", "Red", boxed("\\text{RED}"), True, False),  # case; officially the LaTeX stays
    ("L4_occ", "suv", boxed("sedan"), True, True),              # same super-category (car)
    ("L4_pose", "road bike", boxed("Mountain bike"), True, True),  # bicycle, judged on the first word
    ("L4_pose", "Yes", boxed("10"), False, False),              # only 1-9 count as Yes
    ("L5_6d_spatial", "3", boxed("three objects"), False, False),
    ("L5_collision", "jet", boxed("sedan"), False, False),      # different super-categories
    ("L5_collision", "Yes", "Yes, there is one.", None, False),  # no box: strict parse failure; officially wrong
]


def test_spatial457_lenient_matching(tmp_path):
    img = _b64(_png((10, 200, 10)))
    rows = [{"index": i, "image": img, "question": f"Question {i}?", "answer": truth, "category": cat}
            for i, (cat, truth, _, _, _) in enumerate(SPATIAL457_CASES)]
    rows.append({"index": 99, "image": "!!!" + BAD_B64, "question": "Q?", "answer": "Yes", "category": "L1_single"})
    _write_tsv(tmp_path / "Spatial457.tsv", rows)
    bench = get_benchmark("spatial457")
    items, skipped = bench.load(str(tmp_path))
    assert [(s.id, s.reason) for s in skipped] == [("99", "undecodable_image")]
    assert items[0].question.startswith("<image>Question 0?\n") and "Yes or No" in items[0].question
    assert items[2].answer == "No"  # "No" is not read as NaN
    responses = {str(i): case[2] for i, case in enumerate(SPATIAL457_CASES)}
    responses.pop("5")  # one unanswered: wrong
    report = bench.score(items, responses)
    strict = [i for i, case in enumerate(SPATIAL457_CASES) if case[3] and i != 5]
    official = [i for i, case in enumerate(SPATIAL457_CASES) if case[4] and i != 5]
    assert report["strict"] == pytest.approx(100 * len(strict) / len(SPATIAL457_CASES))  # 6/11
    assert report["accuracy"] == pytest.approx(100 * len(official) / len(SPATIAL457_CASES))  # 5/11
    assert report["strict_parse_failures"] == 1 and report["parse_failures"] == 0
    assert report["missing"] == 1 and report["n"] == 11
    assert report["metrics"]["format_errors"] == 10  # no JSON 'Answer' field in any response
    pc = report["per_category"]
    assert pc["L1_single"] == {"n": 2, "accuracy": 100.0}
    assert pc["L3_2d_spatial"] == {"n": 1, "accuracy": 0.0}
    assert pc["L4_occ"] == {"n": 1, "accuracy": 0.0}  # unanswered
    assert pc["L4_pose"] == {"n": 2, "accuracy": 50.0}
    assert pc["L5_collision"] == {"n": 2, "accuracy": 0.0}
    levels = report["metrics"]["per_level"]
    assert levels["L4"] == {"n": 3, "accuracy": pytest.approx(100 / 3)}
    assert levels["L5"] == {"n": 3, "accuracy": 0.0}
    assert levels["L2"] == {"n": 2, "accuracy": 100.0}


def test_spatial457_missing_column(tmp_path):
    rows = [{"index": 0, "image": _b64(_png()), "question": "Q?", "answer": "Yes"}]
    _write_tsv(tmp_path / "Spatial457.tsv", rows)
    with pytest.raises(BenchmarkError, match=r"Spatial457\.tsv: missing column 'category'"):
        get_benchmark("spatial457").load(str(tmp_path / "Spatial457.tsv"))


# ------------------------------------------------------------------------------- SpatialEval

def _se_text(question, options):
    lines = "\n".join(f"{'ABCD'[i]}. {o}" for i, o in enumerate(options))
    return f"Consider the map shown in the image. {question} Available options:\n{lines}."


SE_ROWS = [
    # id, options, oracle_answer, oracle_option, response, strict substring right?, letter right?,
    # right by the official rule? (evals/evaluation.py at jiayuww/SpatialEval d82ba3828052: the task's
    # extractor for the question number, then the substring test)
    ("spatialmap.vqa.0.0", ["Northeast", "Northwest", "Southwest", "Southeast"], "Northeast", "A",
     boxed("A. Northeast"), True, True, True),
    ("spatialmap.vqa.1.0", ["Northeast", "Northwest", "Southwest", "Southeast"], "Southwest", "C",
     boxed("C"), False, True, False),  # a bare letter holds no answer text; q0 extracts no direction
    ("mazenav.vqa.0.1", ["3", "2", "12", "0"], "2", "B", boxed("12"), True, False, True),  # "2" in "12": the quirk
    ("mazenav.vqa.0.2", ["Yes", "No"], "Yes", "A", boxed("A. Yes"), True, True, True),
    ("spatialgrid.vqa.0.0", ["5", "3", "1", "0"], "3", "B", boxed("three"), True, False,
     True),  # a number word: 3; not a letter
    ("spatialgrid.vqa.0.1", ["cat", "dog", "rabbit", "giraffe"], "dog", "B", boxed("Cat"), False, False, False),
    ("spatialreal.vqa.0.0", ["1", "2", "3", "4"], "4", "D", None, False, False, False),  # unanswered
    # no box: a strict parse failure; officially the whole answer holds "2"
    ("spatialreal.vqa.1.0", ["1", "2", "3", "4"], "2", "B", "I think it is 2", False, False, True),
]


def _se_parquet(path, rows, bad_image_id=None, drop=()):
    png = _png((0, 0, 200))
    table = {
        "id": [r[0] for r in rows],
        "text": [_se_text("Which one?", r[1]) for r in rows],
        "image": [{"bytes": (b"garbage" if r[0] == bad_image_id else png), "path": None} for r in rows],
        "oracle_answer": [r[2] for r in rows],
        "oracle_option": [r[3] for r in rows],
        "oracle_full_answer": [f"{r[2]} (option {r[3]})" for r in rows],
    }
    for c in drop:
        table.pop(c)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(table), path)


def test_spatialeval_substring_rule(tmp_path):
    root = tmp_path / "SpatialEval"
    _se_parquet(root / "vqa" / "test-00000-of-00002.parquet", SE_ROWS[:4])
    _se_parquet(root / "vqa" / "test-00001-of-00002.parquet", SE_ROWS[4:] + [("spatialmap.vqa.9.0", ["a", "b"],
                "a", "A", None, False, False)], bad_image_id="spatialmap.vqa.9.0")
    _se_parquet(root / "tqa" / "test-00000-of-00001.parquet", [("spatialmap.tqa.0.0", ["x", "y"], "x", "A",
                None, False, False)])
    bench = get_benchmark("spatialeval")
    items, skipped = bench.load(str(root))
    assert [(s.id, s.reason) for s in skipped] == [("spatialmap.vqa.9.0", "undecodable_image")]
    assert [it.id for it in items] == [r[0] for r in SE_ROWS]  # the tqa folder is left alone
    first = items[0]
    assert first.options == ["Northeast", "Northwest", "Southwest", "Southeast"]
    assert first.question.startswith("<image>Consider the map") and first.question.count("<image>") == 1
    assert first.question.endswith("Answer with the letter and the text of the correct option.")
    assert first.category == "spatialmap" and first.meta["oracle_option"] == "A"
    responses = {r[0]: r[4] for r in SE_ROWS if r[4] is not None}
    report = bench.score(items, responses)
    assert report["strict"] == pytest.approx(100 * sum(r[5] for r in SE_ROWS) / len(SE_ROWS))  # 4 of 8
    assert report["accuracy"] == pytest.approx(100 * sum(r[7] for r in SE_ROWS) / len(SE_ROWS))  # 5 of 8
    assert report["n"] == 8 and report["missing"] == 1
    assert report["strict_parse_failures"] == 1 and report["metrics"]["strict_failure_reasons"] == {"no_box": 1}
    assert report["parse_failures"] == 1  # spatialmap q0 "C": no direction extracted
    assert report["per_category"] == {
        "mazenav": {"n": 2, "accuracy": 100.0},
        "spatialgrid": {"n": 2, "accuracy": 50.0},
        "spatialmap": {"n": 2, "accuracy": 50.0},
        "spatialreal": {"n": 2, "accuracy": 50.0},
    }
    letters = report["metrics"]["option_letter"]
    assert letters["n"] == 8
    assert letters["accuracy"] == pytest.approx(100 * sum(r[6] for r in SE_ROWS) / 8)  # 3 of 8
    assert report["metrics"]["per_question"]["mazenav.q1"] == {"n": 1, "accuracy": 100.0}
    # a mode folder and a single file load the same items
    assert len(bench.load(str(root / "vqa"))[0]) == 8
    assert len(bench.load(str(root / "vqa" / "test-00000-of-00002.parquet"))[0]) == 4


def test_spatialeval_missing_column(tmp_path):
    f = tmp_path / "vqa" / "test-00000-of-00001.parquet"
    _se_parquet(f, SE_ROWS[:2], drop=("oracle_answer",))
    with pytest.raises(BenchmarkError) as err:
        get_benchmark("spatialeval").load(str(tmp_path))
    assert str(f) in str(err.value) and "'oracle_answer'" in str(err.value)


# ----------------------------------------------------------------------------- QSpatial-plus

QS_ROWS = [
    # value, unit, type, response, success within 2?, within 1.5?
    (100.0, "centimeter", "direct", boxed("1 meter"), True, True),
    (100.0, "centimeter", "direct", boxed("3 m"), False, False),
    (100.0, "centimeter", "direct", boxed("100"), False, False),  # bare number: parse failure
    (1.0, "meter", "indirect", boxed("160 cm"), True, False),
    (2.0, "feet", "indirect", boxed("24 inches"), True, True),
    (3.0, "furlong", "indirect", boxed("3 furlong"), None, None),  # unknown truth unit: skipped
    (50.0, "centimeter", "direct", boxed("50 cm"), None, None),  # undecodable image: skipped
]


def _qs_parquet(path, rows, drop=()):
    png = _png((120, 120, 0))
    table = {
        "question": [f"How far apart are object {i} and the wall?" for i in range(len(rows))],
        "answer_value": pa.array([r[0] for r in rows], pa.float32()),
        "answer_unit": [r[1] for r in rows],
        "question_type": [r[2] for r in rows],
        "image_path": [f"images/{i}.jpg" for i in range(len(rows))],
        "image": [{"bytes": png if i != 6 else b"\x89PNG broken", "path": f"{i}.jpg"} for i in range(len(rows))],
    }
    for c in drop:
        table.pop(c)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(table), path)


def test_qspatial_factor_two_with_units(tmp_path):
    root = tmp_path / "Q-Spatial-Bench"
    _qs_parquet(root / "data" / "QSpatial_plus-00000-of-00001.parquet", QS_ROWS)
    _qs_parquet(root / "data" / "QSpatial_scannet-00000-of-00001.parquet", QS_ROWS[:2])  # ignored
    bench = get_benchmark("qspatial-plus")
    items, skipped = bench.load(str(root))
    assert sorted((s.id, s.reason) for s in skipped) == [("5", "unknown_unit"), ("6", "undecodable_image")]
    assert [it.id for it in items] == ["0", "1", "2", "3", "4"]
    assert items[3].answer == pytest.approx(100.0) and items[4].answer == pytest.approx(60.96)
    assert items[0].question.startswith("<image>How far") and "\\scalar{number} \\distance_unit{unit}" in items[0].question
    responses = {str(i): r[3] for i, r in enumerate(QS_ROWS)}
    report = bench.score(items, responses)
    assert report["strict"] == pytest.approx(60.0)  # 0, 3, 4 of 5
    assert report["metrics"]["strict_delta_1.5"] == pytest.approx(40.0)  # 0, 4
    assert report["strict_parse_failures"] == 1 and report["missing"] == 0 and report["n"] == 5
    assert report["metrics"]["strict_failure_reasons"] == {"no_unit": 1}
    # The official parser (Q-Spatial-Bench-code examples/evaluate_success_rate.ipynb, ebe8137eae97)
    # reads \scalar{} and \distance_unit{} only: none of these boxed answers has them.
    assert report["accuracy"] == 0.0 and report["parse_failures"] == 5
    # The same answers in the official format (which the question asks for): the same figures
    # by the official rule; boxed, both rules read them.
    official = {"0": "\\scalar{1} \\distance_unit{meter}", "1": "\\scalar{3} \\distance_unit{m}", "2": "100",
                "3": "It is \\scalar{160} \\distance_unit{cm}", "4": "\\scalar{24} \\distance_unit{inches}"}
    report = bench.score(items, official)
    assert report["accuracy"] == pytest.approx(60.0)  # 0, 3, 4 of 5
    assert report["metrics"]["delta_1.5"] == pytest.approx(40.0)  # 0, 4
    assert report["parse_failures"] == 1 and report["strict_parse_failures"] == 5 and report["strict"] == 0.0
    assert report["per_category"] == {"direct": {"n": 3, "accuracy": pytest.approx(100 / 3)},
                                      "indirect": {"n": 2, "accuracy": 100.0}}
    assert report["metrics"]["per_category_delta_1.5"]["indirect"] == {"n": 2, "accuracy": 50.0}
    # unanswered counts as wrong
    r = bench.score(items, {"0": boxed("1 meter")})
    assert r["strict"] == pytest.approx(20.0) and r["missing"] == 4
    r = bench.score(items, {"0": official["0"]})
    assert r["accuracy"] == pytest.approx(20.0) and r["missing"] == 4
    r = bench.score(items, {"0": boxed(official["0"]), "4": boxed(official["4"])})
    assert r["accuracy"] == r["strict"] == pytest.approx(40.0)


def test_qspatial_missing_column(tmp_path):
    f = tmp_path / "QSpatial_plus-00000-of-00001.parquet"
    _qs_parquet(f, QS_ROWS[:2], drop=("answer_unit",))
    with pytest.raises(BenchmarkError) as err:
        get_benchmark("qspatial-plus").load(str(tmp_path))
    assert str(f) in str(err.value) and "'answer_unit'" in str(err.value)


def test_unknown_load_option_is_a_type_error(tmp_path):
    with pytest.raises(TypeError):
        get_benchmark("qspatial-plus").load(str(tmp_path), frames=3)
