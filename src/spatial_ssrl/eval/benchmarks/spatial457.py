"""Spatial457 (Wang et al., CVPR 2025): 6D spatial reasoning on synthetic SuperCLEVR scenes.

Files: VLMEvalKit's ``Spatial457.tsv`` (``vlmeval/dataset/spatial457.py``): ``index``,
``image`` (base64), ``question``, ``answer`` and ``category``, one of the seven subsets
``L1_single``, ``L2_objects``, ``L3_2d_spatial``, ``L4_occ``, ``L4_pose``, ``L5_6d_spatial``,
``L5_collision``. ``path`` is the file or a folder holding it.

Scoring (VLMEvalKit ``Spatial457_utils.is_correct``, applied to the boxed answer): compared
case-insensitively; ``none`` reads as ``no``; ``0`` is right for "No"; a number word
(``zero``..``ten``) is right for its digits; a digit 1-9 is right for "Yes"; and two shapes of
the same SuperCLEVR super-category (car, bus, motorbike, aeroplane, bicycle; judged on the first
word, e.g. "sedan" for "suv", "mountain bike" for "road bike") match. ``accuracy`` is the item
mean; ``per_category`` the seven subsets; ``metrics["per_level"]`` the five levels (L4 and L5
pool their two subsets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..answers import read_text
from ..base import Benchmark, EvalItem, Skipped, Tally, breakdown, mean_report
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


def lenient_match(answer: str, predicted: str) -> bool:
    """The official Spatial457 rule (answer and prediction as strings)."""
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
    default_path_hint = "Spatial457.tsv (VLMEvalKit) or its folder"

    def load(self, path: str, *, file: str | None = None) -> tuple[list[EvalItem], list[Skipped]]:
        rows, decode = indexed_tsv(path, file, ("Spatial457.tsv",), REQUIRED, self.name)
        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        for item_id, row in rows:
            answer = str(row["answer"]).strip()
            if not answer:
                skipped.append(Skipped(item_id, "no_answer"))
                continue
            images, reason = decode(row)
            if images is None:
                skipped.append(Skipped(item_id, reason or "undecodable_image"))
                continue
            items.append(EvalItem(
                id=item_id, question="<image>" * len(images) + f"{str(row['question']).strip()}\n{INSTRUCTION}",
                images=images, answer=answer, category=str(row["category"]).strip() or "unknown",
            ))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        rows = []
        tally = Tally()
        levels: dict[str, list[float]] = {}
        for it in items:
            response = responses.get(it.id)
            text = tally.read(response, read_text)
            hit = text is not None and lenient_match(str(it.answer), text)
            rows.append((it.category, float(hit), response is None or text is not None))
            levels.setdefault((it.category or "unknown").split("_")[0], []).append(float(hit))
        report = mean_report(rows, metric=(
            "Spatial457 lenient match (official VLMEvalKit rule: case, number words, none=no, 0=No, "
            "1-9=Yes, shape super-categories) on the boxed answer; item mean"))
        report["metrics"] = {"per_level": breakdown(levels), "failure_reasons": tally.failure_reasons()}
        report["missing"] = tally.missing
        return report


BENCHMARK = Spatial457()
