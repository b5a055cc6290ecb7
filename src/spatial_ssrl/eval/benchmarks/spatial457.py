"""Spatial457 (Wang et al., CVPR 2025): 6D spatial reasoning on synthetic SuperCLEVR scenes.

Files: VLMEvalKit's ``Spatial457.tsv`` (``vlmeval/dataset/spatial457.py``): ``index``,
``image`` (base64), ``question``, ``answer`` and ``category``, one of the seven subsets
``L1_single``, ``L2_objects``, ``L3_2d_spatial``, ``L4_occ``, ``L4_pose``, ``L5_6d_spatial``,
``L5_collision``. ``path`` is the file or a folder holding it.

Scoring, official rule (``accuracy``): VLMEvalKit's ``Spatial457.evaluate``
(``vlmeval/dataset/spatial457.py``, open-compass/VLMEvalKit commit 401916c0) and
``Spatial457_utils.is_correct`` (``vlmeval/dataset/utils/spatial457.py``, ec096a01), rule-based (no
judge model). The prediction is the ``Answer`` field of the JSON template the official prompt asks
for (``'Answer': '...'``, ``"Answer": "..."`` or ``'Answer': <digit>``), else, as with the
dataset's ``ROBUST = True``, the whole answer
(:func:`~spatial_ssrl.eval.answers.answer_text`: the last box's content, else the text after the
think block, stripped). It is right when it equals the answer case-insensitively (``none`` read as
``no``), or is ``0`` for "No", a number word ``zero``..``ten`` for the answer's digits, a digit 1-9
for "Yes", or a shape of the same SuperCLEVR super-category (car, bus, motorbike, aeroplane,
bicycle; judged on the first word, e.g. "sedan" for "suv"). So "Yes." or "The answer is yes" is
wrong there, as officially. Only an empty answer reads nothing (``parse_failures``);
``metrics["format_errors"]`` counts answers without the JSON field, as the official report does.
``strict``: the boxed text (hedges refused) by the same match, lower-cased and without outer
punctuation. ``accuracy`` is the item mean; ``per_category`` the seven subsets;
``metrics["per_level"]`` the five levels (L4 and L5 pool their two subsets).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..answers import answer_text, read_text
from ..base import (
    Benchmark,
    EvalItem,
    Skipped,
    Tally,
    breakdown,
    mean_report,
    pct,
    with_strict,
)
from ._io import indexed_tsv

SUBSETS = ("L1_single", "L2_objects", "L3_2d_spatial", "L4_occ", "L4_pose", "L5_6d_spatial", "L5_collision")

SUPER_CATEGORIES = {
    "car": ("suv", "wagon", "minivan", "sedan", "truck", "addi", "car"),
    "bus": ("articulated", "regular", "double", "school", "bus"),
    "motorbike": ("chopper", "dirtbike", "scooter", "cruiser", "motorbike"),
    "aeroplane": ("jet", "fighter", "biplane", "airliner", "aeroplane"),
    "bicycle": ("road", "utility", "mountain", "tandem", "bicycle"),
}
_SUPER = {word: sup for sup, words in SUPER_CATEGORIES.items() for word in words}
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"))}

SHAPES = ("airliner", "dirtbike", "road bike", "tandem bike", "suv", "wagon", "scooter", "mountain bike", "minivan",
          "sedan", "school bus", "fighter", "chopper", "double bus", "truck", "articulated bus", "cruiser", "jet",
          "utility bike", "regular bus", "biplane")
COLORS = ("gray", "blue", "purple", "brown", "green", "cyan", "red", "yellow")
INSTRUCTION = (
    "Answer with one word or short phrase: a shape (" + ", ".join(SHAPES) + "), a color (" + ", ".join(COLORS)
    + "), a size (small, large), a direction (left, right, front, back), an integer from 0 to 10 for "
    "questions asking how many or for a number, or Yes or No for questions asking whether there is something."
)
REQUIRED = ("index", "question", "answer", "category", "image")


_JSON_ANSWER = (re.compile(r"Answer': '(.*?)'"), re.compile(r'Answer": "(.*?)"'), re.compile(r"Answer': (\d)"))


def official_prediction(response: str | None) -> tuple[str | None, bool]:
    """(prediction, read from the JSON template): the template's ``Answer`` field, else the
    whole answer text."""
    text = answer_text(response)
    if text is None:
        return None, False
    for pattern in _JSON_ANSWER:
        m = pattern.search(text)
        if m:
            return m.group(1), True
    return text, False


def official_match(answer: str, predicted: str) -> bool:
    """``is_correct`` as VLMEvalKit has it: case-insensitive equality and the exceptions, with the
    "0" and digit cases compared as written (case-sensitively), nothing stripped."""
    pred, gt = str(predicted), str(answer)
    if pred.lower() == "none":
        pred = "no"
    if pred.lower() == gt.lower() or (pred == "0" and gt == "No"):
        return True
    if _NUMBER_WORDS.get(pred.lower()) == gt or (gt.lower() == "yes" and pred in tuple("123456789")):
        return True
    p_first, g_first = pred.lower().split(" ")[0], gt.lower().split(" ")[0]
    return p_first in _SUPER and g_first in _SUPER and _SUPER[p_first] == _SUPER[g_first]


def lenient_match(answer: str, predicted: str) -> bool:
    """The Spatial457 rule on cleaned strings (our strict reading: both stripped and lower-cased)."""
    pred = str(predicted).strip().lower()
    gt = str(answer).strip().lower()
    if pred == "none":
        pred = "no"
    if pred == gt:
        return True
    if pred == "0" and gt == "no":
        return True
    if _NUMBER_WORDS.get(pred) == gt:
        return True
    if gt == "yes" and pred in tuple("123456789"):
        return True
    p_first, g_first = (pred.split(" ") or [""])[0], (gt.split(" ") or [""])[0]
    return p_first in _SUPER and g_first in _SUPER and _SUPER[p_first] == _SUPER[g_first]


class Spatial457(Benchmark):
    name = "spatial457"
    aliases = ("Spatial457",)
    hub_repo = None  # VLMEvalKit's Spatial457.tsv is served from its own site, not the Hub
    default_path_hint = "Spatial457.tsv (VLMEvalKit) or its folder"

    def load(self, path: str, *, file: str | None = None, images: bool = True
             ) -> tuple[list[EvalItem], list[Skipped]]:
        """Every row of the TSV. ``images=False`` decodes no image (scoring predictions): the
        items are the same, their ``images`` empty (the images are base64 in the TSV)."""
        rows, media = indexed_tsv(path, file, ("Spatial457.tsv",), REQUIRED, self.name)
        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        for item_id, row in rows:
            answer = str(row["answer"]).strip()
            if not answer:
                skipped.append(Skipped(item_id, "no_answer"))
                continue
            taken = media.take(row, item_id, images)
            if isinstance(taken, Skipped):
                skipped.append(taken)
                continue
            decoded, n_images = taken
            items.append(EvalItem(
                id=item_id, question="<image>" * n_images + f"{str(row['question']).strip()}\n{INSTRUCTION}",
                images=decoded, answer=answer, category=str(row["category"]).strip() or "unknown",
            ))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        rows = []
        strict: list[bool] = []
        tally = Tally()
        levels: dict[str, list[float]] = {}
        format_errors = missing = 0
        for it in items:
            response = responses.get(it.id)
            missing += response is None
            pred, templated = official_prediction(response)
            format_errors += response is not None and not templated
            hit = bool(pred) and official_match(str(it.answer), pred)
            rows.append((it.category, float(hit), response is None or bool(pred)))
            levels.setdefault((it.category or "unknown").split("_")[0], []).append(float(hit))
            text = tally.read(response, read_text)
            strict.append(text is not None and lenient_match(str(it.answer), text))
        report = mean_report(rows, metric=(
            "official Spatial457 rule (VLMEvalKit vlmeval/dataset/spatial457.py, is_correct): the JSON 'Answer' "
            "field, else the whole answer; case, number words, none=no, 0=No, 1-9=Yes, shape super-categories; "
            "item mean"))
        report["metrics"] = {"per_level": breakdown(levels), "format_errors": format_errors}
        report["missing"] = missing
        return with_strict(report, pct(strict), tally)


BENCHMARK = Spatial457()
