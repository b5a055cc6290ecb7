"""Loading a vision-language checkpoint and its processor, with checks that come first.

``check_model_folder`` reads only ``config.json`` (no weights), so a folder that is not a
vision-language checkpoint is refused in a line before anything heavy happens.
``load_model`` then goes through ``AutoModelForImageTextToText.from_pretrained`` and
``AutoProcessor.from_pretrained``, the path every real checkpoint takes.
"""

from __future__ import annotations

import json
import os
from typing import Any

RUN_MARKER = "ssrl_run.json"  # written into every run folder and final checkpoint of ours


class ModelError(ValueError):
    """A model path that cannot be trained or evaluated (the message says why)."""


def _vlm_model_types() -> set[str]:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    )

    return set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)


def check_model_folder(path: str) -> dict[str, Any] | None:
    """The checkpoint's ``config.json`` (``None`` for a hub id, checked when it loads).
    Raises :class:`ModelError` for a folder that is not a vision-language checkpoint."""
    if not os.path.exists(path):
        if path.startswith((".", "/", "~")) or path.count("/") != 1:
            raise ModelError(f"model {path} does not exist (a checkpoint folder or a hub id owner/name)")
        return None
    if not os.path.isdir(path):
        raise ModelError(f"model {path} is a file; give the checkpoint folder (with config.json)")
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_path):
        hint = ""
        if os.path.isfile(os.path.join(path, "adapter_config.json")):
            hint = " (it holds a LoRA adapter only; use the merged checkpoint ssrl train sft writes)"
        raise ModelError(f"model folder {path} has no config.json: not a Hugging Face checkpoint{hint}")
    try:
        with open(cfg_path, encoding="utf-8") as fh:
            cfg = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {cfg_path}: {exc}") from None
    model_type = cfg.get("model_type") if isinstance(cfg, dict) else None
    if model_type not in _vlm_model_types():
        raise ModelError(f"model {path} is not a vision-language model (model_type {model_type!r}); "
                         "Spatial-SSRL trains image-text-to-text models such as Qwen2.5-VL and Qwen3-VL")
    if "vision_config" not in cfg:
        raise ModelError(f"model {path} has no vision_config: not a vision-language checkpoint")
    check_weight_files(path)
    if not any(os.path.isfile(os.path.join(path, n)) for n in TOKENIZER_FILES):
        raise ModelError(f"model folder {path} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); "
                         "copy them from the checkpoint it was made from")
    return cfg


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def safetensors_problem(path: str) -> str | None:
    """Why a ``.safetensors`` file cannot be complete (from its header alone: the data must
    end where the header says), or None."""
    import struct

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{os.path.basename(path)} is empty or cut short ({size} bytes)"
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                return f"{os.path.basename(path)} is cut short ({size} bytes)"
            header = json.loads(fh.read(n))
    except OSError as exc:
        return f"cannot read {os.path.basename(path)}: {exc.strerror or exc}"
    except ValueError:
        return f"{os.path.basename(path)} has no valid safetensors header"
    ends = [v["data_offsets"][1] for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v]
    expected = 8 + n + max(ends, default=0)
    if size < expected:
        return f"{os.path.basename(path)} is truncated ({size} of {expected} bytes)"
    return None


def check_weight_files(path: str) -> None:
    """Refuse, in one line, a checkpoint folder whose weights are missing or cut short."""
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index):
        try:
            with open(index, encoding="utf-8") as fh:
                shards = sorted(set(json.load(fh)["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError):
            raise ModelError(f"cannot read {index}") from None
    else:
        shards = sorted(n for n in os.listdir(path) if n.endswith(".safetensors") and not n.startswith("adapter"))
    for shard in shards:
        problem = safetensors_problem(os.path.join(path, shard)) if os.path.exists(os.path.join(path, shard)) \
            else f"{shard} is missing"
        if problem:
            raise ModelError(f"model {path}: {problem}")


def has_weights(path: str) -> bool:
    if not os.path.isdir(path):
        return False
    names = os.listdir(path)
    return any(n.endswith((".safetensors", ".bin")) for n in names)


def resolve_dtype(name: str, training: bool = True):
    """The dtype weights load in. ``auto`` trains in float32 master weights (bf16 compute
    comes from the trainer's ``bf16`` autocast: at lr 1e-6 most updates to bf16 weights would
    round away) and runs inference in bfloat16 where the GPU has it."""
    import torch

    if name == "auto":
        if not training and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def set_pixel_bounds(processor, min_pixels: int | None, max_pixels: int | None) -> None:
    """Bound the image processor's resize (Qwen-VL: total pixels per image)."""
    ip = getattr(processor, "image_processor", None)
    if ip is None or (min_pixels is None and max_pixels is None):
        return
    size = dict(getattr(ip, "size", None) or {})
    if min_pixels is not None:
        size["shortest_edge"] = int(min_pixels)
    if max_pixels is not None:
        size["longest_edge"] = int(max_pixels)
    ip.size = size
    for attr, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
        if value is not None and hasattr(ip, attr):
            setattr(ip, attr, int(value))


def load_processor(path: str, min_pixels: int | None = None, max_pixels: int | None = None,
                   padding_side: str | None = None):
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a processor from {path}: {str(exc).splitlines()[0]}") from None
    if not hasattr(processor, "image_processor"):
        raise ModelError(f"{path} has no image processor: not a vision-language checkpoint")
    set_pixel_bounds(processor, min_pixels, max_pixels)
    if padding_side is not None and getattr(processor, "tokenizer", None) is not None:
        processor.tokenizer.padding_side = padding_side
    return processor


def load_model(path: str, dtype: str = "auto", attn_implementation: str | None = None,
               device_map: str | None = None, training: bool = True):
    from transformers import AutoModelForImageTextToText

    kwargs: dict[str, Any] = {"dtype": resolve_dtype(dtype, training)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if device_map:
        kwargs["device_map"] = device_map
    try:
        return AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {path}: {str(exc).splitlines()[0]}") from None


def freeze_vision_tower(model) -> int:
    """Freeze the vision encoder (not the merger/projector); returns parameters frozen."""
    frozen = 0
    for name, p in model.named_parameters():
        if (".visual." in f".{name}" or name.startswith("visual.")) and "merger" not in name:
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


def pixel_view(model_path: str, processor, view_dir: str) -> str:
    """A folder that reads as ``model_path`` except for the processor files, which carry the
    run's pixel bounds: every other file is a symlink. vLLM loads the checkpoint by path and
    reads its own preprocessor config, so giving it this folder makes its image resizing the
    same as the trainer's (a mismatch corrupts Qwen-VL prompts: the image token count differs)."""
    os.makedirs(view_dir, exist_ok=True)
    processor.save_pretrained(view_dir)
    own = set(os.listdir(view_dir))
    for name in os.listdir(model_path):
        if name in own or name.startswith("."):
            continue
        link = os.path.join(view_dir, name)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(model_path, name)), link)
    return view_dir


def read_marker(path: str) -> dict | None:
    p = os.path.join(path, RUN_MARKER)
    if not os.path.isfile(p):
        return None
    try:
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None
