"""``ssrl eval`` as subcommands (dataset, benchmark, suite, predictions, compare, list,
lmms-eval): each refuses what does not belong to it in one line, ``--overwrite`` starts a
results folder afresh without touching a file of the user's, and the flag form of earlier
releases gives the same results as the new spelling, with a note naming it."""

from __future__ import annotations

import json

from deps import require, run_cli
from test_eval_errors import SRB, _box, _preds, srb  # noqa: F401  (srb is a fixture)

SUBCOMMANDS = ("benchmark", "compare", "dataset", "list", "lmms-eval", "predictions", "suite")


def test_help_lists_the_subcommands():
    text = run_cli("eval", "--help").output
    listed = [line.split()[0] for line in text.split("Commands:")[1].splitlines() if line.strip()]
    assert tuple(listed) == SUBCOMMANDS
    for name in SUBCOMMANDS:
        assert run_cli("eval", name, "--help").exit_code == 0


def test_list_names_benchmarks_and_suites():
    out = run_cli("eval", "list").output
    names = [line.split()[0] for line in out.splitlines() if not line.startswith("suites:")]
    assert {"3dsrbench", "viewspatial", "vsi-bench", "pretext"} <= set(names)
    assert out.splitlines()[-1].startswith("suites: ") and "paper (7)" in out


def test_predictions_takes_exactly_one_target(srb, tmp_path):  # noqa: F811
    preds = _preds(tmp_path / "p.jsonl", [{"id": i, "response": _box(a)} for i, (_, a, _) in enumerate(SRB)])
    cases = [
        ([], "give one of --data DATASET, --bench NAME or --suite NAME"),
        (["--bench", "3dsrbench", "--data", tmp_path], "give one of --data DATASET, --bench NAME or --suite NAME"),
        (["--bench", "3dsrbench", "--bench-root", tmp_path], "--bench-root goes with --suite"),
        (["--data", tmp_path, "--bench-path", srb], "--bench-path goes with --bench"),
    ]
    for extra, words in cases:
        result = run_cli("eval", "predictions", preds, *extra, "--out", tmp_path / "o", ok=False)
        assert result.exit_code == 2 and words in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_model_and_endpoint_are_one_or_the_other(srb, tmp_path):  # noqa: F811
    for extra in ([], ["--model", tmp_path, "--api-base", "http://127.0.0.1:9/v1", "--api-model", "m"]):
        result = run_cli("eval", "benchmark", "3dsrbench", "--bench-path", srb, *extra, "--out", tmp_path / "o",
                         ok=False)
        assert result.exit_code == 2 and "give one of --model CHECKPOINT or --api-base URL" in result.output
    no_name = run_cli("eval", "benchmark", "3dsrbench", "--bench-path", srb, "--api-base", "http://127.0.0.1:9/v1",
                      "--out", tmp_path / "o", ok=False)
    assert no_name.exit_code == 2 and "--api-base needs --api-model" in no_name.output
    lmms = run_cli("eval", "lmms-eval", "mmmu_val", "--out", tmp_path / "o", ok=False)
    assert lmms.exit_code == 2 and "--model" in lmms.output
    assert not (tmp_path / "o").exists()


def test_overwrite_starts_afresh_and_keeps_what_is_not_ours(srb, tmp_path):  # noqa: F811
    require("httpx")
    from openai_server import OpenAIServer

    out = tmp_path / "o"
    common = ("eval", "benchmark", "3dsrbench", "--bench-path", srb, "--api-model", "m", "--out", out, "-q")
    with OpenAIServer(answer=lambda body: _box("A")) as server:
        run_cli(*common, "--api-base", server.api_base)
    first = json.loads((out / "results.json").read_text())
    with OpenAIServer(answer=lambda body: _box("Z")) as server:
        # other decoding settings: another evaluation, refused; the first one's files stay
        refused = run_cli(*common, "--api-base", server.api_base, "--max-new-tokens", 99, ok=False)
        assert refused.exit_code == 1 and "holds another evaluation" in refused.output
        assert json.loads((out / "results.json").read_text()) == first
        run_cli(*common, "--api-base", server.api_base, "--max-new-tokens", 99, "--overwrite")
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == len(SRB) and all(p["response"] == _box("Z") for p in preds)  # all asked again
    again = json.loads((out / "results.json").read_text())
    assert again["accuracy"] == 0 < first["accuracy"]
    assert json.loads((out / "eval_run.json").read_text())["decoding"]["max_new_tokens"] == 99
    # a folder holding a file of the user's is refused even with --overwrite, and nothing goes
    (out / "notes.txt").write_text("mine")
    theirs = run_cli(*common, "--api-base", "http://127.0.0.1:9/v1", "--overwrite", ok=False)
    assert theirs.exit_code == 1 and "did not write" in theirs.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["notes.txt", "predictions.jsonl", "eval_run.json", "results.json", "results.md", "results.png"])


def test_the_flag_form_still_works_with_a_note(srb, tmp_path):  # noqa: F811
    preds = _preds(tmp_path / "p.jsonl", [{"id": i, "response": _box(a if i % 2 else "Z")}
                                          for i, (_, a, _) in enumerate(SRB)])
    new = run_cli("eval", "predictions", preds, "--bench", "3dsrbench", "--bench-path", srb, "--out", tmp_path / "new")
    old = run_cli("eval", "--predictions", preds, "--bench", "3dsrbench", "--bench-path", srb,
                  "--out", tmp_path / "old")
    assert "note: the flag form of ssrl eval is deprecated; this is now: ssrl eval predictions" in old.output
    assert "note:" not in new.output
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("new", "old"))
    for key in ("accuracy", "strict", "n", "items", "per_category"):
        assert a[key] == b[key], key
    listed = run_cli("eval", "--list-benchmarks").output
    assert "ssrl eval list" in listed and "3dsrbench" in listed
    cmp_new = run_cli("eval", "compare", tmp_path / "new", tmp_path / "old").output
    cmp_old = run_cli("eval", "--compare", tmp_path / "new", tmp_path / "old").output
    assert cmp_old.splitlines()[1:] == cmp_new.splitlines()
