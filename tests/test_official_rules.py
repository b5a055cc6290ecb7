"""The official extraction rule of each benchmark (the headline ``accuracy``) beside our strict
rule (``strict``), on responses of every shape, with the outcomes worked out by hand from the
benchmarks' own scoring code:

- ViewSpatial-Bench: ``evaluate.py``, ZJU-REAL/ViewSpatial-Bench 2e85a5e41a29 (first standalone
  A-D, case-insensitive, of the last line);
- VSI-Bench: ``lmms_eval/tasks/vsibench/utils.py``, vision-x-nyu/thinking-in-space 51e089c3ae69
  (first space-separated word; MRA with a plain ``<=``);
- 3DSRBench and What'sUp's caption pick: ``can_infer`` of ``vlmeval/utils/matching_util.py``,
  open-compass/VLMEvalKit 2cf2a36c6e79 (a lone upper-case letter among the last words, "answer is
  X", or the one option text in a short answer);
- Spatial457: ``vlmeval/dataset/spatial457.py`` (401916c0) and ``utils/spatial457.py`` (ec096a01);
- SpatialEval: ``evals/evaluation.py``, jiayuww/SpatialEval d82ba3828052;
- Q-Spatial: ``examples/evaluate_success_rate.ipynb``, andrewliao11/Q-Spatial-Bench-code ebe8137eae97;
- What'sUp set accuracy: ``dataset_zoo/aro_datasets.py``, amitakamath/whatsup_vlms 7c1f2550eace.

The rule reads :func:`spatial_ssrl.eval.answers.final_answer`: the last box's content, else the
text after the think block.
"""

from __future__ import annotations

import json

import pytest
from test_bench_scoring_b import write_jpeg

from spatial_ssrl.eval.base import BenchmarkError, EvalItem
from spatial_ssrl.eval.benchmarks import available, get_benchmark
from spatial_ssrl.eval.benchmarks.vsibench import mean_relative_accuracy, official_mra

OPTIONS = ["right", "left", "front", "back"]  # the answer is B, "left"

# shape: (response, ViewSpatial, VSI-Bench, VLMEvalKit can_infer, strict); an outcome is
# "right", "wrong" or "unread" (a parse failure); strict gives its failure reason.
SHAPES = {
    "boxed letter": ("<think>t</think> The answer is \\boxed{B}.", "right", "right", "right", "right"),
    # the box's content "left": no letter for ViewSpatial or VSI-Bench; can_infer_text finds the option
    "boxed option text": ("<think>t</think> \\boxed{left}", "unread", "unread", "right", "right"),
    "letter and text": ("B. left", "right", "right", "right", "no_box"),
    # VSI-Bench reads the first word, "The"
    "the answer is (B)": ("The answer is (B) left", "right", "unread", "right", "no_box"),
    # can_infer_option matches upper-case letters only; "b" holds no option text
    "lower case": ("b", "right", "right", "unread", "no_box"),
    "bare letter": ("B", "right", "right", "right", "no_box"),
    # the official rules read the last box, B; strict refuses the disagreement
    "hedged": ("\\boxed{A} or \\boxed{B}", "right", "right", "right", "hedged"),
    # no standalone a-d; first word "The"; 38 characters, longer than twice the options' 18
    "free sentence": ("The chair is on the left of the table.", "unread", "unread", "unread", "no_box"),
    # the think block is dropped: "The answer is B." is read
    "think then answer": ("<think>It could be A, or C.</think>\nThe answer is B.", "right", "unread", "right",
                          "no_box"),
    "wrong letter": ("A. right", "wrong", "wrong", "wrong", "no_box"),
}


def _mc_item(bench: str) -> EvalItem:
    lines = "\n".join(f"{'ABCD'[i]}. {o}" for i, o in enumerate(OPTIONS))
    meta = {"vsi-bench": {"kind": "choice", "task": "object_rel_distance"},
            "3dsrbench": {"qid": "aaaaaaaa", "subcategory": "height_higher"},
            "whatsup": {"subset": "controlled_a", "group": "controlled_a-0", "image_name": "mug_left_of_table.jpeg"},
            "viewspatial": {"perspective": "Camera"}}[bench]
    category = {"vsi-bench": "object_rel_distance", "3dsrbench": "height", "whatsup": "controlled_a",
                "viewspatial": "Camera perspective - Relative Direction"}[bench]
    return EvalItem(id="0", question=f"<image>Where?\n{lines}", answer="B", options=list(OPTIONS),
                    category=category, meta=meta)


