"""Q-Spatial++ (QSpatial-plus; Liao et al., EMNLP 2024): metric distances and sizes estimated
from one photo.

Files (Hugging Face ``andrewliao11/Q-Spatial-Bench``): ``data/QSpatial_plus-*.parquet`` with
``question``, ``answer_value`` (float), ``answer_unit`` (``centimeter``, ``meter``, ``inch`` ...),
``question_type``, ``image_path`` and ``image`` (a Hugging Face image, ``{bytes, path}``); an
item's id is its row number (VLMEvalKit numbers them the same way). ``path`` is a parquet file
or a folder holding it (``data/QSpatial_scannet-*`` there is left alone: its images come from
ScanNet; ``split=QSpatial_scannet`` with ``image_root=`` reads it).

Scoring, official rule (``accuracy``; ``QSpatialEvaluator`` in
``examples/evaluate_success_rate.ipynb`` of andrewliao11/Q-Spatial-Bench-code, commit ebe8137eae97):
the answer is written ``\\scalar{value} \\distance_unit{unit}``, as the authors' system prompt
(``prompt_templates/system_prompt.txt``) asks; the value is the mean of the numbers
(``\\d+\\.?\\d*``) in the last ``scalar{...}``, the unit the last ``distance_unit{...}``, converted
with the notebook's table (m, cm, mm, feet, inches and their spellings; an unknown unit counts as
centimetres, as there). An item succeeds when ``max(p/g, g/p) < 2`` in centimetres. Read from
:func:`~spatial_ssrl.eval.answers.answer_text` (the last box's content, else the text after the
think block), so a response without ``scalar{}`` and ``distance_unit{}`` in its answer reads
nothing (``parse_failures``; the notebook raises there): our loader's question does not ask for
that format, so a model answering "1.5 m" is scored by ``strict`` only. VLMEvalKit's ``QSpatial``
extracts the answer with an LLM judge and is not reproduced. ``metrics["delta_1.5"]`` is the same
with 1.5.

``strict``: the boxed answer read with :func:`read_quantity`: a number *with* a length unit
("1 meter", "150cm", "3 feet 2 inches"); a bare number is a parse failure (``no_unit``), never
given a guessed unit, and so is a range ("1-2 m"). The ground truth is converted with the unit
table :data:`spatial_ssrl.eval.answers.UNITS_CM`; a truth with an unknown unit is skipped
(``unknown_unit``), never scored against a guessed multiplier.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..answers import UNITS_CM, answer_text, read_quantity
from ..base import Benchmark, EvalItem, Skipped, Tally, breakdown, pct, with_strict
from ._io import cell_detail, parquet_files, read_cell, read_parquet

REQUIRED = ("question", "answer_value", "answer_unit", "question_type", "image")
# the official parser reads only \scalar{} and \distance_unit{}, so the question asks for them
INSTRUCTION = ("Give the length as \\scalar{number} \\distance_unit{unit}, "
               "for instance \\scalar{1.5} \\distance_unit{meters}.")
THRESHOLDS = (2.0, 1.5)


def truth_cm(value: Any, unit: Any) -> tuple[float | None, str | None]:
    """The ground truth in centimetres, or ``(None, reason)``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None, "bad_answer_value"
    if not math.isfinite(v) or v <= 0:
        return None, "bad_answer_value"
    factor = UNITS_CM.get(str(unit or "").strip().lower())
    if factor is None:
        return None, "unknown_unit"
    return v * factor, None


# The notebook's unit table (anything else: a multiplier of 1).
OFFICIAL_UNITS_CM = {**dict.fromkeys(("meters", "meter", "m", "metre", "metres"), 100.0),
                     **dict.fromkeys(("centimeters", "centimeter", "cm"), 1.0),
                     **dict.fromkeys(("feet", "foot", "ft"), 30.48),
                     **dict.fromkeys(("inch", "inches", "in"), 2.54), "mm": 0.1}


def official_cm(response: str | None) -> float | None:
    """The official parse in centimetres: the mean of the numbers in the last ``scalar{}``
    times the last ``distance_unit{}``'s multiplier; None when either is missing or the scalar
    holds no number."""
    text = answer_text(response)
    if text is None:
        return None
    scalars = re.findall(r"scalar{([^}]*)}", text)
    units = re.findall(r"distance_unit{([^}]*)}", text)
    numbers = [float(x) for x in re.findall(r"\d+\.?\d*", scalars[-1])] if scalars else []
    if not numbers or not units:
        return None
    return sum(numbers) / len(numbers) * OFFICIAL_UNITS_CM.get(units[-1].lower(), 1.0)


