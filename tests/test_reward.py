"""The reward: answer readers, format check, hedging, parity with the paper, robustness."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spatial_ssrl.reward import (
    DIFFERENCES_FROM_PAPER,
    canonical_answer,
    canonicalize,
    check_format,
    extract_answer,
    infer_answer_type,
    parse_response,
    score,
)

POSITION_OPTIONS = ["Left", "Right", "Front", "Back"]


def boxed(content: str, think: str = "The patches line up along the horizon.") -> str:
    return f"<think>{think}</think> The answer is \\boxed{{{content}}}."


# --------------------------------------------------------------------------------------
# The paper's reward, re-implemented from its description (EasyR1 img_score): remove the
# whitespace around every '<', '>' and '/', format = the whole text matches
# <think>.*</think>.*\boxed{.*}.*, accuracy = content of the last '\boxed{' (brace-matched,
# stripped) equals the ground truth string.


def paper_reward(response: str, ground_truth: str) -> float:
    text = re.sub(r"\s*([<>/])\s*", r"\1", response)
    fmt = 1.0 if re.fullmatch(r"<think>.*</think>.*\\boxed\{.*\}.*", text, flags=re.DOTALL) else 0.0
    prediction = None
    start = text.rfind("\\boxed{")
    if start != -1:
        body = text[start + len("\\boxed{"):]
        depth = 0
        for i, ch in enumerate(body):
            if ch == "{":
                depth += 1
            elif ch == "}":
                if depth == 0:
                    prediction = body[:i].strip()
                    break
                depth -= 1
    accuracy = 1.0 if prediction == ground_truth else 0.0
    return 0.9 * accuracy + 0.1 * fmt


# --------------------------------------------------------------------------------------
# Table-driven answer readers: (box content, ground truth, answer type, options, expected
# canonical prediction or None)

CHOICE_CASES = [
    ("A", "A", None, "A"),
    ("a", "A", None, "A"),
    ("(A)", "A", None, "A"),
    ("A.", "A", None, "A"),
    ("A. Left", "A", POSITION_OPTIONS, "A"),
    ("A) Left", "A", POSITION_OPTIONS, "A"),
    ("A: Left", "A", POSITION_OPTIONS, "A"),
    ("(A) Left", "A", POSITION_OPTIONS, "A"),
    ("Option A", "A", None, "A"),
    ("option a", "A", None, "A"),
    ("The answer is B", "B", None, "B"),
    ("Answer: C", "C", None, "C"),
    ("\\text{A}", "A", None, "A"),
    ("\\textbf{D}", "D", None, "D"),
    ("\\mathrm{B}", "B", None, "B"),
    ("$C$", "C", None, "C"),
    ("**B**", "B", None, "B"),
    (" D ", "D", None, "D"),
    ("b)", "B", None, "B"),
    ("Left", "A", POSITION_OPTIONS, "A"),
    ("back", "D", POSITION_OPTIONS, "D"),
    ("\\text{Right}", "B", POSITION_OPTIONS, "B"),
    ("Left-Front", "A", ["Left-Front", "Right-Front", "Right-Back", "Left-Back"], "A"),
    ("right back", "C", ["Left-Front", "Right-Front", "Right-Back", "Left-Back"], "C"),
    ("B. Right", "A", POSITION_OPTIONS, "B"),  # valid, wrong
    # hostile / invalid
    ("A, B", "A", None, None),
    ("A or B", "A", None, None),
    ("A and B", "A", None, None),
    ("AB", "A", None, None),
    ("ABCD", "A", None, None),
    ("A/B", "A", None, None),
    ("(A) or (B)", "A", None, None),
    ("A. Right", "A", POSITION_OPTIONS, None),  # letter contradicts the option text
    ("", "A", None, None),
    ("   ", "A", None, None),
    ("\\text{}", "A", None, None),
    ("E", "A", None, None),  # not one of four options
    ("Left", "A", None, None),  # option text without the options
    ("I cannot tell", "A", None, None),
    ("AAAA", "A", None, None),
]

PERMUTATION_CASES = [
    ("0-2-3-1", "0-2-3-1", "0-2-3-1"),
    ("0,2,3,1", "0-2-3-1", "0-2-3-1"),
    ("0, 2, 3, 1", "0-2-3-1", "0-2-3-1"),
    ("0 2 3 1", "0-2-3-1", "0-2-3-1"),
    ("[0, 2, 3, 1]", "0-2-3-1", "0-2-3-1"),
    ("(0-2-3-1)", "0-2-3-1", "0-2-3-1"),
    ("0 -> 2 -> 3 -> 1", "0-2-3-1", "0-2-3-1"),
    ("0 \\to 2 \\to 3 \\to 1", "0-2-3-1", "0-2-3-1"),
    ("\\text{0-2-3-1}", "0-2-3-1", "0-2-3-1"),
    ("Answer: 0-2-3-1", "0-2-3-1", "0-2-3-1"),
    ("0-2-3-1.", "0-2-3-1", "0-2-3-1"),
    ("1-0-3-2", "0-2-3-1", "1-0-3-2"),  # valid, wrong
    ("3-1-2", "3-1-2", "3-1-2"),  # depth ordering, labels 1..3
    ("1, 2, 3", "3-1-2", "1-2-3"),
    ("2-0-1", "2-0-1", "2-0-1"),  # three strips
    # hostile / invalid
    ("0-2-3", "0-2-3-1", None),  # too short
    ("0-2-3-1-4", "0-2-3-1", None),  # too long
    ("0-2-2-1", "0-2-3-1", None),  # repeated label
    ("1-2-3-4", "0-2-3-1", None),  # wrong label set
    ("0-1-2", "3-1-2", None),  # depth labels start at 1
    ("0231", "0-2-3-1", None),  # no separators
    ("0-2-3-1 or 1-0-3-2", "0-2-3-1", None),
    ("TopLeft-TopRight-BottomLeft-BottomRight", "0-2-3-1", None),
    ("", "0-2-3-1", None),
    ("a-b-c-d", "0-2-3-1", None),
]

FLIP_CASES = [
    ("3-0", "3-0", "3-0"),
    ("3, 0", "3-0", "3-0"),
    ("3,0", "3-0", "3-0"),
    ("(3,0)", "3-0", "3-0"),
    ("[3, 0]", "3-0", "3-0"),
    ("3 0", "3-0", "3-0"),
    ("3-vertical", "3-0", "3-0"),
    ("3-horizontal", "3-1", "3-1"),
    ("3 vertically", "3-0", "3-0"),
    ("3, horizontally", "3-1", "3-1"),
    ("vertical-3", "3-0", "3-0"),
    ("Label 2, Direction 1", "2-1", "2-1"),
    ("\\text{1-0}", "1-0", "1-0"),
    ("3-1", "3-0", "3-1"),  # valid, wrong direction
    ("2-0", "3-0", "2-0"),  # valid, wrong label
    # hostile / invalid
    ("3-2", "3-0", None),  # direction must be 0 or 1
    ("3", "3-0", None),
    ("3-0-1", "3-0", None),
    ("3-0 or 3-1", "3-0", None),
    ("3-vertical-horizontal", "3-0", None),
    ("3-diagonal", "3-0", None),
    ("", "3-0", None),
]


@pytest.mark.parametrize("content,truth,options,expected", CHOICE_CASES)
def test_choice_reader(content, truth, options, expected):
    r = score(boxed(content), truth, "choice", options=options)
    assert r["prediction"] == expected
    assert r["format"] == 1.0
    assert r["accuracy"] == (1.0 if expected == truth else 0.0)
    assert r["overall"] == pytest.approx(0.9 * r["accuracy"] + 0.1)
    if expected is None:
        assert r["reason"] not in (None, "wrong_answer")


@pytest.mark.parametrize("content,truth,expected", PERMUTATION_CASES)
def test_permutation_reader(content, truth, expected):
    r = score(boxed(content), truth, "permutation")
    assert r["prediction"] == expected
    assert r["accuracy"] == (1.0 if expected == truth else 0.0)
    assert r["overall"] == pytest.approx(0.9 * r["accuracy"] + 0.1)


@pytest.mark.parametrize("content,truth,expected", FLIP_CASES)
def test_flip_reader(content, truth, expected):
    r = score(boxed(content), truth, "flip")
    assert r["prediction"] == expected
    assert r["accuracy"] == (1.0 if expected == truth else 0.0)


def test_invalid_answers_name_their_reason():
    assert score(boxed("A, B"), "A", "choice")["reason"] == "multiple_letters"
    assert score(boxed("AB"), "A", "choice")["reason"] == "multiple_letters"
    assert score(boxed(""), "A", "choice")["reason"] == "empty_box"
    assert score(boxed("A. Right"), "A", "choice", options=POSITION_OPTIONS)["reason"] == "conflicting_option_text"
    assert score(boxed("0-2-3"), "0-2-3-1", "permutation")["reason"] == "not_a_permutation"
    assert score(boxed("3-2"), "3-0", "flip")["reason"] == "bad_direction"
    assert score(boxed("B"), "A", "choice")["reason"] == "wrong_answer"
    assert score(boxed("A"), "A", "choice")["reason"] is None


def test_canonical_helpers():
    assert canonicalize("(a)", "choice") == "A"
    assert canonicalize("[0, 2, 3, 1]", "permutation", answer="0-2-3-1") == "0-2-3-1"
    assert canonicalize("0-2-3", "permutation", answer="0-2-3-1") is None
    assert canonicalize("2-2", "permutation") is None  # repeated label, no ground truth needed
    assert canonicalize("3 horizontally", "flip") == "3-1"
    assert canonicalize("Front", "choice", options=POSITION_OPTIONS) == "C"
    assert canonicalize("  Hello   World ", "exact") == "hello world"
    assert canonical_answer("0, 2, 3, 1", "permutation") == "0-2-3-1"
    assert canonical_answer("B") == "B"
    with pytest.raises(ValueError):
        canonicalize("A", "colour")
    with pytest.raises(ValueError):
        score(boxed("A"), "A", "colour")


@pytest.mark.parametrize(
    "answer,kind",
    [("A", "choice"), ("D", "choice"), ("3-0", "flip"), ("1-1", "flip"), ("0-2-3-1", "permutation"),
     ("3-1-2", "permutation"), ("2-0-1", "permutation"), ("Left", "exact"), ("", "exact"), ("a", "exact")],
)
def test_infer_answer_type(answer, kind):
    assert infer_answer_type(answer) == kind


def test_answer_type_is_inferred_when_missing():
    assert score(boxed("3, vertical"), "3-0")["accuracy"] == 1.0
    assert score(boxed("[2, 0, 1]"), "2-0-1")["accuracy"] == 1.0
    assert score(boxed("(c)"), "C")["accuracy"] == 1.0


def test_ground_truth_is_canonicalised_too():
    assert score(boxed("0-2-3-1"), "0, 2, 3, 1", "permutation")["accuracy"] == 1.0
    bad = score(boxed("0-2-3-1"), "0-0-1", "permutation")
    assert bad["accuracy"] == 0.0 and bad["reason"] == "invalid_ground_truth"


# --------------------------------------------------------------------------------------
# Format and where the answer is read


@pytest.mark.parametrize(
    "response,fmt",
    [
        ("<think>x</think>\\boxed{A}", 1.0),
        ("  \n<think>\nreason\n</think>\n\nSo \\boxed{A}.", 1.0),
        ("< think >x</ think >\\boxed{A}", 1.0),
        ("<think >x< /think>\\boxed{A}", 1.0),
        ("<think></think>\\boxed{A}", 1.0),
        ("<think>x</think>\\boxed{}", 1.0),  # empty box: format fine, accuracy 0
        ("<think>x</think>\\boxed{A} trailing text", 1.0),
        ("<think>x</think>\\boxed{\\text{A}}", 1.0),
        ("\\boxed{A}", 0.0),  # no think block
        ("Sure. <think>x</think>\\boxed{A}", 0.0),  # text before the think block
        ("<think>x</think> the answer is A", 0.0),  # answer outside a box
        ("<think>x \\boxed{A}</think>", 0.0),  # box only inside think
        ("<think>x \\boxed{A}", 0.0),  # unclosed think
        ("<think>x</think>\\boxed{A", 0.0),  # unclosed box
        ("<think>x</think>\\boxed{A} then \\boxed{B", 0.0),  # unclosed final box
        ("<think>x</think><think>y</think>\\boxed{A}", 0.0),  # two think blocks
        ("<think>x<think>y</think>\\boxed{A}", 0.0),  # nested opening tag
        ("<think>x</think>\\boxed{A}<think>", 0.0),  # reopened
        ("<Think>x</Think>\\boxed{A}", 0.0),  # tags are case-sensitive, as in the paper
        ("", 0.0),
    ],
)
def test_format(response, fmt):
    assert score(response, "A", "choice")["format"] == fmt
    assert check_format(response) == (fmt == 1.0)


@pytest.mark.parametrize(
    "response,accuracy,reason",
    [
        ("<think>x</think>\\boxed{A}", 1.0, None),
        ("\\boxed{A}", 1.0, None),  # accuracy does not need the format
        ("The answer is \\boxed{A}.", 1.0, None),
        ("<think>x \\boxed{A}</think> so that is it", 0.0, "box_inside_think"),
        ("<think>x \\boxed{A}", 0.0, "unclosed_think"),
        ("<think>x \\boxed{B}</think> \\boxed{A}", 1.0, None),  # boxes in think are not read
        ("<think>x</think> A", 0.0, "no_box"),
        ("A", 0.0, "no_box"),
        ("<think>x</think>\\boxed{A", 0.0, "unclosed_box"),
        ("<think>x</think>\\boxed{A} \\boxed{", 0.0, "unclosed_box"),
        ("<think>x</think>\\boxed{\\boxed{A}", 0.0, "unclosed_box"),
        ("<think>x</think>\\boxed{" + "A" * 1001 + "}", 0.0, "box_too_long"),
        ("<think>x</think>" + "\\boxed{A}" * 11, 0.0, "too_many_boxes"),
        ("<think>x</think>" + "\\boxed{A}" * 10, 1.0, None),
        ("<think>x</think>\\boxed{\\boxed{A}}", 1.0, None),
    ],
)
def test_answer_region(response, accuracy, reason):
    r = score(response, "A", "choice")
    assert r["accuracy"] == accuracy
    assert r["reason"] == reason


def test_extract_answer():
    assert extract_answer("<think>x</think> \\boxed{\\text{B}} done") == "\\text{B}"
    assert extract_answer("<think>\\boxed{B}</think>") is None
    assert extract_answer("<think>x</think> \\boxed{a{b}c} and \\boxed{d}") == "d"
    assert extract_answer("<think>x</think> \\boxed{a{b}c}") == "a{b}c"
    assert extract_answer("no box") is None


# --------------------------------------------------------------------------------------
# Hedging


def test_hedged_boxes_score_zero():
    r = score("<think>x</think> \\boxed{A} or maybe \\boxed{B}", "B", "choice")
    assert r["accuracy"] == 0.0 and r["reason"] == "hedged" and r["hedged"] is True
    assert r["prediction"] == "B" and r["format"] == 1.0
    r = score("<think>x</think> \\boxed{0-2-3-1} \\boxed{1-0-3-2}", "1-0-3-2", "permutation")
    assert r["accuracy"] == 0.0 and r["reason"] == "hedged"
    # an unreadable earlier box is a different answer too
    assert score("<think>x</think> \\boxed{A, B} so \\boxed{B}", "B", "choice")["reason"] == "hedged"


def test_repeating_the_same_answer_is_not_hedging():
    r = score("<think>x</think> \\boxed{(A)}, i.e. \\boxed{A. Left}", "A", "choice", options=POSITION_OPTIONS)
    assert r["accuracy"] == 1.0 and r["hedged"] is False
    r = score("<think>x</think> \\boxed{0,2,3,1} = \\boxed{0-2-3-1}", "0-2-3-1", "permutation")
    assert r["accuracy"] == 1.0


def test_allow_hedging_scores_the_last_box():
    response = "<think>x</think> \\boxed{A} or maybe \\boxed{B}"
    assert score(response, "B", "choice", allow_hedging=True)["accuracy"] == 1.0
    assert score(response, "A", "choice", allow_hedging=True)["accuracy"] == 0.0


# --------------------------------------------------------------------------------------
# Weights, partial credit, strict format


def test_weights():
    good = boxed("A")
    assert score(good, "A", "choice")["overall"] == pytest.approx(1.0)
    assert score(good, "B", "choice")["overall"] == pytest.approx(0.1)
    assert score("\\boxed{A}", "A", "choice")["overall"] == pytest.approx(0.9)
    assert score(good, "B", "choice", format_weight=0.2)["overall"] == pytest.approx(0.2)
    assert score("\\boxed{A}", "A", "choice", format_weight=0.2)["overall"] == pytest.approx(0.8)
    r = score("\\boxed{A}", "A", "choice", accuracy_weight=0.5, format_weight=0.5)
    assert r["overall"] == pytest.approx(0.5)
    assert score(good, "A", "choice", accuracy_weight=1.0, format_weight=0.0)["overall"] == 1.0
    for bad in ({"format_weight": 1.5}, {"format_weight": -0.1}, {"accuracy_weight": 0.9, "format_weight": 0.2}):
        with pytest.raises(ValueError):
            score(good, "A", "choice", **bad)


def test_partial_credit_for_permutations():
    response = boxed("0-1-3-2")  # against 0-2-3-1, positions 0 and 2 are right
    truth = "0-2-3-1"
    assert score(response, truth, "permutation")["accuracy"] == 0.0  # off by default
    r = score(response, truth, "permutation", partial_credit=0.5)
    assert r["accuracy"] == pytest.approx(0.5 * 2 / 4)
    assert r["overall"] == pytest.approx(0.9 * 0.25 + 0.1)
    assert score(boxed(truth), truth, "permutation", partial_credit=0.5)["accuracy"] == 1.0
    # invalid permutations and other answer types get no partial credit
    assert score(boxed("0-2-3"), truth, "permutation", partial_credit=0.5)["accuracy"] == 0.0
    assert score(boxed("2-0"), "3-0", "flip", partial_credit=0.5)["accuracy"] == 0.0
    with pytest.raises(ValueError):
        score(response, truth, "permutation", partial_credit=2.0)


def test_require_format():
    assert score("\\boxed{A}", "A", "choice", require_format=True)["accuracy"] == 0.0
    assert score("\\boxed{A}", "A", "choice", require_format=True)["reason"] == "format_required"
    assert score(boxed("A"), "A", "choice", require_format=True)["accuracy"] == 1.0


def test_none_response_and_bad_types():
    r = score(None, "A", "choice")
    assert r["overall"] == 0.0 and r["reason"] == "no_box"
    with pytest.raises(TypeError):
        score(b"<think>x</think>\\boxed{A}", "A", "choice")


# --------------------------------------------------------------------------------------
# Parity with the paper's reward


def _permutations(labels):
    return ["-".join(map(str, p)) for p in itertools.permutations(labels)]


TRUTHS = (
    [("choice", x) for x in "ABCD"]
    + [("flip", f"{i}-{d}") for i in range(4) for d in (0, 1)]
    + [("permutation", x) for x in _permutations(range(4))]
    + [("permutation", x) for x in _permutations(range(3))]
    + [("permutation", x) for x in _permutations(range(1, 4))]
)

WELL_FORMED_TEMPLATES = [
    "<think>{r}</think>\\boxed{{{a}}}",
    "<think>\n{r}\n</think>\n\\boxed{{{a}}}",
    "<think>{r}</think> The final answer is \\boxed{{{a}}}.",
    "  <think>{r}</think>\n\nAnswer: \\boxed{{{a}}}\n",
    "< think >{r}</ think >\\boxed{{{a}}}",
    "<think >{r}< /think>\\boxed{{ {a} }}",
    "<think>{r}</think>\\boxed{{{a}}} and I am confident",
    "<think>{r}</think>\\boxed{{{a}}} \\boxed{{{a}}}",
    "\\boxed{{{a}}}",  # no think block: format 0 in both
    "The answer is \\boxed{{{a}}}",
]
REASONING = ["", "The left edge continues the road, so patch 2 goes first.", "Region 3 is nearest; 1 is farthest."]


def _different(kind: str, truth: str) -> list[str]:
    pool = [t for k, t in TRUTHS if k == kind and t != truth and len(t) == len(truth)]
    return pool[:3]


def test_parity_with_paper_on_exact_and_plainly_wrong_answers():
    checked = 0
    for kind, truth in TRUTHS:
        for template in WELL_FORMED_TEMPLATES:
            for reasoning in REASONING:
                for content in [truth, *_different(kind, truth)]:
                    response = template.format(r=reasoning, a=content)
                    ours = score(response, truth, kind)["overall"]
                    assert ours == pytest.approx(paper_reward(response, truth)), (response, truth)
                    checked += 1
    assert checked > 1000


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reasoning=st.text(alphabet=st.characters(blacklist_characters="<>/{}\\", blacklist_categories=("Cs",)), max_size=200),
    tail=st.text(alphabet="abc xyz.,:\n", max_size=30),
    pick=st.integers(min_value=0, max_value=len(TRUTHS) - 1),
    wrong=st.booleans(),
)
def test_parity_property(reasoning, tail, pick, wrong):
    kind, truth = TRUTHS[pick]
    content = _different(kind, truth)[0] if wrong else truth
    response = f"<think>{reasoning}</think>{tail}\\boxed{{{content}}}{tail}"
    assert score(response, truth, kind)["overall"] == pytest.approx(paper_reward(response, truth))


@pytest.mark.parametrize(
    "response,truth,kind,ours,paper",
    [
        (boxed("A. Left"), "A", "choice", 1.0, 0.1),  # spelling variants count
        (boxed("(A)"), "A", "choice", 1.0, 0.1),
        (boxed("\\text{A}"), "A", "choice", 1.0, 0.1),
        (boxed("0, 2, 3, 1"), "0-2-3-1", "permutation", 1.0, 0.1),
        (boxed("3-vertical"), "3-0", "flip", 1.0, 0.1),
        ("<think>x</think>\\boxed{B} \\boxed{A}", "A", "choice", 0.1, 1.0),  # hedging
        ("<think>x \\boxed{A}</think> done", "A", "choice", 0.0, 0.9),  # box only inside think
        ("<think>x \\boxed{A}", "A", "choice", 0.0, 0.9),  # think never closed
        ("<think>x</think>\\boxed{A} \\boxed{B", "A", "choice", 0.0, 0.1),  # unclosed final box
        ("<think>a</think><think>b</think>\\boxed{A}", "A", "choice", 0.9, 1.0),  # two think blocks
    ],
)
def test_deliberate_differences_from_paper(response, truth, kind, ours, paper):
    assert paper_reward(response, truth) == pytest.approx(paper)
    assert score(response, truth, kind)["overall"] == pytest.approx(ours)


def test_differences_are_documented():
    for phrase in ("Hedging", "answer region", "require_format", "A. Left", "unclosed"):
        assert phrase in DIFFERENCES_FROM_PAPER


# --------------------------------------------------------------------------------------
# Robustness: arbitrary text never raises and stays in range

HOSTILE_PIECES = [
    "<think>", "</think>", "< think >", "</ think>", "<", ">", "/", "think", "\\boxed{", "\\boxed",
    "{", "}", "\\text{", "A", "B", "a", " or ", "0", "3", "-", ",", " ", "\n", "$", "(", ")", "[",
    "]", "vertical", "Option ", "\\", "\u00e9", "\u2192",
]


def _check_result(r):
    for key in ("overall", "format", "accuracy"):
        assert isinstance(r[key], float)
        assert 0.0 <= r[key] <= 1.0
    assert r["overall"] == pytest.approx(0.9 * r["accuracy"] + 0.1 * r["format"])
    assert r["prediction"] is None or isinstance(r["prediction"], str)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300), pick=st.integers(min_value=0, max_value=len(TRUTHS) - 1))
def test_arbitrary_text_never_raises(text, pick):
    kind, truth = TRUTHS[pick]
    _check_result(score(text, truth, kind))
    _check_result(score(text, truth, None, options=POSITION_OPTIONS))


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(HOSTILE_PIECES), max_size=60),
    pick=st.integers(min_value=0, max_value=len(TRUTHS) - 1),
    hedging=st.booleans(),
    partial=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_hostile_token_soup_never_raises(pieces, pick, hedging, partial):
    kind, truth = TRUTHS[pick]
    text = "".join(pieces)
    r = score(text, truth, kind, allow_hedging=hedging, partial_credit=partial)
    _check_result(r)
    if r["accuracy"] == 1.0:
        assert r["prediction"] == r["answer"]
    assert parse_response(text).format_ok == (r["format"] == 1.0)


@settings(max_examples=200, deadline=None)
@given(content=st.text(max_size=80), truth=st.sampled_from([t for _, t in TRUTHS]), options=st.booleans())
def test_box_content_never_raises(content, truth, options):
    r = score(boxed(content), truth, None, options=POSITION_OPTIONS if options else None)
    _check_result(r)


# --------------------------------------------------------------------------------------
# Linear time on hostile input (the benchmark measures the real figures)

MIB = 1 << 20
HOSTILE = {
    "nested-open-braces": "<think>x</think>\\boxed{" + "{" * MIB,
    "nested-balanced": "<think>x</think>\\boxed{" + "{" * (MIB // 2) + "}" * (MIB // 2),
    "many-boxes": "<think>x</think>" + "\\boxed{A}" * (MIB // 9),
    "nested-boxes": "<think>x</think>" + "\\boxed{" * (MIB // 7),
    "unclosed-tags": "<think>" * (MIB // 7),
    "unfinished-close-tags": "</think" * (MIB // 7) + "\\boxed{A}",
    "tag-whitespace": "<" + " " * MIB + "/ think",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_megabyte_is_fast(name):
    text = HOSTILE[name]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        r = score(text, "A", "choice")
        best = min(best, time.perf_counter() - t0)
    _check_result(r)
    # The target is < 50 ms (see bench/bench_reward.py); the bound here is loose so that a
    # slow CI machine passes while any super-linear behaviour (seconds) still fails.
    assert best < 0.25, f"{name}: {best * 1e3:.1f} ms"


def test_reward_package_imports_only_the_standard_library():
    code = (
        "import sys\n"
        "import spatial_ssrl.reward, spatial_ssrl.reward.trl, spatial_ssrl.reward.easyr1, spatial_ssrl.reward.verl\n"
        "heavy = {'numpy', 'pyarrow', 'torch', 'trl', 'transformers', 'click', 'PIL', 'scipy', 'verl'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
