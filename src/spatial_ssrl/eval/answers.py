"""Reading a benchmark answer from a model response, with the reward's parser.

The answer is the final ``\\boxed{}`` of the answer region (after the think block), read by
:func:`spatial_ssrl.reward.parsing.parse_response`, the code the GRPO reward uses. As in the
reward, hedging is refused: when other boxes of the answer region read as a different
answer, the item is a parse failure (``hedged``), never scored as a guess. Every reader
returns ``(value, reason)``: ``value`` None with a ``reason`` when nothing can be read.

:func:`final_answer` (stripped: :func:`answer_text`) is what the official rules of the
benchmarks read (their headline ``accuracy``); the readers below are our strict rule (``strict``
in a report). :func:`vlmeval_choice` is VLMEvalKit's rule-based option matching, the official
reading of 3DSRBench (and of What'sUp's caption pick here).

Readers: :func:`read_choice` (a letter, or the option text), :func:`read_quantity` (a number
with an optional unit, converted to centimetres), :func:`read_number`, :func:`read_text`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..reward.canon import canonical_choice, clean_text
from ..reward.parsing import answer_region, parse_response

Reader = Callable[[str], tuple[Any, str | None]]


def final_answer(response: str | None) -> str | None:
    """What a benchmark's official rule reads: the content of the last ``\\boxed{}`` of the
    answer region when there is one, else the answer region (the response after its think
    block), else, for a think block that never closes, the whole response. None only for a
    missing response. So a baseline that never boxes is read as its published numbers were,
    and a model trained on our format is read from its box, not from its first word."""
    if response is None:
        return None
    parsed = parse_response(response)
    if parsed.boxes and parsed.box_problem is None:
        return parsed.boxes[-1]
    region = answer_region(response)
    return response if region is None else region


def boxed(response: str | None, read: Reader | None = None) -> tuple[Any, str | None]:
    """The final box of the answer region read by ``read`` (raw text when None); every other
    box there must read the same, else ``hedged``."""
    if response is None:
        return None, "no_response"
    parsed = parse_response(response)
    if parsed.region_reason == "unclosed_think":
        return None, "unclosed_think"
    if parsed.box_problem is not None:
        return None, parsed.box_problem
    if not parsed.boxes:
        return None, parsed.region_reason or "no_box"
    read = read or (lambda t: (t.strip() or None, None if t.strip() else "empty_box"))
    value, reason = read(parsed.boxes[-1])
    if value is None:
        return None, reason
    for other in parsed.boxes[:-1]:
        v, _ = read(other)
        if v != value:
            return None, "hedged"
    return value, None


def read_choice(response: str | None, options: Sequence[str] | None = None, n_letters: int | None = None):
    """A multiple-choice letter: ``A``, ``(b)``, ``A. Left``, ``\\text{A}``, or the option
    text alone when the options are known. Two letters are not an answer."""
    n = n_letters or max(2, len(options or ()) or 4)
    return boxed(response, lambda t: canonical_choice(t, options, n))


def read_text(response: str | None) -> tuple[str | None, str | None]:
    """The boxed text, cleaned of ``\\text{}`` wrappers and outer punctuation, lower-cased."""
    def read(t: str):
        text = clean_text(t).strip().strip(".").lower()
        return (text, None) if text else (None, "empty_box")

    return boxed(response, read)


_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "half": 0.5}

# Length units to centimetres; longest spellings first so "millimeter" is not read as "m".
UNITS_CM: dict[str, float] = {}
for _names, _cm in (
    (("kilometers", "kilometres", "kilometer", "kilometre", "km"), 100_000.0),
    (("millimeters", "millimetres", "millimeter", "millimetre", "mm"), 0.1),
    (("centimeters", "centimetres", "centimeter", "centimetre", "cm"), 1.0),
    (("meters", "metres", "meter", "metre", "m"), 100.0),
    (("inches", "inch", "in", '"', "''"), 2.54),
    (("feet", "foot", "ft", "'"), 30.48),
    (("yards", "yard", "yd"), 91.44),
    (("miles", "mile", "mi"), 160_934.4),
):
    for _n in _names:
        UNITS_CM[_n] = _cm
_UNIT = re.compile(r"\s*(" + "|".join(re.escape(u) for u in sorted(UNITS_CM, key=len, reverse=True)) + r")(?![a-z])",
                   re.IGNORECASE)


def _to_float(token: str) -> float | None:
    try:
        value = float(token.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


_QSPATIAL_MACROS = re.compile(r"\\?(?:scalar|distance_unit)\s{0,8}\{([^{}]{0,200})\}")


def _quantity(text: str, default_unit: str | None) -> tuple[Any, str | None]:
    """Every number in ``text`` with the unit written after it, summed in centimetres
    ("1 meter 20 cm" = 120), so "1 meter" is 100 cm, never 0."""
    text = _QSPATIAL_MACROS.sub(r" \1 ", text)  # Q-Spatial's \scalar{1.5} \distance_unit{meters}
    text = clean_text(text).replace("\\,", "").replace("\\ ", " ").lower()
    total, found = 0.0, 0
    pos = 0
    for m in _NUMBER.finditer(text):
        if m.start() < pos:
            continue
        value = _to_float(m.group())
        if value is None:
            continue
        u = _UNIT.match(text, m.end())
        unit = u.group(1).lower() if u else default_unit
        if unit is None:
            return None, "no_unit"
        total += value * UNITS_CM[unit]
        found += 1
        pos = u.end() if u else m.end()
    if not found:
        for word, value in _WORDS.items():
            m = re.search(rf"\b{word}\b", text)
            if m:
                u = _UNIT.match(text, m.end())
                unit = u.group(1).lower() if u else default_unit
                if unit is None:
                    return None, "no_unit"
                return value * UNITS_CM[unit], None
        return None, "no_number"
    return total, None


def read_quantity(response: str | None, default_unit: str | None = None) -> tuple[float | None, str | None]:
    """A length in centimetres from the boxed answer (``1.5 m``, ``150cm``, ``3 feet 2 inches``).
    A bare number takes ``default_unit`` (None: a parse failure, ``no_unit``)."""
    return boxed(response, lambda t: _quantity(t, default_unit))


def read_number(response: str | None) -> tuple[float | None, str | None]:
    """A plain number from the boxed answer (the first one; number words up to twelve)."""
    def read(t: str):
        text = clean_text(t).lower()
        m = _NUMBER.search(text)
        if m:
            value = _to_float(m.group())
            return (value, None) if value is not None else (None, "no_number")
        for word, value in _WORDS.items():
            if re.search(rf"\b{word}\b", text):
                return float(value), None
        return None, "no_number"

    return boxed(response, read)


# ------------------------------------------------------------------ official rules' helpers


def answer_text(response: str | None) -> str | None:
    """:func:`final_answer` without surrounding whitespace (the newline after a think block is
    not part of the answer); None for a missing response."""
    text = final_answer(response)
    return None if text is None else text.strip()


# VLMEvalKit's rule-based option matching (``can_infer`` = ``can_infer_option``, else
# ``can_infer_text``), vlmeval/utils/matching_util.py at open-compass/VLMEvalKit 2cf2a36c6e79.
# The LLM judge VLMEvalKit can call when these read nothing is not used: with its default
# ``exact_matching`` such a row is a miss (option ``Z``), and so it is here.
_VLMEVAL_PUNCT = str.maketrans({c: " " for c in ".()[],:;!*#{}"})
_VLMEVAL_VERBOSE = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")
_VLMEVAL_REFUSALS = ("Sorry, I can't help with images of people yet.", "I can't process this file.",
                     "I'm sorry, but without the image provided", "Cannot determine the answer")


def vlmeval_option(text: str, letters: Sequence[str]) -> str | None:
    """``can_infer_option``: the one option letter standing alone (case-sensitive) among the
    words of ``text`` once the punctuation ``.()[],:;!*#{}`` is blanked, and among its last
    four words; else "answer is X" anywhere. ``Z`` (no option) for a refusal or a lone ``Z``
    word, None for nothing read."""
    if any(r in text for r in _VLMEVAL_REFUSALS):
        return "Z"
    words = text.translate(_VLMEVAL_PUNCT).split()
    present = [c for c in letters if c in words]
    if len(present) == 1 and words.index(present[0]) > len(words) - 5:
        return present[0]
    if not present and "Z" in words:
        return "Z"
    m = _VLMEVAL_VERBOSE.search(text)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    return None


def vlmeval_text(text: str, options: Sequence[str]) -> str | None:
    """``can_infer_text``: the letter of the one option whose text (lower-cased) occurs in
    the lower-cased ``text``, which may be at most twice as long as all option texts together."""
    low = text.lower()
    if len(low) > 2 * sum(len(str(o)) for o in options):
        return None
    hits = [chr(65 + i) for i, o in enumerate(options) if str(o).lower() in low]
    return hits[0] if len(hits) == 1 else None


def vlmeval_choice(text: str | None, options: Sequence[str]) -> str | None:
    """VLMEvalKit's ``can_infer``: the option letter, else the option text, else None (``Z``,
    VLMEvalKit's "no option", is None too: a miss either way)."""
    if text is None or not options:
        return None
    letters = [chr(65 + i) for i in range(len(options))]
    letter = vlmeval_option(text, letters) or vlmeval_text(text, options)
    return None if letter == "Z" else letter
