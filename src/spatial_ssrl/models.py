"""Loading a vision-language checkpoint and its processor, with checks that come first.

``check_model_folder`` reads only ``config.json`` (no weights), so a folder that is not a
vision-language checkpoint is refused in a line before anything heavy happens.
``load_model`` then goes through ``AutoModelForImageTextToText.from_pretrained`` and
``AutoProcessor.from_pretrained``, the path every real checkpoint takes.
"""

from __future__ import annotations

import json
import os
import weakref
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


_OWN_BOUNDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # image processor -> its checkpoint's bounds


def _bounds(ip) -> tuple:
    return (dict(getattr(ip, "size", None) or {}),
            *(getattr(ip, attr) for attr in ("min_pixels", "max_pixels") if hasattr(ip, attr)))


def _restore(ip, bounds: tuple) -> None:
    ip.size = dict(bounds[0])
    for attr, value in zip([a for a in ("min_pixels", "max_pixels") if hasattr(ip, a)], bounds[1:]):
        setattr(ip, attr, value)


def set_pixel_bounds(processor, min_pixels: int | None, max_pixels: int | None) -> None:
    """Bound the image processor's resize (Qwen-VL: total pixels per image) for this run; the
    checkpoint's own bounds are remembered for :func:`save_processor`."""
    ip = getattr(processor, "image_processor", None)
    if ip is None or (min_pixels is None and max_pixels is None):
        return
    _OWN_BOUNDS.setdefault(ip, _bounds(ip))
    size = dict(getattr(ip, "size", None) or {})
    if min_pixels is not None:
        size["shortest_edge"] = int(min_pixels)
    if max_pixels is not None:
        size["longest_edge"] = int(max_pixels)
    ip.size = size
    for attr, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
        if value is not None and hasattr(ip, attr):
            setattr(ip, attr, int(value))


def save_processor(processor, folder: str) -> None:
    """Save ``processor`` into ``folder`` with the pixel bounds of the checkpoint it was loaded
    from, not the run's: the bounds are a setting of training, as they are of LLaMA-Factory and
    EasyR1, so the folder sizes images as its base model did wherever it is loaded next (vLLM,
    EasyR1, verl, ``ssrl eval`` without ``--max-pixels``)."""
    ip = getattr(processor, "image_processor", None)
    own = _OWN_BOUNDS.get(ip) if ip is not None else None
    if own is None:
        processor.save_pretrained(folder)
        return
    run = _bounds(ip)
    _restore(ip, own)
    try:
        processor.save_pretrained(folder)
    finally:
        _restore(ip, run)


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


def add_v4_files(out_dir: str) -> None:
    """Make the folder load in transformers 4.x too (4.57 is what EasyR1 and verl pin), as the
    Qwen checkpoints on the Hub do: transformers 5 writes the special tokens as a list under
    ``extra_special_tokens`` (4.x takes that key for a dict of named tokens and fails), keeps the
    image and video processor settings only inside ``processor_config.json`` (4.x reads
    ``preprocessor_config.json`` and ``video_preprocessor_config.json``) and the text rope
    settings only as ``rope_parameters`` (4.x reads ``rope_scaling`` and ``rope_theta``).
    Version 5 reads all of these older spellings as well. Used on every folder we write: the
    tiny model and the final model of a training run."""
    def edit(name: str, change) -> None:
        path = os.path.join(out_dir, name)
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if change(data):
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
                fh.write("\n")

    def tokens(cfg: dict) -> bool:
        if isinstance(cfg.get("extra_special_tokens"), list):
            cfg["additional_special_tokens"] = cfg.pop("extra_special_tokens")
            return True
        return False

    def rope(cfg: dict) -> bool:
        text = cfg.get("text_config") or {}
        params = text.get("rope_parameters")
        if not isinstance(params, dict) or "rope_scaling" in text:
            return False
        text["rope_theta"] = params.get("rope_theta")
        text["rope_scaling"] = {k: v for k, v in params.items() if k != "rope_theta"}
        if "mrope_section" in params and cfg.get("model_type") == "qwen2_5_vl":
            text["rope_scaling"]["type"] = "mrope"  # how 4.x's Qwen2.5-VL names multimodal rope
        return True

    edit("tokenizer_config.json", tokens)
    edit("config.json", rope)
    with open(os.path.join(out_dir, "processor_config.json"), encoding="utf-8") as fh:
        processor = json.load(fh)
    for key, name in (("image_processor", "preprocessor_config.json"),
                      ("video_processor", "video_preprocessor_config.json")):
        if isinstance(processor.get(key), dict) and not os.path.exists(os.path.join(out_dir, name)):
            with open(os.path.join(out_dir, name), "w", encoding="utf-8") as fh:
                json.dump({**processor[key], "processor_class": processor.get("processor_class")}, fh, indent=2,
                          sort_keys=True)
                fh.write("\n")


PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


def _image_settings(name: str, cfg: dict) -> dict | None:
    """The image processor's settings inside one of the processor files (``processor_config.json``
    nests them under ``image_processor``; ``preprocessor_config.json`` is them)."""
    if name == "processor_config.json":
        ip = cfg.get("image_processor")
        return ip if isinstance(ip, dict) else None
    return cfg


def folder_pixel_bounds(folder: str) -> dict[str, tuple[int | None, int | None]]:
    """The pixel bounds each processor file of a model folder holds: file -> (min, max)."""
    out = {}
    for name in PROCESSOR_FILES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as fh:
                cfg = json.load(fh)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: not readable JSON ({exc})") from None
        ip = _image_settings(name, cfg) if isinstance(cfg, dict) else None
        if ip is None:
            continue
        size = ip.get("size") if isinstance(ip.get("size"), dict) else {}
        out[name] = (ip.get("min_pixels", size.get("shortest_edge")), ip.get("max_pixels", size.get("longest_edge")))
    return out


def set_folder_pixel_bounds(folder: str, min_pixels: int | None, max_pixels: int | None) -> list[str]:
    """Write new pixel bounds into a model folder's processor files, in place (each through a
    temporary file and a rename), touching no other key; returns the files changed. For a
    framework that takes its bounds from the folder (verl)."""
    import tempfile

    found = folder_pixel_bounds(folder)
    if not found:
        raise ModelError(f"{folder} has no image processor settings ({' or '.join(PROCESSOR_FILES)})")
    changed = []
    for name in found:
        path = os.path.join(folder, name)
        with open(path, encoding="utf-8") as fh:
            cfg = json.load(fh)
        ip = _image_settings(name, cfg)
        size = dict(ip.get("size") or {})
        for key, attr, value in (("shortest_edge", "min_pixels", min_pixels), ("longest_edge", "max_pixels", max_pixels)):
            if value is None:
                continue
            size[key] = int(value)
            if attr in ip:
                ip[attr] = int(value)
        ip["size"] = size
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-ssrl-", suffix="-" + name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(cfg, fh, indent=2, sort_keys=True)
                fh.write("\n")
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        changed.append(name)
    return changed
