"""GRPO on TRL's GRPOTrainer with the verifiable pretext-task reward."""

from __future__ import annotations

import os
import sys

from .config import ConfigError, RunConfig
from .sft import RunOutcome, already_complete, lora_config, save_final, trl_args


class ColdStartRequired(ValueError):
    """GRPO was asked to start from a model that has not had the SFT cold start."""


def check_coldstart(model_path: str, no_coldstart: bool) -> None:
    """The paper starts GRPO from the cold-started model; refuse another start unless the
    user says so with ``--no-coldstart`` (peers report the cold start can hurt RL, so the
    comparison should be one flag away, and never happen by accident)."""
    from ..models import read_marker

    if no_coldstart:
        return
    marker = read_marker(model_path) if os.path.isdir(model_path) else None
    if marker is None and os.path.basename(os.path.normpath(model_path)).startswith("checkpoint-"):
        marker = read_marker(os.path.dirname(os.path.normpath(model_path)))  # a checkpoint inside our run
        if marker is not None:
            marker = {**marker, "status": "complete"}  # a complete checkpoint of that run
    if marker is None or marker.get("kind") not in ("sft", "grpo") or marker.get("status") != "complete":
        raise ColdStartRequired(
            f"model {model_path} has not been through the SFT cold start (`ssrl train sft` writes it); "
            "pass --no-coldstart to run GRPO straight from this model")


TRL_VLLM_IMAGE_ISSUES = "https://github.com/huggingface/trl/issues/6401 (and #6294)"


def check_vllm_images(cfg: RunConfig, model: str, model_config: dict | None) -> None:
    """Refuse Qwen3-VL with vLLM in colocate mode: TRL (1.16) hands vLLM prompt ids whose
    image tokens its processor already expanded, together with the raw images, and vLLM
    expands them again; when the two counts differ (images of mixed sizes) the run crashes
    in get_rope_index or, worse, trains on corrupted prompts. Until TRL ships its fix, the
    way out is TRL's server mode or generation without vLLM."""
    if not cfg.trl.get("use_vllm") or cfg.trl.get("vllm_mode", "colocate") != "colocate":
        return
    model_type = (model_config or {}).get("model_type")
    if model_type is None and model_config is None:  # a hub id: its name tells
        model_type = "qwen3_vl" if "qwen3-vl" in model.lower() else None
    if model_type in ("qwen3_vl", "qwen3_vl_moe"):
        raise ConfigError(f"Qwen3-VL with vLLM in colocate mode is refused: TRL mis-aligns image tokens "
                          f"between its processor and vLLM ({TRL_VLLM_IMAGE_ISSUES}); "
                          "use --set vllm_mode=server, or --set use_vllm=false")


