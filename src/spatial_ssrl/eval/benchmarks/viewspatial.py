"""ViewSpatial-Bench (Li et al. 2025; github.com/ZJU-REAL/ViewSpatial-Bench, images on Hugging Face
``lidingm/ViewSpatial-Bench``): camera- and person-perspective direction and orientation questions.

Files as distributed: ``ViewSpatial-Bench.json`` (in the repository under ``eval/``), a JSON list of
``{"question_type", "image_path": [paths], "question", "answer": "A. right", "choices":
"A. right\\nB. front-up\\n..."}``; the image paths are relative to the repository root
(``ViewSpatial-Bench/scannetv2_val/...``, ``ViewSpatial-Bench/val2017/...``). ``path`` is the JSON
file or a folder holding it (directly or in ``eval/``); images are looked up under option
``image_root`` when given, else under the folder given, the JSON's folder and their parents, with
and without the leading ``ViewSpatial-Bench/`` (so the repository root and the Hugging Face
download folder both work). An item with a missing image is skipped (``missing_image``).

Score: the final boxed letter (or the option text), read by the reward's parser, against the
answer's letter; unparseable = wrong. ``accuracy`` = item mean over all questions (as the
official script), per ``question_type`` and per perspective (Camera / Person).

The official ``evaluate.py`` instead takes the LAST LINE of the response and its first standalone
A-D letter, case-insensitively, so a sentence such as "a chair is to the left" reads as A, and a
line naming two letters reads as the first; the paper's copy takes the last ``\\boxed{}`` and then
the same first-letter rule. Here a box naming two letters, or boxes that disagree, is a parse
failure, never a guess.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from ..answers import read_choice
from ..base import Benchmark, BenchmarkError, EvalItem, Skipped, Tally, breakdown, pct
from ._io import check_options, check_row, read_json_list

JSON_NAME = "ViewSpatial-Bench.json"
KEYS = ("question_type", "image_path", "question", "answer", "choices")
LETTERS = "ABCDEFGH"
INSTRUCTION = "Answer with the option's letter."
OPTIONS = ("image_root",)
_CHOICE_LINE = re.compile(r"^\s*\(?([A-H])\s*[.):]\s*(.*)$")
_ANSWER_LETTER = re.compile(r"^\s*\(?([A-H])(?![A-Za-z])")


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
    default_path_hint = "ViewSpatial-Bench.json, or the repository folder holding eval/ and ViewSpatial-Bench/"

    def load(self, path: str, **options: Any) -> tuple[list[EvalItem], list[Skipped]]:
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
            images = [resolve(r) for r in rels]
            if any(im is None for im in images):
                skipped.append(Skipped(item_id, "missing_image"))
                continue
            lines = "\n".join(f"{LETTERS[j]}. {o}" for j, o in enumerate(opts))
            question = "<image>" * len(images) + f"\n{str(row['question']).strip()}\n{lines}\n{INSTRUCTION}"
            qtype = str(row["question_type"])
            items.append(EvalItem(id=item_id, question=question, images=images, answer=answer, options=opts,
                                  category=qtype,
                                  meta={"perspective": qtype.split(" - ")[0].split(" perspective")[0].strip(),
                                        "image_path": rels, "official_answer": row["answer"]}))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        tally = Tally()
        per: dict[str, list[bool]] = {}
        per_view: dict[str, list[bool]] = {}
        rows: list[bool] = []
        for it in items:
            letter = tally.read(responses.get(it.id), read_choice, it.options, n_letters=len(it.options or ()))
            ok = letter is not None and letter == it.answer
            rows.append(ok)
            per.setdefault(it.category or "all", []).append(ok)
            per_view.setdefault(it.meta.get("perspective") or "all", []).append(ok)

        return {
            "accuracy": pct(rows),
            "n": len(rows),
            "parse_failures": tally.parse_failures,
            "missing": tally.missing,
            "per_category": breakdown(per),
            "metric": "option letter from the final boxed answer (hedging refused), item mean over all questions; "
                      "the official script reads the first standalone A-D letter of the response's last line",
            "metrics": {
                "per_perspective": breakdown(per_view),
                "macro_mean_over_types": (sum(pct(v) for v in per.values()) / len(per)) if per else None,
                "failure_reasons": tally.failure_reasons(sort=True),
            },
        }

BENCHMARK = ViewSpatial()
