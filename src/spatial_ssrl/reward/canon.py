"""Canonical forms of answers, one reader per answer type.

Every reader takes the raw text of a box and returns ``(canonical, None)`` or
``(None, reason)``. Readers are deliberately narrow: they accept the spellings a model
plausibly uses for *one* answer and refuse anything that names two answers.

- ``choice``: ``A``, ``a``, ``(A)``, ``A.``, ``A. Left``, ``A) Left``, ``Option A``,
  ``\\text{A}``, ``**A**`` -> ``A``. With the options given, the option text alone
  (``Left``) maps to its letter, and a letter followed by the text of a *different*
  option (``A. Right`` when A is Left) is refused. Two or more distinct letters
  (``A, B``, ``A or B``, ``AB``) are refused.
- ``permutation``: integers separated by ``-``, ``,``, spaces, ``;``, ``|``, ``/``,
  arrows or dashes, optionally in brackets: ``0-2-3-1``, ``0,2,3,1``, ``0 2 3 1``,
  ``[0, 2, 3, 1]``, ``(0-2-3-1)``, ``0 -> 2 -> 3 -> 1`` -> ``0-2-3-1``. The result must be
  a permutation of the ground truth's labels (same set, same length).
- ``flip``: ``3-0``, ``3, 0``, ``(3,0)``, ``3-vertical``, ``3 horizontally``,
  ``Label 3, Direction 1`` -> ``3-0`` / ``3-1`` (0 = vertical, 1 = horizontal).
- ``numeric``: one length, ``2.5``, ``2.5 m``, ``250 cm``, ``2500 mm``, ``8.2 feet``, in metres
  (a bare number is metres) -> ``2.5`` (see :mod:`.numeric`). Two numbers or a range
  (``2-3 m``, ``2 or 3``) are refused. Scored with partial credit (mean relative accuracy).
- ``exact``: a fallback for answers of no known type: LaTeX wrappers, outer punctuation
  and case are dropped, then strings are compared.

All readers work on at most a few thousand characters (the box content limit) and use
no pattern that can backtrack badly.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterable, Sequence

from .numeric import canonical_numeric

ANSWER_TYPES = ("choice", "permutation", "flip", "exact", "numeric")
LETTERS = string.ascii_uppercase

# LaTeX commands (\text, \mathrm, \textbf, \boxed, \left, \quad, ...), escaped characters
# (\{, \,, \\), braces and dollar signs become spaces; wrappers thus unwrap themselves.
_LATEX_NOISE = re.compile(r"\\[A-Za-z]+\*?|\\.|[{}$]", re.DOTALL)
_STRIP_CHARS = " \t\r\n.,;:!?*\"'`\u3002\uff0c\uff1a\uff1b\uff01\uff1f"
_BRACKETS = {"(": ")", "[": "]"}
# A leading "answer:", "the answer is", "option", "final answer:" ... (after whitespace
# has been collapsed to single spaces, so no run of spaces reaches this pattern).
_PREFIX = re.compile(
    r"(?i)^(?:the )?(?:final |correct )?(?:answer|option|choice)(?: is)?(?: ?[:\uff1a=] ?| )"
)
_WORD = re.compile(r"[A-Za-z0-9]+")
# Leading letter of a choice: "(A)", "[A]", "A." "A:" "A)" "A]" (either case), or an
# upper-case "A" followed by a space or the end.
_LEAD = re.compile(r"^(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Za-z])[.:)\]]|([A-Z])(?= |$))")
_OPTION_PREFIX = re.compile(r"^\(?[A-Z][.):]\s*")
# Separators between labels of a permutation or a flip answer.
_SEPARATORS = str.maketrans({ch: " " for ch in "-,;|/>()[]<\u2192\u27f6\u2013\u2014\u2212_&+"})

_DIRECTION_WORDS = {
    "vertical": 0,
    "vertically": 0,
    "vert": 0,
    "v": 0,
    "horizontal": 1,
    "horizontally": 1,
    "horiz": 1,
    "hor": 1,
    "h": 1,
}
_FLIP_NOISE = frozenset({"label", "patch", "direction", "dir", "flipped", "flip", "is"})

Result = tuple  # (canonical or None, reason or None)
# a ground truth written as a decimal number with a point: a numeric answer
_DECIMAL = re.compile(r"^[0-9]{1,15}\.[0-9]{1,15}$")


def clean_text(raw: str) -> str:
    """Drop LaTeX commands, braces and ``$``, collapse whitespace, strip outer
    punctuation and enclosing brackets."""
    text = raw
    if "\\" in text or "{" in text or "}" in text or "$" in text:
        text = _LATEX_NOISE.sub(" ", text)
    text = " ".join(text.split())
    return strip_outer(text)


def _encloses(text: str, open_ch: str, close_ch: str) -> bool:
    """True when text[0] and text[-1] are a matching pair around everything else."""
    depth = 0
    last = len(text) - 1
    for i, ch in enumerate(text):
        if ch == open_ch:
            depth += 1
        elif ch == close_ch:
            depth -= 1
            if depth == 0 and i != last:
                return False
    return depth == 0


def strip_outer(text: str) -> str:
    """Strip whitespace, punctuation and enclosing ``()``/``[]`` pairs from both ends."""
    while True:
        text = text.strip(_STRIP_CHARS)
        if len(text) >= 2:
            close = _BRACKETS.get(text[0])
            if close is not None and text[-1] == close and _encloses(text, text[0], close):
                text = text[1:-1]
                continue
        return text


def _strip_prefix(text: str) -> str:
    m = _PREFIX.match(text)
    if m is None:
        return text
    return strip_outer(text[m.end():])


def text_key(text: str) -> str:
    """Comparison key for option texts: case-folded letters and digits only."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _digits(token: str) -> bool:
    # ASCII digits only ("²".isdigit() is True) and short enough for int() to be cheap.
    return len(token) <= 9 and token.isascii() and token.isdigit()


