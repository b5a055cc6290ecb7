"""bench/check_recipes.py's command line: which frameworks it runs and its one-line refusals.

The checks themselves need the frameworks' checkouts and environments (see the script's
docstring and docs/training.md for the runs); these tests need neither."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "bench", "check_recipes.py")


@pytest.fixture(scope="module")
def recipes():
    spec = importlib.util.spec_from_file_location("check_recipes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checkout(tmp_path, name: str, marker: str) -> str:
    root = tmp_path / name
    (root / marker).parent.mkdir(parents=True, exist_ok=True)
    (root / marker).write_text("")
    return str(root)


def test_each_framework_with_its_interpreter(recipes, tmp_path):
    easyr1 = checkout(tmp_path, "easyr1", "verl/utils/dataset.py")
    verl = checkout(tmp_path, "verl", "verl/utils/dataset/rl_dataset.py")
    lf = checkout(tmp_path, "lf", "src/llamafactory/data/mm_plugin.py")
    py = sys.executable
    chosen = recipes.parse(["--easyr1", easyr1, "--python", py, "--verl", verl, "--verl-python", py,
                            "--llamafactory", lf, "--llamafactory-python", py])
    assert [(o, r) for o, r, _ in chosen] == [("easyr1", easyr1), ("verl", verl), ("llamafactory", lf)]
    # the older --python and the new --easyr1-python name the same interpreter
    assert recipes.parse(["--easyr1", easyr1, "--easyr1-python", py]) == recipes.parse(["--easyr1", easyr1, "--python", py])
    assert recipes.parse(["--verl", verl, "--verl-python", py]) == [("verl", verl, py)]


@pytest.mark.parametrize("argv, says", [
    ([], "name at least one framework"),
    (["--verl", "{verl}"], "--verl needs --verl-python"),
    (["--llamafactory-python", "{py}"], "no --llamafactory CHECKOUT"),
    (["--llamafactory", "{verl}", "--llamafactory-python", "{py}"], "not a checkout of LLaMA-Factory"),
    (["--easyr1", "{verl}", "--python", "{py}"], "not a checkout of EasyR1"),
    (["--verl", "{verl}", "--verl-python", "{verl}"], "not an executable file"),
])
def test_refusals_are_one_line(recipes, tmp_path, capsys, argv, says):
    verl = checkout(tmp_path, "verl", "verl/utils/dataset/rl_dataset.py")
    argv = [a.format(verl=verl, py=sys.executable) for a in argv]
    assert recipes.main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


def test_refusal_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, SCRIPT, "--verl", str(tmp_path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "check_recipes.py: --verl needs --verl-python, the interpreter of verl's environment"]
