"""EmbSpatial-Bench: the Hub parquet (FlagEval/EmbSpatial-Bench) and the authors' JSON written here,
loaded, and scored by the rule the EASI leaderboard uses (VLMEvalKit at e8e78f0,
vlmeval/dataset/utils/spatial_bench/matching_func.py can_match_option, rule-based) and by the
strict boxed rule."""

from __future__ import annotations

import base64
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spatial_ssrl.eval.base import BenchmarkError
from spatial_ssrl.eval.benchmarks import available, get_benchmark
from spatial_ssrl.eval.benchmarks.embspatial import easi_option_letter


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), (200, 200, 40)).save(buf, format="PNG")
    return buf.getvalue()


OPTS = ["garage door", "cabinet", "table", "cart"]


def _row(qid, relation, answer, image=None):
    return {"data_source": qid.split("_")[0], "scene_id": "scene", "question_id": qid,
            "question": f"Which object is {relation}?", "relation": relation,
            "image": {"bytes": image or _png(), "path": None}, "answer_options": OPTS, "answer": answer,
            "objects": [{"name": "table", "bbox": [0, 0, 4, 4]}]}


@pytest.fixture()
def emb_root(tmp_path):
    rows = [_row("mp3d_1", "close", 2), _row("mp3d_2", "far", 0), _row("mp3d_3", "far", 1),
            _row("ai2thor_1", "under", 1), _row("ai2thor_2", "left", 3),
            _row("scannet_1", "right", 0), _row("scannet_2", "right", 0, image=b"no picture"),
            _row("scannet_3", "above", 2)]
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "test-00000-of-00001.parquet")
    return tmp_path


def test_embspatial_loads_and_scores_official_and_strict(emb_root):
    assert "embspatial" in available()
    bench = get_benchmark("embspatial")
    assert bench.hub_repo == "FlagEval/EmbSpatial-Bench"
    items, skipped = bench.load(str(emb_root))
    assert [(s.id, s.reason) for s in skipped] == [("scannet_2", "undecodable_image")]
    assert len(items) == 7
    first = items[0]
    assert first.question == ("<image>Which object is close?\nA. garage door\nB. cabinet\nC. table\nD. cart\n"
                              "Answer with the option's letter.")
    assert first.answer == "C" and first.category == "mp3d" and first.meta["relation"] == "close"

    responses = {
        "mp3d_1": "<think>the table is nearest</think>\\boxed{C}",  # C (right); strict C (right)
        "mp3d_2": "A. garage door",                                 # a line opening "A." -> A (right)
        # mp3d_3: no response
        "ai2thor_1": "The answer is (B) beneath",                   # the one standalone capital: B (right)
        "ai2thor_2": "d",                                           # a line of one letter, any case: D (right)
        "scannet_1": "It is hard to tell from this view.",          # no letter: a parse failure
        "scannet_3": "\\boxed{A} or \\boxed{C}",                    # last box C (right); strict: hedged
    }
    report = bench.score(items, responses)
    # official: 5 right of 7 -> 71.43; mp3d 2/3, ai2thor 2/2, scannet 1/2.
    assert report["accuracy"] == pytest.approx(500 / 7)
    assert report["per_category"] == {"ai2thor": {"n": 2, "accuracy": 100.0},
                                      "mp3d": {"n": 3, "accuracy": pytest.approx(200 / 3)},
                                      "scannet": {"n": 2, "accuracy": 50.0}}
    assert report["metrics"]["per_relation"]["far"] == {"n": 2, "accuracy": 50.0}
    assert report["parse_failures"] == 1
    # strict: only mp3d_1 -> 1/7 = 14.29; failures: 4 without a box + 1 hedged.
    assert report["strict"] == pytest.approx(100 / 7)
    assert report["strict_parse_failures"] == 5 and report["missing"] == 1
    assert report["metrics"]["strict_failure_reasons"] == {"no_box": 4, "hedged": 1}


def test_easi_matcher_shapes():
    assert easi_option_letter("<answer>B. cabinet</answer>") == "B"
    assert easi_option_letter("Looking at it... Final answer: C") == "C"
    assert easi_option_letter("**B**") == "B"
    assert easi_option_letter("Option A: x\nOption B: y\nI pick B") == "B"
    # from the last line up: "Because A is wrong" names A (the rule reads it so)
    assert easi_option_letter("B\n\nBecause A is wrong") == "A"
    # "answer is" followed by the article a reads as option A, as the published rule does
    assert easi_option_letter("The answer is a chair") == "A"
    assert easi_option_letter("Both A and B could be") is None
    assert easi_option_letter("") is None and easi_option_letter(None) is None


def test_embspatial_authors_json_and_bad_layout(tmp_path):
    b64 = base64.b64encode(_png()).decode()
    rows = [{"data_source": "mp3d", "scene_id": "s", "question_id": "mp3d_57", "question": "Closest?",
             "relation": "close", "image": b64, "answer_options": OPTS, "answer": 2, "objects": []},
            {"data_source": "ai2thor", "scene_id": "s", "question_id": "ai2thor_799", "question": "How?",
             "relation": "under", "image": b64, "answer_options": OPTS[:2], "answer": 5, "objects": []}]
    (tmp_path / "embspatial_bench.json").write_text(json.dumps(rows))
    bench = get_benchmark("EmbSpatial")
    items, skipped = bench.load(str(tmp_path))
    assert [(it.id, it.answer) for it in items] == [("mp3d_57", "C")]
    assert items[0].images[0] == _png()
    assert [(s.id, s.reason) for s in skipped] == [("ai2thor_799", "answer_not_an_option")]

    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([{"question_id": "x", "question": "q", "answer": 1}]), bad)
    with pytest.raises(BenchmarkError) as err:
        bench.load(str(bad))
    assert "missing column 'answer_options'" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BenchmarkError, match="unknown option"):
        bench.load(str(tmp_path), split="val")
