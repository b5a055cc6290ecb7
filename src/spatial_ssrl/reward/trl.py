"""Reward functions for TRL's ``GRPOTrainer``.

GRPOTrainer calls every reward function as
``f(prompts=..., completions=..., completion_ids=..., trainer_state=..., <every other
dataset column>=...)``, each column a list with one entry per completion. These functions
read the ``answer`` and ``answer_type`` columns (and ``options`` when the dataset has it),
ignore every other keyword, and return one float per completion.

Completions may be plain strings or conversational (a list of messages; the last
assistant message is scored, its content a string or a list of ``{"type": "text"}``
parts).

The paper's reward is ``0.9 * accuracy + 0.1 * format``; in TRL either pass both
functions with ``GRPOConfig(reward_weights=[0.9, 0.1])`` (TRL then logs them apart) or
pass :func:`overall_reward` alone::

    from spatial_ssrl.reward.trl import accuracy_reward, format_reward
    trainer = GRPOTrainer(model=..., reward_funcs=[accuracy_reward, format_reward],
                          args=GRPOConfig(reward_weights=[0.9, 0.1], ...),
                          train_dataset=load_dataset("parquet", data_dir=".../data")["train"])

:func:`make_reward_funcs` builds the same functions with other scoring options
(``allow_hedging``, ``partial_credit``, ``require_format``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spatial_ssrl.reward.parsing import parse_response
from spatial_ssrl.reward.scoring import SCORE_OPTIONS, score

ANSWER_COLUMNS = ("answer", "ground_truth", "solution")


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return _content_text(content.get("text", content.get("content")))
    if isinstance(content, (list, tuple)):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text":
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "".join(parts)
    return str(content)


def completion_text(completion: Any) -> str:
    """The text to score from one TRL completion (string, message, or message list)."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    if isinstance(completion, (list, tuple)):
        for message in reversed(completion):
            if isinstance(message, dict) and message.get("role", "assistant") == "assistant":
                return _content_text(message.get("content"))
            if isinstance(message, str):
                return message
        return ""
    return str(completion)


def _column(kwargs: dict, name: str, i: int, n: int) -> Any:
    values = kwargs.get(name)
    if values is None:
        return None
    if isinstance(values, (list, tuple)) and len(values) == n:
        return values[i]
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        return values  # one value for the whole batch
    try:
        return values[i] if len(values) == n else None
    except (TypeError, IndexError, KeyError):
        return None


def _answers(kwargs: dict, n: int) -> str:
    for name in ANSWER_COLUMNS:
        if kwargs.get(name) is not None:
            return name
    raise ValueError(
        "spatial_ssrl reward: the dataset needs an 'answer' column (GRPOTrainer passes dataset "
        f"columns to reward functions as keyword arguments); got only {sorted(kwargs)}"
    )


def _scores(completions: list, kwargs: dict, settings: dict) -> list[dict]:
    n = len(completions)
    answer_col = _answers(kwargs, n)
    out = []
    for i, completion in enumerate(completions):
        out.append(
            score(
                completion_text(completion),
                _column(kwargs, answer_col, i, n),
                _column(kwargs, "answer_type", i, n),
                options=_column(kwargs, "options", i, n),
                **settings,
            )
        )
    return out


def make_reward_funcs(**settings: Any) -> tuple[Callable[..., list[float]], ...]:
    """``(accuracy_reward, format_reward, overall_reward)`` scored with ``settings``
    (any keyword of :func:`spatial_ssrl.reward.score` except ``options``, which comes
    from the dataset's ``options`` column)."""
    unknown = sorted(set(settings) - set(SCORE_OPTIONS) | ({"options"} & set(settings)))
    if unknown:
        raise TypeError(f"make_reward_funcs() got unsupported settings: {', '.join(unknown)}")
    score(None, "A", "choice", **settings)  # validate weights and limits now, not mid-training

    def accuracy_reward(completions: list, **kwargs: Any) -> list[float]:
        return [float(s["accuracy"]) for s in _scores(completions, kwargs, settings)]

    def format_reward(completions: list, **kwargs: Any) -> list[float]:
        limits = {k: settings[k] for k in ("max_boxes", "max_answer_chars") if k in settings}
        return [1.0 if parse_response(completion_text(c), **limits).format_ok else 0.0 for c in completions]

    def overall_reward(completions: list, **kwargs: Any) -> list[float]:
        return [float(s["overall"]) for s in _scores(completions, kwargs, settings)]

    accuracy_reward.__doc__ = "Accuracy (0 or 1) of each completion against the 'answer' column."
    format_reward.__doc__ = "1.0 when a completion is a think block followed by a complete \\boxed{} answer."
    overall_reward.__doc__ = "accuracy_weight * accuracy + format_weight * format (0.9 / 0.1 by default)."
    return accuracy_reward, format_reward, overall_reward


accuracy_reward, format_reward, overall_reward = make_reward_funcs()

__all__ = ["accuracy_reward", "completion_text", "format_reward", "make_reward_funcs", "overall_reward"]