def _outcome(report: dict, accuracy: str, failures: str) -> str:
    if report[failures]:
        return "unread"
    return "right" if report[accuracy] == 100.0 else "wrong"


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("bench,column", [("viewspatial", 1), ("vsi-bench", 2), ("3dsrbench", 3), ("whatsup", 3)])
def test_multiple_choice_shapes(bench, column, shape):
    response = SHAPES[shape][0]
    report = get_benchmark(bench).score([_mc_item(bench)], {"0": response})
    assert _outcome(report, "accuracy", "parse_failures") == SHAPES[shape][column]
    strict = SHAPES[shape][4]
    if strict == "right":
        assert report["strict"] == 100.0 and report["strict_parse_failures"] == 0
    else:
        assert report["strict"] == 0.0 and report["metrics"]["strict_failure_reasons"] == {strict: 1}
    assert report["n"] == 1 and report["missing"] == 0
    assert "official" in report["metric"] or "VLMEvalKit" in report["metric"]


def test_unanswered_is_wrong_not_a_parse_failure():
    for bench in ("viewspatial", "vsi-bench", "3dsrbench", "whatsup"):
        report = get_benchmark(bench).score([_mc_item(bench)], {})
        assert report["accuracy"] == 0.0 and report["strict"] == 0.0 and report["missing"] == 1
        assert report["parse_failures"] == 0 and report["strict_parse_failures"] == 0


# ------------------------------------------------------------------------------- VSI-Bench MRA

def _vsi_numeric(truth: float) -> EvalItem:
    return EvalItem(id="0", question="<image>How far?", answer=truth, category="object_abs_distance",
                    meta={"kind": "numeric", "task": "object_abs_distance"})


def test_vsibench_mra_plain_less_or_equal():
    # |4 - 5| / 5 = 0.2; 1 - linspace(.5, .95, 10)[6] is 0.19999999999999996 < 0.2: theta 0.50..0.75 only
    assert official_mra(4, 5) == pytest.approx(0.6)
    assert mean_relative_accuracy(4, 5) == pytest.approx(0.7)  # ours keeps the boundary (strict)
    report = get_benchmark("vsi-bench").score([_vsi_numeric(5.0)], {"0": "<think>t</think> \\boxed{4}"})
    assert report["accuracy"] == pytest.approx(60.0) and report["strict"] == pytest.approx(70.0)
    # the first word as a float: "4 meters" reads 4, "about 4" nothing
    report = get_benchmark("vsi-bench").score([_vsi_numeric(5.0)], {"0": "4 meters"})
    assert report["accuracy"] == pytest.approx(60.0) and report["metrics"]["strict_failure_reasons"] == {"no_box": 1}
    report = get_benchmark("vsi-bench").score([_vsi_numeric(5.0)], {"0": "about 4"})
    assert report["accuracy"] == 0.0 and report["parse_failures"] == 1


# ------------------------------------------------------------------------------- Spatial457

SPATIAL457 = [
    # (response, right officially?, strict: True / False / failure reason); the answer is "Yes"
    ("<think>t</think> \\boxed{Yes}", True, True),
    ("Yes", True, "no_box"),
    ("yes", True, "no_box"),                                   # case-insensitive
    ("Yes.", False, "no_box"),                                 # compared whole, nothing stripped
    ("The answer is yes", False, "no_box"),
    ("{'Reasoning': 'a car is there', 'Answer': 'Yes'}", True, "no_box"),  # the JSON template's field
    ("\\boxed{No} or \\boxed{Yes}", True, "hedged"),           # the last box
    ("<think>No?</think>\nYes", True, "no_box"),
    ("3", True, "no_box"),                                     # a digit 1-9 is right for Yes
    ("\\boxed{\\text{Yes}}", False, True),                     # the LaTeX stays officially
]


