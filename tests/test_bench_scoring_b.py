"""What'sUp, ViewSpatial-Bench and VSI-Bench: loaders on files laid out as the authors
distribute them (built here, tiny), scorers on hand-made responses with worked-out numbers."""

from __future__ import annotations

import io
import json
import sys
from fractions import Fraction

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deps import require
from PIL import Image

from spatial_ssrl.eval.base import BenchmarkError
from spatial_ssrl.eval.benchmarks import get_benchmark
from spatial_ssrl.eval.benchmarks.vsibench import mean_relative_accuracy
from spatial_ssrl.eval.video import uniform_indices

LETTERS = "ABCD"


def boxed(x) -> str:
    return f"<think>looking at it</think> The answer is \\boxed{{{x}}}."


def write_jpeg(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (value, value, value)).save(path, format="JPEG")


# ---------------------------------------------------------------------------------- What'sUp

def controlled_rows(objects, relations, folder):
    """Four images per object pair, each with the caption set rotated so the true one is first
    (the authors' layout: image_path relative to their repository root, under data/)."""
    rows = []
    phrase = {"on": "on", "under": "under", "left_of": "to the left of", "right_of": "to the right of",
              "in-front_of": "in front of", "behind": "behind"}
    for a, b in objects:
        captions = [f"A {a} {phrase[r]} a {b}" for r in relations]
        for k, rel in enumerate(relations):
            rows.append({"image_path": f"data/{folder}/{a}_{rel}_{b}.jpeg",
                         "caption_options": [captions[k]] + captions[:k] + captions[k + 1:]})
    return rows


@pytest.fixture()
def whatsup_dir(tmp_path):
    root = tmp_path / "data"
    a_rows = controlled_rows([("mug", "table"), ("book", "chair"), ("cup", "box")],
                             ["on", "under", "left_of", "right_of"], "controlled_images")
    b_rows = controlled_rows([("cube", "sphere")], ["left_of", "right_of", "in-front_of", "behind"],
                             "controlled_clevr")
    root.mkdir()
    (root / "controlled_images_dataset.json").write_text(json.dumps(a_rows))
    (root / "controlled_clevr_dataset.json").write_text(json.dumps(b_rows))
    for row in a_rows + b_rows:
        write_jpeg(root / row["image_path"][len("data/"):])
    (root / a_rows[-1]["image_path"][len("data/"):]).unlink()  # one image missing -> skipped
    (root / "coco_qa_one_obj.json").write_text(json.dumps([[42, "A photo of a dog on the left",
                                                            "A photo of a dog on the right"]]))
    write_jpeg(root / "val2017" / "000000000042.jpg")
    return root, a_rows, b_rows


def test_whatsup_load_shuffles_deterministically(whatsup_dir):
    root, a_rows, b_rows = whatsup_dir
    bench = get_benchmark("whatsup")
    items, skipped = bench.load(str(root))
    assert [s.id for s in skipped] == ["controlled_a-11"] and skipped[0].reason == "missing_image"
    assert len(items) == 11 + 4
    again, _ = bench.load(str(root))
    assert [(it.id, it.options, it.answer) for it in items] == [(it.id, it.options, it.answer) for it in again]
    perms = [it.meta["permutation"] for it in items]
    assert any(p != [0, 1, 2, 3] for p in perms)  # not the paper's always-A order
    assert len({it.answer for it in items}) > 1
    source = {f"controlled_a-{i}": r for i, r in enumerate(a_rows)} | {f"controlled_b-{i}": r
                                                                        for i, r in enumerate(b_rows)}
    for it in items:
        captions = source[it.id]["caption_options"]
        assert it.options == [captions[j] for j in it.meta["permutation"]]
        assert it.options[LETTERS.index(it.answer)] == captions[0] == it.meta["true_caption"]
        assert it.question.startswith("<image>\n") and it.question.count("<image>") == 1
        assert f"{it.answer}. {captions[0]}\n" in it.question
        assert it.question.endswith("Answer with the option's letter.")
        assert it.images[0].endswith(source[it.id]["image_path"][len("data/"):])
    other, _ = bench.load(str(root), seed=1)
    assert [it.meta["permutation"] for it in other] != perms
    coco, _ = bench.load(str(root), subsets="coco_qa_one")
    assert len(coco) == 1 and len(coco[0].options) == 2 and coco[0].images[0].endswith("000000000042.jpg")


