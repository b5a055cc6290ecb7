"""Exact resume: a checkpoint's weights go back into the model tensor for tensor.

transformers 5 saves Qwen-VL checkpoints in the original key layout (``model.embed_tokens``,
``visual.*``) while the model in memory uses another (``model.language_model.*``,
``model.visual.*``); ``from_pretrained`` maps one onto the other, but ``Trainer``'s resume
path loads the file with a plain ``load_state_dict(strict=False)``, warns about every key and
goes on with the weights it had. Here the same mapping ``from_pretrained`` uses (the model's
weight conversions) renames the checkpoint's keys first, and any key left missing or
unexpected is an error naming the first ones.

Paths:

- full weights (``model.safetensors``, sharded or not; ``pytorch_model.bin``): renamed as
  above, loaded strictly, tied weights counted as present;
- LoRA (a peft model, ``adapter_model.safetensors``): peft's own loader, then a check that
  every tensor of the active adapter came from the file and nothing else was in it;
- DeepSpeed (ZeRO-2/3) and FSDP: transformers loads their own checkpoint formats
  (``global_stepN/`` and ``pytorch_model_fsdp_*``), which hold the module's state in the
  model's own key layout and load strictly (DeepSpeed: ``load_module_strict`` for full
  fine-tuning); those paths are left to transformers and need a GPU to run.
"""

from __future__ import annotations

import json
import os

from .runs import RunFolderError


class ResumeError(RunFolderError):
    """A checkpoint whose weights do not fit the model (the message names the first keys)."""


def _first(keys, n: int = 3) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _keys(missing: list, unexpected: list) -> str:
    parts = [f"missing {_first(missing)}"] if missing else []
    if unexpected:
        parts.append(f"unexpected {_first(unexpected)}")
    return "; ".join(parts)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read_errors() -> tuple[type[BaseException], ...]:
    import pickle

    from safetensors import SafetensorError

    return (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError)


def _read_state(checkpoint: str) -> dict:
    """Every tensor of a full-weights checkpoint (one file or an index of shards), on the CPU."""
    import torch
    from safetensors.torch import load_file

    _READ_ERRORS = _read_errors()
    single = os.path.join(checkpoint, "model.safetensors")
    index = os.path.join(checkpoint, "model.safetensors.index.json")
    try:
        if os.path.isfile(single):
            return load_file(single, device="cpu")
        if os.path.isfile(index):
            with open(index, encoding="utf-8") as fh:
                shards = sorted(set(json.load(fh)["weight_map"].values()))
            state: dict = {}
            for shard in shards:
                state.update(load_file(os.path.join(checkpoint, shard), device="cpu"))
            return state
        binary = os.path.join(checkpoint, "pytorch_model.bin")
        if os.path.isfile(binary):
            return torch.load(binary, map_location="cpu", weights_only=True)
    except _READ_ERRORS as exc:  # a torn or corrupt file
        raise ResumeError(f"cannot read the weights of {checkpoint}: {_why(exc)}") from None
    raise ResumeError(f"{checkpoint} holds no model weights (model.safetensors or an index of shards)")


