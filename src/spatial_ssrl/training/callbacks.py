"""Trainer callbacks: held-out validation, a JSON-lines training log, a run marker."""

from __future__ import annotations

import json
import math
import os
import time
from collections import OrderedDict
from typing import Any

from transformers import TrainerCallback

from ..prompts import with_format_suffix
from ..reward.cli import build_report


def validate(model, processor, records, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
             batch_size: int = 8, **score_settings: Any) -> tuple[dict, list[dict]]:
    """Generate on ``records`` and score them with the code of ``ssrl score``.
    Returns (report, predictions)."""
    from ..backends.transformers_backend import Item, generate

    items = [Item(with_format_suffix(r.problem or ""), r.images) for r in records]
    responses = generate(model, processor, items, max_new_tokens=max_new_tokens, temperature=temperature,
                         top_p=top_p, batch_size=batch_size)
    samples = OrderedDict((r.id, {"task": r.task, "variant": r.variant, "answer": r.answer,
                                  "answer_type": r.answer_type, "options": r.options}) for r in records)
    preds = [(i + 1, r.id, resp) for i, (r, resp) in enumerate(zip(records, responses))]
    report = build_report(samples, preds, [], **score_settings)
    return report, [{"id": r.id, "task": r.task, "response": resp} for r, resp in zip(records, responses)]


def flat_metrics(report: dict, prefix: str = "val") -> dict[str, float]:
    out = {f"{prefix}/accuracy": report["accuracy"], f"{prefix}/format_rate": report["format_rate"],
           f"{prefix}/parse_failures": float(report["parse_failures"])}
    for task, b in report["per_task"].items():
        out[f"{prefix}/{task}/accuracy"] = b["accuracy"]
        out[f"{prefix}/{task}/format_rate"] = b["format_rate"]
    return {k: float(v) for k, v in out.items() if v is not None}


class ValidationCallback(TrainerCallback):
    """Every ``every`` optimizer steps (and at the end), generate on the held-out records
    and log accuracy per task through the trainer's logger (console, TensorBoard, W&B) and
    to ``validation.jsonl`` in the run folder. ``trainer`` is set after construction."""

    def __init__(self, records, processor, output_dir: str, every: int, max_new_tokens: int,
                 temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 8, score_settings=None):
        self.records = records
        self.processor = processor
        self.path = os.path.join(output_dir, "validation.jsonl")
        self.every = every
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.batch_size = batch_size
        self.score_settings = score_settings or {}
        self.trainer = None
        self._last_step = -1

    def _run(self, state) -> None:
        if self.trainer is None or state.global_step == self._last_step or not self.records:
            return
        self._last_step = state.global_step
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        t0 = time.perf_counter()
        report, preds = validate(model, self.processor, self.records, self.max_new_tokens, self.temperature,
                                 self.top_p, self.batch_size, **self.score_settings)
        metrics = flat_metrics(report)
        metrics["val/seconds"] = round(time.perf_counter() - t0, 3)
        if self.trainer.accelerator.is_main_process:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": state.global_step, "metrics": metrics,
                                     "per_task": report["per_task"], "predictions": preds}) + "\n")
        self.trainer.log(metrics)

    def on_step_end(self, args, state, control, **kwargs):
        if self.every and state.global_step % self.every == 0:
            self._run(state)

    def on_train_end(self, args, state, control, **kwargs):
        if self.every:
            self._run(state)


class JsonlLogCallback(TrainerCallback):
    """Every log line the trainer emits, as JSON lines in ``train_log.jsonl``."""

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, "train_log.jsonl")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or not state.is_world_process_zero:
            return
        row = {"step": state.global_step, **{k: _plain(v) for k, v in logs.items()}}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


def _plain(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)