def test_whatsup_score_per_subset(whatsup_dir):
    root, _, _ = whatsup_dir
    bench = get_benchmark("whatsup")
    items, _ = bench.load(str(root))
    a = [it for it in items if it.category == "controlled_a"]
    b = [it for it in items if it.category == "controlled_b"]
    wrong = {it.id: LETTERS[(LETTERS.index(it.answer) + 1) % 4] for it in items}
    responses = {}
    for it in a[:7]:  # 7 right of 11 (one by the caption text), 1 wrong, 1 hedged, 2 unanswered
        responses[it.id] = boxed(it.answer)
    true_text = a[0].options[LETTERS.index(a[0].answer)]
    assert true_text == a[0].meta["true_caption"]
    responses[a[0].id] = boxed(true_text)
    responses[a[7].id] = boxed(wrong[a[7].id])
    responses[a[8].id] = f"\\boxed{{{a[8].answer}}} or maybe \\boxed{{{wrong[a[8].id]}}}"
    for it in b[:3]:  # 3 right of 4, 1 wrong
        responses[it.id] = boxed(it.answer)
    responses[b[3].id] = boxed(wrong[b[3].id])
    report = bench.score(items, responses)
    # The hedge reads as its last box (a wrong letter) by the official rule and is refused by the
    # strict one: wrong either way.
    assert report["per_category"]["controlled_a"] == {"n": 11, "accuracy": pytest.approx(700 / 11),
                                                      "strict": pytest.approx(700 / 11)}
    assert report["per_category"]["controlled_b"] == {"n": 4, "accuracy": pytest.approx(75.0), "strict": 75.0}
    assert report["accuracy"] == pytest.approx((700 / 11 + 75.0) / 2)  # macro over subsets
    assert report["strict"] == pytest.approx((700 / 11 + 75.0) / 2)
    assert report["metrics"]["question_mean"] == pytest.approx(100 * 10 / 15)
    assert report["n"] == 15 and report["parse_failures"] == 0 and report["missing"] == 2
    assert report["strict_parse_failures"] == 1 and report["metrics"]["strict_failure_reasons"] == {"hedged": 1}
    # set accuracy: the first object pair (rows 0-3) all right; the second has a wrong row; the
    # third lost an image and has two rows unanswered; the clevr pair has one wrong row
    assert report["metrics"]["set_accuracy"] == {"controlled_a": pytest.approx(100 / 3), "controlled_b": 0.0}
    # pairs: mug/table on+under and left+right, book/chair on+under; clevr left+right
    assert report["metrics"]["pair_accuracy"] == {"controlled_a": pytest.approx(50.0), "controlled_b": 50.0}
    assert set(report) >= {"accuracy", "n", "parse_failures", "per_category", "metric", "metrics", "missing"}


def test_whatsup_circular(whatsup_dir):
    root, _, _ = whatsup_dir
    bench = get_benchmark("whatsup")
    items, _ = bench.load(str(root), subsets="B", circular=True)
    assert len(items) == 16
    groups = {}
    for it in items:
        groups.setdefault(it.meta["group"], []).append(it)
    assert all(len(g) == 4 for g in groups.values())
    for g in groups.values():  # each rotation puts the true caption at a different letter
        assert sorted(it.answer for it in g) == list(LETTERS)
        assert all(it.options[LETTERS.index(it.answer)] == it.meta["true_caption"] for it in g)
    plain, _ = bench.load(str(root), subsets="B")
    assert [it.options for it in items if it.meta["rotation"] == 0] == [it.options for it in plain]
    names = sorted(groups)
    responses = {it.id: boxed(it.answer) for it in items}  # all right, except:
    bad = groups[names[1]][2]
    responses[bad.id] = boxed(LETTERS[(LETTERS.index(bad.answer) + 1) % 4])
    del responses[groups[names[2]][0].id]
    report = bench.score(items, responses)
    assert report["accuracy"] == pytest.approx(50.0)  # 2 of 4 questions right on every rotation
    assert report["n"] == 4 and report["metrics"]["rows"] == 16
    assert report["metrics"]["row_mean"] == pytest.approx(100 * 14 / 16)
    assert report["per_category"]["controlled_b"]["row_accuracy"] == pytest.approx(100 * 14 / 16)
    assert report["missing"] == 1 and report["metrics"]["circular"] is True