@pytest.mark.parametrize("response,official,strict", SPATIAL457)
def test_spatial457_shapes(response, official, strict):
    item = EvalItem(id="0", question="<image>Is there a car?", answer="Yes", category="L1_single")
    report = get_benchmark("spatial457").score([item], {"0": response})
    assert report["accuracy"] == (100.0 if official else 0.0) and report["parse_failures"] == 0
    assert report["strict"] == (100.0 if strict is True else 0.0)
    if isinstance(strict, str):
        assert report["metrics"]["strict_failure_reasons"] == {strict: 1}


# ------------------------------------------------------------------------------- SpatialEval

SPATIALEVAL = [
    # (task, question number, oracle, response, official (right, read), strict right or reason)
    ("spatialmap", "0", "Northeast", "\\boxed{A. Northeast}", (True, True), True),
    ("spatialmap", "0", "Northeast", "The answer is A.", (False, False), "no_box"),  # q0 wants a direction
    ("spatialmap", "1", "cafe", "The cafe is located to the northeast of the park.", (True, True), "no_box"),
    # nothing extracted is compared as "none", which holds "no": right, though unread
    ("mazenav", "2", "No", "\\boxed{B}", (True, False), False),
    ("mazenav", "0", "2", "There are 2 right turns.", (True, True), "no_box"),
    ("mazenav", "0", "2", "No right turns, then 2 left ones", (False, True), "no_box"),  # "no" is 0, first
    ("spatialgrid", "0", "3", "I count three blocks", (True, True), "no_box"),
    ("spatialgrid", "1", "dog", "B. dog", (True, True), "no_box"),
    ("spatialreal", "0", "2", "I think it is 2", (True, True), "no_box"),  # no extractor: the whole answer
]


@pytest.mark.parametrize("task,q,oracle,response,official,strict", SPATIALEVAL)
def test_spatialeval_shapes(task, q, oracle, response, official, strict):
    item = EvalItem(id=f"{task}.vqa.0.{q}", question="<image>Q?", answer=oracle, category=task,
                    meta={"question_number": q})
    report = get_benchmark("spatialeval").score([item], {item.id: response})
    assert (report["accuracy"] == 100.0, report["parse_failures"] == 0) == official
    assert report["strict"] == (100.0 if strict is True else 0.0)
    if isinstance(strict, str):
        assert report["metrics"]["strict_failure_reasons"] == {strict: 1}


# ------------------------------------------------------------------------------- Q-Spatial

QSPATIAL = [
    # (response, official: right / wrong / unread, strict right or reason); the truth is 100 cm
    ("It is about \\scalar{1} \\distance_unit{meter}", "right", "no_box"),
    ("<think>t</think> \\boxed{1 m}", "unread", True),                 # no \scalar{} in the answer
    ("\\boxed{\\scalar{1} \\distance_unit{m}}", "right", True),   # the official format in a box: both read it
    ("<think>t</think> \\boxed{\\scalar{0.7} \\distance_unit{meters}}", "right", True),  # 70 cm: within 2x
    ("\\scalar{1-2} \\distance_unit{m}", "right", "no_box"),           # the mean of 1 and 2: 150 cm
    ("\\scalar{3} \\distance_unit{yards}", "wrong", "no_box"),         # unknown unit: multiplier 1, 3 cm
    ("<think>\\scalar{9} \\distance_unit{m}</think> \\scalar{1.2} \\distance_unit{m}", "right", "no_box"),
    ("1 meter", "unread", "no_box"),
]


@pytest.mark.parametrize("response,official,strict", QSPATIAL)
def test_qspatial_shapes(response, official, strict):
    item = EvalItem(id="0", question="<image>How far?", answer=100.0, category="direct")
    report = get_benchmark("qspatial-plus").score([item], {"0": response})
    assert _outcome(report, "accuracy", "parse_failures") == official
    assert report["strict"] == (100.0 if strict is True else 0.0)
    if isinstance(strict, str):
        assert report["metrics"]["strict_failure_reasons"] == {strict: 1}


# ------------------------------------------------------------------------ What'sUp set accuracy