class CurriculumCallback(TrainerCallback):
    """Each optimizer step: the groups the reward functions saw go to the curriculum, which
    moves levels and weights; its metrics and the online feeder's (samples made, seconds
    the trainer waited for them, that wait as a share of the wall time) are logged. The
    curriculum's state is saved beside each checkpoint (``curriculum_state.json``)."""

    def __init__(self, curriculum, recorder, feeder=None, output_dir: str | None = None):
        self.curriculum = curriculum
        self.recorder = recorder
        self.feeder = feeder
        self.output_dir = output_dir
        self.trainer = None

    def on_step_end(self, args, state, control, **kwargs):
        from .curriculum import groups_of

        metrics = {}
        if self.curriculum is not None:
            # every process moves its curriculum on the whole step, so they stay identical and
            # their online feeders keep drawing one and the same stream
            rows = all_gather(self.recorder.drain_rows())
            metrics.update(self.curriculum.update(groups_of(rows), step=state.global_step))
        if self.feeder is not None:
            metrics.update(self.feeder.stats())
        if metrics and self.trainer is not None:
            self.trainer.log(metrics)

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if not os.path.isdir(folder):
            return
        from ..writers.base import atomic_write_json
        from .online import ONLINE_STATE

        if self.curriculum is not None:
            atomic_write_json(os.path.join(folder, "curriculum_state.json"), self.curriculum.state_dict())
        if self.feeder is not None:
            atomic_write_json(os.path.join(folder, ONLINE_STATE), self.feeder.state())


def all_gather(items: list) -> list:
    """``items`` of every process, concatenated in rank order (on every process)."""
    from .runs import world_size

    if world_size() <= 1:
        return list(items)
    import torch.distributed as dist

    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(items))
    return [x for part in parts for x in part]


class PromptLog:
    """The prompt ids this process's reward functions scored since the last step (each
    completion's ``id``, in order): filled by the reward wrapper, read by
    :class:`SampleLogCallback`."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def wrap(self, func):
        def logged(completions, **kwargs):
            ids = kwargs.get("id")
            if ids is not None:
                self.ids.extend(str(i) for i in ids)
            return func(completions, **kwargs)

        logged.__name__ = func.__name__
        logged.__qualname__ = getattr(func, "__qualname__", func.__name__)
        logged.__doc__ = func.__doc__
        return logged


class SampleLogCallback(TrainerCallback):
    """After each optimizer step, the prompt ids every process trained on (one entry per
    completion, in the order each process scored them), gathered and written by the main
    process to ``train_samples.jsonl``: which rows each step saw, on which rank."""

    def __init__(self, log: PromptLog, output_dir: str):
        self.log = log
        self.path = os.path.join(output_dir, "train_samples.jsonl")

    def on_step_end(self, args, state, control, **kwargs):
        mine, self.log.ids = self.log.ids, []
        by_rank = all_gather([mine])
        if state.is_world_process_zero:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": state.global_step, "ids_by_rank": by_rank}) + "\n")


class CheckpointMarkerCallback(TrainerCallback):
    """Put last among the callbacks: once a checkpoint is saved (every rank's part, and the
    extra state other callbacks add in their ``on_save``), sync it and write the marker that
    makes it count as complete (:func:`~spatial_ssrl.training.runs.mark_checkpoint`); then,
    with ``keep`` (the config's ``save_total_limit``), remove the oldest complete checkpoints
    beyond that many (the best one, when the trainer tracks it, stays)."""

    def __init__(self, keep: int | None = None):
        self.keep = keep if isinstance(keep, int) and keep > 0 else None

    def on_save(self, args, state, control, **kwargs):
        from .runs import barrier, complete_checkpoints, mark_checkpoint

        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        barrier()
        if state.is_world_process_zero and os.path.isdir(folder):
            mark_checkpoint(folder, state.global_step)
            if self.keep:
                import shutil

                best = os.path.abspath(state.best_model_checkpoint) if state.best_model_checkpoint else None
                done = [p for p in complete_checkpoints(args.output_dir) if os.path.abspath(p) != best]
                for old in done[: max(0, len(done) - self.keep)]:
                    shutil.rmtree(old)  # a complete checkpoint of ours, older than the newest `keep`
        barrier()