def test_whatsup_bad_input(tmp_path):
    bench = get_benchmark("whatsup")
    (tmp_path / "controlled_images_dataset.json").write_text(json.dumps([{"image_path": "data/x.jpeg"}]))
    with pytest.raises(BenchmarkError, match=r"controlled_images_dataset\.json: row 0 has no 'caption_options'"):
        bench.load(str(tmp_path), subsets="A")
    with pytest.raises(BenchmarkError, match=r"controlled_clevr_dataset\.json: not found"):
        bench.load(str(tmp_path))
    with pytest.raises(BenchmarkError, match="unknown subset"):
        bench.load(str(tmp_path), subsets="nope")


# --------------------------------------------------------------------------- ViewSpatial-Bench

VIEW_ROWS = [
    {"question_type": "Camera perspective - Relative Direction",
     "image_path": ["ViewSpatial-Bench/scannetv2_val/scene0011_00/original_images/280.jpg"],
     "question": "Where is the counter relative to the fridge?", "answer": "A. right",
     "choices": "A. right\nB. front-up\nC. back-left\nD. front"},
    {"question_type": "Person perspective - Object View Orientation",
     "image_path": ["ViewSpatial-Bench/val2017/000000140640.jpg"],
     "question": "From the woman's view, where is the dog?", "answer": "C. left",
     "choices": "A. front-right\nB. back\nC. left\nD. back-right"},
    {"question_type": "Person perspective - Scene Simulation Relative Direction",
     "image_path": ["ViewSpatial-Bench/scannetv2_val/scene0011_00/original_images/1.jpg",
                    "ViewSpatial-Bench/scannetv2_val/scene0011_00/original_images/2.jpg"],
     "question": "Standing at the sofa facing the tv, where is the lamp?", "answer": "B. back",
     "choices": "A. front\nB. back"},
    {"question_type": "Camera perspective - Relative Direction",
     "image_path": ["ViewSpatial-Bench/scannetv2_val/scene0011_00/original_images/760.jpg"],
     "question": "How is the cabinet positioned with respect to the table?", "answer": "D. back",
     "choices": "A. left\nB. front-left\nC. above-left\nD. back"},
    {"question_type": "Camera perspective - Relative Direction",
     "image_path": ["ViewSpatial-Bench/scannetv2_val/scene0011_00/original_images/missing.jpg"],
     "question": "?", "answer": "A. left", "choices": "A. left\nB. right\nC. up\nD. down"},
]


def view_repo(tmp_path, rows=VIEW_ROWS, hf_layout=False):
    """The GitHub layout (eval/ViewSpatial-Bench.json + ViewSpatial-Bench/<images>) or the Hugging
    Face one (the json next to scannetv2_val/ and val2017/)."""
    root = tmp_path / ("hf" if hf_layout else "repo")
    json_path = root / "ViewSpatial-Bench.json" if hf_layout else root / "eval" / "ViewSpatial-Bench.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(rows))
    for row in rows:
        for rel in row["image_path"]:
            if "missing" not in rel:
                write_jpeg(root / (rel.split("/", 1)[1] if hf_layout else rel))
    return root, json_path