# ----------------------------------------------------------------------------- choice


@functools.lru_cache(maxsize=1024)
def _option_table(options: tuple[str, ...]) -> dict[str, int]:
    """Option text key -> index; texts that collide are left out (ambiguous)."""
    table: dict[str, int] = {}
    clashes = set()
    for i, opt in enumerate(options):
        body = _OPTION_PREFIX.sub("", clean_text(str(opt)), count=1)
        key = text_key(body)
        if not key:
            continue
        if key in table:
            clashes.add(key)
        table[key] = i
    for key in clashes:
        del table[key]
    return table


def _letter_count(options: Sequence[str] | None, answer_letter: str | None) -> int:
    n = 4
    if options:
        n = max(n, len(options))
    if answer_letter is not None and answer_letter in LETTERS:
        n = max(n, LETTERS.index(answer_letter) + 1)
    return min(n, len(LETTERS))


def canonical_choice(raw: str, options: Sequence[str] | None = None, n_letters: int = 4) -> Result:
    """Read a multiple-choice answer; see the module docstring for the accepted forms."""
    text = clean_text(raw)
    if not text:
        return None, "empty_box"
    letters = LETTERS[:n_letters]
    table = _option_table(tuple(str(o) for o in options)) if options else None
    if table:
        hit = table.get(text_key(text))
        if hit is not None and hit < len(letters):
            return letters[hit], None
    text = _strip_prefix(text)
    if not text:
        return None, "empty_box"
    if table:
        hit = table.get(text_key(text))
        if hit is not None and hit < len(letters):
            return letters[hit], None

    if len(text) == 1:
        up = text.upper()
        return (up, None) if up in letters else (None, "not_an_option")

    tokens = _WORD.findall(text)
    named = {t for t in tokens if len(t) == 1 and t in letters}
    if len(text) > 1 and text.isalpha() and text.isupper() and all(ch in letters for ch in text) and len(set(text)) > 1:
        return None, "multiple_letters"  # "AB", "ACD": letters run together
    if len(named) > 1:
        return None, "multiple_letters"

    m = _LEAD.match(text)
    if m is None:
        return None, "unparseable"
    letter = next(g for g in m.groups() if g is not None).upper()
    if letter not in letters:
        return None, "not_an_option"
    if named and named != {letter}:
        return None, "multiple_letters"
    rest = strip_outer(text[m.end():].strip(" -"))
    if rest and table:
        hit = table.get(text_key(rest))
        if hit is not None and letters[hit] != letter:
            return None, "conflicting_option_text"
    return letter, None


# ------------------------------------------------------------------------ permutation


def parse_label_sequence(raw: str) -> tuple[int, ...] | None:
    """Integers of a separated list (``0-2-3-1``, ``[0, 2, 3, 1]``, ...) or None."""
    text = _strip_prefix(clean_text(raw))
    tokens = text.translate(_SEPARATORS).split()
    if not tokens or not all(_digits(t) for t in tokens):
        return None
    return tuple(int(t) for t in tokens)


def canonical_permutation(raw: str, expected: Sequence[int] | None = None) -> Result:
    """Read a permutation; ``expected`` (the ground truth's labels) fixes the label set
    and the length. Without it, any sequence of distinct labels is accepted."""
    if not clean_text(raw):
        return None, "empty_box"
    labels = parse_label_sequence(raw)
    if labels is None:
        return None, "unparseable"
    if expected is not None:
        if len(labels) != len(expected) or sorted(labels) != sorted(expected):
            return None, "not_a_permutation"
    elif len(set(labels)) != len(labels):
        return None, "not_a_permutation"
    return "-".join(str(v) for v in labels), None


# ------------------------------------------------------------------------------- flip


