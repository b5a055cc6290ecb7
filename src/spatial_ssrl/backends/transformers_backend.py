"""In-process generation with transformers (batched, left-padded, greedy by default)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Item:
    """One question: text with ``<image>`` placeholders (format suffix included or not) and
    its images as encoded bytes or PIL images, in placeholder order."""

    question: str
    images: Sequence


def _pil(image):
    from PIL import Image

    if isinstance(image, (bytes, bytearray)):
        image = Image.open(io.BytesIO(image))
    elif isinstance(image, (str, os.PathLike)):  # benchmarks that give their images as file paths
        with Image.open(image) as opened:
            image = opened.convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


TRAIN_EXTRA_HINT = "running a model needs the train extra: pip install 'spatial-ssrl[train]'"


def make_generate(spec, decoding):
    """A GenerateFn running ``spec.model`` in-process: bf16 with ``device_map="auto"`` on a GPU,
    float32 on the CPU. The model folder is checked now (config.json only); the weights load
    on the first call."""
    from . import BackendError

    try:
        import torch
    except ImportError:
        raise BackendError(TRAIN_EXTRA_HINT) from None
    from ..models import ModelError, check_model_folder, load_model, load_processor

    try:
        check_model_folder(spec.model)
    except ModelError as exc:
        raise BackendError(str(exc)) from None
    loaded: dict = {}

    def run(items, on_result):
        if not loaded:
            try:
                loaded["processor"] = load_processor(spec.model, spec.min_pixels, spec.max_pixels)
                device_map = "auto" if torch.cuda.is_available() else None
                loaded["model"] = load_model(spec.model, "auto", device_map=device_map, training=False)
            except ModelError as exc:
                raise BackendError(str(exc)) from None
        model, processor = loaded["model"], loaded["processor"]
        for start in range(0, len(items), spec.batch_size):
            batch = items[start:start + spec.batch_size]
            texts = generate(model, processor, batch, max_new_tokens=decoding.max_new_tokens,
                             temperature=decoding.temperature, top_p=decoding.top_p, batch_size=spec.batch_size)
            for i, text in enumerate(texts):
                on_result(start + i, text, None)

    return run


def messages_for(question: str) -> list[dict]:
    """A one-turn conversation whose content interleaves image and text parts (the question
    is used as given: append the format suffix beforehand if the model should see it)."""
    from ..prompts import content_parts

    return [{"role": "user", "content": content_parts(question, format_suffix=False)}]


def generate(model, processor, items: Sequence[Item], max_new_tokens: int = 256, temperature: float = 0.0,
             top_p: float = 1.0, batch_size: int = 8) -> list[str]:
    """Responses for ``items`` in order. ``temperature`` 0 decodes greedily."""
    import torch

    tokenizer = getattr(processor, "tokenizer", processor)
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    try:
        for start in range(0, len(items), max(1, batch_size)):
            batch = items[start:start + batch_size]
            texts = [processor.apply_chat_template(messages_for(it.question), add_generation_prompt=True,
                                                   tokenize=False) for it in batch]
            images = [_pil(im) for it in batch for im in it.images]
            inputs = processor(text=texts, images=images or None, return_tensors="pt", padding=True)
            inputs = inputs.to(device)
            kwargs = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
            if temperature and temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                ids = model.generate(**inputs, **kwargs)
            new = ids[:, inputs["input_ids"].shape[1]:]
            out.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = old_side
        if was_training:
            model.train()
    return out