def _renamings(model) -> list | None:
    """The key renamings ``from_pretrained`` applies for ``model`` (None when some transform
    is more than a rename, e.g. fused expert weights)."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightRenaming
    except ImportError:  # transformers 4: checkpoints are saved in the model's own layout
        return []
    conversions = getattr(model, "_weight_conversions", None)
    if conversions is None:
        conversions = get_model_conversion_mapping(model)
    if any(not isinstance(c, WeightRenaming) for c in conversions):
        return None
    return list(conversions)


def map_checkpoint_keys(model, state: dict) -> dict:
    """``state`` (a checkpoint's tensors) keyed the way ``model.state_dict()`` is."""
    renamings = _renamings(model)
    if renamings is None:  # pragma: no cover - no such model in the tests
        raise ResumeError(f"{type(model).__name__}: its checkpoints are converted, not only renamed, on load; "
                          "resume is supported for models whose weights load by renaming (Qwen2.5-VL, Qwen3-VL)")
    if not renamings:
        return state
    from transformers.core_model_loading import rename_source_key

    target = model.state_dict()
    prefix = getattr(model, "base_model_prefix", None) or None
    out = {}
    for key, tensor in state.items():
        new, _ = rename_source_key(key, renamings, [], prefix, target)
        out[new] = tensor
    return out


def load_full_weights(model, checkpoint: str) -> int:
    """Load ``checkpoint``'s weights into ``model``, every key accounted for; returns the
    number of tensors loaded."""
    state = map_checkpoint_keys(model, _read_state(checkpoint))
    target = model.state_dict()
    unexpected = [k for k in state if k not in target]
    missing = [k for k in target if k not in state]
    if missing:  # a tied weight (lm_head = embed_tokens) is saved once
        loaded_ptrs = {target[k].data_ptr() for k in state if k in target}
        missing = [k for k in missing if target[k].data_ptr() not in loaded_ptrs]
    if missing or unexpected:
        raise ResumeError(f"the weights in {checkpoint} do not fit the model ({_keys(missing, unexpected)}); "
                          "resume with the --model the run started from")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a shape mismatch
        line = next((x.strip() for x in str(exc).splitlines() if "size mismatch" in x), str(exc).splitlines()[0])
        raise ResumeError(f"the weights in {checkpoint} do not fit the model: {line}") from None
    return len(state)


def load_adapter_weights(model, checkpoint: str) -> int:
    """Load a LoRA checkpoint (``adapter_model.safetensors``) into the active adapter of a
    peft model; every adapter tensor must come from the file."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    _READ_ERRORS = _read_errors()
    path = os.path.join(checkpoint, "adapter_model.safetensors")
    if not os.path.isfile(path):
        raise ResumeError(f"{checkpoint} holds no adapter_model.safetensors (a LoRA run's checkpoints do)")
    try:
        state = load_file(path, device="cpu")
    except _READ_ERRORS as exc:
        raise ResumeError(f"cannot read {path}: {_why(exc)}") from None
    adapter = model.active_adapters[0] if hasattr(model, "active_adapters") else "default"
    result = set_peft_model_state_dict(model, state, adapter_name=adapter)
    own = [n for n, _ in model.named_parameters() if f".{adapter}." in n]
    missing = [k for k in result.missing_keys if f".{adapter}." in k]
    unexpected = list(result.unexpected_keys)
    if missing or unexpected or not own:
        raise ResumeError(f"the adapter in {checkpoint} does not fit the model "
                          f"({_keys(missing, unexpected) or 'no adapter'}); "
                          "resume with the same LoRA settings the run started with")
    return len(state)


def is_peft_model(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is in the train extra
        return False
    return isinstance(model, PeftModel)


class ExactResumeMixin:
    """Put before a transformers ``Trainer`` subclass: its resume loads weights through
    :func:`load_full_weights` / :func:`load_adapter_weights`. DeepSpeed and FSDP keep
    transformers' own loaders (their formats hold the model's own layout)."""

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if getattr(self, "is_fsdp_enabled", False) or getattr(self, "is_deepspeed_enabled", False):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        model = self.model if model is None else model
        if is_peft_model(model):
            load_adapter_weights(model, resume_from_checkpoint)
        else:
            load_full_weights(model, resume_from_checkpoint)
        return None


class OnlineResumeMixin:
    """With ``ssrl_feeder`` set (an online run resuming), the batches the trainer skips to
    reach its data position come from placeholder rows instead of generated samples: the
    feeder passes the source rows of every generation round completed before the checkpoint
    without generating them (``ssrl_feeder_state``: what it saved there)."""

    ssrl_feeder = None
    ssrl_feeder_state = None

    def get_resumed_dataloader(self, dataloader, num_batches):
        if self.ssrl_feeder is not None:
            args = self.args
            per_round = args.generation_batch_size // self.num_generations  # prompts a round draws
            micro_per_round = args.steps_per_generation * getattr(self, "num_iterations", 1)
            self.ssrl_feeder.fast_forward((num_batches // micro_per_round) * per_round, self.ssrl_feeder_state)
        return super().get_resumed_dataloader(dataloader, num_batches)


def exact_resume(trainer_cls):
    """``trainer_cls`` with :class:`ExactResumeMixin` and :class:`OnlineResumeMixin` (which does
    nothing unless an online GRPO run sets its feeder)."""
    return type(trainer_cls.__name__, (ExactResumeMixin, OnlineResumeMixin, trainer_cls), {"__module__": __name__})
