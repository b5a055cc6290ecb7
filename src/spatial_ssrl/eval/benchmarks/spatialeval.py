"""SpatialEval (Wang et al., NeurIPS 2024): spatial-map, maze-navigation, spatial-grid and
real-image questions.

Files (Hugging Face ``MilaWang/SpatialEval``): one folder per input mode, ``tqa/``, ``vqa/``
and ``vtqa/``, of ``test-*.parquet`` files with ``id`` (``<task>.<mode>.<instance>.<question
number>``, task in spatialmap / mazenav / spatialgrid / spatialreal), ``text`` (the question,
its options after "Available options:"), ``image`` (a Hugging Face image: ``{bytes, path}``),
``oracle_answer``, ``oracle_option`` (the letter) and ``oracle_full_answer``. ``path`` is a
parquet file, a mode folder, or the dataset root (``mode=`` picks the folder, ``vqa`` by default).

Scoring (``evals/evaluation.py`` of jiayuww/SpatialEval): an item is right when the lower-cased
``oracle_answer`` is a substring of the lower-cased answer; here the answer is the boxed text
(the official script first pulls an answer out of free text with per-task patterns, which a
boxed answer makes unnecessary). Number words zero..nine in the box also count as their digits,
as the official extractor reads them. ``accuracy`` is the item mean over all four tasks (the
official script has no extractor for spatialreal; the same substring rule is used there);
``per_category`` is per task. ``metrics["option_letter"]``: exact option-letter accuracy over the
items whose options could be read from the text.

The parquet helpers (:func:`parquet_files`, :func:`read_parquet`, :func:`image_cell`) are in :mod:`._io`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..answers import read_choice, read_text
from ..base import Benchmark, BenchmarkError, EvalItem, Skipped, Tally, breakdown, pct
from ._io import image_cell, parquet_files, read_parquet

TASKS = ("spatialmap", "mazenav", "spatialgrid", "spatialreal")
MODES = ("tqa", "vqa", "vtqa")
REQUIRED = ("id", "text", "oracle_answer", "oracle_option")
_OPTIONS_AT = re.compile(r"available options\s*:", re.IGNORECASE)
_MARKER = re.compile(r"(?:(?<=\s)|^)\(?([A-Z])[.)]\s+")
_DIGITS = {w: str(i) for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven",
                                             "eight", "nine"))}
_DIGIT_WORD = re.compile(r"\b(" + "|".join(_DIGITS) + r")\b")


def parse_options(text: str) -> list[str] | None:
    """The option texts after the last "Available options:" (``A. x`` markers in letter order,
    on one line or several); None when fewer than two are found."""
    at = None
    for at in _OPTIONS_AT.finditer(text):
        pass
    if at is None:
        return None
    tail = text[at.end():]
    marks = []
    for m in _MARKER.finditer(tail):
        if m.group(1) == chr(65 + len(marks)):
            marks.append(m)
    if len(marks) < 2:
        return None
    options = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(tail)
        body = tail[m.end():end].strip()
        if i + 1 == len(marks):
            body = body.split("\n")[0].strip()
        options.append(body.rstrip(" ,;.").strip())
    return options if all(options) else None


def substring_hit(oracle: str, boxed_text: str) -> bool:
    """The official rule: the lower-cased oracle answer inside the lower-cased answer (or inside
    it with number words written as digits)."""
    ref = str(oracle).strip().lower()
    if not ref:
        return False
    text = boxed_text.lower()
    return ref in text or ref in _DIGIT_WORD.sub(lambda m: _DIGITS[m.group(1)], text)


class SpatialEval(Benchmark):
    name = "spatialeval"
    default_path_hint = "MilaWang/SpatialEval folder (vqa/test-*.parquet), a mode folder or a parquet file"

    def load(self, path: str, *, mode: str = "vqa", tasks: str | Sequence[str] | None = None
             ) -> tuple[list[EvalItem], list[Skipped]]:
        if mode not in MODES:
            raise BenchmarkError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        root = Path(path)
        if root.is_dir() and (root / mode).is_dir():
            root = root / mode
        files = parquet_files(root, "*.parquet", self.name)
        if root.is_dir():  # a dataset root without a mode folder: keep the files of this mode only
            own = [f for f in files if mode in f.relative_to(root).parts[:-1]]
            others = [f for f in files if set(f.relative_to(root).parts[:-1]) & (set(MODES) - {mode})]
            files = own or [f for f in files if f not in others]
            if not files:
                raise BenchmarkError(f"{path}: no parquet file of mode {mode}")
        wanted = None if tasks is None else {t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks)}
        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        seen: set[str] = set()
        for file in files:
            for row in read_parquet(file, REQUIRED + (() if mode == "tqa" else ("image",)), ("oracle_full_answer",)):
                item_id = str(row["id"]).strip()
                if not item_id or item_id in seen:
                    raise BenchmarkError(f"{file}: id {item_id!r} is empty or repeated")
                seen.add(item_id)
                parts = item_id.split(".")
                task = parts[0]
                if wanted is not None and task not in wanted:
                    continue
                if row["oracle_answer"] is None or not str(row["oracle_answer"]).strip():
                    skipped.append(Skipped(item_id, "no_answer"))
                    continue
                images: list[bytes] = []
                if mode != "tqa":
                    data, reason = image_cell(row.get("image"), [file.parent, file.parent.parent])
                    if data is None:
                        skipped.append(Skipped(item_id, reason or "undecodable_image"))
                        continue
                    images = [data]
                text = str(row["text"] or "").replace("<image>", "").strip()
                options = parse_options(text)
                letter = str(row.get("oracle_option") or "").strip().upper()
                if options is None or len(letter) != 1 or not "A" <= letter < chr(65 + len(options)):
                    letter = None
                instruction = ("Answer with the letter and the text of the correct option." if options
                               else "Answer with a word, a short phrase or a number.")
                items.append(EvalItem(
                    id=item_id, question="<image>" * len(images) + f"{text}\n{instruction}", images=images,
                    answer=str(row["oracle_answer"]).strip(), options=options, category=task,
                    meta={"oracle_option": letter, "question_number": parts[-1] if len(parts) > 1 else "",
                          "oracle_full_answer": row.get("oracle_full_answer")},
                ))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        per_task: dict[str, list[bool]] = {}
        per_question: dict[str, list[bool]] = {}
        letter_hits: dict[str, list[bool]] = {}
        hits: list[bool] = []
        tally, letters = Tally(), Tally()
        for it in items:
            response = responses.get(it.id)
            text = tally.read(response, read_text)
            hit = text is not None and substring_hit(str(it.answer), text)
            hits.append(hit)
            task = it.category or "unknown"
            per_task.setdefault(task, []).append(hit)
            per_question.setdefault(f"{task}.q{it.meta.get('question_number', '')}", []).append(hit)
            gold = it.meta.get("oracle_option")
            if it.options and gold:
                letter = letters.read(response, read_choice, it.options, n_letters=len(it.options))
                letter_hits.setdefault(task, []).append(letter == gold)
        all_letters = [h for v in letter_hits.values() for h in v]
        return {
            "accuracy": pct(hits),
            "n": len(hits),
            "parse_failures": tally.parse_failures,
            "per_category": breakdown(per_task),
            "metric": ("SpatialEval substring rule (official): lower-cased oracle_answer contained in the boxed "
                       "answer; item mean over all tasks"),
            "metrics": {
                "option_letter": {
                    "accuracy": pct(all_letters), "n": len(all_letters), "parse_failures": letters.parse_failures,
                    "per_task": breakdown(letter_hits),
                },
                "per_question": breakdown(per_question),
                "task_mean": (sum(pct(v) for v in per_task.values()) / len(per_task)) if per_task else None,
                "failure_reasons": tally.failure_reasons(),
            },
            "missing": tally.missing,
        }

BENCHMARK = SpatialEval()
