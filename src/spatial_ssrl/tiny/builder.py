"""Build a tiny, randomly initialised checkpoint of a real Qwen-VL architecture.

The folder :func:`build_tiny_model` writes is laid out like a Hub checkpoint (``config.json``,
``generation_config.json``, ``model.safetensors``, tokenizer, image/video processor and chat
template files), so ``AutoModelForImageTextToText.from_pretrained(out_dir)`` and
``AutoProcessor.from_pretrained(out_dir)`` load it as they load ``Qwen/Qwen2.5-VL-3B-Instruct``
or ``Qwen/Qwen3-VL-2B-Instruct``; nothing is read from or sent to the Hub. The weights are
random (seeded), so the model's answers are noise: it is for testing pipelines (data
collators, trainers, generation, reward loops) in seconds on a CPU.

torch and transformers are imported inside the functions only.
"""

from __future__ import annotations

import json
import operator
import os
import shutil
import struct
import tempfile
from typing import Any

from spatial_ssrl.tiny import tokenizer as _tok

ARCHES = ("qwen2_5_vl", "qwen3_vl")

# The overridable sizes and their defaults. Text: 2 decoder layers of width 64 (4 query heads,
# 2 key/value heads, head_dim 16). Vision: 2 blocks of width 32 (2 heads). vocab_size bounds
# the trained BPE vocabulary; min/max_pixels bound an image's resized area (the defaults give
# 4 to 64 image tokens at patch 14 and, scaled by (16/14)^2, at patch 16).
DEFAULT_SIZES: dict[str, dict[str, int]] = {
    "qwen2_5_vl": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vision_depth": 2,
        "vision_hidden_size": 32,
        "vision_intermediate_size": 64,
        "vision_num_heads": 2,
        "vocab_size": _tok.DEFAULT_BPE_VOCAB,
        "min_pixels": 56 * 56,  # 3136 = 4 merged tokens of 28x28
        "max_pixels": 224 * 224,  # 50176 = 64 merged tokens
    },
    "qwen3_vl": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vision_depth": 2,
        "vision_hidden_size": 32,
        "vision_intermediate_size": 64,
        "vision_num_heads": 2,
        "vocab_size": _tok.DEFAULT_BPE_VOCAB,
        "min_pixels": 64 * 64,  # 4096 = 4 merged tokens of 32x32
        "max_pixels": 256 * 256,  # 65536 = 64 merged tokens
    },
}

PATCH_SIZE = {"qwen2_5_vl": 14, "qwen3_vl": 16}
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
VOCAB_MULTIPLE = 64  # the embedding rows are padded like a real checkpoint's (151936 for 151665 tokens)

# The image normalisation of the real checkpoints' preprocessor configs.
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
_HALF = [0.5, 0.5, 0.5]


def build_tiny_model(arch: str, out_dir: str, seed: int = 0, **sizes: int) -> str:
    """Write a tiny random ``arch`` checkpoint (``qwen2_5_vl`` or ``qwen3_vl``) to ``out_dir``
    and return ``out_dir``.

    ``sizes`` overrides entries of :data:`DEFAULT_SIZES` (``hidden_size``, ``vision_depth``,
    ``max_pixels``, ...). The same ``arch``, ``seed`` and sizes give the same files. The
    folder is written next to ``out_dir`` first and moved into place at the end; an
    ``out_dir`` that exists and is not empty is refused (``ValueError``), never touched.
    """
    arch, seed, sizes = _check_args(arch, out_dir, seed, sizes)
    out_dir = os.fspath(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tiny-model-", dir=parent)
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would outlive the rename
        _write_checkpoint(arch, staging, seed, sizes)
        if os.path.isdir(out_dir):
            _check_empty(out_dir)
            os.rmdir(out_dir)
        os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def count_parameters(model_dir: str) -> int:
    """The number of weights in ``model_dir``'s ``*.safetensors`` files, read from their
    headers (no torch needed)."""
    total = 0
    names = sorted(n for n in os.listdir(model_dir) if n.endswith(".safetensors"))
    if not names:
        raise ValueError(f"{model_dir} holds no .safetensors file")
    for name in names:
        with open(os.path.join(model_dir, name), "rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(length))
        for key, info in header.items():
            if key == "__metadata__":
                continue
            n = 1
            for dim in info["shape"]:
                n *= dim
            total += n
    return total


# ---------------------------------------------------------------------------------------------


def _check_args(arch: Any, out_dir: Any, seed: Any, sizes: dict[str, Any]) -> tuple[str, int, dict[str, int]]:
    if arch not in ARCHES:
        raise ValueError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHES)}")
    try:
        value = -1 if isinstance(seed, bool) else operator.index(seed)
    except TypeError:
        value = -1
    if value < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if out_dir is None or os.fspath(out_dir) == "":
        raise ValueError("out_dir must be a folder path")
    out_dir = os.fspath(out_dir)
    if os.path.lexists(out_dir):
        if not os.path.isdir(out_dir):
            raise ValueError(f"{out_dir} exists and is not a folder; refusing to overwrite it")
        _check_empty(out_dir)
    defaults = DEFAULT_SIZES[arch]
    unknown = sorted(set(sizes) - set(defaults))
    if unknown:
        raise ValueError(f"unknown size(s) {', '.join(unknown)}; known: {', '.join(sorted(defaults))}")
    merged = dict(defaults)
    for key, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
        merged[key] = value
    _check_sizes(arch, merged)
    return arch, value, merged


