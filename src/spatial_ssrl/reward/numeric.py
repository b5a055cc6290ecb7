"""Numeric answers: a length read from a box (with its unit), and partial credit for it.

Reading (:func:`read_length`). A box holds *one* length: a decimal number, optionally
followed by a unit, optionally with a few harmless words or signs around it
(``about 2.5 m``, ``\\approx 2.5``, ``2.5\\,\\text{m}``, ``distance: 2.5 meters``). The value
is returned in metres. Accepted units, case-insensitive, written right after the number
with or without a space: ``m``/``meter(s)``/``metre(s)``, ``cm``, ``mm``, ``km`` (and their
long spellings), ``ft``/``foot``/``feet`` and ``'``, ``in``/``inch``/``inches`` and ``"``,
``yd``/``yard(s)``. A bare number is metres. One compound spelling is read as one length:
whole metres then centimetres (``1 m 20 cm``) or whole feet then inches (``5 ft 3 in``,
``5' 3"``), the second part below one of the first unit.

Anything that names more than one value is refused, never averaged or guessed:
two numbers (``2 3``, ``2 m or 3 m``, ``2.5 m (250 cm)``), ranges (``2-3 m``,
``between 2 and 3 m``, ``2 to 3``), ``2.5 \\pm 0.1``, and words we do not know
(``at least 2 m``, ``less than 3 m``). A sign is refused too (a distance is never
negative; ``-2`` is more likely the tail of a range). Thousands separators and decimal
commas are not read (``1,200`` and ``2,5`` are two numbers). Only ASCII digits count.

Partial credit (:func:`mean_relative_accuracy`): VSI-Bench's mean relative accuracy
(Yang et al., "Thinking in Space", 2025), the share of the ten thresholds
theta in 0.50, 0.55, ..., 0.95 for which the relative error ``|pred - truth| / truth`` is
at most ``1 - theta``. As in :mod:`spatial_ssrl.eval.benchmarks.vsibench` (its ``strict``
figure), the comparison is inclusive with a tolerance of 1e-9, so the boundaries do not
depend on float rounding: truth 2.0, prediction 2.3 is a relative error of 0.15, within
1 - theta for theta = 0.50 ... 0.85, eight of ten thresholds: 0.8.

Standard library only; every step is linear in the (bounded) box length.
"""

from __future__ import annotations

import math
import re

MRA_THRESHOLDS = tuple(round(0.50 + 0.05 * k, 2) for k in range(10))
"""0.50, 0.55, ..., 0.95: VSI-Bench's confidence thresholds."""
MRA_TOLERANCE = 1e-9

# metres per unit as an exact ratio (numerator, denominator): 250 cm is 250 / 100 = 2.5
# exactly, where 250 * 0.01 would not be
_UNIT_RATIOS = {
    "m": (1, 1),
    "cm": (1, 100),
    "mm": (1, 1000),
    "km": (1000, 1),
    "ft": (3048, 10000),
    "in": (254, 10000),
    "yd": (9144, 10000),
}
UNIT_NAMES = {
    "m": "m", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
    "cm": "cm", "centimeter": "cm", "centimeters": "cm", "centimetre": "cm", "centimetres": "cm",
    "mm": "mm", "millimeter": "mm", "millimeters": "mm", "millimetre": "mm", "millimetres": "mm",
    "km": "km", "kilometer": "km", "kilometers": "km", "kilometre": "km", "kilometres": "km",
    "ft": "ft", "foot": "ft", "feet": "ft", "'": "ft", "\u2032": "ft",
    "in": "in", "inch": "in", "inches": "in", '"': "in", "\u2033": "in",
    "yd": "yd", "yard": "yd", "yards": "yd",
}
# (larger unit, smaller unit, smaller units per larger unit) of the compound spellings
_COMPOUNDS = {("m", "cm"): 100, ("ft", "in"): 12}
# words and signs that may stand around the one number without changing what it says
_FILLER_WORDS = frozenset({
    "about", "approximately", "approx", "around", "roughly", "nearly", "circa", "ca", "estimated", "estimate",
    "distance", "is", "of", "away", "apart", "length", "answer", "final", "the",
})
_FILLER_SIGNS = frozenset({"~", "\u2248", "=", ":", "\u223c"})
_LATEX_NOISE = re.compile(r"\\[A-Za-z]+\*?|\\.|[{}$]", re.DOTALL)
# numbers (ASCII digits, bounded lengths so float() stays cheap), words, or any other
# single character; one pass, no backtracking beyond a token
_TOKEN = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?|\.[0-9]{1,15}|[a-z]+|\S")
_OUTER = " \t\r\n.,;:!?*`\u3002"
_OUTER_LEFT = _OUTER.replace(".", "")
_QUOTES = ("'", '"', "`")


