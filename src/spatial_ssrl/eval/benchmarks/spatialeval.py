"""SpatialEval (Wang et al., NeurIPS 2024): spatial-map, maze-navigation, spatial-grid and
real-image questions.

Files (Hugging Face ``MilaWang/SpatialEval``): one folder per input mode, ``tqa/``, ``vqa/``
and ``vtqa/``, of ``test-*.parquet`` files with ``id`` (``<task>.<mode>.<instance>.<question
number>``, task in spatialmap / mazenav / spatialgrid / spatialreal), ``text`` (the question,
its options after "Available options:"), ``image`` (a Hugging Face image: ``{bytes, path}``),
``oracle_answer``, ``oracle_option`` (the letter) and ``oracle_full_answer``. ``path`` is a
parquet file, a mode folder, or the dataset root (``mode=`` picks the folder, ``vqa`` by default).

Scoring, official rule (``accuracy``; ``evals/evaluation.py`` of jiayuww/SpatialEval, commit
d82ba3828052): an answer is pulled out of the response by the task's extractor for the question
number (the last part of the id), with the generic patterns (none of the per-model ones), then
the item is right when the lower-cased ``oracle_answer`` is a substring of ``str(answer)``
lower-cased. Here the response is :func:`~spatial_ssrl.eval.answers.answer_text` (the last box's
content, else the text after the think block, stripped). The extractors: spatialmap q0 the first
diagonal direction (after a letter "A." if any), q1 the object named before "is located/in the
<direction>", after a letter "A.", or after "is", q2 the first number word or digits by position;
mazenav q2 Yes/No by keyword, q0/q1 a number word, a phrase such as "3 right turns", or the first
digits; spatialgrid q0 the first number, q1/q2 the first animal name. An extractor that finds
nothing gives ``None``, which the official code compares as the text "none" (so it still matches
an oracle "no", as there); it is counted in ``parse_failures``. spatialreal has no official
extractor (the script stops there); the substring rule reads the whole answer for it. ``strict``:
the substring rule on the boxed text (hedges refused; number words zero..nine also as digits).
``accuracy`` is the item mean over all four tasks; ``per_category`` is per task.
``metrics["option_letter"]``: exact boxed option-letter accuracy over the items whose options
could be read from the text.

The parquet helpers (:func:`parquet_files`, :func:`read_parquet`, :func:`read_cell`) are in :mod:`._io`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..answers import answer_text, read_choice, read_text
from ..base import (
    Benchmark,
    BenchmarkError,
    EvalItem,
    Skipped,
    Tally,
    breakdown,
    pct,
    with_strict,
)
from ._io import cell_detail, parquet_files, read_cell, read_parquet

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


# ------------------------------------------------ the official extractors (evals/evaluation.py)

_DIRS = r"\b(southeast|northeast|northwest|southwest)\b"
_COUNT_WORDS = {"zero": 0, "no": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9}
_ANIMALS = r"\b(giraffe|cat|dog|elephant|rabbit)\b"
_TRAILING = re.compile(r"[\.,\?!<]+$")
_MAZE_PATTERNS = {
    0: (r"\bThere are\s*(\d+)\s*right turns\b", r"\bThere is\s*(\d+)\s*right turn\b", r"\b(\d+)\s+right turn(s)?",
        r"answer is\s+(\d+)", r"answer is:\s*\n*\s*(\d+)", r"from S to E is\s+(\d+)", r"Answer:\*\*\s*(\d+)\b"),
    1: (r"\bThere are\s*(\d+)\s*total turns\b", r"\bThere are\s*(\d+)\s*turns\b", r"There is\s*(\d+)\s*turn\b",
        r"There is\s*(\d+)\s*total turn\b", r"answer is\s+(\d+)", r"answer is:\s*\n*\s*(\d+)",
        r"from S to E is\s+(\d+)", r"\btotal of\s+(\d+)\s+turn(s)?", r"Answer:\*\*\s*(\d+)\b",
        r"(\d+)\s+total turn(s)?", r"\b(\d+)\s+turn(s)?"),
}


def _earliest_number(text: str) -> int | None:
    """The number written first: count words (``no`` = 0) found in ``text``, digits found in
    ``text`` less a leading "\\n\\n<n>. " list marker (positions taken in each, as there)."""
    found = [(m.start(), n) for w, n in _COUNT_WORDS.items() for m in re.finditer(rf"\b{w}\b", text, re.IGNORECASE)]
    found += [(m.start(), int(m.group())) for m in re.finditer(r"\d+", re.sub(r"^\n\n\d+\.\s", "", text))]
    return min(found, key=lambda f: f[0])[1] if found else None


def _spatialmap(text: str, q: int) -> Any:
    if q == 0:
        m = re.search(r"\b[A-D]\.\s*" + _DIRS, text, re.IGNORECASE) or re.search(_DIRS, text, re.IGNORECASE)
        return m.group(1) if m else None
    if q == 1:
        m = re.search(rf"^([\w\s'’]+?)\s+is\s+(?:located\s+|in\s+the\s+|located\s+to\s+the\s+)({_DIRS})", text,
                      re.IGNORECASE)
        if m:
            return m.group(1)
        m = re.search(r"\b[A-D]\.\s*(.*)", text)
        if m:
            return m.group(1).replace("**", "").replace(".", "").split(" is", 1)[0].strip()
        m = re.search(r"\b([ABCD][.,]|[(][abcdABCD][)])\s*(.*?)(?=\sis\b|\.|,|<|$)", text)
        if m:
            return _TRAILING.sub("", m.group(1).strip())
        m = re.search(rf"Therefore, the object in the {_DIRS} of [\w\s'’]+ is ([\w\s'’]+)", text, re.IGNORECASE)
        if m:
            return m.group(2)
        m = re.search(r"\bis\b\s+(.*?)(?=\.|,|<|$)", text)
        return _TRAILING.sub("", m.group(1).strip()) if m else None
    if q == 2:
        m = re.search(r"\b[A-D]\.\s*(\d+)", text)
        return int(m.group(1)) if m else _earliest_number(text)
    return None  # the official script skips the row: counted wrong


def _mazenav(text: str, q: int) -> Any:
    if q == 2:
        for answer, patterns in (("Yes", (r"\byes\b", r"the answer is yes", r"\"yes\"", r"\'yes\'",
                                           r"is the shortest path")),
                                 ("No", (r"\bno\b", r"the answer is no", r"\"no\"", r"\'no\'", r"\bnot\b"))):
            if any(re.search(p, text, re.IGNORECASE) for p in patterns):
                return answer
        return None
    if q not in _MAZE_PATTERNS:
        return None
    for word, n in _COUNT_WORDS.items():  # in this order, wherever they stand
        if re.search(rf"\b{word}\b", text, re.IGNORECASE):
            return n
    for pattern in _MAZE_PATTERNS[q]:
        m = re.search(pattern, text, re.IGNORECASE)
        if m:
            return int(m.group(1))
    m = re.search(r"\d+", text)
    return int(m.group()) if m else None


def _spatialgrid(text: str, q: int) -> Any:
    if q >= 1:
        m = re.search(_ANIMALS, text, re.IGNORECASE)
        return m.group(1) if m else None
    return _earliest_number(text)


EXTRACTORS = {"spatialmap": _spatialmap, "mazenav": _mazenav, "spatialgrid": _spatialgrid}


def official_hit(task: str, question_number: str, oracle: str, response: str | None) -> tuple[bool, bool]:
    """(right, something read) by the official rule for one response."""
    text = answer_text(response)
    if text is None:
        return False, False
    extract = EXTRACTORS.get(task)
    if extract is None:  # spatialreal: no official extractor; the whole answer
        answer: Any = text or None
    else:
        try:
            q = int(question_number)
        except ValueError:
            return False, False
        answer = extract(text, q)
    return str(oracle).lower() in str(answer).lower(), answer is not None


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
    aliases = ("SpatialEval",)
    hub_repo, hub_config = "MilaWang/SpatialEval", "vqa"
    default_path_hint = "MilaWang/SpatialEval folder (vqa/test-*.parquet), a mode folder or a parquet file"

    def load(self, path: str, *, mode: str = "vqa", tasks: str | Sequence[str] | None = None, images: bool = True
             ) -> tuple[list[EvalItem], list[Skipped]]:
        """The questions of mode ``mode`` (of ``tasks``, default all). ``images=False`` reads no
        image (scoring predictions): the items are the same, their ``images`` empty (the images
        are in the parquet's ``image`` column)."""
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
            for n, row in enumerate(read_parquet(file, REQUIRED + (() if mode == "tqa" else ("image",)),
                                                 ("oracle_full_answer",))):
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
                decoded: list[bytes] = []
                if mode != "tqa" and images:
                    data, reason, detail = read_cell(row.get("image"), [file.parent, file.parent.parent])
                    if data is None:
                        skipped.append(Skipped(item_id, reason or "undecodable_image",
                                               cell_detail(file, n, "image", detail)))
                        continue
                    decoded = [data]
                n_images = 0 if mode == "tqa" else 1
                text = str(row["text"] or "").replace("<image>", "").strip()
                options = parse_options(text)
                letter = str(row.get("oracle_option") or "").strip().upper()
                if options is None or len(letter) != 1 or not "A" <= letter < chr(65 + len(options)):
                    letter = None
                instruction = ("Answer with the letter and the text of the correct option." if options
                               else "Answer with a word, a short phrase or a number.")
                items.append(EvalItem(
                    id=item_id, question="<image>" * n_images + f"{text}\n{instruction}", images=decoded,
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
        strict: list[bool] = []
        tally, letters = Tally(), Tally()
        failures = missing = 0
        for it in items:
            response = responses.get(it.id)
            missing += response is None
            task = it.category or "unknown"
            hit, read = official_hit(task, str(it.meta.get("question_number", "")), str(it.answer), response)
            failures += response is not None and not read
            hits.append(hit)
            per_task.setdefault(task, []).append(hit)
            per_question.setdefault(f"{task}.q{it.meta.get('question_number', '')}", []).append(hit)
            text = tally.read(response, read_text)
            strict.append(text is not None and substring_hit(str(it.answer), text))
            gold = it.meta.get("oracle_option")
            if it.options and gold:
                letter = letters.read(response, read_choice, it.options, n_letters=len(it.options))
                letter_hits.setdefault(task, []).append(letter == gold)
        all_letters = [h for v in letter_hits.values() for h in v]
        report = {
            "accuracy": pct(hits),
            "n": len(hits),
            "parse_failures": failures,
            "per_category": breakdown(per_task),
            "metric": ("official SpatialEval rule (evals/evaluation.py): the task's answer extractor, then the "
                       "lower-cased oracle_answer as a substring of its result; item mean over all tasks"),
            "metrics": {
                "option_letter": {
                    "accuracy": pct(all_letters), "n": len(all_letters), "parse_failures": letters.parse_failures,
                    "per_task": breakdown(letter_hits),
                },
                "per_question": breakdown(per_question),
                "task_mean": (sum(pct(v) for v in per_task.values()) / len(per_task)) if per_task else None,
            },
            "missing": missing,
        }
        return with_strict(report, pct(strict), tally)


BENCHMARK = SpatialEval()