def canonical_flip(raw: str) -> Result:
    """Read a flipped-patch answer ``Label-Direction`` (direction 0 vertical, 1 horizontal)."""
    text = _strip_prefix(clean_text(raw))
    if not text:
        return None, "empty_box"
    label = None
    direction = None
    numbers: list[int] = []
    for token in text.casefold().translate(_SEPARATORS).split():
        if _digits(token):
            numbers.append(int(token))
        elif token in _DIRECTION_WORDS:
            if direction is not None:
                return None, "unparseable"
            direction = _DIRECTION_WORDS[token]
        elif token in _FLIP_NOISE:
            continue
        else:
            return None, "unparseable"
    if direction is None:
        if len(numbers) != 2:
            return None, "unparseable"
        label, direction = numbers
    else:
        if len(numbers) != 1:
            return None, "unparseable"
        label = numbers[0]
    if direction not in (0, 1):
        return None, "bad_direction"
    return f"{label}-{direction}", None


# ------------------------------------------------------------------------------ exact


def canonical_exact(raw: str) -> Result:
    text = clean_text(raw).casefold()
    return (text, None) if text else (None, "empty_box")


# ------------------------------------------------------------------------- dispatch


def infer_answer_type(answer: str) -> str:
    """Guess the answer type from a ground-truth string.

    One letter -> ``choice``; hyphen-separated integers -> ``flip`` when there are exactly
    two (``Label-Direction``, e.g. ``3-0``) and ``permutation`` when there are three or
    more; a decimal number with a point (``2.35``, the distance task's metres) ->
    ``numeric``; anything else -> ``exact``. No Spatial-SSRL task has a two-piece permutation
    (the smallest is a three-strip shuffle or a three-region depth order), so a pair is
    always a flip answer; pass the type explicitly for anything else.
    """
    text = str(answer).strip()
    if len(text) == 1 and text in LETTERS:
        return "choice"
    parts = text.split("-")
    if len(parts) >= 2 and all(_digits(p) for p in parts):
        return "flip" if len(parts) == 2 else "permutation"
    if _DECIMAL.match(text):
        return "numeric"
    return "exact"


@functools.lru_cache(maxsize=4096)
def _ground_truth(answer: str, answer_type: str, options: tuple[str, ...] | None):
    """Canonical ground truth plus the parameters its readers need (cached)."""
    if answer_type == "choice":
        head = clean_text(answer)[:1].upper()
        n = _letter_count(options, head if head else None)
        value, _ = canonical_choice(answer, options, n)
        return value, n
    if answer_type == "permutation":
        labels = parse_label_sequence(answer)
        if labels is None or len(set(labels)) != len(labels):
            return None, None
        return "-".join(str(v) for v in labels), labels
    if answer_type == "flip":
        value, _ = canonical_flip(answer)
        return value, None
    if answer_type == "exact":
        value, _ = canonical_exact(answer)
        return value, None
    if answer_type == "numeric":
        value, _ = canonical_numeric(answer)
        return value, None
    raise ValueError(f"unknown answer_type {answer_type!r}; expected one of {', '.join(ANSWER_TYPES)}")


def canonical_answer(
    answer: str, answer_type: str | None = None, options: Iterable[str] | None = None
) -> str | None:
    """The canonical form of a ground-truth answer (None when it cannot be read)."""
    kind = answer_type or infer_answer_type(answer)
    opts = tuple(str(o) for o in options) if options is not None else None
    return _ground_truth(str(answer), kind, opts)[0]


@functools.lru_cache(maxsize=16384)
def _read_cached(raw: str, answer_type: str, param) -> Result:
    if answer_type == "choice":
        options, n = param
        return canonical_choice(raw, options, n)
    if answer_type == "permutation":
        return canonical_permutation(raw, param)
    if answer_type == "flip":
        return canonical_flip(raw)
    if answer_type == "numeric":
        return canonical_numeric(raw)
    return canonical_exact(raw)


def read_prediction(raw: str, answer_type: str, answer: str, options: tuple[str, ...] | None) -> tuple[Result, str | None]:
    """Canonicalise ``raw`` against the ground truth ``answer``; returns the prediction
    result and the canonical ground truth."""
    truth, param = _ground_truth(answer, answer_type, options)
    if answer_type == "choice":
        param = (options, param)
    return _read_cached(raw, answer_type, param), truth


def canonicalize(
    text: str,
    answer_type: str,
    answer: str | None = None,
    options: Iterable[str] | None = None,
) -> str | None:
    """Canonical form of ``text`` read as ``answer_type`` (None when it is not a valid
    answer). ``answer`` (the ground truth) fixes the label set of permutations and the
    letter range of choices; ``options`` enables option-text matching."""
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"unknown answer_type {answer_type!r}; expected one of {', '.join(ANSWER_TYPES)}")
    opts = tuple(str(o) for o in options) if options is not None else None
    if answer is not None:
        (value, _), _ = read_prediction(str(text), answer_type, str(answer), opts)
        return value
    if answer_type == "choice":
        return canonical_choice(str(text), opts, _letter_count(opts, None))[0]
    return _read_cached(str(text), answer_type, None)[0]
