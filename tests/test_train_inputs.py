"""Bad training input is one line before any model loads: config values of the wrong type
(ours and TRL's), a config that is not UTF-8, online inputs that are not images; a run
that fails after setting up its folder leaves nothing behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from deps import require, run_cli

require("torch")
require("torchvision")
require("transformers")
require("trl")
require("peft")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("traininputs")
    data, tiny = root / "data", root / "tiny"
    run_cli("generate", "--out", data, "--num", 12, "--seed", 8, "--workers", 1, "-q", "--tasks", "flip")
    run_cli("split", data, "--test-fraction", 0.25)
    run_cli("tiny-model", "--arch", "qwen2_5_vl", "--out", tiny)
    return {"root": root, "data": data, "tiny": tiny}


def refused(setup, *args, config: str = "tiny_grpo", model=True) -> str:
    out = setup["root"] / "never"
    cli = ["train", "grpo", "-c", config, "--data", setup["data"], "--output", out, "--no-coldstart"]
    if model:
        cli += ["--model", setup["tiny"]]
    result = run_cli(*cli, *args, ok=False)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "Loading weights" not in result.output  # nothing loaded
    assert not out.exists()
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(("setting", "expected"), [
    ("accuracy_weight=heavy", "accuracy_weight must be a number, got 'heavy'"),
    ("learning_rate=fast", "learning_rate must be a number, got 'fast'"),
    ("lora_r=abc", "lora_r must be an integer, got 'abc'"),
    ("max_steps=ten", "max_steps must be an integer, got 'ten'"),
    ("tasks=5", "tasks must be a list or text or null, got 5"),
    ("lora=maybe", "lora must be true or false, got 'maybe'"),
    ("bf16=sometimes", "bf16 must be true or false, got 'sometimes'"),
    ("num_generations=2.5", "num_generations must be an integer, got 2.5"),
    ("seed=true", "seed must be an integer, got True"),
    ("online_workers=[1]", "online_workers must be an integer, got [1]"),
])
def test_wrong_types_are_one_line(setup, setting, expected):
    assert refused(setup, "--set", setting) == f"Error: {expected}"


def test_config_file_problems(setup, tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"learning_rate: 1.0e-5\n# caf\xe9\n")
    assert refused(setup, config=str(bad)) == f"Error: config {bad} is not UTF-8 text (byte 27)"
    model5 = tmp_path / "model5.yaml"
    model5.write_text("model: 5\n")
    assert refused(setup, config=str(model5), model=False) == "Error: model must be text, got 5"


def test_numbers_written_as_yaml_text_are_read(tmp_path):
    from spatial_ssrl.training.config import build_config

    cfg = tmp_path / "c.yaml"
    # YAML 1.1 reads 1e-5 as text; `temperature: 1` is an int, which generation refuses
    cfg.write_text("learning_rate: 1e-5\nmax_steps: '3'\nlora_alpha: 32\ntemperature: 1\n")
    built = build_config("grpo", str(cfg), {"model": "m", "data": "d", "output": "o"})
    assert built.trl["learning_rate"] == 1e-5 and built.trl["max_steps"] == 3
    assert type(built.trl["temperature"]) is float and type(built.trl["max_steps"]) is int
    assert built.opts["lora_alpha"] == 32


def test_online_inputs_that_are_not_images(setup, tmp_path):
    folder = tmp_path / "notimages"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "b.jpg").write_bytes(b"")
    line = refused(setup, "--online", "--max-steps", 2, "--set", f"online_inputs=[{folder}]")
    assert line.startswith("Error: online_inputs: none of the 2 input image(s) can be read as an image (")


def test_a_failure_after_setup_removes_the_folder_it_created(setup, tmp_path):
    broken = tmp_path / "broken-tokenizer"
    shutil.copytree(setup["tiny"], broken)
    (broken / "tokenizer.json").write_text("{not json")
    out = tmp_path / "new-run"
    result = run_cli("train", "grpo", "-c", "tiny_grpo", "--model", broken, "--data", setup["data"],
                     "--output", out, "--no-coldstart", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not Path(out).exists()


def test_every_key_of_ours_has_a_checked_type():
    from spatial_ssrl.training.config import OUR_KEYS, OUR_TYPES

    assert set(OUR_TYPES) == set(OUR_KEYS)


def test_qwen3_vl_with_vllm_colocate_is_refused(setup):
    """TRL 1.16 hands vLLM prompt ids with the image tokens already expanded (TRL issues 6401,
    6294): with Qwen3-VL and images of mixed sizes that crashes or corrupts prompts. The run
    refuses it in one line before anything loads; server mode gets past this check."""
    tiny3 = setup["root"] / "tiny3"
    if not tiny3.exists():
        run_cli("tiny-model", "--arch", "qwen3_vl", "--out", tiny3)
    line = refused(setup, "--model", tiny3, "--set", "use_vllm=true", model=False)
    assert "issues/6401" in line and "vllm_mode=server" in line
    # Qwen2.5-VL and server mode pass this check: they stop at a later one (the missing vLLM
    # extra, or, where vLLM is installed, the single rollout asked for here)
    for model, mode in ((setup["tiny"], "colocate"), (tiny3, "server")):
        line = refused(setup, "--model", model, "--set", "use_vllm=true", "--set", f"vllm_mode={mode}",
                       "--set", "num_generations=1", model=False)
        assert "6401" not in line and ("vLLM" in line or "num_generations" in line)


def test_out_is_the_run_folder_option_and_output_its_old_spelling(setup):
    """`--out` names the run folder as in every other command; `--output` still works (hidden,
    the old spelling); the two naming different folders is refused in one line."""
    out = setup["root"] / "spelled"
    for flag in ("--out", "--output"):
        result = run_cli("train", "grpo", "-c", "tiny_grpo", "--data", setup["data"], flag, out, "--no-coldstart",
                         "--model", setup["tiny"], "--set", "lora_r=abc", ok=False)
        assert result.exit_code == 1 and "lora_r must be an integer" in result.output  # the folder was taken
    both = run_cli("train", "grpo", "-c", "tiny_grpo", "--data", setup["data"], "--out", out, "--output",
                   setup["root"] / "elsewhere", "--model", setup["tiny"], ok=False)
    assert both.exit_code == 2 and "name different folders" in both.output and "Traceback" not in both.output
    help_text = run_cli("train", "sft", "--help").output
    assert "--out" in help_text and "--output" not in help_text
    options = help_text[help_text.index("Options:"):]
    assert options.index("--config") < options.index("--model") < options.index("--out")