def test_whatsup_sets_group_by_file_name(tmp_path):
    """Pair mug/table has a caption typo in one row; pair book/chair is a 7-caption variant whose
    distractors differ per row; cup/box is plain. Grouping by caption set would split the first
    two pairs (and score book/chair's sets as its rows); the authors group by file name."""
    rel = {"on": "on", "under": "under", "left_of": "to the left of", "right_of": "to the right of"}
    rows = []
    for a, b in (("mug", "table"), ("book", "chair"), ("cup", "box")):
        captions = [f"A {a} {p} a {b}" for p in rel.values()]
        for k, r in enumerate(rel):
            options = [captions[k]] + captions[:k] + captions[k + 1:]
            if a == "mug" and r == "left_of":
                options[0] = "A mug to the lft of a table"  # the typo
            if a == "book":
                options += [f"A book near a chair {k}", f"A book far from a chair {k}", f"A book by a chair {k}"]
            rows.append({"image_path": f"data/controlled_images/{a}_{r}_{b}.jpeg", "caption_options": options})
    root = tmp_path / "data"
    root.mkdir()
    (root / "controlled_images_dataset.json").write_text(json.dumps(rows))
    for row in rows:
        write_jpeg(root / row["image_path"][len("data/"):])
    bench = get_benchmark("whatsup")
    items, _ = bench.load(str(root), subsets="A")
    assert [it.meta["image_name"] for it in items][:2] == ["mug_on_table.jpeg", "mug_under_table.jpeg"]
    wrong = {2, 5, 6, 7}  # mug left_of (the typo row); book under, left_of, right_of
    letters = "ABCDEFGH"
    picks = [letters[(letters.index(it.answer) + 1) % len(it.options)] if i in wrong else it.answer
             for i, it in enumerate(items)]
    responses = {it.id: f"\\boxed{{{pick}}}" for it, pick in zip(items, picks)}
    report = bench.score(items, responses)
    assert report["accuracy"] == pytest.approx(100 * 8 / 12) and report["strict"] == pytest.approx(100 * 8 / 12)
    # by file name: only cup/box has its four prepositions right (by caption set: 3 of 7 groups)
    assert report["metrics"]["set_accuracy"] == {"controlled_a": pytest.approx(100 / 3)}
    # pairs: mug on+under, cup on+under and left+right
    assert report["metrics"]["pair_accuracy"] == {"controlled_a": pytest.approx(50.0)}


# ------------------------------------------------------------------------------- names

def test_aliases_find_the_benchmarks():
    names = {"vsibench": "vsi-bench", "VSI-Bench": "vsi-bench", "vsi_bench": "vsi-bench",
             "3DSRBench": "3dsrbench", "Spatial457": "spatial457", "ViewSpatial": "viewspatial",
             "ViewSpatial-Bench": "viewspatial", "ViewSpatialBench": "viewspatial", "SpatialEval": "spatialeval",
             "QSpatial_plus": "qspatial-plus", "Q-Spatial++": "qspatial-plus", "whatsup": "whatsup",
             "What'sUp": "whatsup", "PRETEXT": "pretext"}
    for alias, name in names.items():
        assert get_benchmark(alias).name == name
    listed = available()
    assert {"vsi-bench", "3dsrbench", "viewspatial", "qspatial-plus", "whatsup"} <= set(listed)
    assert "vsibench" not in listed and all(bench.name == key for key, bench in listed.items())
    with pytest.raises(BenchmarkError, match="unknown benchmark 'vsi-bench-2'; available: "):
        get_benchmark("vsi-bench-2")


def test_pretext_official_is_strict(builtin_dataset):
    bench = get_benchmark("pretext")
    items, _ = bench.load(str(builtin_dataset), split="train", images=False)
    items = items[:6]
    responses = {items[0].id: f"<think>t</think> \\boxed{{{items[0].answer}}}",
                 items[1].id: f"\\boxed{{{items[1].answer}}}",
                 items[2].id: f"{items[2].answer}",  # no box: unread by our rule, the official one here
                 items[3].id: f"<think>t</think> \\boxed{{{items[3].answer}}}"}
    report = bench.score(items, responses)
    assert report["accuracy"] == report["strict"] and report["parse_failures"] == report["strict_parse_failures"]
    assert report["strict_parse_failures"] >= 1 and report["missing"] == 2
    assert report["metrics"]["strict_failure_reasons"] == report["failure_reasons"]
