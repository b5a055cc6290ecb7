"""The reward: ``overall = accuracy_weight * accuracy + format_weight * format``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .canon import ANSWER_TYPES, infer_answer_type, read_prediction
from .numeric import mean_relative_accuracy
from .parsing import DEFAULT_MAX_ANSWER_CHARS, DEFAULT_MAX_BOXES, parse_response

DEFAULT_FORMAT_WEIGHT = 0.1
# Keyword options of :func:`score`; adapters pass these through and drop anything else.
SCORE_OPTIONS = (
    "options",
    "accuracy_weight",
    "format_weight",
    "allow_hedging",
    "partial_credit",
    "require_format",
    "max_boxes",
    "max_answer_chars",
)


def _options_tuple(options: Any) -> tuple[str, ...] | None:
    """Options as a tuple of strings; None for a missing or empty value (a numpy array
    or pyarrow list from a dataset row works too)."""
    if options is None or isinstance(options, (str, bytes)):
        return None
    try:
        items = tuple(str(o) for o in options)
    except TypeError:
        return None
    return items or None


def _weights(accuracy_weight: float | None, format_weight: float) -> tuple[float, float]:
    fw = float(format_weight)
    aw = 1.0 - fw if accuracy_weight is None else float(accuracy_weight)
    if not (0.0 <= fw <= 1.0 and 0.0 <= aw <= 1.0) or aw + fw > 1.0 + 1e-9:
        raise ValueError(
            f"weights must be in [0, 1] and sum to at most 1 (accuracy_weight={aw}, format_weight={fw})"
        )
    return aw, fw


def score(
    response: str | None,
    answer: Any,
    answer_type: str | None = None,
    *,
    options: Iterable[str] | None = None,
    accuracy_weight: float | None = None,
    format_weight: float = DEFAULT_FORMAT_WEIGHT,
    allow_hedging: bool = False,
    partial_credit: float = 0.0,
    require_format: bool = False,
    max_boxes: int = DEFAULT_MAX_BOXES,
    max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
) -> dict[str, Any]:
    """Score one response against its ground truth.

    Arguments:
        response: the model's text (None counts as an empty response).
        answer: the ground truth as written in the dataset (``"A"``, ``"0-2-3-1"``, ``"3-0"``).
        answer_type: ``"choice"``, ``"permutation"``, ``"flip"``, ``"numeric"`` or
            ``"exact"``; inferred from ``answer`` when None (see :func:`infer_answer_type`).
            A ``numeric`` answer (a length in metres) earns partial credit: its accuracy is
            the mean relative accuracy of the one length the box states
            (:func:`spatial_ssrl.reward.numeric.mean_relative_accuracy`), 1.0 only within
            5 % of the truth; a reading that is not 1.0 has the reason ``approximate``
            (some credit) or ``wrong_answer`` (none).
        options: the option texts of a choice question, in letter order; lets the text of
            an option stand for its letter.
        accuracy_weight, format_weight: the reward's weights; ``accuracy_weight`` defaults
            to ``1 - format_weight`` (0.9 / 0.1 as in the paper).
        allow_hedging: score only the last box even when earlier boxes of the answer
            region give other answers (the paper's behaviour). Off by default: any
            disagreement between boxes gives accuracy 0.
        partial_credit: for permutations, a wrong but valid permutation earns
            ``partial_credit * (share of positions right)`` accuracy. 0 (off) by default.
        require_format: accuracy counts only when the format check passes. Off by
            default (the paper scores the two independently).
        max_boxes: more boxes than this in the answer region gives accuracy 0.
        max_answer_chars: a box whose content is longer is not read.

    Returns a dict: ``overall``, ``format``, ``accuracy`` (floats in [0, 1]),
    ``prediction`` (canonical final answer or None), ``answer`` (canonical ground truth),
    ``reason`` (why accuracy is below 1, None when it is 1), ``format_reason`` (why
    format is 0, None when it is 1), ``boxes`` (boxes read in the answer region),
    ``hedged`` (True when boxes disagree).
    """
    aw, fw = _weights(accuracy_weight, format_weight)
    if not 0.0 <= float(partial_credit) <= 1.0:
        raise ValueError(f"partial_credit must be in [0, 1], not {partial_credit}")
    if response is None:
        response = ""
    elif not isinstance(response, str):
        raise TypeError(f"response must be a string, not {type(response).__name__}")
    truth_text = "" if answer is None else str(answer)
    kind = answer_type if answer_type else infer_answer_type(truth_text)
    if kind not in ANSWER_TYPES:
        raise ValueError(f"unknown answer_type {kind!r}; expected one of {', '.join(ANSWER_TYPES)}")
    opts = _options_tuple(options)

    parsed = parse_response(response, max_boxes=max_boxes, max_answer_chars=max_answer_chars)
    fmt = 1.0 if parsed.format_ok else 0.0

    accuracy = 0.0
    prediction = None
    truth = None
    hedged = False
    reason = None
    if parsed.region_reason is not None:
        reason = parsed.region_reason
    elif parsed.box_problem is not None:
        reason = parsed.box_problem
    elif not parsed.boxes:
        reason = "no_box"

    if reason is None:
        (prediction, read_reason), truth = read_prediction(parsed.boxes[-1], kind, truth_text, opts)
        if truth is None:
            reason = "invalid_ground_truth"
        elif prediction is None:
            reason = read_reason
        else:
            if len(parsed.boxes) > 1:
                for raw in parsed.boxes[:-1]:
                    (other, _), _ = read_prediction(raw, kind, truth_text, opts)
                    if other != prediction:
                        hedged = True
                        break
            if hedged and not allow_hedging:
                reason = "hedged"
            elif kind == "numeric":
                accuracy = mean_relative_accuracy(float(prediction), float(truth))
                if accuracy < 1.0:
                    reason = "approximate" if accuracy > 0.0 else "wrong_answer"
            elif prediction == truth:
                accuracy = 1.0
            else:
                reason = "wrong_answer"
                if partial_credit and kind == "permutation":
                    p = prediction.split("-")
                    g = truth.split("-")
                    accuracy = float(partial_credit) * sum(a == b for a, b in zip(p, g)) / len(g)
                    accuracy = min(max(accuracy, 0.0), 1.0)
    else:
        truth = read_prediction("", kind, truth_text, opts)[1]

    if require_format and not parsed.format_ok and accuracy > 0.0:
        accuracy = 0.0
        reason = "format_required"

    return {
        "overall": aw * accuracy + fw * fmt,
        "format": fmt,
        "accuracy": accuracy,
        "prediction": prediction,
        "answer": truth,
        "reason": reason,
        "format_reason": parsed.format_reason,
        "boxes": len(parsed.boxes),
        "hedged": hedged,
    }
