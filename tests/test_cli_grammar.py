"""One spelling for one thing across commands: a dataset is --data/-d everywhere (preview,
validate, split and stats also take it as their first argument, as they used to), the run
folder of train is --out like every other output, infer's question is --question/-Q (-q, its
old short form, still works, hidden), eval's modes are subcommands (the flag form, tested in
test_eval_subcommands.py, still works). Old spellings stay for a release."""

from __future__ import annotations

from deps import run_cli


def test_dataset_by_option_or_argument(builtin_dataset, tmp_path):
    by_arg = run_cli("validate", builtin_dataset, "-q", "--num", 3)
    by_opt = run_cli("validate", "--data", builtin_dataset, "-q", "--num", 3)
    assert by_arg.output.splitlines()[-1] == by_opt.output.splitlines()[-1] == "all checked samples pass"
    page = tmp_path / "p.html"
    run_cli("preview", "-d", builtin_dataset, "--out", page, "--num", 2)
    assert page.read_text().startswith("<!DOCTYPE html>")
    for cmd in (["validate"], ["preview"], ["split"]):
        none = run_cli(*cmd, ok=False)
        assert none.exit_code == 2 and "no dataset given: pass --data" in none.output
    two = run_cli("validate", builtin_dataset, "--data", tmp_path, ok=False)
    assert two.exit_code == 2 and "two datasets given" in two.output


def test_help_shows_the_new_spellings_only():
    infer = run_cli("infer", "--help").output
    assert "--question" in infer and "-Q" in infer and "-q," not in infer
    ev = run_cli("eval", "--help").output
    assert "legacy" not in ev and "--list-benchmarks" not in ev
    lmms = run_cli("eval", "lmms-eval", "--help").output
    assert "TASKS..." in lmms and "--tasks" not in lmms and "--harness" not in lmms
    for cmd in ("validate", "preview", "split", "stats"):
        assert "-d, --data" in run_cli(cmd, "--help").output, cmd


def test_old_spellings_still_work(tmp_path):
    # infer -q: the question (checked before any model loads: a missing model folder is the error)
    old = run_cli("infer", "--model", tmp_path / "none", "--image", __file__, "-q", "Where?", ok=False)
    assert "Missing option" not in old.output and old.exit_code != 0
    missing = run_cli("infer", "--model", tmp_path / "none", "--image", __file__, ok=False)
    assert missing.exit_code == 2 and "--question" in missing.output
    # eval --tasks: the harness tasks (an unknown harness task list still parses; --model missing is the error)
    res = run_cli("eval", "--harness", "lmms-eval", "--tasks", "x", "--out", tmp_path / "o", ok=False)
    assert "needs --model and --harness-tasks" in res.output
