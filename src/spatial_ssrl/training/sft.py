"""SFT cold start on TRL's SFTTrainer (LoRA through peft), ending in a plain checkpoint."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .config import RunConfig


@dataclass
class RunOutcome:
    output: str
    final_model: str | None
    steps: int
    resumed_from: str | None
    stats: dict
    already_complete: bool = False


def already_complete(cfg: RunConfig, output: str, resume: bool) -> RunOutcome | None:
    """``--resume`` on a run that finished and that the settings would not take further:
    nothing to do (a job script resuming after every preemption must not fail once done)."""
    from .runs import finished_run

    marker = finished_run(output, cfg.kind, cfg.trl.get("max_steps")) if resume else None
    if marker is None:
        return None
    return RunOutcome(output, marker.get("final_model") or output, int(marker.get("steps") or 0), None,
                      marker.get("data_stats") or {}, already_complete=True)


def trl_args(cfg: RunConfig, output: str, **extra):
    """TRL's config object for ``cfg``: output folder set, bf16 where the hardware has it."""
    import torch

    values = dict(extra)
    values["output_dir"] = output
    # checkpoints are rotated by CheckpointMarkerCallback once the new one is complete, never
    # before (transformers would delete the previous one while the new one is unmarked)
    values["save_total_limit"] = None
    if "bf16" not in cfg.trl and "fp16" not in cfg.trl:
        values["bf16"] = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if not torch.cuda.is_available() and "use_cpu" not in cfg.trl:
        values["use_cpu"] = True
    return cfg.trl_args(**values)


def _drop_overlong(ds, processor, limit: int | None):
    """Drop (and count) examples whose tokenised length, image tokens included, exceeds
    ``limit``: cutting them would split an image's tokens and break the input."""
    if not limit:
        return ds, 0
    from ..backends.transformers_backend import _pil

    def length(row) -> int:
        text = processor.apply_chat_template(row["messages"], tokenize=False)
        images = [_pil(im) for im in row["images"]] or None
        return len(processor(text=[text], images=images, return_tensors="np")["input_ids"][0])

    keep = [i for i, row in enumerate(ds) if length(row) <= limit]
    dropped = len(ds) - len(keep)
    return (ds.select(keep) if dropped else ds), dropped


def lora_config(o: dict):
    """peft's LoraConfig from our ``lora*`` keys, or None when LoRA is off."""
    if not o["lora"]:
        return None
    from peft import LoraConfig

    return LoraConfig(r=o["lora_r"], lora_alpha=o["lora_alpha"], lora_dropout=o["lora_dropout"],
                      target_modules=o["lora_target_modules"], task_type="CAUSAL_LM")


def run_sft(cfg: RunConfig, resume: bool = False) -> RunOutcome:
    from trl import SFTTrainer

    from ..models import (
        check_model_folder,
        freeze_vision_tower,
        load_model,
        load_processor,
    )
    from ..readers import DatasetError, open_dataset
    from .callbacks import CheckpointMarkerCallback, JsonlLogCallback
    from .data import DataError, say_skipped, sft_dataset
    from .resume import exact_resume
    from .runs import check_run_folder, run_folder, write_marker

    o = cfg.opts
    output = os.path.abspath(o["output"])
    done = already_complete(cfg, output, resume)
    if done is not None:
        return done
    check_run_folder(output, cfg.kind, resume)
    check_model_folder(o["model"])
    split = o["train_split"] or "train"
    try:  # data problems surface before anything loads
        reader = open_dataset(o["data"])
        if not reader.index(split):
            raise DataError(f"the {split} split of {o['data']} is empty")
    except DatasetError as exc:
        raise DataError(str(exc)) from None
    if reader.format != "sft":
        raise DataError(f"{o['data']} is a {reader.format} dataset, not cold-start data: make it with "
                        f"`ssrl coldstart --data {o['data']} --out COLDSTART` and train on COLDSTART")
    args = trl_args(cfg, output)  # TRL checks its settings here

    with run_folder(output, "sft", cfg.as_dict(), resume) as checkpoint:
        ds, stats = sft_dataset(o["data"], split, cache_dir=os.path.join(output, "dataset_cache"))
        say_skipped(stats, "cold-start examples")
        processor = load_processor(o["model"], o["min_pixels"], o["max_pixels"])
        ds, dropped = _drop_overlong(ds, processor, o["max_sequence_tokens"])
        stats["dropped_overlong"] = dropped
        if len(ds) == 0:
            raise DataError(f"every cold-start example is longer than max_sequence_tokens={o['max_sequence_tokens']}")
        model = load_model(o["model"], o["torch_dtype"], o["attn_implementation"])
        if o["freeze_vision_tower"]:
            freeze_vision_tower(model)
        trainer = exact_resume(SFTTrainer)(model=model, args=args, train_dataset=ds, processing_class=processor,
                             peft_config=lora_config(o), callbacks=[JsonlLogCallback(output),
                                        CheckpointMarkerCallback(cfg.trl.get("save_total_limit"))])
        trainer.train(resume_from_checkpoint=checkpoint)
        final = save_final(trainer, processor, output, merge=bool(o["lora"] and o["merge_lora"]))
        write_marker(output, "sft", cfg.as_dict(), status="complete", final_model=final,
                     steps=trainer.state.global_step, data_stats=stats)
        return RunOutcome(output, final, trainer.state.global_step, checkpoint, stats)


def save_final(trainer, processor, output: str, merge: bool) -> str:
    """Write the final model at the top of the run folder: config + safetensors + processor.
    A LoRA adapter is merged into the weights first (``merge``), so no adapter files remain.
    The folder loads in transformers 4.57 as well as 5.x (:func:`~spatial_ssrl.models.add_v4_files`)
    and carries the base model's pixel bounds (:func:`~spatial_ssrl.models.save_processor`)."""
    from ..models import add_v4_files, save_processor

    model = trainer.accelerator.unwrap_model(trainer.model)
    if merge and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if trainer.accelerator.is_main_process:
        model.save_pretrained(output, safe_serialization=True)
        save_processor(processor, output)  # with the base model's pixel bounds, not the run's
        add_v4_files(output)  # EasyR1 and verl load it with transformers 4.57
    trainer.accelerator.wait_for_everyone()
    return output