def test_viewspatial_load_and_score(tmp_path):
    bench = get_benchmark("viewspatial")
    root, json_path = view_repo(tmp_path)
    items, skipped = bench.load(str(root))
    assert [(s.id, s.reason) for s in skipped] == [("4", "missing_image")]
    assert [it.answer for it in items] == ["A", "C", "B", "D"]
    assert items[0].options == ["right", "front-up", "back-left", "front"]
    assert items[2].question.startswith("<image><image>\n") and len(items[2].images) == 2
    assert "\nA. front\nB. back\nAnswer with the option's letter." in items[2].question
    assert [it.id for it in bench.load(str(json_path))[0]] == ["0", "1", "2", "3"]
    hf_root, _ = view_repo(tmp_path, hf_layout=True)
    assert len(bench.load(str(hf_root))[0]) == 4

    responses = {
        "0": boxed("A"),                        # right
        "1": boxed("left"),                     # strict: right, by the option text; official: no letter
        "2": "\\boxed{A} or \\boxed{B}",        # strict: hedged, refused; official: the last box, B, right
        # "3" unanswered
    }
    # Official rule: evaluate.py at ZJU-REAL/ViewSpatial-Bench 2e85a5e41a29 (first A-D of the last line).
    report = bench.score(items, responses)
    assert report["accuracy"] == pytest.approx(50.0) and report["strict"] == pytest.approx(50.0)
    assert report["n"] == 4 and report["parse_failures"] == 1 and report["missing"] == 1
    assert report["strict_parse_failures"] == 1 and report["metrics"]["strict_failure_reasons"] == {"hedged": 1}
    assert report["per_category"] == {
        "Camera perspective - Relative Direction": {"n": 2, "accuracy": 50.0},
        "Person perspective - Object View Orientation": {"n": 1, "accuracy": 0.0},
        "Person perspective - Scene Simulation Relative Direction": {"n": 1, "accuracy": 100.0},
    }
    assert report["metrics"]["per_perspective"] == {"Camera": {"n": 2, "accuracy": 50.0},
                                                     "Person": {"n": 2, "accuracy": 50.0}}
    # a wrong letter, a letter whose text names another option: both wrong (strict: refused)
    report = bench.score(items, {"0": boxed("B"), "1": boxed("A. left"), "2": boxed("b"), "3": boxed("D. back")})
    assert report["accuracy"] == pytest.approx(50.0) and report["parse_failures"] == 0
    assert report["strict"] == pytest.approx(50.0) and report["strict_parse_failures"] == 1


def test_viewspatial_bad_input(tmp_path):
    bench = get_benchmark("viewspatial")
    rows = [dict(VIEW_ROWS[0]), {k: v for k, v in VIEW_ROWS[1].items() if k != "choices"}]
    root, _ = view_repo(tmp_path, rows)
    with pytest.raises(BenchmarkError, match=r"ViewSpatial-Bench\.json: item 1 has no 'choices'"):
        bench.load(str(root))
    with pytest.raises(BenchmarkError, match="no ViewSpatial-Bench.json"):
        bench.load(str(tmp_path))


# ------------------------------------------------------------------------------------ VSI-Bench

def test_mean_relative_accuracy_by_hand():
    # relative error e counts at every theta in 0.50..0.95 with e <= 1 - theta
    assert mean_relative_accuracy(10, 10) == 1.0
    assert mean_relative_accuracy(12, 10) == pytest.approx(0.7)   # e=0.2: theta 0.50..0.80
    assert mean_relative_accuracy(2.5, 2) == pytest.approx(0.6)   # e=0.25: theta 0.50..0.75
    assert mean_relative_accuracy(15, 10) == pytest.approx(0.1)   # e=0.5: only theta 0.50 (inclusive)
    assert mean_relative_accuracy(5, 10) == pytest.approx(0.1)
    assert mean_relative_accuracy(15.01, 10) == 0.0
    assert mean_relative_accuracy(9.5, 10) == 1.0                 # e=0.05: theta 0.95 too (inclusive)
    assert mean_relative_accuracy(13, 10) == pytest.approx(0.5)   # e=0.3: theta 0.50..0.70
    assert mean_relative_accuracy(0, 0) == 1.0 and mean_relative_accuracy(1, 0) == 0.0


def test_uniform_indices():
    assert uniform_indices(20, 5) == [0, 5, 10, 14, 19]   # 0, 4.75, 9.5, 14.25, 19 rounded half up
    assert uniform_indices(20, 4) == [0, 6, 13, 19]
    assert uniform_indices(3, 8) == [0, 1, 2]
    assert uniform_indices(9, 1) == [4]
    assert uniform_indices(128, 128) == list(range(128))


def make_video(path, n=20, width=64, height=48):
    """An mp4 whose frame i is a flat grey of level 10 + 12 i (the index, readable after decoding)."""
    av = require("av")
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        if "libx264" in av.codecs_available:
            stream = container.add_stream("libx264", rate=10)  # with B-frames: decode order != display order
            stream.options = {"crf": "1"}
        else:
            stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 10 + 12 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def painted_index(jpeg: bytes) -> int:
    import numpy as np

    im = Image.open(io.BytesIO(jpeg)).convert("L")
    assert im.size == (64, 48)
    return round((float(np.asarray(im).mean()) - 10) / 12)