def run_grpo(cfg: RunConfig, resume: bool = False, no_coldstart: bool = False) -> RunOutcome:
    from trl import GRPOTrainer

    from ..models import (
        check_model_folder,
        freeze_vision_tower,
        load_model,
        load_processor,
        pixel_view,
    )
    from ..readers import DatasetError, open_dataset
    from .callbacks import (
        CheckpointMarkerCallback,
        CurriculumCallback,
        JsonlLogCallback,
        PromptLog,
        SampleLogCallback,
        ValidationCallback,
    )
    from .data import (
        DataError,
        grpo_dataset,
        plan_grpo_rows,
        say_skipped,
        validation_records,
    )
    from .resume import exact_resume
    from .rewards import make_rewards
    from .runs import check_run_folder, run_folder, write_marker

    o = cfg.opts
    output = os.path.abspath(o["output"])
    done = already_complete(cfg, output, resume)
    if done is not None:
        return done
    check_run_folder(output, cfg.kind, resume)
    model_config = check_model_folder(o["model"])
    check_vllm_images(cfg, o["model"], model_config)
    check_coldstart(o["model"], no_coldstart)
    split = o["train_split"] or "train"
    online = bool(o["online"])
    reader = None
    if o["data"]:
        try:
            reader = open_dataset(o["data"])
            if not online:
                reader.files(split)
        except DatasetError as exc:
            raise DataError(str(exc)) from None
    if o["validation_steps"] and (reader is None or o["eval_split"] not in reader.splits):
        where = o["data"] or "no data folder (an online run needs `data` for validation)"
        raise DataError(f"validation needs the held-out '{o['eval_split']}' split, which {where} lacks: "
                        f"run `ssrl split DATA` or set validation_steps=0")
    if not online and reader.format == "sft":
        raise DataError(f"{o['data']} is cold-start (SFT) data; GRPO trains on a generated dataset's train split")
    if cfg.trl.get("use_vllm"):
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise ConfigError("use_vllm needs vLLM (0.22-0.30 with TRL 1.16): pip install 'spatial-ssrl[vllm]'")
        if cfg.trl.get("vllm_mode", "colocate") not in ("colocate", "server"):
            raise ConfigError(f"vllm_mode must be colocate or server, got {cfg.trl.get('vllm_mode')!r}")
    n_gen = cfg.trl.get("num_generations", 8)
    if isinstance(n_gen, int) and n_gen < 2:
        raise ConfigError("num_generations must be at least 2: GRPO compares rollouts of the same prompt")

    seed = cfg.trl.get("seed", 42)
    if online:
        from .online import online_plan

        plan = online_plan(cfg)  # sources, mix and curriculum checked before any model loads
        positions, stats = None, {"rows": "online", "per_task": dict.fromkeys(plan.tasks, "online")}
    else:
        plan = None
        positions, stats = plan_grpo_rows(o["data"], split, tasks=o["tasks"], task_weights=o["task_weights"],
                                          max_rows=o["max_train_samples"], seed=seed)
    recorder = plan.recorder if plan is not None else None
    score_settings = {"allow_hedging": bool(o["allow_hedging"]), "partial_credit": float(o["partial_credit"])}
    funcs, weights = make_rewards(sorted(stats["per_task"]), per_task=bool(o["per_task_rewards"]) or online,
                                  accuracy_weight=float(o["accuracy_weight"]),
                                  format_weight=float(o["format_weight"]), recorder=recorder, **score_settings)
    prompt_log = PromptLog()  # which prompt ids each step trained on, every process
    funcs = [prompt_log.wrap(funcs[0]), *funcs[1:]]
    extra = {"shuffle_dataset": False} if online and "shuffle_dataset" not in cfg.trl else {}
    args = trl_args(cfg, output, reward_weights=weights, **extra)  # TRL checks its settings here, before any loading

    with run_folder(output, "grpo", cfg.as_dict(), resume) as checkpoint:
        feeder = None
        if online:
            feeder = plan.feeder(output, args)
            feeder.start()  # its processes warm up while the model loads
            train = feeder.dataset()
        else:
            train, built = grpo_dataset(o["data"], split, cache_dir=os.path.join(output, "dataset_cache"),
                                        positions=positions)
            if built.get("skipped_undecodable_image"):
                stats = {**stats, "rows": built["rows"], "per_task": built["per_task"],
                         "skipped_undecodable_image": built["skipped_undecodable_image"]}
                say_skipped(stats, "training rows")
        # left padding, as TRL sets when it loads the processor itself: the trainer pads prompt
        # ids on the left and the processor's per-token image mask must line up with them
        # (right padding crashes any batch of prompts of unequal length in get_rope_index)
        processor = load_processor(o["model"], o["min_pixels"], o["max_pixels"], padding_side="left")
        model_path = o["model"]
        if cfg.trl.get("use_vllm"):
            # vLLM reads the processor config from the checkpoint folder: give it one with our bounds
            model_path = pixel_view(_local_path(model_path), processor, os.path.join(output, "model_view"))
            if cfg.trl.get("vllm_mode") == "server":
                print(f"vLLM server mode: start the server on the same pixel bounds with\n"
                      f"  trl vllm-serve --model {model_path}", file=sys.stderr, flush=True)
        model = load_model(model_path, o["torch_dtype"], o["attn_implementation"])
        if o["freeze_vision_tower"]:
            freeze_vision_tower(model)
        peft_config = lora_config(o)
        callbacks = [JsonlLogCallback(output), SampleLogCallback(prompt_log, output)]
        curriculum_cb = None
        feeder_state = None
        if online:
            curriculum_cb = CurriculumCallback(plan.curriculum, plan.recorder, feeder, output)
            feeder_state = plan.restore(checkpoint) if checkpoint else None
            callbacks.append(curriculum_cb)
        validation = None
        if o["validation_steps"]:
            records = validation_records(o["data"], o["eval_split"], o["validation_samples"], seed=0)
            validation = ValidationCallback(
                records, processor, output, every=o["validation_steps"],
                max_new_tokens=o["validation_max_new_tokens"] or args.max_completion_length,
                temperature=o["validation_temperature"], top_p=o["validation_top_p"],
                batch_size=o["validation_batch_size"],
                score_settings={"format_weight": float(o["format_weight"]), **score_settings},
            )
            callbacks.append(validation)
        callbacks.append(CheckpointMarkerCallback(cfg.trl.get("save_total_limit")))  # last: after every other on_save
        trainer = exact_resume(GRPOTrainer)(model=model, reward_funcs=funcs, args=args, train_dataset=train,
                              processing_class=processor, peft_config=peft_config, callbacks=callbacks)
        if validation is not None:
            validation.trainer = trainer
        if curriculum_cb is not None:
            curriculum_cb.trainer = trainer
        if checkpoint and feeder is not None and feeder_state is not None:
            trainer.ssrl_feeder, trainer.ssrl_feeder_state = feeder, feeder_state
        try:
            trainer.train(resume_from_checkpoint=checkpoint)
        finally:
            if feeder is not None:
                feeder.close()
        final = save_final(trainer, processor, output, merge=bool(o["lora"] and o["merge_lora"]))
        write_marker(output, "grpo", cfg.as_dict(), status="complete", final_model=final,
                     steps=trainer.state.global_step, data_stats=stats,
                     reward_functions=[f.__name__ for f in funcs], reward_weights=weights)
        return RunOutcome(output, final, trainer.state.global_step, checkpoint, stats)


def _local_path(model: str) -> str:
    if os.path.isdir(model):
        return model
    from huggingface_hub import snapshot_download

    return snapshot_download(model)
