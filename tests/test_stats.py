"""`ssrl stats`: prompt token lengths through the tiny model's processor, checked against the
processor run on the real images and text the way EasyR1's overlong-prompt filter runs it
(``processor(images, [prompt])``, verl/utils/dataset.py, EasyR1 b44b311), and one image's
tokens worked out by hand."""

from __future__ import annotations

import io
import json

import pytest
from deps import require, run_cli

require("torch")
require("transformers")

BOUNDS = (3136, 200704)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    data, tiny = root / "data", root / "tiny"
    run_cli("generate", "--out", data, "--num", 10, "--seed", 4, "--workers", 1, "-q", "--tasks", "crop,shuffle")
    run_cli("tiny-model", "--arch", "qwen2_5_vl", "--out", tiny)
    from spatial_ssrl.models import load_processor

    return {"root": root, "data": data, "tiny": tiny, "processor": load_processor(str(tiny), *BOUNDS),
            "own": load_processor(str(tiny))}


def _easyr1_resize(im, min_pixels, max_pixels):
    """EasyR1's process_image (verl/utils/dataset.py, b44b311), written again here: scale an
    image over max_pixels down (under min_pixels up) to that area, sides truncated."""
    import math

    if im.width * im.height > max_pixels:
        f = math.sqrt(max_pixels / (im.width * im.height))
        im = im.resize((int(im.width * f), int(im.height * f)))
    if im.width * im.height < min_pixels:
        f = math.sqrt(min_pixels / (im.width * im.height))
        im = im.resize((int(im.width * f), int(im.height * f)))
    return im


def _oracle(processor, rec, response=None, easyr1_bounds=None) -> int:
    """The processor's own count of a row: its images decoded (first resized as EasyR1 does,
    with ``easyr1_bounds``), the prompt expanded."""
    from PIL import Image

    from spatial_ssrl.prompts import content_parts

    messages = [{"role": "user", "content": content_parts(rec.problem)}]
    if response is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": response}]})
    text = processor.apply_chat_template(messages, add_generation_prompt=response is None, tokenize=False)
    images = [Image.open(io.BytesIO(b)).convert("RGB") for b in rec.images]
    if easyr1_bounds:
        images = [_easyr1_resize(im, *easyr1_bounds) for im in images]
    return int(processor(images=images, text=[text], add_special_tokens=False, return_tensors="pt")["input_ids"]
               .shape[1])


def test_one_image_by_hand(setup):
    """640x480 at 3,136-200,704 px: rounded to 28 px it is 476x644 = 306,544 px, over the bound,
    so both sides shrink by sqrt(307200/200704) = 1.2372 and floor to 28: 364x504, i.e. 13x18
    merged patches = 234 tokens; 28x28 is under the floor and grows to 56x56 = 4 tokens."""
    from spatial_ssrl.training.stats import ImageTokens

    count = ImageTokens(setup["processor"])
    assert count((640, 480)) == 234
    assert count((28, 28)) == 4


def test_every_row_as_the_processor_counts_it(setup):
    from spatial_ssrl.readers import open_dataset
    from spatial_ssrl.training.stats import token_lengths

    reader = open_dataset(str(setup["data"]))
    got = token_lengths(reader, "train", setup["processor"], *BOUNDS, own_processor=setup["own"])
    records = list(reader.records("train"))
    assert len(got.prompt) == len(records) == 10 and got.skipped == {}
    assert got.prompt == [_oracle(setup["processor"], r) for r in records]
    # EasyR1 / LLaMA-Factory: images resized first, then the processor with its own bounds
    assert got.prompt_prescaled == [_oracle(setup["own"], r, easyr1_bounds=BOUNDS) for r in records]
    assert got.prompt_prescaled != got.prompt
    assert got.sequence == got.prompt and got.with_response == 0
    assert all(p == t + i for p, t, i in zip(got.prompt, got.text, got.image))
    assert max(got.image) > 4 * min(got.image)  # crop rows show five images, shuffle rows one


def test_cli_figures_and_settings(setup):
    from spatial_ssrl.readers import open_dataset

    done = run_cli("stats", setup["data"], "--model", setup["tiny"], "--min-pixels", BOUNDS[0],
                   "--max-pixels", BOUNDS[1], "--json")
    summary = json.loads(done.output)
    records = list(open_dataset(str(setup["data"])).records("train"))
    oracle = [_oracle(setup["processor"], r) for r in records]
    easyr1 = [_oracle(setup["own"], r, easyr1_bounds=BOUNDS) for r in records]
    assert summary["rows"] == 10 and summary["prompt_tokens"]["max"] == max(oracle)
    for name, counts in (("EasyR1", easyr1), ("verl", oracle)):
        st = summary["settings"][name]
        assert st["setting"] == "data.max_prompt_length" and st["value"] == max(counts)
        assert st["rows_over_default"] == sum(v > st["default"] for v in counts)
    text = run_cli("stats", setup["data"], "--model", setup["tiny"], "--min-pixels", BOUNDS[0],
                   "--max-pixels", BOUNDS[1]).output
    assert f"EasyR1         data.max_prompt_length={max(easyr1)}" in text
    # a pixel bound changes the count: fewer pixels, fewer tokens
    small = json.loads(run_cli("stats", setup["data"], "--model", setup["tiny"], "--max-pixels", 12544,
                               "--json").output)
    assert small["prompt_tokens"]["max"] < summary["prompt_tokens"]["max"]


def test_supervised_rows_count_the_response(setup):
    """Cold-start rows carry the target response, which LLaMA-Factory's cutoff_len counts."""
    import shutil

    from spatial_ssrl.readers import open_dataset

    data, cold = setup["root"] / "data-sft", setup["root"] / "cold"
    shutil.copytree(setup["data"], data)
    run_cli("split", data, "--test-fraction", 0.2, "--coldstart-fraction", 0.5)
    run_cli("coldstart", "--data", data, "--out", cold, "--num", 3)
    summary = json.loads(run_cli("stats", cold, "--model", setup["tiny"], "--min-pixels", BOUNDS[0],
                                 "--max-pixels", BOUNDS[1], "--json").output)
    records = list(open_dataset(str(cold)).records("train"))
    assert summary["rows_with_response"] == summary["rows"] == len(records) == 3
    oracle = [_oracle(setup["own"], r, r.extras["assistant message"], easyr1_bounds=BOUNDS) for r in records]
    assert summary["settings"]["LLaMA-Factory"]["value"] == max(oracle)
    assert summary["sequence_tokens"]["max"] > summary["prompt_tokens"]["max"]


def test_bad_input_is_one_line(setup, tmp_path):
    for args, says in (([tmp_path / "none", "--model", setup["tiny"]], "does not exist"),
                       ([setup["data"], "--model", tmp_path / "nomodel"], "does not exist"),
                       ([setup["data"], "--model", setup["tiny"], "--split", "nope"], "nope"),
                       ([setup["data"], "--model", setup["tiny"], "--min-pixels", 9000, "--max-pixels", 100],
                        "above --max-pixels")):
        done = run_cli("stats", *args, ok=False)
        assert done.exit_code != 0 and says in done.output and "Traceback" not in done.output