def ratio(pred_cm: float, true_cm: float) -> float:
    """``max(p/g, g/p)``; infinite for a prediction of zero or less."""
    if pred_cm <= 0:
        return math.inf
    return max(pred_cm / true_cm, true_cm / pred_cm)


class QSpatialPlus(Benchmark):
    name = "qspatial-plus"
    aliases = ("QSpatial_plus", "QSpatial", "Q-Spatial", "Q-Spatial++", "QSpatial++", "Q-Spatial-Bench")
    hub_repo = "andrewliao11/Q-Spatial-Bench"
    default_path_hint = "Q-Spatial-Bench folder (data/QSpatial_plus-*.parquet) or the parquet file"

    def load(self, path: str, *, split: str = "QSpatial_plus", image_root: str | None = None, images: bool = True
             ) -> tuple[list[EvalItem], list[Skipped]]:
        """The rows of ``split``. ``images=False`` reads no image (scoring predictions): the
        items are the same, their ``images`` empty (``meta["image_path"]`` keeps the row's path)."""
        files = parquet_files(path, f"{split}-*.parquet", self.name)
        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        index = 0
        for file in files:
            roots = [Path(image_root)] if image_root else []
            roots += [file.parent, file.parent.parent]
            for n, row in enumerate(read_parquet(file, REQUIRED, ("image_path",))):
                item_id = str(index)
                index += 1
                true_cm, reason = truth_cm(row["answer_value"], row["answer_unit"])
                if true_cm is None:
                    skipped.append(Skipped(item_id, reason or "bad_answer"))
                    continue
                decoded: list[bytes] = []
                if images:
                    cell, column = row.get("image"), "image"
                    if not cell or (isinstance(cell, dict) and not cell.get("bytes") and not cell.get("path")):
                        cell, column = row.get("image_path"), "image_path"
                    data, reason, detail = read_cell(cell, roots)
                    if data is None:
                        skipped.append(Skipped(item_id, reason or "undecodable_image",
                                               cell_detail(file, n, column, detail)))
                        continue
                    decoded = [data]
                items.append(EvalItem(
                    id=item_id, question=f"<image>{str(row['question']).strip()}\n{INSTRUCTION}", images=decoded,
                    answer=true_cm, category=str(row["question_type"] or "unknown"),
                    meta={"answer_value": float(row["answer_value"]), "answer_unit": row["answer_unit"],
                          "image_path": row.get("image_path")},
                ))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        hits: dict[float, list[bool]] = {t: [] for t in THRESHOLDS}
        per_type: dict[str, dict[float, list[bool]]] = {}
        strict: dict[float, list[bool]] = {t: [] for t in THRESHOLDS}
        ratios: list[float] = []
        tally = Tally()
        failures = missing = 0
        for it in items:
            response = responses.get(it.id)
            missing += response is None
            pred = official_cm(response)
            failures += response is not None and pred is None
            r = math.inf if pred is None else ratio(pred, float(it.answer))
            if pred is not None:
                ratios.append(r)
            boxed_pred = tally.read(response, read_quantity)
            strict_r = math.inf if boxed_pred is None else ratio(boxed_pred, float(it.answer))
            bucket = per_type.setdefault(it.category or "unknown", {t: [] for t in THRESHOLDS})
            for t in THRESHOLDS:
                hits[t].append(r < t)
                bucket[t].append(r < t)
                strict[t].append(strict_r < t)
        finite = [x for x in ratios if math.isfinite(x)]
        report = {
            "accuracy": pct(hits[2.0]),
            "n": len(items),
            "parse_failures": failures,
            "per_category": breakdown({c: b[2.0] for c, b in per_type.items()}),
            "metric": ("official Q-Spatial success rate (Q-Spatial-Bench-code examples/evaluate_success_rate.ipynb): "
                       "\\scalar{} and \\distance_unit{} of the answer, max(pred/true, true/pred) < 2 in centimetres"),
            "metrics": {
                "delta_2": pct(hits[2.0]),
                "delta_1.5": pct(hits[1.5]),
                "per_category_delta_1.5": breakdown({c: b[1.5] for c, b in per_type.items()}),
                "median_ratio": statistics.median(finite) if finite else None,
                "strict_delta_1.5": pct(strict[1.5]),
            },
            "missing": missing,
        }
        return with_strict(report, pct(strict[2.0]), tally)


BENCHMARK = QSpatialPlus()
