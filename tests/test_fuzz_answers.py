"""Fuzzing the reward parser (:func:`spatial_ssrl.reward.score`) and the benchmark answer
readers (:func:`spatial_ssrl.eval.answers.read_choice` / ``read_quantity`` /
``read_number``) on random text: deeply nested braces, huge numbers, unicode. Each call
returns; when there is no answer it says why (a named reason).
"""

from __future__ import annotations

import math
import re
import time

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spatial_ssrl.eval.answers import read_choice, read_number, read_quantity
from spatial_ssrl.reward import score

REASON = re.compile(r"^[a-z][a-z0-9_]*$")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

_PIECES = [
    "<think>", "</think>", "< think >", "</ think>", "\\boxed{", "\\boxed {", "{", "}", "\\text{", "\\fbox{",
    "A", "b", "(C)", "D.", "Left", "Right-Front", "0-2-3-1", "3-0", "1-2-3", "-", " ", "\n",
    "1e309", "-1e999", "9" * 400, "0x1F", "NaN", "inf", "1.5 m", "150cm", "3 feet 2 inches", "twelve",
    "½", "١٢٣", "𝟙𝟚", "\u200b", "\ufeff", "\ud7ff", "é", "Ａ", "\\", "$", "\\frac{1}{2}", "%",
]
_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(_PIECES) | st.text(max_size=6), max_size=40).map("".join),
)
_nested = st.builds(
    lambda depth, inner, closed, prefix: prefix + "\\boxed{" * depth + inner + ("}" * depth if closed else ""),
    st.integers(0, 5000), st.sampled_from(["A", "1-0", "9" * 500, "", "{{{"]), st.booleans(),
    st.sampled_from(["", "<think>x</think>", "<think>"]),
)
ANSWERS = [("A", "choice", ["Left", "Right", "Front", "Back"]), ("0-2-3-1", "permutation", None),
           ("3-0", "flip", None), ("1-2-3", None, None), ("blue", "exact", None), ("B", None, None)]


def _check_reader(out):
    value, reason = out
    if value is None:
        assert isinstance(reason, str) and REASON.match(reason), reason
    else:
        assert reason is None
    return value


@FUZZ
@example(text="<think>x</think>" + "\\boxed{" * 20000 + "A" + "}" * 20000)
@example(text="<think>x</think>\\boxed{" + "9" * 5000 + "}")
@example(text="<think>x</think>\\boxed{1e999 m}")
@given(text=_text | _nested)
def test_answer_readers_return_with_reason(text):
    t0 = time.perf_counter()
    _check_reader(read_choice(text))
    _check_reader(read_choice(text, options=["Left", "Right", "Front", "Back"]))
    q = _check_reader(read_quantity(text))
    q_cm = _check_reader(read_quantity(text, default_unit="m"))
    n = _check_reader(read_number(text))
    for v in (q, q_cm, n):
        assert v is None or (isinstance(v, float) and math.isfinite(v)), v
    assert time.perf_counter() - t0 < 5.0, "reader took too long"


@FUZZ
@example(text="<think>x</think>" + "{" * 50000, pick=0)
@example(text="<think>" * 3000 + "</think>" * 3000 + "\\boxed{A}", pick=0)
@given(text=_text | _nested, pick=st.integers(0, len(ANSWERS) - 1))
def test_reward_score_returns_with_reason(text, pick):
    answer, kind, options = ANSWERS[pick]
    t0 = time.perf_counter()
    r = score(text, answer, kind, options=options)
    assert time.perf_counter() - t0 < 5.0, "score took too long"
    for k in ("overall", "format", "accuracy"):
        assert isinstance(r[k], float) and 0.0 <= r[k] <= 1.0, (k, r[k])
    if r["accuracy"] < 1.0:
        assert isinstance(r["reason"], str) and REASON.match(r["reason"]), r["reason"]
    else:
        assert r["reason"] is None
    if r["format"] < 1.0:
        assert isinstance(r["format_reason"], str) and r["format_reason"], r["format_reason"]
    # the same response scored twice gives the same result
    assert score(text, answer, kind, options=options) == r
