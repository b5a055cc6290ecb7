"""Circular evaluation for any multiple-choice benchmark, and the answer-letter audit.

``expand(items)`` adds, for every item whose question lists its options as lines
``A. text`` / ``B. text`` ... and whose answer is a letter, one item per rotation of the
options (``<id>#rot<k>``: option ``i`` moves to position ``(i + k) mod n``, the answer letter
follows its text). ``score(items, responses)`` then counts a question right only when every
rotation of it is right: position bias (always answering A, say) cannot score there.
Benchmarks with a circular design of their own (3DSRBench's rotated rows, What'sUp's option)
take ``circular`` as a loader option instead. Both figures here are ours, not a benchmark's
official one, so they read every response by our strict rule (the boxed letter or option text,
hedges refused), whatever the benchmark's official extraction.

``letter_audit(items, responses)``: the share of items whose right answer is each letter, and
the share of predictions at each letter, so a skewed key or a biased model shows at a glance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .answers import read_choice
from .base import EvalItem

LETTERS = "ABCDEFGHIJ"
SEP = "#rot"


def _block(options: list[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))


def rotatable(item: EvalItem) -> bool:
    opts = item.options
    return (bool(opts) and 2 <= len(opts) <= len(LETTERS) and isinstance(item.answer, str)
            and item.answer in LETTERS[:len(opts)] and item.question.count(_block(opts)) == 1)


def expand(items: list[EvalItem]) -> tuple[list[EvalItem], int]:
    """Items plus their rotations; returns (items, number of items that could not be rotated)."""
    out: list[EvalItem] = []
    not_rotatable = 0
    for it in items:
        out.append(it)
        if not rotatable(it):
            not_rotatable += 1
            continue
        n = len(it.options)
        truth = LETTERS.index(it.answer)
        for k in range(1, n):
            rotated = [it.options[(j - k) % n] for j in range(n)]
            question = it.question.replace(_block(it.options), _block(rotated))
            out.append(replace(it, id=f"{it.id}{SEP}{k}", question=question, options=rotated,
                               answer=LETTERS[(truth + k) % n], meta={**it.meta, "rotation": k, "base_id": it.id}))
    return out, not_rotatable


def base_items(items: list[EvalItem]) -> list[EvalItem]:
    return [it for it in items if "base_id" not in it.meta]


def _right(item: EvalItem, response: str | None) -> bool:
    letter, _ = read_choice(response, item.options)
    return letter is not None and letter == item.answer


def score(items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
    """Circular accuracy (percent) over the rotated questions, overall and per category."""
    groups: dict[str, list[bool]] = {}
    category: dict[str, str | None] = {}
    for it in items:
        base = it.meta.get("base_id", it.id)
        if base == it.id and not rotatable(it):
            continue
        groups.setdefault(base, []).append(_right(it, responses.get(it.id)))
        category.setdefault(base, it.category)
    per: dict[str, list[bool]] = {}
    for base, rights in groups.items():
        per.setdefault(category[base] or "all", []).append(all(rights))
    n = len(groups)
    ok = sum(all(r) for r in groups.values())
    return {
        "circular": 100.0 * ok / n if n else None,
        "circular_questions": n,
        "circular_per_category": {c: 100.0 * sum(v) / len(v) for c, v in sorted(per.items())},
    }


def letter_audit(items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any] | None:
    """Shares (percent) of right answers and of predictions at each option letter."""
    keyed = [it for it in items if it.options and isinstance(it.answer, str) and len(it.answer) == 1
             and it.answer in LETTERS]
    if not keyed:
        return None
    truth = Counter(it.answer for it in keyed)
    predicted = Counter()
    for it in keyed:
        letter, _ = read_choice(responses.get(it.id), it.options)
        predicted[letter or "unread"] += 1
    n = len(keyed)
    return {
        "items": n,
        "answer_letters": {k: round(100.0 * v / n, 2) for k, v in sorted(truth.items())},
        "predicted_letters": {k: round(100.0 * v / n, 2) for k, v in sorted(predicted.items())},
    }
