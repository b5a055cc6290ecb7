"""ViewSpatial-Bench (Li et al. 2025; github.com/ZJU-REAL/ViewSpatial-Bench, images on Hugging Face
``lidingm/ViewSpatial-Bench``): camera- and person-perspective direction and orientation questions.

Files as distributed: ``ViewSpatial-Bench.json`` (in the repository under ``eval/``), a JSON list of
``{"question_type", "image_path": [paths], "question", "answer": "A. right", "choices":
"A. right\\nB. front-up\\n..."}``; the image paths are relative to the repository root
(``ViewSpatial-Bench/scannetv2_val/...``, ``ViewSpatial-Bench/val2017/...``). ``path`` is the JSON
file or a folder holding it (directly or in ``eval/``); images are looked up under option
``image_root`` when given, else under the folder given, the JSON's folder and their parents, with
and without the leading ``ViewSpatial-Bench/`` (so the repository root and the Hugging Face
download folder both work). An item with a missing image is skipped (``missing_image``, its
``detail`` the path and the folders looked in); scoring predictions (``images=False``) looks for none.

Score, official rule (``accuracy``; ``evaluate.py`` at the root of ZJU-REAL/ViewSpatial-Bench,
commit 2e85a5e41a29): the response's LAST LINE (``split("\\n")[-1]``), its first standalone letter
A-D (regex ``\\b([A-D])\\b``, case-insensitive) against the answer's letter; read here from
:func:`~spatial_ssrl.eval.answers.answer_text` (the last box's content, else the text after the
think block, stripped). So "A. right", "(b) left" and "a chair is to the left" read as a letter, a
line naming two letters as its first, and a line with no such letter (or the option text alone)
reads nothing (``parse_failures``, counted wrong). ``accuracy`` = item mean over all questions, as
the official script prints, per ``question_type`` and per perspective (Camera / Person).
``strict``: the final boxed letter (or the option text) read by the reward's parser, a box naming
two letters or boxes that disagree refused (``hedged``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from ..answers import answer_text, read_choice
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
from ._io import check_options, check_row, read_json_list

JSON_NAME = "ViewSpatial-Bench.json"
KEYS = ("question_type", "image_path", "question", "answer", "choices")
LETTERS = "ABCDEFGH"
INSTRUCTION = "Answer with the option's letter."
OPTIONS = ("image_root",)
_CHOICE_LINE = re.compile(r"^\s*\(?([A-H])\s*[.):]\s*(.*)$")
_ANSWER_LETTER = re.compile(r"^\s*\(?([A-H])(?![A-Za-z])")
_OFFICIAL_LETTER = re.compile(r"\b([A-D])\b", re.IGNORECASE)


def official_letter(response: str | None) -> str | None:
    """The official reading: the first standalone A-D letter of the answer's last line, upper-cased."""
    text = answer_text(response)
    if text is None:
        return None
    m = _OFFICIAL_LETTER.search(text.split("\n")[-1])
    return m.group(1).upper() if m else None


def _find_json(path: str) -> str:
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        for cand in (os.path.join(path, JSON_NAME), os.path.join(path, "eval", JSON_NAME)):
            if os.path.isfile(cand):
                return cand
        raise BenchmarkError(f"{path}: no {JSON_NAME} here or in eval/")
    raise BenchmarkError(f"{path}: not found")


def _parse_choices(file: str, i: int, raw: Any) -> list[str]:
    if isinstance(raw, list):
        lines = [str(x) for x in raw]
    elif isinstance(raw, str):
        lines = [ln for ln in raw.splitlines() if ln.strip()]
    else:
        raise BenchmarkError(f"{file}: item {i}: 'choices' must be a newline-joined string")
    options = []
    for j, line in enumerate(lines):
        m = _CHOICE_LINE.match(line)
        if m is None or m.group(1) != LETTERS[j]:
            raise BenchmarkError(f"{file}: item {i}: choice line {line!r} is not '{LETTERS[j]}. <text>'")
        options.append(m.group(2).strip())
    if len(options) < 2:
        raise BenchmarkError(f"{file}: item {i}: fewer than two choices")
    return options


def _answer_letter(file: str, i: int, raw: Any, options: list[str]) -> str:
    text = str(raw)
    m = _ANSWER_LETTER.match(text)
    if m and m.group(1) in LETTERS[:len(options)]:
        return m.group(1)
    lowered = [o.lower() for o in options]
    if text.strip().lower() in lowered:  # the answer given as the option text alone
        return LETTERS[lowered.index(text.strip().lower())]
    raise BenchmarkError(f"{file}: item {i}: answer {text!r} names none of the choices")


