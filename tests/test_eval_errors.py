"""``ssrl eval`` errors a user can act on, and its output folder: predictions that match no
item (or match by an alternative id), a missing predictions file, a server that answers
nothing, the one rule for duplicate and malformed prediction lines, a torn last line, skipped
items with their reasons, ``--compare`` over several files, a bad ``--timeout``, and results
files of a user's that are never replaced."""

from __future__ import annotations

import base64
import io
import json
import socket

import pytest
from deps import require, run_cli
from PIL import Image

pd = require("pandas")


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


# qid, answer, options: a question and its rotation, another and its flip
SRB = [("aaaaaaaa", "A", ["left", "right"]), ("aaaaaaaa-1", "B", ["right", "left"]),
       ("bbbbbbbb", "A", ["yes", "no"]), ("bbbbbbbb-flip", "B", ["yes", "no"])]


@pytest.fixture
def srb(tmp_path):
    """A 3DSRBench TSV in its distributed layout (index, qid, options, base64 image)."""
    folder = tmp_path / "3dsr"
    folder.mkdir()
    img = _png()
    rows = [{"index": i, "qid": qid, "question": f"Question {qid}?", "A": opts[0], "B": opts[1], "C": "", "D": "",
             "answer": answer, "category": "location_above", "image": img, "image_source": "coco",
             "image_url": "http://example/x.jpg"} for i, (qid, answer, opts) in enumerate(SRB)]
    pd.DataFrame(rows).to_csv(folder / "3dsrbench_v1_vlmevalkit_circular.tsv", sep="\t", index=False)
    return folder