def _check_empty(out_dir: str) -> None:
    if os.listdir(out_dir):
        raise ValueError(f"{out_dir} exists and is not empty; refusing to write a model into it")


def _check_sizes(arch: str, s: dict[str, int]) -> None:
    if s["hidden_size"] % s["num_attention_heads"]:
        raise ValueError("hidden_size must be a multiple of num_attention_heads")
    if s["num_attention_heads"] % s["num_key_value_heads"]:
        raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
    head_dim = s["hidden_size"] // s["num_attention_heads"]
    if head_dim % 2 or head_dim < 8:
        raise ValueError(f"the text head_dim (hidden_size / num_attention_heads = {head_dim}) must be even and >= 8")
    if s["vision_hidden_size"] % s["vision_num_heads"] or (s["vision_hidden_size"] // s["vision_num_heads"]) % 4:
        raise ValueError("vision_hidden_size / vision_num_heads must be a multiple of 4 (2D rotary embedding)")
    if s["vocab_size"] < 256:
        raise ValueError("vocab_size (the trained BPE vocabulary) must be at least 256, the byte alphabet")
    factor = PATCH_SIZE[arch] * MERGE_SIZE
    if s["min_pixels"] < factor * factor:
        raise ValueError(f"min_pixels must be at least {factor * factor} ({factor}x{factor}, one merged token)")
    if s["max_pixels"] < s["min_pixels"]:
        raise ValueError("max_pixels must be at least min_pixels")


def mrope_section(arch: str, head_dim: int) -> list[int]:
    """The (temporal, height, width) split of the rotary frequencies (head_dim / 2 of them),
    in the real checkpoints' proportions: Qwen2.5-VL's [16, 24, 24] and Qwen3-VL's
    interleaved [24, 20, 20] of 64."""
    half = head_dim // 2
    if arch == "qwen2_5_vl":
        t = half // 4
        h = (half - t) // 2
        return [t, h, half - t - h]
    # Qwen3-VL interleaves T, H, W over the frequencies; H and W each take every third one.
    h = min(round(half * 20 / 64), (half - 1) // 3 + 1, (half - 2) // 3 + 1)
    h = max(h, 1)
    return [half - 2 * h, h, h]


def deepstack_indexes(depth: int) -> list[int]:
    """Up to three vision layers, evenly spread, whose features Qwen3-VL feeds to the first
    text layers (the real 27-layer encoder uses [8, 16, 24])."""
    k = min(3, depth)
    return sorted({min(depth - 1, (i + 1) * depth // (k + 1)) for i in range(k)})


def _configs(arch: str, s: dict[str, int], token_ids: dict[str, int], vocab_size: int) -> Any:
    head_dim = s["hidden_size"] // s["num_attention_heads"]
    text = {
        "vocab_size": vocab_size,
        "hidden_size": s["hidden_size"],
        "intermediate_size": s["intermediate_size"],
        "num_hidden_layers": s["num_hidden_layers"],
        "num_attention_heads": s["num_attention_heads"],
        "num_key_value_heads": s["num_key_value_heads"],
        "hidden_act": "silu",
        "max_position_embeddings": _tok.MODEL_MAX_LENGTH,
        "rms_norm_eps": 1e-6,
        "initializer_range": 0.02,
        "bos_token_id": token_ids["bos"],
        "eos_token_id": token_ids["eos"],
        "pad_token_id": token_ids["pad"],
        "dtype": "float32",
    }
    vision = {
        "depth": s["vision_depth"],
        "hidden_size": s["vision_hidden_size"],
        "intermediate_size": s["vision_intermediate_size"],
        "num_heads": s["vision_num_heads"],
        "in_channels": 3,
        "patch_size": PATCH_SIZE[arch],
        "spatial_merge_size": MERGE_SIZE,
        "temporal_patch_size": TEMPORAL_PATCH_SIZE,
        "out_hidden_size": s["hidden_size"],
        "initializer_range": 0.02,
    }
    special = {
        "image_token_id": token_ids["image"],
        "video_token_id": token_ids["video"],
        "vision_start_token_id": token_ids["vision_start"],
        "vision_end_token_id": token_ids["vision_end"],
    }
    if arch == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        text["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": 1000000.0,
            "mrope_section": mrope_section(arch, head_dim),
        }
        text["use_sliding_window"] = False
        text["max_window_layers"] = s["num_hidden_layers"]
        vision.update(
            hidden_act="silu",
            window_size=112,  # 4x4 merged tokens of 28x28, as in the real encoder
            fullatt_block_indexes=[s["vision_depth"] - 1],
            tokens_per_second=2,
        )
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **special)

    from transformers import Qwen3VLConfig

    text["head_dim"] = head_dim
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 5000000.0,
        "mrope_section": mrope_section(arch, head_dim),
        "mrope_interleaved": True,
    }
    text["attention_bias"] = False
    vision.update(
        hidden_act="gelu_pytorch_tanh",
        num_position_embeddings=256,  # a 16x16 grid of learned positions, interpolated per image
        deepstack_visual_indexes=deepstack_indexes(s["vision_depth"]),
    )
    return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **special)


def _processor(arch: str, s: dict[str, int], tokenizer: Any, template: str) -> Any:
    from transformers import Qwen2VLImageProcessor

    patch = PATCH_SIZE[arch]
    common = {"patch_size": patch, "temporal_patch_size": TEMPORAL_PATCH_SIZE, "merge_size": MERGE_SIZE}
    mean, std = (_CLIP_MEAN, _CLIP_STD) if arch == "qwen2_5_vl" else (_HALF, _HALF)
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": s["min_pixels"], "longest_edge": s["max_pixels"]},
        image_mean=mean,
        image_std=std,
        **common,
    )
    if arch == "qwen2_5_vl":
        from transformers import Qwen2_5_VLProcessor, Qwen2VLVideoProcessor

        # Qwen2-VL's video processor bounds each frame's area, and with the reference
        # (qwen-vl-utils) cap the whole clip's to max_video_tokens * 0.9 tokens.
        video_processor = Qwen2VLVideoProcessor(
            size={"shortest_edge": s["min_pixels"], "longest_edge": s["max_pixels"]},
            image_mean=mean,
            image_std=std,
            cap_pixels_per_frame=True,
            max_video_tokens=1024,
            **common,
        )
        return Qwen2_5_VLProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=video_processor,
            chat_template=template,
        )
    from transformers import Qwen3VLProcessor, Qwen3VLVideoProcessor

    # Qwen3-VL's bounds the whole clip's area (here 8 frames at the image maximum) and, with
    # the reference cap, each frame's to max_video_tokens tokens (the image maximum).
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": 2 * s["min_pixels"], "longest_edge": 8 * s["max_pixels"]},
        image_mean=mean,
        image_std=std,
        cap_pixels_per_frame=True,
        max_video_tokens=s["max_pixels"] // (patch * MERGE_SIZE) ** 2,
        **common,
    )
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=template,
    )


