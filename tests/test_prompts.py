"""The paper prompt set, character for character (the paper's prompts, docs/tasks.md)."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ssrl.prompts import FORMAT_SUFFIX, with_format_suffix
from spatial_ssrl.sources import Item
from spatial_ssrl.tasks import make_task

CLUES = "Based on visual clues such as continuity, alignment, and context, "
EXPECTED = {
    ("shuffle", "2x2"): "<image>The image has been divided into 4 shuffled patches labeled 0, 1, 2, and 3. "
    + CLUES
    + "answer the correct arrangement of the patches to restore the original image, where the format is "
    "'TopLeft-TopRight-BottomLeft-BottomRight'.",
    ("shuffle", "2x2-masked"): "<image>The image has been divided into 4 shuffled patches labeled 0, 1, 2, and 3. "
    "One of the four patches is masked completely by white pixels. "
    + CLUES
    + "answer the correct arrangement of the patches to restore the original image, where the format is "
    "'TopLeft-TopRight-BottomLeft-BottomRight'.",
    ("shuffle", "1x3"): "<image>The image has been divided into 3 shuffled horizontal strips labeled 0, 1, and 2. "
    + CLUES
    + "answer the correct arrangement of the patches to restore the original image, where the format is "
    "'Left-Middle-Right'.",
    ("shuffle", "1x4"): "<image>The image has been divided into 4 shuffled horizontal strips labeled 0, 1, 2, and 3. "
    + CLUES
    + "answer the correct arrangement of the patches to restore the original image, where the format is "
    "'Left-Middle1-Middle2-Right'.",
    ("shuffle", "3x1"): "<image>The image has been divided into 3 shuffled vertical strips labeled 0, 1, and 2. "
    + CLUES
    + "answer the correct arrangement of the patches to restore the original image, where the format is "
    "'Top-Middle-Bottom'.",
    ("shuffle", "4x1"): "<image>The image has been divided into 4 shuffled vertical strips labeled 0, 1, 2, and 3. "
    + CLUES
    + "answer the correct arrangement of the patches to restore the original image, where the format is "
    "'Top-Middle1-Middle2-Bottom'.",
    ("flip", "2x2"): "<image>The image has been divided into 4 labeled 0, 1, 2, and 3. One of the four patches is "
    "flipped either horizontally or vertically. "
    + CLUES
    + "answer the correct patch that is flipped and the direction the flip, where the format is "
    "'Label-Direction'. The direction can only be 0(flipped vertically) or 1(flipped horizontally).",
    ("crop", "4-options"): "Which image is the missing part in the first image <image>? Based on visual clues such "
    "as alignment, image content, and positional relationship, select one of the four options "
    "<image><image><image><image> as the final answer. The final answer should be chosen from 'A', 'B', "
    "'C', and 'D'.",
}


@pytest.fixture(scope="module")
def item():
    rng = np.random.default_rng(0)
    return Item(id="noise", rgb=rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8))


@pytest.mark.parametrize("task, variant", sorted(EXPECTED))
def test_paper_prompt_exact(task, variant, item):
    t = make_task(task, variant)
    params = t.make_params(np.random.default_rng(0), item)
    rendered = t.render(item, params)
    assert rendered.problem == EXPECTED[(task, variant)]
    assert rendered.problem.count("<image>") == len(rendered.images)


def test_format_suffix_exact():
    assert FORMAT_SUFFIX == (
        "You FIRST think about the reasoning process as an internal monologue and then provide the final "
        "answer. The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST "
        "BE put in \\boxed{}."
    )
    assert with_format_suffix("Q?") == "Q? " + FORMAT_SUFFIX


def test_generic_grid_prompt_names_its_format(item):
    t = make_task("shuffle", "3x3")
    p = t.render(item, t.make_params(np.random.default_rng(1), item)).problem
    assert "9 shuffled patches labeled 0, 1, 2, 3, 4, 5, 6, 7, and 8." in p
    assert "3x3 grid" in p
