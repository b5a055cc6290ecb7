"""GRPO reward functions: one accuracy function per task, plus the format function.

TRL calls each reward function as ``fn(completions, **columns)`` and logs each one's mean
(``rewards/<name>/mean``). A function returning ``None`` for a row does not apply to it:
TRL turns None into NaN, sums the weighted rewards with ``nansum`` and leaves NaN out of
each function's mean. So ``accuracy_<task>`` (weight ``accuracy_weight``) scores only that
task's rows, the total reward of a row is still ``0.9 * accuracy + 0.1 * format``, and
every log line carries the accuracy of each task in the batch.

All scoring goes through :func:`spatial_ssrl.reward.score` (the same code as
``ssrl score``), with the dataset's ``answer``, ``answer_type`` and ``options`` columns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..reward.trl import make_reward_funcs


def _task_accuracy(task: str, accuracy: Callable, recorder=None) -> Callable:
    def reward(completions: list, **kwargs: Any) -> list[float | None]:
        tasks = kwargs.get("task")
        if tasks is None:
            raise ValueError("per-task rewards need the dataset's 'task' column")
        rows = [i for i, t in enumerate(tasks) if t == task]
        out: list[float | None] = [None] * len(completions)
        if not rows:
            return out
        sub = {k: [v[i] for i in rows] if isinstance(v, list) and len(v) == len(completions) else v
               for k, v in kwargs.items()}
        for i, value in zip(rows, accuracy([completions[i] for i in rows], **sub)):
            out[i] = value
        if recorder is not None:  # the curriculum's view: accuracies by prompt and level
            levels = kwargs.get("level") or kwargs.get("variant") or [""] * len(completions)
            ids = kwargs.get("id") or list(range(len(completions)))
            recorder.record(task, [ids[i] for i in rows], [levels[i] for i in rows], [out[i] for i in rows])
        return out

    reward.__name__ = f"accuracy_{task}"
    reward.__qualname__ = reward.__name__
    reward.__doc__ = f"Accuracy (0/1) of {task} rows; None for rows of other tasks."
    return reward


def make_rewards(tasks: list[str] | None = None, per_task: bool = True, accuracy_weight: float = 0.9,
                 format_weight: float = 0.1, recorder=None, **settings: Any) -> tuple[list[Callable], list[float]]:
    """``(reward_funcs, reward_weights)`` for GRPOTrainer. With ``per_task`` (and ``tasks``
    known), one accuracy function per task; otherwise one accuracy function for all rows.
    ``recorder`` (a :class:`spatial_ssrl.training.curriculum.GroupRecorder`) receives each
    task's accuracies by prompt (``id``) and level (``level``, else ``variant``).
    ``settings`` go to :func:`spatial_ssrl.reward.score` (``allow_hedging``, ``partial_credit``)."""
    accuracy, fmt, _overall = make_reward_funcs(**settings)
    if recorder is not None and not (per_task and tasks):
        raise ValueError("a curriculum recorder needs per-task rewards")
    if per_task and tasks:
        funcs = [_task_accuracy(t, accuracy, recorder) for t in sorted(tasks)]
        weights = [accuracy_weight] * len(funcs)
    else:
        funcs, weights = [accuracy], [accuracy_weight]
    if format_weight:
        funcs.append(fmt)
        weights.append(format_weight)
    return funcs, weights
