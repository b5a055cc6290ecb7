"""`ssrl tiny-model` output loads in transformers 4.57, the version EasyR1 and verl pin, as
well as in the 5.x the project runs on: processor and model through the Auto classes, one
image through the chat template, a few tokens generated. Version 4.57 is installed from the
package index into a virtual environment of the test's own (over this environment's torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from deps import require, run_cli

require("torch")
require("transformers")

LOAD = r"""
import sys, transformers
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
path = sys.argv[1]
processor = AutoProcessor.from_pretrained(path)
model = AutoModelForImageTextToText.from_pretrained(path)
messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which region is closer?"}]}]
text = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(text=[text], images=[Image.new("RGB", (64, 48), (200, 10, 10))], return_tensors="pt")
out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
assert out.shape[1] > inputs["input_ids"].shape[1]
print(transformers.__version__, type(model).__name__, int((inputs["input_ids"] == model.config.image_token_id).sum()))
"""


@pytest.fixture(scope="module")
def v4_python(tmp_path_factory):
    venv = tmp_path_factory.mktemp("tf457") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    done = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "transformers==4.57.*",
                           "huggingface_hub<1"], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, "installing transformers 4.57 from the package index failed:\n" + done.stderr[-2000:]
    return py


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_tiny_model_loads_in_transformers_4_57_and_5(tmp_path, v4_python, arch):
    out = tmp_path / arch
    run_cli("tiny-model", "--arch", arch, "--out", out)
    script = tmp_path / "load.py"
    script.write_text(LOAD)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    results = {}
    for name, py in (("4", v4_python), ("5", sys.executable)):
        done = subprocess.run([py, str(script), str(out)], capture_output=True, text=True, timeout=300, check=False,
                              env=env, cwd=tmp_path)
        assert done.returncode == 0, f"transformers {name}.x: " + done.stderr[-3000:]
        version, cls, image_tokens = done.stdout.split()[-3:]
        assert version.startswith(name + "."), version
        results[name] = (cls, image_tokens)
    # the same model class and the same number of image tokens for the image in both versions
    assert results["4"] == results["5"]
    assert int(results["5"][1]) > 0


def test_a_trained_folder_loads_in_transformers_4_57(tmp_path, v4_python):
    """The GRPO recipes of EasyR1 and verl start from `ssrl train sft`'s folder: it loads in
    their transformers (4.57) with the same image tokens as in 5.x."""
    require("trl")
    data, cold, base, out = (tmp_path / n for n in ("data", "cold", "tiny", "sft"))
    run_cli("generate", "--out", data, "--num", 16, "--seed", 3, "--workers", 1, "-q", "--tasks", "flip,crop")
    run_cli("split", data, "--test-fraction", 0.2, "--coldstart-fraction", 0.5)
    run_cli("coldstart", "--data", data, "--out", cold, "--num", 4)
    run_cli("tiny-model", "--arch", "qwen2_5_vl", "--out", base)
    run_cli("train", "sft", "-c", "tiny_sft", "--model", base, "--data", cold, "--out", out, "--max-steps", 1)
    assert (out / "preprocessor_config.json").is_file()
    # the run's pixel bounds (tiny_sft: at most 12,544 px) are a training setting; the folder keeps
    # its base model's, as a checkpoint from LLaMA-Factory or EasyR1 does
    bounds = [json.loads((d / "processor_config.json").read_text())["image_processor"]["size"] for d in (base, out)]
    assert bounds[0] == bounds[1] and bounds[1]["longest_edge"] != 12544
    script = tmp_path / "load.py"
    script.write_text(LOAD)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    seen = {}
    for name, py in (("4", v4_python), ("5", sys.executable)):
        done = subprocess.run([py, str(script), str(out)], capture_output=True, text=True, timeout=300, check=False,
                              env=env, cwd=tmp_path)
        assert done.returncode == 0, f"transformers {name}.x: " + done.stderr[-3000:]
        seen[name] = done.stdout.split()[-2:]
    assert seen["4"] == seen["5"] and int(seen["5"][1]) > 0
    # verl takes the bounds from the folder: `ssrl pixel-bounds` sets them for both versions
    shown = run_cli("pixel-bounds", out, "--min-pixels", 65536, "--max-pixels", 262144).output
    assert "preprocessor_config.json: 65536 to 262144 pixels (was " in shown
    counts = {}
    for name, py in (("4", v4_python), ("5", sys.executable)):
        done = subprocess.run([py, str(script), str(out)], capture_output=True, text=True, timeout=300, check=False,
                              env=env, cwd=tmp_path)
        assert done.returncode == 0, f"transformers {name}.x: " + done.stderr[-3000:]
        counts[name] = int(done.stdout.split()[-1])
    # a 64x48 image scaled up to at least 65,536 px: 256 merged patches of 28x28 or more
    assert counts["4"] == counts["5"] >= 65536 // (28 * 28) > int(seen["5"][1])
