"""Q-Spatial++ (QSpatial-plus; Liao et al., EMNLP 2024): metric distances and sizes estimated
from one photo.

Files (Hugging Face ``andrewliao11/Q-Spatial-Bench``): ``data/QSpatial_plus-*.parquet`` with
``question``, ``answer_value`` (float), ``answer_unit`` (``centimeter``, ``meter``, ``inch`` ...),
``question_type``, ``image_path`` and ``image`` (a Hugging Face image, ``{bytes, path}``); an
item's id is its row number (VLMEvalKit numbers them the same way). ``path`` is a parquet file
or a folder holding it (``data/QSpatial_scannet-*`` there is left alone: its images come from
ScanNet; ``split=QSpatial_scannet`` with ``image_root=`` reads it).

Scoring (``examples/evaluate_success_rate.ipynb`` of andrewliao11/Q-Spatial-Bench-code, and
VLMEvalKit ``QSpatial``): prediction and truth in centimetres; an item succeeds when
``max(p/g, g/p) < 2``; ``accuracy`` is the success rate (``metrics["delta_1.5"]`` the same with
1.5), per ``question_type`` too. The boxed answer is read with :func:`read_quantity`: a number
*with* a length unit ("1 meter", "150cm", "3 feet 2 inches"); the question asks for a unit, so
a bare number is a parse failure (``no_unit``), never given a guessed unit. A range ("1-2 m") is
a parse failure too (the official regex took the mean of its numbers). The ground truth is
converted with the same unit table (:data:`spatial_ssrl.eval.answers.UNITS_CM`); a truth with an
unknown unit is skipped (``unknown_unit``), never scored against a guessed multiplier.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..answers import UNITS_CM, read_quantity
from ..base import Benchmark, EvalItem, Skipped, Tally, breakdown, pct
from ._io import image_cell, parquet_files, read_parquet

REQUIRED = ("question", "answer_value", "answer_unit", "question_type", "image")
INSTRUCTION = "Answer with a number and a unit of length (for instance centimeters or meters)."
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


def ratio(pred_cm: float, true_cm: float) -> float:
    """``max(p/g, g/p)``; infinite for a prediction of zero or less."""
    if pred_cm <= 0:
        return math.inf
    return max(pred_cm / true_cm, true_cm / pred_cm)


class QSpatialPlus(Benchmark):
    name = "qspatial-plus"
    default_path_hint = "Q-Spatial-Bench folder (data/QSpatial_plus-*.parquet) or the parquet file"

    def load(self, path: str, *, split: str = "QSpatial_plus", image_root: str | None = None
             ) -> tuple[list[EvalItem], list[Skipped]]:
        files = parquet_files(path, f"{split}-*.parquet", self.name)
        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        index = 0
        for file in files:
            roots = [Path(image_root)] if image_root else []
            roots += [file.parent, file.parent.parent]
            for row in read_parquet(file, REQUIRED, ("image_path",)):
                item_id = str(index)
                index += 1
                true_cm, reason = truth_cm(row["answer_value"], row["answer_unit"])
                if true_cm is None:
                    skipped.append(Skipped(item_id, reason or "bad_answer"))
                    continue
                cell = row.get("image")
                if not cell or (isinstance(cell, dict) and not cell.get("bytes") and not cell.get("path")):
                    cell = row.get("image_path")
                data, reason = image_cell(cell, roots)
                if data is None:
                    skipped.append(Skipped(item_id, reason or "undecodable_image"))
                    continue
                items.append(EvalItem(
                    id=item_id, question=f"<image>{str(row['question']).strip()}\n{INSTRUCTION}", images=[data],
                    answer=true_cm, category=str(row["question_type"] or "unknown"),
                    meta={"answer_value": float(row["answer_value"]), "answer_unit": row["answer_unit"],
                          "image_path": row.get("image_path")},
                ))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        hits: dict[float, list[bool]] = {t: [] for t in THRESHOLDS}
        per_type: dict[str, dict[float, list[bool]]] = {}
        ratios: list[float] = []
        tally = Tally()
        for it in items:
            pred = tally.read(responses.get(it.id), read_quantity)
            r = math.inf
            if pred is not None:
                r = ratio(pred, float(it.answer))
                ratios.append(r)
            bucket = per_type.setdefault(it.category or "unknown", {t: [] for t in THRESHOLDS})
            for t in THRESHOLDS:
                hits[t].append(r < t)
                bucket[t].append(r < t)
        finite = [x for x in ratios if math.isfinite(x)]
        return {
            "accuracy": pct(hits[2.0]),
            "n": len(items),
            "parse_failures": tally.parse_failures,
            "per_category": breakdown({c: b[2.0] for c, b in per_type.items()}),
            "metric": ("QSpatial success rate (official): max(pred/true, true/pred) < 2, both in centimetres; "
                       "a bare number without a unit is a parse failure"),
            "metrics": {
                "delta_2": pct(hits[2.0]),
                "delta_1.5": pct(hits[1.5]),
                "per_category_delta_1.5": breakdown({c: b[1.5] for c, b in per_type.items()}),
                "median_ratio": statistics.median(finite) if finite else None,
                "failure_reasons": tally.failure_reasons(),
            },
            "missing": tally.missing,
        }


BENCHMARK = QSpatialPlus()
