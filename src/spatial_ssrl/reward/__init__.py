"""Verifiable reward for Spatial-SSRL answers: canonicalised, hedge-proof, linear-time.

``score(response, answer, answer_type)`` returns ``overall = 0.9 * accuracy + 0.1 * format``
(weights configurable) with both parts in {0, 1} (accuracy can be fractional only with the
opt-in permutation ``partial_credit``, and for ``numeric`` answers, which earn VSI-Bench's
mean relative accuracy: see :mod:`.numeric`).

Format (1 or 0): the response starts with a ``<think>...</think>`` block (whitespace inside
the tags tolerated: ``< think >``, ``</ think>``), has no other think tag, and the text after
the block holds a complete ``\\boxed{...}`` with nothing unclosed after it.

Accuracy (1 or 0): the final box of the *answer region* (the text after the last
``</think>``; the whole response when there are no think tags; nothing when ``<think>``
never closes), read by the reader of its answer type (see :mod:`.canon`), equals the
canonical ground truth, and every other box of the answer region says the same thing.
Accuracy does not require the format check to pass (as in the paper); pass
``require_format=True`` to make it so.

Where this reward deliberately differs from the paper's (raw string equality on the last
box, a regular expression for the format) -- see :data:`DIFFERENCES_FROM_PAPER`. For every
well-formed response whose box holds the exact ground-truth string, and for every response
whose box holds a plainly different valid answer, both give the same ``overall``.

Trainer adapters live in :mod:`.trl`, :mod:`.easyr1` and :mod:`.verl`; ``ssrl score`` in
:mod:`.cli`. The package imports only the standard library.
"""

from __future__ import annotations

from .canon import (
    ANSWER_TYPES,
    canonical_answer,
    canonical_choice,
    canonical_exact,
    canonical_flip,
    canonical_permutation,
    canonicalize,
    clean_text,
    infer_answer_type,
)
from .numeric import canonical_numeric, mean_relative_accuracy, read_length
from .parsing import (
    ParsedResponse,
    check_format,
    extract_answer,
    parse_response,
    scan_boxes,
)
from .scoring import DEFAULT_FORMAT_WEIGHT, score

DIFFERENCES_FROM_PAPER = """\
Where `spatial_ssrl.reward` deliberately differs from the paper's reward
(EasyR1 `img_score`: raw string equality on the last `\\boxed{}`, format by regular expression):

1. Spellings of the right answer count. `\\boxed{A. Left}`, `\\boxed{(A)}`, `\\boxed{\\text{A}}`,
   `\\boxed{a}`, `\\boxed{Option A}`, the option text alone when the options are known,
   `\\boxed{0, 2, 3, 1}`, `\\boxed{[0 2 3 1]}`, `\\boxed{3-vertical}` score accuracy 1 (paper: 0).
   The paper's model learned its answer format in the SFT cold start; a strict string test
   turns a formatting slip into a wrong answer and adds noise to the advantage estimate.
2. Hedging scores 0. Several boxes after the think block that canonicalise to different
   answers (`\\boxed{A} ... \\boxed{B}`) give accuracy 0 (paper: the last box is scored, so a
   model can list answers); an unreadable box counts as a different answer. Repeating the
   same answer (in any spelling) is fine. `allow_hedging=True` restores the paper's rule.
   More than 10 boxes after the think block always give accuracy 0.
3. Several answers in one box score 0: `A, B`, `A or B`, `AB`, a letter followed by another
   option's text (`A. Right` when A is Left), a sequence that is not a permutation of the
   ground truth's labels. (The paper's string test also gives 0 here; peer projects that use
   substring tests do not, and were hacked through it.)
4. Only the answer region counts. A box that appears only inside `<think>...</think>`, or
   after a `<think>` that never closes, gives accuracy 0 (paper: the last box anywhere, so
   accuracy 1 and overall 0.9).
5. An unclosed final box is malformed: `\\boxed{A} ... \\boxed{B` gives accuracy 0 and
   format 0 (paper: format 1, accuracy 0). A box nested in an unclosed one is not read
   (paper: it reads the innermost last `\\boxed{`).
6. One think block. The format check wants exactly one `<think>...</think>` block at the
   start, no other think tag, and a complete box after it (paper: any text matching
   `<think>.*</think>.*\\boxed{.*}.*`, so several blocks or a box that never closes can pass).
   Whitespace inside tags is tolerated as in the paper; whitespace elsewhere is left alone
   (the paper removes spaces around every `<`, `>` and `/`, box content included).
7. Empty or unparseable boxes, boxes over 1000 characters, and answers that are not a valid
   option (`E` on a four-option question) give accuracy 0 (paper: 0 unless the raw strings
   match). Ground truths are canonicalised too, so `0-2-3-1` and `0,2,3,1` are equal.

Accuracy does not require the format check (both are scored independently, as in the paper):
a bare `\\boxed{A}` without a think block scores 0.9 when A is right. `require_format=True`
makes accuracy count only for well-formed responses.
"""

__all__ = [
    "ANSWER_TYPES",
    "DEFAULT_FORMAT_WEIGHT",
    "DIFFERENCES_FROM_PAPER",
    "ParsedResponse",
    "canonical_answer",
    "canonical_choice",
    "canonical_exact",
    "canonical_flip",
    "canonical_numeric",
    "canonical_permutation",
    "canonicalize",
    "check_format",
    "clean_text",
    "extract_answer",
    "infer_answer_type",
    "mean_relative_accuracy",
    "parse_response",
    "read_length",
    "scan_boxes",
    "score",
]