VSI_ROWS = [  # id, question_type, ground truth, options, response (comments: strict figures)
    (0, "object_counting", "4", None, boxed(4)),                            # MRA 1.0
    (1, "object_abs_distance", "2.0", None, boxed("2.5 meters")),           # e=0.25 -> 0.6
    (2, "object_size_estimation", "10", None, boxed(12)),                   # e=0.2  -> 0.7
    (3, "room_size_estimation", "20", None, boxed(30)),                     # e=0.5  -> 0.1
    (4, "object_rel_direction_easy", "A", ["A. left", "B. right"], boxed("A")),          # 1
    (5, "object_rel_direction_easy", "B", ["A. left", "B. right"], boxed("A")),          # 0
    (6, "object_rel_direction_medium", "C", ["A. left", "B. right", "C. back"], boxed("back")),  # strict 1; official 0
    (7, "object_rel_direction_hard", "D", ["A. front-left", "B. front-right", "C. back-left", "D. back-right"],
     None),                                                                  # unanswered: 0
    (8, "object_rel_distance", "A", ["A. chair", "B. sofa", "C. tv", "D. bed"], boxed("A or B")),  # strict: parse failure; official: A, 1
    (9, "route_planning", "B", ["A. Turn Left", "B. Turn Right"], boxed("B")),            # 1
    (10, "obj_appearance_order", "C", ["A. a, b", "B. b, a", "C. a, c", "D. c, a"], boxed("C")),  # 1
]


def vsi_dir(tmp_path, drop_column=None, pruned=(1, 5)):
    root = tmp_path / "VSI-Bench"
    make_video(root / "arkitscenes" / "41069025.mp4")
    rows = [{"id": i, "dataset": "arkitscenes", "scene_name": "41069025", "question_type": t,
             "question": f"Question {i}?", "ground_truth": gt, "options": opts, "pruned": i in pruned}
            for i, t, gt, opts, _ in VSI_ROWS]
    rows.append({"id": 11, "dataset": "scannet", "scene_name": "scene0000_00", "question_type": "object_counting",
                 "question": "How many chairs?", "ground_truth": "3", "options": None, "pruned": False})
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("id", pa.int64()), ("dataset", pa.string()), ("scene_name", pa.string()), ("question_type", pa.string()),
        ("question", pa.string()), ("ground_truth", pa.string()), ("options", pa.list_(pa.string())),
        ("pruned", pa.bool_())]))
    if drop_column:
        table = table.drop_columns([drop_column])
    pq.write_table(table, root / "test-00000-of-00001.parquet")
    return root


def test_vsibench_frames_are_uniform(tmp_path):
    require("av")
    root = vsi_dir(tmp_path)
    items, skipped = get_benchmark("vsi-bench").load(str(root), frames=5)
    assert [(s.id, s.reason) for s in skipped] == [("11", "missing_video")]
    first = items[0]
    assert first.meta["frame_indices"] == [0, 5, 10, 14, 19]
    assert [painted_index(b) for b in first.images] == [0, 5, 10, 14, 19]
    assert first.question.startswith("<image>" * 5 + "\n") and first.question.count("<image>") == 5
    assert first.question.endswith("Question 0?\nAnswer with a number.")
    assert items[4].options == ["left", "right"] and items[4].answer == "A"
    assert items[4].question.endswith("Question 4?\nA. left\nB. right\nAnswer with the option's letter.")
    assert all(it.images is first.images for it in items)  # one decode per video
    many, _ = get_benchmark("vsi-bench").load(str(root), frames=64)  # more than the video has: all 20
    assert [painted_index(b) for b in many[0].images] == list(range(20))


