"""Reward function for EasyR1.

EasyR1 loads a reward function from a file path::

    worker.reward.reward_function=$(python -c "import spatial_ssrl.reward.easyr1 as m; print(m.__file__)"):compute_score

and reads how to call it from the module's ``REWARD_TYPE`` (``verl/workers/reward/function.py``,
``AutoRewardManager``, EasyR1 b44b311; there is no ``reward_type`` config key any more). Ours is
``"batch"``: ``compute_score`` receives a list of dicts ``{"response", "response_length",
"ground_truth"}`` and returns one dict per input; given one dict (the ``"sequential"`` way) it
returns one dict. Every returned dict
holds only floats (``overall``, ``format``, ``accuracy``), which EasyR1 logs as metrics.
Extra keyword arguments come from ``worker.reward.reward_function_kwargs``: ``format_weight``
(0.1) and the other options of :func:`spatial_ssrl.reward.score`; unknown ones are ignored.

EasyR1 passes only the ground-truth string, so the answer type is inferred from it (one
letter: choice; two hyphen-separated integers: flip; three or more: permutation; a decimal
number such as ``2.35``: numeric, the distance task's metres; see
:func:`spatial_ssrl.reward.infer_answer_type`). An input dict may carry ``answer_type`` and
``options`` keys to override that.

The file is loaded by path, outside its package, so it imports the package absolutely.
"""

from __future__ import annotations

from typing import Any

from spatial_ssrl.reward.scoring import DEFAULT_FORMAT_WEIGHT, SCORE_OPTIONS, score

REWARD_NAME = "spatial_ssrl"  # what EasyR1 prints when it loads the function
REWARD_TYPE = "batch"  # EasyR1 passes the whole batch of responses in one call


def _score_one(item: dict, settings: dict) -> dict[str, float]:
    if not isinstance(item, dict):
        raise TypeError(f"EasyR1 reward inputs are dicts, got {type(item).__name__}")
    result = score(
        item.get("response"),
        item.get("ground_truth", item.get("answer")),
        item.get("answer_type"),
        options=item.get("options"),
        **settings,
    )
    return {"overall": result["overall"], "format": result["format"], "accuracy": result["accuracy"]}


def compute_score(
    reward_inputs: list[dict[str, Any]] | dict[str, Any],
    format_weight: float = DEFAULT_FORMAT_WEIGHT,
    **kwargs: Any,
) -> list[dict[str, float]] | dict[str, float]:
    """Score a batch (a list of dicts: EasyR1 with ``REWARD_TYPE = "batch"``) or one input
    (a dict)."""
    settings = {k: v for k, v in kwargs.items() if k in SCORE_OPTIONS and k != "options"}
    settings["format_weight"] = format_weight
    if isinstance(reward_inputs, dict):
        return _score_one(reward_inputs, settings)
    return [_score_one(item, settings) for item in reward_inputs]


__all__ = ["REWARD_NAME", "REWARD_TYPE", "compute_score"]
