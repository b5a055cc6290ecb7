"""Prompt token lengths of a dataset, counted by the processor of the model that will train on it.

A crop sample on a large photo shows five images; at Qwen2.5-VL's paper pixel bounds such a
prompt needs thousands of tokens, and each framework acts differently on a prompt longer than
its setting: EasyR1 (``data.max_prompt_length``, 2048 in ``examples/config.yaml``, b44b311)
drops it silently with ``filter_overlong_prompts``; verl (``data.max_prompt_length``, 512 in
``verl/trainer/config/data/legacy_data.yaml``, b178a3c) pads each prompt to it in its agent
loop, so a longer one cannot be batched, and its optional filter counts no image tokens;
LLaMA-Factory's ``cutoff_len`` (2048) cuts the sequence,
images included. :func:`token_lengths` counts each row as the processor sees it: the chat
template around the question and its format suffix, each image placeholder expanded to the
image's tokens, plus, for supervised rows, the target response.

The frameworks size images in two ways. TRL (``ssrl train``) gives the bounds to the processor,
which rounds each side to its patch grid within them; verl has no bound setting and leaves them
to the model folder's processor (after qwen-vl-utils rounds the image to whole patches), so its
count is the processor's at the folder's bounds (``ssrl pixel-bounds`` shows and sets them). EasyR1 (``process_image`` in
``verl/utils/dataset.py``) and LLaMA-Factory first scale an image outside the bounds to the
bound's area, truncating each side to whole pixels, and then hand it to the processor with the
processor's own bounds; the counts differ by a few tokens per image, so each framework's
setting is computed its own way (``bench/check_recipes.py`` checks each against its framework's
code).

Image tokens depend only on an image's size, so the processor is run once per distinct size
on a blank image of that size (exact, and fast on datasets with a few sizes); sizes are read
from the image headers without decoding.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

# framework -> (setting, default value, source of the default)
FRAMEWORKS = {
    "EasyR1": ("data.max_prompt_length", 2048, "examples/config.yaml, EasyR1 b44b311"),
    "verl": ("data.max_prompt_length", 512, "verl/trainer/config/data/legacy_data.yaml, verl b178a3c"),
    "LLaMA-Factory": ("cutoff_len", 2048, "its data arguments' default"),
}


@dataclass
class TokenStats:
    """Token counts per row: ``prompt`` (what a GRPO framework's prompt limit compares) and
    ``sequence`` (prompt plus target response, what LLaMA-Factory's ``cutoff_len`` compares;
    equal to ``prompt`` for rows without a response)."""

    split: str
    min_pixels: int | None
    max_pixels: int | None
    prompt: list[int] = field(default_factory=list)
    sequence: list[int] = field(default_factory=list)
    prompt_prescaled: list[int] = field(default_factory=list)  # images sized as EasyR1 / LLaMA-Factory do
    sequence_prescaled: list[int] = field(default_factory=list)
    text: list[int] = field(default_factory=list)
    image: list[int] = field(default_factory=list)
    with_response: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        def figures(values: list[int]) -> dict[str, int] | None:
            if not values:
                return None
            ordered = sorted(values)
            return {"median": ordered[(len(ordered) - 1) // 2],
                    "p99": ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)],
                    "max": ordered[-1]}

        settings = {}
        for name, (key, default, source) in FRAMEWORKS.items():
            values = {"EasyR1": self.prompt_prescaled, "verl": self.prompt,
                      "LLaMA-Factory": self.sequence_prescaled}[name]
            if not values:
                continue
            settings[name] = {"setting": key, "value": max(values), "default": default, "default_source": source,
                              "rows_over_default": sum(v > default for v in values)}
        return {"split": self.split, "rows": len(self.prompt), "rows_with_response": self.with_response,
                "min_pixels": self.min_pixels, "max_pixels": self.max_pixels, "prompt_tokens": figures(self.prompt),
                "text_tokens": figures(self.text), "image_tokens": figures(self.image),
                "sequence_tokens": figures(self.sequence), "prompt_tokens_prescaled": figures(self.prompt_prescaled),
                "settings": settings, "skipped": dict(self.skipped)}


class ImageTokens:
    """Tokens the processor gives an image of a size (cached per size). With ``prescale``
    (min, max pixels), the image is first scaled as EasyR1 and LLaMA-Factory do."""

    def __init__(self, processor, prescale: tuple[int | None, int | None] | None = None):
        self.image_processor = processor.image_processor
        self.merge = int(getattr(self.image_processor, "merge_size", 2) or 1)
        self.prescale = prescale
        self.cache: dict[tuple[int, int], int] = {}

    def __call__(self, size: tuple[int, int]) -> int:
        if size not in self.cache:
            from PIL import Image

            shown = prescaled(size, *self.prescale) if self.prescale else size
            grid = self.image_processor(images=[Image.new("RGB", shown)], return_tensors="np")["image_grid_thw"]
            self.cache[size] = int(grid[0].prod()) // (self.merge ** 2)
        return self.cache[size]


def prescaled(size: tuple[int, int], min_pixels: int | None, max_pixels: int | None) -> tuple[int, int]:
    """(width, height) after EasyR1's and LLaMA-Factory's own resize: an image over
    ``max_pixels`` (or under ``min_pixels``) is scaled to that area, each side truncated."""
    w, h = size
    for bound, outside in ((max_pixels, lambda a: a > max_pixels), (min_pixels, lambda a: a < min_pixels)):
        if bound is not None and outside(w * h):
            factor = math.sqrt(bound / (w * h))
            w, h = int(w * factor), int(h * factor)
    return w, h


def _size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:  # the header only
            return im.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def token_lengths(reader, split: str, processor, min_pixels: int | None = None,
                  max_pixels: int | None = None, own_processor=None) -> TokenStats:
    """Count the rows of ``split`` of a dataset (a :class:`spatial_ssrl.readers.DatasetReader`)
    with ``processor`` (its pixel bounds already set to ``min_pixels`` / ``max_pixels``) and,
    with ``own_processor`` (the same model's processor with its own bounds), the way EasyR1 and
    LLaMA-Factory size the images (``prompt_prescaled``, ``sequence_prescaled``)."""
    from ..prompts import IMAGE_TOKEN, content_parts

    tokenizer = processor.tokenizer
    images = ImageTokens(processor)
    images_pre = ImageTokens(own_processor, (min_pixels, max_pixels)) if own_processor is not None else images
    stats = TokenStats(split, min_pixels, max_pixels)
    for rec in reader.records(split):
        if rec.problem is None:
            stats.skipped["no_question"] = stats.skipped.get("no_question", 0) + 1
            continue
        sizes = [_size(b) if b is not None else None for b in rec.images]
        if any(s is None for s in sizes) or len(sizes) != rec.problem.count(IMAGE_TOKEN):
            stats.skipped["undecodable_image"] = stats.skipped.get("undecodable_image", 0) + 1
            continue
        messages = [{"role": "user", "content": content_parts(rec.problem)}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        n_text = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        n_image = sum(images(s) for s in sizes)
        n_image_pre = sum(images_pre(s) for s in sizes)
        prompt = n_text - len(sizes) + n_image  # the template holds one placeholder token per image
        response = rec.extras.get("assistant (target)") or rec.extras.get("assistant message")
        sequence = prompt
        if response:
            stats.with_response += 1
            turn = processor.apply_chat_template(
                [*messages, {"role": "assistant", "content": [{"type": "text", "text": response}]}], tokenize=False)
            sequence = len(tokenizer(turn, add_special_tokens=False)["input_ids"]) - len(sizes) + n_image
        stats.prompt.append(prompt)
        stats.sequence.append(sequence)
        stats.text.append(n_text - len(sizes))
        stats.image.append(n_image)
        stats.prompt_prescaled.append(prompt - n_image + n_image_pre)
        stats.sequence_prescaled.append(sequence - n_image + n_image_pre)
    return stats


def report_lines(summary: dict[str, Any]) -> list[str]:
    """The figures of :meth:`TokenStats.summary` as printed by ``ssrl stats``."""
    p = summary["prompt_tokens"]
    bounds = f"{summary['min_pixels'] or 'default'}-{summary['max_pixels'] or 'default'} pixels per image"
    lines = [f"{summary['rows']} rows in split {summary['split']} ({bounds})"]
    if summary["skipped"]:
        lines.append("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["skipped"].items())))
    if p is None:
        return lines
    lines.append(f"prompt tokens: median {p['median']}, p99 {p['p99']}, max {p['max']} "
                 f"(text up to {summary['text_tokens']['max']}, images up to {summary['image_tokens']['max']})")
    s = summary["sequence_tokens"]
    if summary["rows_with_response"]:
        lines.append(f"prompt + response tokens: median {s['median']}, p99 {s['p99']}, max {s['max']} "
                     f"({summary['rows_with_response']} rows with a response)")
    lines.append("settings that keep every row whole:")
    for name, st in summary["settings"].items():
        if name == "LLaMA-Factory" and not summary["rows_with_response"]:
            note = "the prompt alone: add the response length"
        else:
            note = f"default {st['default']}: {st['rows_over_default']} of {summary['rows']} rows over"
        lines.append(f"  {name:<14} {st['setting']}={st['value']}  ({note})")
    return lines