def test_vsibench_score(tmp_path):
    require("av")
    root = vsi_dir(tmp_path)
    items, _ = get_benchmark("vsi-bench").load(str(root / "test-00000-of-00001.parquet"), frames=2)
    responses = {str(i): r for i, _, _, _, r in VSI_ROWS if r is not None}
    report = get_benchmark("vsi-bench").score(items, responses)
    f = Fraction
    # strict (the boxed answer by the reward's parser; MRA with the 1e-9 tolerance)
    strict = {"object_counting": f(1), "object_abs_distance": f(6, 10), "object_size_estimation": f(7, 10),
              "room_size_estimation": f(1, 10), "object_rel_direction": (f(1, 2) + 1 + 0) / 3,
              "object_rel_distance": f(0), "route_planning": f(1), "obj_appearance_order": f(1)}
    # (1 + 0.6 + 0.7 + 0.1 + 0.5 + 0 + 1 + 1) / 8 tasks
    assert report["strict"] == pytest.approx(float(100 * sum(strict.values()) / 8)) == 61.25
    # official (thinking-in-space lmms_eval/tasks/vsibench/utils.py, 51e089c3ae69): the first word;
    # 12 for 10 is 0.6 with the plain <=; "back" is no letter (0, a parse failure); "A or B" reads A (1)
    tasks = {"object_counting": f(1), "object_abs_distance": f(6, 10), "object_size_estimation": f(6, 10),
             "room_size_estimation": f(1, 10), "object_rel_direction": (f(1, 2) + 0 + 0) / 3,
             "object_rel_distance": f(1), "route_planning": f(1), "obj_appearance_order": f(1)}
    assert report["accuracy"] == pytest.approx(float(100 * sum(tasks.values()) / 8))
    assert report["metrics"]["tasks"] == {k: pytest.approx(float(100 * v)) for k, v in tasks.items()}
    assert report["metrics"]["item_mean"] == pytest.approx(100 * 6.3 / 11)  # the paper's figure
    assert report["per_category"]["object_rel_direction_easy"] == {"n": 2, "accuracy": 50.0, "metric": "accuracy"}
    assert report["per_category"]["object_abs_distance"]["metric"] == "MRA"
    assert report["n"] == 11 and report["parse_failures"] == 1 and report["missing"] == 1
    assert report["strict_parse_failures"] == 1
    # VSI-Bench-Debiased (pruned ids 1 and 5 left out): no abs-distance task, easy = 1 of 1
    debiased = {"object_counting": f(1), "object_size_estimation": f(6, 10), "room_size_estimation": f(1, 10),
                "object_rel_direction": f(1, 3), "object_rel_distance": f(1), "route_planning": f(1),
                "obj_appearance_order": f(1)}
    assert report["metrics"]["debiased"]["n"] == 9
    assert report["metrics"]["debiased"]["accuracy"] == pytest.approx(float(100 * sum(debiased.values()) / 7))


def test_vsibench_bad_input(tmp_path, monkeypatch):
    bench = get_benchmark("vsi-bench")
    root = tmp_path / "a"
    root.mkdir()
    pq.write_table(pa.table({"id": [0], "dataset": ["scannet"], "scene_name": ["s"],
                             "question_type": ["object_counting"], "question": ["q"],
                             "options": pa.array([None], pa.list_(pa.string()))}),
                   root / "test-00000-of-00001.parquet")
    with pytest.raises(BenchmarkError, match=r"test-00000-of-00001\.parquet: no column 'ground_truth'"):
        bench.load(str(root))
    with pytest.raises(BenchmarkError, match="frames must be between 1 and 128"):
        bench.load(str(root), frames=129)
    with pytest.raises(BenchmarkError, match="no test-"):
        bench.load(str(tmp_path))
    # every video missing: skipped, and the decoder is not needed for that
    only_missing = tmp_path / "b"
    only_missing.mkdir()
    pq.write_table(pa.table({"id": [7], "dataset": ["scannet"], "scene_name": ["nope"],
                             "question_type": ["object_counting"], "question": ["How many?"],
                             "ground_truth": ["3"], "options": pa.array([None], pa.list_(pa.string()))}),
                   only_missing / "test-00000-of-00001.parquet")
    monkeypatch.setitem(sys.modules, "av", None)  # PyAV unimportable
    items, skipped = bench.load(str(only_missing))
    assert items == [] and [(s.id, s.reason) for s in skipped] == [("7", "missing_video")]


def test_vsibench_without_pyav_is_one_line_error(tmp_path, monkeypatch):
    require("av")
    root = vsi_dir(tmp_path)
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(BenchmarkError) as info:
        get_benchmark("vsi-bench").load(str(root))
    assert "spatial-ssrl[video]" in str(info.value) and "\n" not in str(info.value)