def mean_relative_accuracy(pred: float, truth: float) -> float:
    """Share of the thresholds theta in 0.50..0.95 (step 0.05) with
    ``|pred - truth| / |truth| <= 1 - theta`` (inclusive, 1e-9 tolerance). A zero truth
    counts only an exact zero; a non-finite value scores 0."""
    if not (math.isfinite(pred) and math.isfinite(truth)):
        return 0.0
    if truth == 0:
        return 1.0 if pred == 0 else 0.0
    rel = abs(pred - truth) / abs(truth)
    return sum(rel <= (1.0 - t) + MRA_TOLERANCE for t in MRA_THRESHOLDS) / len(MRA_THRESHOLDS)


def _clean(raw: str) -> str:
    text = raw
    if "\\" in text or "{" in text or "}" in text or "$" in text:
        text = _LATEX_NOISE.sub(" ", text)
    text = " ".join(text.split()).lower()
    while True:
        text = text.rstrip(_OUTER).lstrip(_OUTER_LEFT)  # a leading "." is a decimal point
        quoted = len(text) >= 2 and text[0] == text[-1] and text[0] in _QUOTES
        bracketed = len(text) >= 2 and (text[0], text[-1]) in (("(", ")"), ("[", "]")) and \
            text.count(text[0]) == 1 and text.count(text[-1]) == 1
        if not (quoted or bracketed):
            return text
        text = text[1:-1]


def _metres(value: float, unit: str) -> float:
    num, den = _UNIT_RATIOS[unit]
    return value * num / den


def read_length(raw: str) -> tuple[float | None, str | None]:
    """The one length ``raw`` states, in metres, or ``(None, reason)``: ``empty_box``,
    ``no_number``, ``multiple_numbers``, ``signed_number``, ``unparseable``."""
    text = _clean(raw)
    if not text:
        return None, "empty_box"
    tokens = _TOKEN.findall(text)
    quantities: list[tuple[float, str | None]] = []
    unknown = False
    signed = False
    after_number = False
    for tok in tokens:
        first = tok[0]
        if "0" <= first <= "9" or (first == "." and len(tok) > 1):  # ASCII only: float() reads other digits
            quantities.append((float(tok), None))
            after_number = True
            continue
        if after_number and tok in UNIT_NAMES:
            value, _ = quantities[-1]
            quantities[-1] = (value, UNIT_NAMES[tok])
            after_number = False
            continue
        after_number = False
        if tok in _FILLER_WORDS or tok in _FILLER_SIGNS:
            continue
        if tok in ("-", "+", "\u2212"):
            signed = True
        unknown = True
    if not quantities:
        return None, "no_number"
    if len(quantities) == 1:
        if unknown:
            return None, "signed_number" if signed else "unparseable"
        value, unit = quantities[0]
        return _metres(value, unit or "m"), None
    if len(quantities) == 2 and not unknown:
        (v1, u1), (v2, u2) = quantities
        per = _COMPOUNDS.get((u1, u2))
        if per is not None and v1 == int(v1) and 0 <= v2 < per:
            return _metres(v1, u1) + _metres(v2, u2), None
    return None, "multiple_numbers"


def format_length(metres: float) -> str:
    """The canonical text of a length in metres (12 significant digits, no trailing zeros):
    ``2.5``, ``2.49936``. Two spellings of one length give the same text."""
    text = f"{metres:.12g}"
    return "0" if text == "-0" else text


def canonical_numeric(raw: str) -> tuple[str | None, str | None]:
    """Read a numeric box: ``(canonical metres text, None)`` or ``(None, reason)``."""
    value, reason = read_length(raw)
    if value is None:
        return None, reason
    if not math.isfinite(value):
        return None, "unparseable"
    return format_length(value), None
