"""Reward function for verl.

verl loads a custom reward function from a file path::

    custom_reward_function.path=$(python -c "import spatial_ssrl.reward.verl as m; print(m.__file__)") \\
    custom_reward_function.name=compute_score

Its reward managers call ``compute_score(data_source=..., solution_str=..., ground_truth=...,
extra_info=...)`` with keywords (plus ``custom_reward_function.reward_kwargs``, and in some
versions further keywords; unknown ones are ignored). The result is a dict whose ``score``
verl uses as the reward; its other keys (``acc``, ``format``) are numbers that verl collects
as extra reward information and logs. For ``reward_model.reward_manager=batch`` use
:func:`compute_score_batched` as the function name, with ``reward_model.use_reward_loop=false``:
verl's reward loop registers no batch manager and refuses it ("Unknown reward manager: batch",
``verl/experimental/reward_loop/reward_manager/registry.py`` at verl b178a3c).

The answer type comes from ``extra_info["answer_type"]`` (the ``ssrl generate --format verl``
writer puts it there with ``options``), else from the task in ``data_source``
(``spatial_ssrl/<task>``), else from the ground truth (see
:func:`spatial_ssrl.reward.infer_answer_type`).

The file is loaded by path, outside its package, so it imports the package absolutely.
"""

from __future__ import annotations

from typing import Any

from spatial_ssrl.reward.scoring import SCORE_OPTIONS, score

TASK_ANSWER_TYPES = {
    "shuffle": "permutation",
    "depth": "permutation",
    "flip": "flip",
    "crop": "choice",
    "position": "choice",
    "distance": "numeric",
    "rotation": "choice",
    "camera_motion": "choice",
    "correspondence": "choice",
    "temporal": "permutation",
    "counting": "choice",
}


def _answer_type(data_source: Any, extra_info: Any) -> str | None:
    if isinstance(extra_info, dict):
        kind = extra_info.get("answer_type")
        if kind:
            return str(kind)
        task = extra_info.get("task")
        if task in TASK_ANSWER_TYPES:
            return TASK_ANSWER_TYPES[task]
    if isinstance(data_source, str) and data_source.startswith("spatial_ssrl/"):
        return TASK_ANSWER_TYPES.get(data_source.split("/", 1)[1])
    return None


def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Score one response; returns ``{"score", "acc", "format"}``."""
    settings = {k: v for k, v in kwargs.items() if k in SCORE_OPTIONS and k != "options"}
    options = extra_info.get("options") if isinstance(extra_info, dict) else None
    result = score(solution_str, ground_truth, _answer_type(data_source, extra_info), options=options, **settings)
    return {"score": result["overall"], "acc": result["accuracy"], "format": result["format"]}


def compute_score_batched(
    data_sources: list,
    solution_strs: list[str],
    ground_truths: list,
    extra_infos: list | None = None,
    **kwargs: Any,
) -> list[dict[str, float]]:
    """The batch form used by verl's ``BatchRewardManager``."""
    if extra_infos is None:
        extra_infos = [None] * len(solution_strs)
    return [
        compute_score(ds, sol, gt, extra, **kwargs)
        for ds, sol, gt, extra in zip(data_sources, solution_strs, ground_truths, extra_infos)
    ]


__all__ = ["TASK_ANSWER_TYPES", "compute_score", "compute_score_batched"]