def _write_checkpoint(arch: str, out_dir: str, seed: int, s: dict[str, int]) -> None:
    import torch
    from transformers import GenerationConfig

    template = _tok.chat_template(arch)
    tokenizer = _tok.train_tokenizer(arch, s["vocab_size"], chat_template=template)
    ids = {
        "pad": tokenizer.convert_tokens_to_ids(_tok.PAD_TOKEN),
        "eos": tokenizer.convert_tokens_to_ids(_tok.EOS_TOKEN),
        "image": tokenizer.convert_tokens_to_ids(_tok.IMAGE_PAD),
        "video": tokenizer.convert_tokens_to_ids(_tok.VIDEO_PAD),
        "vision_start": tokenizer.convert_tokens_to_ids(_tok.VISION_START),
        "vision_end": tokenizer.convert_tokens_to_ids(_tok.VISION_END),
    }
    ids["bos"] = ids["pad"]  # Qwen has no BOS token; its configs name <|endoftext|>
    vocab_size = -(-len(tokenizer) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    config = _configs(arch, s, ids, vocab_size)
    model_cls = _model_class(arch)

    # Seed a forked RNG so that the caller's random state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)
        try:
            model = model_cls(config)
        finally:
            torch.set_default_dtype(previous)
    model = model.to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos"],
        eos_token_id=[ids["eos"], ids["pad"]],
        pad_token_id=ids["pad"],
        do_sample=False,
    )
    processor = _processor(arch, s, tokenizer, template)
    from transformers.utils import logging as hf_logging

    # One shard: no "Writing model shards" bar. Restored afterwards.
    bars = hf_logging.is_progress_bar_enabled()
    if bars:
        hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(out_dir, safe_serialization=True)
        processor.save_pretrained(out_dir)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    from ..models import add_v4_files

    add_v4_files(out_dir)


def _model_class(arch: str) -> Any:
    if arch == "qwen2_5_vl":
        from transformers import Qwen2_5_VLForConditionalGeneration

        return Qwen2_5_VLForConditionalGeneration
    from transformers import Qwen3VLForConditionalGeneration

    return Qwen3VLForConditionalGeneration