class ViewSpatial(Benchmark):
    name = "viewspatial"
    aliases = ("ViewSpatial-Bench", "ViewSpatialBench")
    hub_repo = "lidingm/ViewSpatial-Bench"  # the json and the image archives
    default_path_hint = "ViewSpatial-Bench.json, or the repository folder holding eval/ and ViewSpatial-Bench/"

    def load(self, path: str, images: bool = True, **options: Any) -> tuple[list[EvalItem], list[Skipped]]:
        """The questions of the JSON, an item per question. ``images=False`` (scoring predictions)
        looks for no image, so none is skipped for a missing one: ``images`` then holds the
        ``image_path`` entries as the JSON writes them (relative to the repository root)."""
        check_options("viewspatial", options, OPTIONS)
        file = _find_json(path)
        data = read_json_list(file, "questions")

        if options.get("image_root"):
            roots = [str(options["image_root"])]
        else:
            given = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
            here = os.path.dirname(os.path.abspath(file))
            roots = list(dict.fromkeys([given, here, os.path.dirname(given), os.path.dirname(here)]))

        def resolve(rel: str) -> str | None:
            parts = [p for p in str(rel).replace("\\", "/").split("/") if p not in ("", ".")]
            if not parts:
                return None
            if os.path.isabs(str(rel)):
                return str(rel) if os.path.isfile(str(rel)) else None
            variants = [parts] + ([parts[1:]] if len(parts) > 1 and parts[0] == "ViewSpatial-Bench" else [])
            for root in roots:
                for v in variants:
                    cand = os.path.join(root, *v)
                    if os.path.isfile(cand):
                        return cand
            return None

        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        for i, row in enumerate(data):
            check_row(file, f"item {i}", row, KEYS)
            item_id = str(row.get("id", i))
            rels = row["image_path"]
            rels = [rels] if isinstance(rels, str) else list(rels or [])
            if not rels:
                raise BenchmarkError(f"{file}: item {i}: 'image_path' is empty")
            opts = _parse_choices(file, i, row["choices"])
            answer = _answer_letter(file, i, row["answer"], opts)
            found = [resolve(r) for r in rels] if images else [str(r) for r in rels]
            missing = next((r for r, f in zip(rels, found) if f is None), None)
            if missing is not None:
                skipped.append(Skipped(item_id, "missing_image", f"{missing} (looked for in {', '.join(roots)})"))
                continue
            lines = "\n".join(f"{LETTERS[j]}. {o}" for j, o in enumerate(opts))
            question = "<image>" * len(found) + f"\n{str(row['question']).strip()}\n{lines}\n{INSTRUCTION}"
            qtype = str(row["question_type"])
            items.append(EvalItem(id=item_id, question=question, images=found, answer=answer, options=opts,
                                  category=qtype,
                                  meta={"perspective": qtype.split(" - ")[0].split(" perspective")[0].strip(),
                                        "image_path": rels, "official_answer": row["answer"]}))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        tally = Tally()
        per: dict[str, list[bool]] = {}
        per_view: dict[str, list[bool]] = {}
        rows: list[bool] = []
        strict: list[bool] = []
        failures = missing = 0
        for it in items:
            response = responses.get(it.id)
            missing += response is None
            letter = official_letter(response)
            failures += response is not None and letter is None
            ok = letter is not None and letter == it.answer
            rows.append(ok)
            per.setdefault(it.category or "all", []).append(ok)
            per_view.setdefault(it.meta.get("perspective") or "all", []).append(ok)
            boxed_letter = tally.read(response, read_choice, it.options, n_letters=len(it.options or ()))
            strict.append(boxed_letter is not None and boxed_letter == it.answer)

        report = {
            "accuracy": pct(rows),
            "n": len(rows),
            "parse_failures": failures,
            "missing": missing,
            "per_category": breakdown(per),
            "metric": "official ViewSpatial-Bench rule (evaluate.py): first standalone A-D letter of the answer's "
                      "last line, case-insensitive; item mean over all questions",
            "metrics": {
                "per_perspective": breakdown(per_view),
                "macro_mean_over_types": (sum(pct(v) for v in per.values()) / len(per)) if per else None,
            },
        }
        return with_strict(report, pct(strict), tally)


BENCHMARK = ViewSpatial()