def _preds(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _box(letter):
    return f"<think>t</think> \\boxed{{{letter}}}"


def _one_line_error(result, words):
    assert result.exit_code == 1, result.output
    assert words in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output, result.output


def test_predictions_keyed_by_qid_score_as_by_index(srb, tmp_path):
    by_index = _preds(tmp_path / "index.jsonl", [{"id": i, "response": _box(a)} for i, (_, a, _) in enumerate(SRB)])
    by_qid = _preds(tmp_path / "qid.jsonl", [{"id": q, "response": _box(a)} for q, a, _ in SRB])
    for preds, out in ((by_index, tmp_path / "o1"), (by_qid, tmp_path / "o2")):
        result = run_cli("eval", "predictions", preds, "--bench", "3dsrbench", "--bench-path", srb, "--out", out)
        assert "3dsrbench: accuracy 100.00%" in result.output
        res = json.loads((out / "results.json").read_text())
        assert res["accuracy"] == 100.0 and res["unmatched_predictions"] == 0


def test_predictions_that_match_no_item(srb, tmp_path):
    preds = _preds(tmp_path / "p.jsonl", [{"id": f"q{i}", "response": _box("A")} for i in range(4)])
    result = run_cli("eval", "predictions", preds, "--bench", "3dsrbench", "--bench-path", srb, "--out", tmp_path / "o", ok=False)
    _one_line_error(result, "no prediction matches a 3dsrbench item by its \"id\"")
    assert "'q0'" in result.output and "'0'" in result.output and "'aaaaaaaa'" in result.output
    assert not (tmp_path / "o").exists()
    # some unmatched: a warning with the count, and the count in results.json
    _preds(preds, [{"id": 0, "response": _box("A")}, {"id": "q9", "response": _box("A")},
                   {"id": "q8", "response": _box("A")}])
    result = run_cli("eval", "predictions", preds, "--bench", "3dsrbench", "--bench-path", srb, "--out", tmp_path / "o")
    assert "warning: 2 of 3 predictions match no 3dsrbench item (e.g. id 'q9')" in result.output
    assert json.loads((tmp_path / "o" / "results.json").read_text())["unmatched_predictions"] == 2


def test_a_missing_or_empty_predictions_file_is_an_error(srb, tmp_path):
    args = ("--bench", "3dsrbench", "--bench-path", srb, "--out", tmp_path / "o")
    _one_line_error(run_cli("eval", "predictions", tmp_path / "nope.jsonl", *args, ok=False),
                    "nope.jsonl: no such file")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("{not json\n")
    _one_line_error(run_cli("eval", "predictions", empty, *args, ok=False), "no prediction in it")
    assert not (tmp_path / "o").exists()


def test_duplicates_and_malformed_lines_one_rule_for_eval_and_score(srb, tmp_path):
    """The first answer of an id is kept (a failed request never replaces it, an answer
    replaces a failed request), and the same lines are malformed for both commands."""
    from spatial_ssrl.reward.cli import read_predictions

    lines = [{"id": 0, "response": _box("A")},                    # right, kept
             {"id": 0, "response": _box("B")},                    # a duplicate: ignored
             {"id": 1, "response": None, "error": "timeout"},     # a failed request ...
             {"id": 1, "response": _box("B")},                    # ... answered on retry: kept
             {"id": 1, "response": None, "error": "timeout"},     # never replaces an answer
             {"id": 2, "response": 5},                            # malformed: response not a string
             {"id": True, "response": _box("A")},                 # malformed: id not a string or integer
             {"id": 3}]                                           # malformed: no response, no error
    preds = _preds(tmp_path / "p.jsonl", lines)
    read = read_predictions(str(preds))
    assert read.malformed == [6, 7, 8] and read.duplicates == ["0"]
    assert [(sid, r) for _, sid, r in read.answers()] == [("0", _box("A")), ("1", _box("B"))]
    out = tmp_path / "o"
    result = run_cli("eval", "predictions", preds, "--bench", "3dsrbench", "--bench-path", srb, "--out", out)
    res = json.loads((out / "results.json").read_text())
    assert res["malformed_prediction_lines"] == 3 and res["duplicate_prediction_ids"] == 1
    assert res["metrics"]["vanilla"] == 50.0  # rows 0 and 1 right, 2 and 3 unanswered
    assert "3 malformed prediction lines" in result.output and "1 duplicate prediction ids (first kept)" in result.output


def test_duplicates_and_malformed_lines_in_ssrl_score(tmp_path):
    pq = require("pyarrow.parquet")
    data = tmp_path / "data"
    run_cli("generate", "--out", data, "--num", 6, "--seed", 3, "--workers", 1, "-q", "--tasks", "flip")
    rows = [r for f in sorted((data / "data").glob("*.parquet"))
            for r in pq.read_table(f, columns=["id", "answer"]).to_pylist()]
    first, second = rows[0], rows[1]
    wrong = "0-1" if first["answer"] != "0-1" else "1-0"
    preds = _preds(tmp_path / "p.jsonl", [
        {"id": first["id"], "response": _box(first["answer"])}, {"id": first["id"], "response": _box(wrong)},
        {"id": second["id"], "response": None, "error": "timeout"}, {"id": second["id"], "response": 5}])
    report = tmp_path / "r.json"
    result = run_cli("score", "--data", data, "--predictions", preds, "--out", report)
    rep = json.loads(report.read_text())
    assert rep["scored"] == 1 and rep["accuracy"] == 100.0
    assert rep["duplicate_ids"]["count"] == 1 and rep["malformed_lines"]["lines"] == [4]
    assert rep["failed_requests"]["ids"] == [second["id"]]
    assert "failed requests (no response): 1" in result.output


def test_a_torn_last_line_is_cut_before_a_rerun_appends(srb, tmp_path):
    require("httpx")
    from openai_server import OpenAIServer

    out = tmp_path / "o"
    with OpenAIServer(answer=lambda body: _box("A")) as server:
        args = ("eval", "benchmark", "3dsrbench", "--api-base", server.api_base, "--api-model", "m",
                "--bench-path", srb, "--out", out, "-q")
        run_cli(*args)
        lines = (out / "predictions.jsonl").read_text().splitlines()
        assert len(lines) == 4
        # the last write cut short (a kill, a full disk): half a line without its newline
        (out / "predictions.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:15])
        result = run_cli(*args)
    assert "cut a torn last line" in result.output
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 4 and all(p["response"] == _box("A") for p in preds)
    assert sorted(str(p["id"]) for p in preds) == ["0", "1", "2", "3"]
    res = json.loads((out / "results.json").read_text())
    assert res["predictions_tail_repaired"] == 1 and res["malformed_prediction_lines"] == 0


def test_every_request_failing_is_an_error_with_the_reason(srb, tmp_path):
    require("httpx")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "o"
    result = run_cli("eval", "benchmark", "3dsrbench", "--api-base", f"http://127.0.0.1:{port}/v1", "--api-model", "m", "--bench-path", srb, "--out", out, "--retries", 0, "--timeout", 2, "-q", ok=False)
    _one_line_error(result, "no item got a response: 4 requests failed (connection refused 4)")
    assert not (out / "results.json").exists()


def test_skipped_items_say_why(tmp_path):
    root = tmp_path / "vs"
    (root / "eval").mkdir(parents=True)
    rows = [{"question_type": "Camera perspective - Relative Direction", "image_path": [f"ViewSpatial-Bench/x/{i}.jpg"],
             "question": "Where?", "answer": "A. left", "choices": "A. left\nB. right"} for i in range(3)]
    (root / "eval" / "ViewSpatial-Bench.json").write_text(json.dumps(rows))
    # a run that generates needs the images (no request is made: nothing is left to ask)
    result = run_cli("eval", "benchmark", "viewspatial", "--api-base", "http://127.0.0.1:9/v1", "--api-model", "m", "--bench-path", root, "--out", tmp_path / "o", ok=False)
    _one_line_error(result, "no items to evaluate; 3 items skipped (missing_image 3); first: 0 (missing_image: "
                            "ViewSpatial-Bench/x/0.jpg (looked for in ")
    # scoring predictions needs none: the three are scored
    preds = _preds(tmp_path / "p.jsonl", [{"id": "0", "response": _box("A")}])
    result = run_cli("eval", "predictions", preds, "--bench", "viewspatial", "--bench-path", root, "--out", tmp_path / "o2")
    assert "viewspatial: accuracy 33.33% (strict 33.33%) over 3 items" in result.output


def test_compare_takes_several_files_and_globs_labelled_by_folder(tmp_path):
    for name, acc, strict in (("base", 50.0, None), ("ssrl", 52.5, 48.0)):
        (tmp_path / "eval" / name).mkdir(parents=True)
        res = {"benchmark": "3dsrbench", "accuracy": acc, "model": "/m/checkpoint"}
        if strict is not None:
            res["strict"] = strict
        (tmp_path / "eval" / name / "results.json").write_text(json.dumps(res))
    a, b = (tmp_path / "eval" / n / "results.json" for n in ("base", "ssrl"))
    out = tmp_path / "cmp"
    result = run_cli("eval", "compare", a, b, "--out", out)  # the shell expanded eval/*/results.json
    lines = result.output.strip().splitlines()
    assert lines[0] == "| model | 3dsrbench | 3dsrbench strict |"
    assert "| base | 50.00 | - |" in lines and "| ssrl | 52.50 | 48.00 |" in lines
    assert "| *Spatial-SSRL-7B (paper)* | 56.53 |  |" in lines
    quoted = run_cli("eval", "compare", str(tmp_path / "eval" / "*" / "results.json"))
    assert quoted.output == result.output
    folders = run_cli("eval", "compare", str(tmp_path / "eval" / "*"))  # folders holding results.json
    assert folders.output == result.output
    _one_line_error(run_cli("eval", "compare", str(tmp_path / "nothing" / "*.json"), ok=False), "no file matches")
    # one model's benchmarks in sibling folders share a row, labelled by the folder holding them
    for bench, acc in (("3dsrbench", 40.0), ("viewspatial", 30.0)):
        (tmp_path / "run7" / bench).mkdir(parents=True)
        (tmp_path / "run7" / bench / "results.json").write_text(
            json.dumps({"benchmark": bench, "accuracy": acc, "model": "/m/run7"}))
    merged = run_cli("eval", "compare", str(tmp_path / "run7" / "*" / "results.json"), a).output.splitlines()
    assert merged[0] == "| model | 3dsrbench | viewspatial | average |"
    assert "| run7 | 40.00 | 30.00 | 35.00 |" in merged and "| base | 50.00 | - |  |" in merged
    # a compare.md of the user's is not replaced
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "compare.md").write_text("my notes\n")
    _one_line_error(run_cli("eval", "compare", a, "--out", theirs, ok=False), "compare.md was not written by")
    assert (theirs / "compare.md").read_text() == "my notes\n"


def test_a_bad_timeout_is_one_line(srb, tmp_path):
    for value in ("0", "-1"):
        result = run_cli("eval", "benchmark", "3dsrbench", "--api-base", "http://127.0.0.1:9/v1", "--api-model", "m", "--bench-path", srb, "--out", tmp_path / "o", "--timeout", value, ok=False)
        _one_line_error(result, "--timeout must be more than 0 seconds")


def test_results_files_of_a_user_are_never_replaced(srb, tmp_path):
    preds = _preds(tmp_path / "p.jsonl", [{"id": i, "response": _box("A")} for i in range(4)])
    args = ("eval", "predictions", preds, "--bench", "3dsrbench", "--bench-path", srb, "--out")
    for name in ("results.json", "results.md", "results.png"):
        theirs = tmp_path / f"theirs-{name}"
        theirs.mkdir()
        (theirs / name).write_text("mine")
        _one_line_error(run_cli(*args, theirs, ok=False), "holds files this program did not write")
        assert [p.name for p in theirs.iterdir()] == [name] and (theirs / name).read_text() == "mine"
    # our own results are replaced on a re-run, through temporary names of ours, none left behind
    out = tmp_path / "ours"
    run_cli(*args, out)
    run_cli(*args, out)
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md", "results.png"]
