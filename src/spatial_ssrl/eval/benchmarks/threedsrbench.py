"""3DSRBench (Ma et al., 2024): 3D spatial reasoning on MS-COCO and HSSD images.

Files, as the authors distribute them (Hugging Face ``ccvl/3DSRBench``):
``3dsrbench_v1_vlmevalkit_circular.tsv``, a VLMEvalKit TSV with the columns ``index``, ``qid``,
``question``, ``A``..``D`` (``C``/``D`` empty for two-option questions), ``answer`` (a letter),
``category`` (12 subcategories), ``image`` (base64), ``image_source``, ``image_url``. A qid is
an 8-character base, ``<base>-N`` for the N-th rotation of the options, ``<base>-flip`` for the
left/right-flipped question and ``<base>-flip-N`` for its rotations. ``path`` may be that file
or a folder holding it (the non-circular ``3dsrbench_v1_vlmevalkit.tsv`` and VLMEvalKit's own
``3DSRBench.tsv`` are taken when the circular one is absent; ``file=`` names one).

Scoring: a row is right when VLMEvalKit's rule-based matching reads its answer letter from
:func:`~spatial_ssrl.eval.answers.answer_text` (the last box's content, else the text after the
think block): ``can_infer`` in ``vlmeval/utils/matching_util.py`` (open-compass/VLMEvalKit commit
2cf2a36c6e79; used by ``_3DSRBench.evaluate`` in ``vlmeval/dataset/image_mcq.py``, 944ee120ae41,
through ``mcq_vanilla_eval`` in ``vlmeval/dataset/utils/multiple_choice.py``): the one option letter
standing alone among the last words ("A. right", "The answer is (B) left"; upper case only), else
"answer is X", else the one option text contained in a short answer ("right"); nothing read is a
parse failure. VLMEvalKit's LLM judge for unread rows is not used (its default ``exact_matching``
counts them wrong, as here). ``strict``: the boxed letter read by the reward's parser, hedges
refused, grouped the same way. Groups (``compute_3dsrbench_results_circular.py`` of the
authors): rows are grouped by their qid without a trailing ``-N`` (so a base and its ``-flip`` are separate groups); a group is right only when every row of it
is. ``accuracy`` is the mean over groups, and per type (height, location, orientation,
multi_object, each a set of the 12 subcategories) likewise. ``metrics`` adds the figures
VLMEvalKit prints for the same predictions: ``vanilla`` (per row), ``flip`` (each unflipped
row together with its flipped twin), ``circular`` (= ``accuracy``) and ``flip_circular`` (all
rotations of a question and of its flip together).

The TSV helpers (:func:`find_file`, :func:`read_tsv`, :func:`tsv_images`, :func:`indexed_tsv`) are in
:mod:`._io`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..answers import answer_text, read_choice, vlmeval_choice
from ..base import Benchmark, EvalItem, Skipped, Tally, breakdown, pct, with_strict
from ._io import indexed_tsv

# --------------------------------------------------------------------------- question helpers


def option_letters(row: Mapping[str, str], letters: str = "ABCDEFGH") -> list[str]:
    """The option texts of a row, in letter order, up to the first empty one."""
    options = []
    for letter in letters:
        value = row.get(letter)
        if value is None or not str(value).strip():
            break
        options.append(str(value).strip())
    return options


def mcq_question(question: str, options: Sequence[str], n_images: int = 1, hint: str = "") -> str:
    """``<image>`` placeholders first, the question, the ``A. ...`` lines, the box instruction."""
    lines = ["<image>" * n_images + (f"Hint: {hint.strip()}\n" if hint.strip() else "") + question.strip()]
    lines += [f"{chr(65 + i)}. {text}" for i, text in enumerate(options)]
    lines.append("Answer with the option's letter.")
    return "\n".join(lines)


# --------------------------------------------------------------------------------- 3DSRBench

TYPES = {
    "height": ("height_higher",),
    "location": ("location_above", "location_closer_to_camera", "location_next_to"),
    "orientation": ("orientation_in_front_of", "orientation_on_the_left", "orientation_viewpoint"),
    "multi_object": ("multi_object_closer_to", "multi_object_facing", "multi_object_viewpoint_towards_object",
                     "multi_object_parallel", "multi_object_same_direction"),
}
_SUB_TO_TYPE = {sub: t for t, subs in TYPES.items() for sub in subs}
_ROTATION = re.compile(r"-\d+$")


def question_type(subcategory: str) -> str:
    """One of the four types for a subcategory (by its prefix when it is not one of the 12)."""
    if subcategory in _SUB_TO_TYPE:
        return _SUB_TO_TYPE[subcategory]
    return next((t for t in TYPES if subcategory.startswith(t)), subcategory or "unknown")


def circular_key(qid: str) -> str:
    """The official circular group: the qid without a trailing ``-N`` (``-flip`` kept)."""
    return _ROTATION.sub("", qid)


def flip_key(qid: str) -> str:
    """VLMEvalKit's flip pair: the qid with ``-flip`` removed (rotation kept)."""
    return qid.replace("-flip", "")


def flip_circular_key(qid: str) -> str:
    """VLMEvalKit's flip+circular group: every rotation of a question and of its flip."""
    return circular_key(qid).replace("-flip", "")


