"""``--circular`` for a multiple-choice benchmark without a circular design of its own
(ViewSpatial-Bench) and the answer-letter audit: through ``ssrl eval --predictions``, with
the expected figures worked out by hand."""

from __future__ import annotations

import json

from click.testing import CliRunner
from test_bench_scoring_b import VIEW_ROWS, view_repo

from spatial_ssrl.cli import main
from spatial_ssrl.eval.benchmarks import get_benchmark
from spatial_ssrl.eval.circular import expand, letter_audit, score


def boxed(x):
    return f"<think>t</think> \\boxed{{{x}}}"


def test_rotations_move_the_answer_with_its_text(tmp_path):
    root, _ = view_repo(tmp_path)
    items, skipped = get_benchmark("viewspatial").load(str(root))
    assert len(items) == 4 and len(skipped) == 1
    rotated, not_rotatable = expand(items)
    assert not_rotatable == 0 and len(rotated) == 4 + 3 + 3 + 1 + 3
    for it in rotated:
        i = "ABCD".index(it.answer)
        assert f"{it.answer}. {it.options[i]}" in it.question  # the answer's text sits at its letter
        base = next(b for b in items if b.id == it.meta.get("base_id", it.id))
        assert it.options[i] == base.options["ABCD".index(base.answer)]
    # always answering "A": right once per rotated question, never circularly
    always_a = {it.id: boxed("A") for it in rotated}
    assert score(rotated, always_a)["circular"] == 0.0
    # the right text every time: circular 100 %
    by_text = {it.id: boxed(it.options["ABCD".index(it.answer)]) for it in rotated}
    assert score(rotated, by_text)["circular"] == 100.0
    audit = letter_audit(items, always_a)
    # right answers of the 4 items: A, C, B, D -> 25 % each; predictions all A
    assert audit["answer_letters"] == {"A": 25.0, "B": 25.0, "C": 25.0, "D": 25.0}
    assert audit["predicted_letters"] == {"A": 100.0}


def test_circular_through_ssrl_eval(tmp_path):
    # the four questions with images (scoring predictions would also score the fifth, its image
    # missing: a predictions file needs no image)
    root, _ = view_repo(tmp_path, rows=VIEW_ROWS[:4])
    items, _ = get_benchmark("viewspatial").load(str(root))
    rotated, _ = expand(items)
    truth = {it.id: it.answer for it in rotated}  # the right letter of each rotation
    # right on every rotation of the first two questions, right only unrotated on the others
    wrong_later = {it.id for it in rotated if it.meta.get("base_id") in {items[2].id, items[3].id}}
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": sid, "response": boxed("Z" if sid in wrong_later else text)}) + "\n"
                             for sid, text in truth.items()))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["eval", "predictions", str(preds), "--bench", "viewspatial",
                                       "--bench-path", str(root), "--out", str(out), "--circular"])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "results.json").read_text())
    assert res["accuracy"] == 100.0 and res["items"] == 4  # the official figure: unrotated rows only
    assert res["strict"] == 100.0
    assert res["metrics"]["circular"] == 50.0 and res["metrics"]["circular_questions"] == 4
    assert res["letter_audit"]["answer_letters"] == {"A": 25.0, "B": 25.0, "C": 25.0, "D": 25.0}
    assert "circular: 50.00% over 4 questions" in result.output
    assert "Right answers by letter: A 25.0%" in (out / "results.md").read_text()