SETTINGS: dict[str, Callable[[str], str] | None] = {
    "vanilla": None, "flip": flip_key, "circular": circular_key, "flip_circular": flip_circular_key,
}

PREFERRED_FILES = ("3dsrbench_v1_vlmevalkit_circular.tsv", "3DSRBench.tsv", "3dsrbench_v1_vlmevalkit.tsv")
REQUIRED = ("index", "qid", "question", "A", "B", "answer", "category", "image")


def grouped(rows: Sequence[tuple[str, str, str, bool]], key: Callable[[str], str] | None) -> list[tuple[str, str, bool]]:
    """``(group key, type, right)`` per group of ``(id, qid, type, right)`` rows; a group is
    right when all its rows are (its type is its first row's)."""
    groups: dict[str, list] = {}
    for item_id, qid, qtype, hit in rows:
        k = item_id if key is None else key(qid)
        g = groups.setdefault(k, [qtype, True])
        g[1] = g[1] and hit
    return [(k, t, ok) for k, (t, ok) in groups.items()]


class ThreeDSRBench(Benchmark):
    name = "3dsrbench"
    aliases = ("3DSRBench", "3dsrbench_circular", "3DSR-Bench")
    hub_repo = "ccvl/3DSRBench"
    native_circular = True  # circular evaluation is the loader's own `circular` option
    default_path_hint = "3dsrbench_v1_vlmevalkit_circular.tsv (ccvl/3DSRBench) or its folder"

    def load(self, path: str, *, file: str | None = None, circular: bool = True, images: bool = True
             ) -> tuple[list[EvalItem], list[Skipped]]:
        """Every row of the TSV; ``circular=False`` keeps only the unrotated rows (the base and
        flipped questions), a quicker run whose groups are single rows. ``images=False`` decodes
        no image (scoring predictions): the items are the same, their ``images`` empty (the
        images are base64 in the TSV; the question's ``<image>`` count is read from the cell)."""
        rows, media = indexed_tsv(path, file, PREFERRED_FILES, REQUIRED, self.name)
        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        for item_id, row in rows:
            qid = str(row["qid"]).strip()
            if not circular and _ROTATION.search(qid):
                continue
            options = option_letters(row, "ABCD")
            answer = str(row["answer"]).strip().upper()
            if len(options) < 2 or answer not in "ABCD"[:len(options)] or not answer:
                skipped.append(Skipped(item_id, "answer_not_an_option"))
                continue
            taken = media.take(row, item_id, images)
            if isinstance(taken, Skipped):
                skipped.append(taken)
                continue
            decoded, n_images = taken
            sub = str(row["category"]).strip()
            items.append(EvalItem(
                id=item_id,
                question=mcq_question(str(row["question"]), options, n_images, str(row.get("hint", "") or "")),
                images=decoded, answer=answer, options=options, category=question_type(sub),
                meta={"qid": qid, "subcategory": sub, "group": circular_key(qid)},
            ))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        rows: list[tuple[str, str, str, bool]] = []
        strict_rows: list[tuple[str, str, str, bool]] = []
        sub_of: dict[str, str] = {}
        tally = Tally()
        failures = missing = 0
        for it in items:
            response = responses.get(it.id)
            missing += response is None
            letter = vlmeval_choice(answer_text(response), it.options or [])
            failures += response is not None and letter is None
            boxed_letter = tally.read(response, read_choice, it.options, n_letters=len(it.options or ()) or None)
            qid = str(it.meta.get("qid", it.id))
            rows.append((it.id, qid, it.category or "unknown", letter is not None and letter == it.answer))
            strict_rows.append((it.id, qid, it.category or "unknown", boxed_letter is not None
                                and boxed_letter == it.answer))
            sub_of[circular_key(qid)] = str(it.meta.get("subcategory", it.category))

        settings: dict[str, dict[str, Any]] = {}
        for setting, key in SETTINGS.items():
            groups = grouped(rows, key)
            per_type: dict[str, list[bool]] = {}
            for _, qtype, ok in groups:
                per_type.setdefault(qtype, []).append(ok)
            settings[setting] = {
                "accuracy": pct([ok for _, _, ok in groups]), "n": len(groups),
                "per_type": breakdown(per_type),
            }
        per_sub: dict[str, list[bool]] = {}
        for k, _, ok in grouped(rows, circular_key):
            per_sub.setdefault(sub_of.get(k, "unknown"), []).append(ok)
        rotated = any(_ROTATION.search(qid) for _, qid, _, _ in rows)
        circ = settings["circular"]
        report = {
            "accuracy": circ["accuracy"],
            "n": len(rows),
            "parse_failures": failures,
            "per_category": circ["per_type"],
            "metric": ("circular accuracy (official 3DSRBench): rows read by VLMEvalKit's rule-based can_infer "
                       "(vlmeval/utils/matching_util.py, no LLM judge); a question counts only when all its option "
                       "rotations are right (a flipped question is its own group); mean over groups"
                       + ("" if rotated else "; no rotated rows loaded, so groups are single rows")),
            "metrics": {
                **{s: v["accuracy"] for s, v in settings.items()},
                "n_groups": circ["n"],
                "settings": settings,
                "per_subcategory": breakdown(per_sub),
            },
            "missing": missing,
        }
        return with_strict(report, pct([ok for _, _, ok in grouped(strict_rows, circular_key)]), tally)


BENCHMARK = ThreeDSRBench()
