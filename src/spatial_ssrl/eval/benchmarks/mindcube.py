"""MindCube (Yin et al., 2025): spatial mental modelling from a few views; MindCube-Tiny is the
1,050-question test set papers report (among 600, around 250, rotation 200).

Files, as the authors distribute them (Hugging Face ``MLL-Lab/MindCube``): ``data.zip``, holding
``data/raw/MindCube_tinybench.jsonl`` (``MindCube.jsonl``: the full set) and the images under
``data/other_all_image/``. Each line is an object with ``id`` (its setting is in it: ``among_...``,
``around_...``, ``rotation_...``), ``question`` (the options inline, ``A. ... B. ... C. ...``),
``images`` (2-4 paths relative to ``data/``), ``gt_answer`` (a letter) and ``category``, ``type``,
``meta_info``. ``path`` is the jsonl file, the unzipped ``data/`` folder or a folder above it, or
the Hub download itself: the jsonl and the images are then read inside ``data.zip`` (nothing is
extracted). ``split=full`` takes ``MindCube.jsonl`` instead of the Tiny set. Layout read from
``scripts/bash_scripts/download_data.bash`` and the README of mll-lab-nu/MindCube @6d8fd9a and
VLMEvalKit's ``vlmeval/dataset/mindcubebench.py`` (open-compass/VLMEvalKit @e8e78f0).

Official rule (``src/evaluation/core/extractors.py`` and ``evaluator.py`` of mll-lab-nu/MindCube
@6d8fd9a; lmms-eval's ``lmms_eval/tasks/mindcube/utils.py`` copies the extractor), applied to
:func:`~spatial_ssrl.eval.answers.final_answer` of the response: the last ``X.`` (X in A-E)
anywhere; else, inside an ``<Answer>`` section, the last match of the first of "my answer is X",
"The answer is X", "X." or a standalone X that matches; else the last match of the first of
these that matches: X alone at the start of a line (optionally after "Answer: "), X between
asterisks or quotes, "Answer: X", "my answer is X", "answer is X"; else the first standalone X
of the last line that has one. Right when it equals ``gt_answer``; lines without a
``gt_answer`` are left out. The setting of a question is the first of around, rotation,
translation, among found in its id (else other); ``accuracy`` is the item mean over every
setting but translation, as the official overall; ``per_category`` is per setting.

``strict`` is our rule on the same items: the boxed letter (or option text), hedges refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..answers import final_answer, read_choice
from ..base import Benchmark, BenchmarkError, EvalItem, Skipped, Tally, breakdown, pct
from ._io import ZipMembers, check_options, check_row, image_ok, read_jsonl

SPLITS = {"tiny": "MindCube_tinybench.jsonl", "full": "MindCube.jsonl"}
KEYS = ("id", "question", "images", "gt_answer")
SETTINGS = ("around", "rotation", "translation", "among")  # the official order of the id test
NOT_IN_OVERALL = ("translation",)
LETTERS = "ABCDE"
INSTRUCTION = "Answer with the option's letter."
OPTIONS = ("split",)

_LAST_DOT = re.compile(r"([A-E])\.")
_ANSWER_SECTION = re.compile(r"<Answer>(.*?)(?:<|$)", re.DOTALL)
_IN_SECTION = (r"[Mm]y answer is ([A-E])", r"[Mm]y answer is ([A-E])\.", r"[Tt]he answer is ([A-E])",
               r"(?:Answer: )?([A-E])\.", r"\b([A-E])\b")
_IN_TEXT = (r"(?:Answer: )?([A-E])\. [A-Za-z0-9 \-\(\)'\",]+(?=(?:\n|$|\.|\"))",
            r"(?:Answer: )?([A-E])\. [A-Za-z0-9 \-\(\)'\"]+",
            r"(?:^|\n)(?:Answer: )?([A-E])(?:\.|$|\s)",
            r"[\*\"]([A-E])[\*\"]",
            r"\bAnswer:?\s*([A-E])\b",
            r"[Mm]y answer is ([A-E])",
            r"[Mm]y answer is ([A-E])\.",
            r"answer is ([A-E])")
_LINE_FULL = re.compile(r"([A-E])\. [A-Za-z0-9 \-\(\)'\",]+")
_STANDALONE = re.compile(r"\b([A-E])\b")
_OPTION_MARK = re.compile(r"(?:^|(?<=\s))([A-E])\.\s+")


def _last(pattern: str, text: str) -> str | None:
    found = list(re.finditer(pattern, text))
    return found[-1].group(1) if found else None


def official_letter(text: str | None) -> str | None:
    """The official MindCube reading of an answer text (None: no letter found)."""
    if not text:
        return None
    letter = _last(_LAST_DOT.pattern, text)
    if letter:
        return letter
    section = _ANSWER_SECTION.search(text)
    if section:
        for pattern in _IN_SECTION:
            letter = _last(pattern, section.group(1))
            if letter:
                return letter
    for pattern in _IN_TEXT:
        letter = _last(pattern, text)
        if letter:
            return letter
    lines = text.split("\n")
    by_line = [m.group(1) for m in (_LINE_FULL.search(line) for line in lines) if m]
    if by_line:
        return by_line[-1]
    for line in reversed(lines):
        m = _STANDALONE.search(line)
        if m:
            return m.group(1)
    return None


def _official(response: str) -> tuple[str | None, str | None]:
    letter = official_letter(final_answer(response))
    return letter, None if letter else "no_letter"


def setting_of(item_id: str) -> str:
    """The official setting of a question, from its id."""
    low = str(item_id).lower()
    return next((s for s in SETTINGS if s in low), "other")


def inline_options(question: str) -> list[str] | None:
    """The option texts of ``A. x B. y C. z`` in the question (the last run of A, B, ... in
    order, at least two); None when there is none."""
    marks: list[re.Match] = []
    for m in _OPTION_MARK.finditer(question):
        if m.group(1) == "A":
            marks = [m]
        elif marks and len(marks) < len(LETTERS) and m.group(1) == LETTERS[len(marks)]:
            marks.append(m)
    if len(marks) < 2:
        return None
    options = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(question)
        body = question[m.end():end]
        if i + 1 == len(marks):
            body = body.split("\n")[0]
        options.append(body.strip())
    return options if all(options) else None


class MindCube(Benchmark):
    name = "mindcube"
    aliases = ("MindCube", "MindCube-Tiny", "mindcube-tiny", "mindcube_tiny", "MindCubeBench_tiny_raw_qa",
               "MindCubeBench", "MindCube_tinybench")
    hub_repo = "MLL-Lab/MindCube"
    default_path_hint = "MLL-Lab/MindCube download (data.zip) or data/ unzipped (raw/MindCube_tinybench.jsonl)"

    def load(self, path: str, images: bool = True, **options: Any) -> tuple[list[EvalItem], list[Skipped]]:
        """The questions of the split. ``images=False`` (scoring predictions) opens no image, so
        none is skipped for a missing one: ``images`` then holds the line's ``images`` paths as
        written (relative to ``data/``)."""
        check_options(self.name, options, OPTIONS)
        split = str(options.get("split", "tiny")).strip().lower()
        if split not in SPLITS:
            raise BenchmarkError(f"{self.name}: split must be one of {', '.join(SPLITS)}, not {split!r}")
        name = SPLITS[split]
        file, rows, read_image = self._open(Path(path), name)
        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        seen: set[str] = set()
        for n, row in enumerate(rows, 1):
            check_row(str(file), f"line {n}", row, KEYS)
            item_id = str(row["id"]).strip()
            if not item_id or item_id in seen:
                raise BenchmarkError(f"{file}: id {item_id!r} (line {n}) is empty or repeated")
            seen.add(item_id)
            answer = str(row["gt_answer"] or "").strip().upper()
            if not answer:
                skipped.append(Skipped(item_id, "no_answer"))  # the official evaluator passes these over
                continue
            rels = row["images"]
            rels = [rels] if isinstance(rels, str) else list(rels or [])
            if images:
                got = [read_image(str(r)) for r in rels]
                bad = next((g for g in got if g[0] is None), None)
                if not got or bad is not None:
                    reason = "missing_image" if bad is None or bad[2] else "undecodable_image"
                    skipped.append(Skipped(item_id, reason, bad[1] if bad else f"{file}: line {n}, 'images' is empty"))
                    continue
                media: list = [g[0] for g in got]
            else:
                media = [str(r) for r in rels]
            question = str(row["question"] or "").strip()
            if question.count("<image>") != len(media):
                question = "<image>" * len(media) + question.replace("<image>", "").strip()
            opts = inline_options(question)
            if opts is not None and (len(answer) != 1 or answer not in LETTERS[:len(opts)]):
                opts = None
            items.append(EvalItem(
                id=item_id, question=f"{question}\n{INSTRUCTION}", images=media, answer=answer, options=opts,
                category=setting_of(item_id),
                meta={"type": row.get("type"), "mindcube_category": row.get("category"), "images": rels},
            ))
        return items, skipped

    def _open(self, p: Path, name: str):
        """(where the questions are, their rows, a reader of an image path of a row: ``(bytes,
        None, None)`` or ``(None, where it was looked for, missing?)``)."""
        if p.is_file():
            file: Path | None = p
        elif p.is_dir():
            cands = [p / "raw" / name, p / "data" / "raw" / name, p / name]
            file = next((c for c in cands if c.is_file()), None) or next(iter(sorted(p.rglob(name))), None)
        else:
            raise BenchmarkError(f"{p}: no such file or folder ({self.name})")
        if file is not None:
            if file.suffix != ".jsonl":
                raise BenchmarkError(f"{file}: expected the MindCube questions as JSON lines ({name})")
            base = file.parent.parent if file.parent.name == "raw" else file.parent
            roots = list(dict.fromkeys([base, p if p.is_dir() else base, p / "data" if p.is_dir() else base]))

            def from_disk(rel: str) -> tuple[bytes | None, str | None, bool]:
                for root in roots:
                    f = root / rel
                    if f.is_file():
                        data = f.read_bytes()
                        return (data, None, False) if image_ok(data) else (None, str(f), False)
                return None, f"{rel} (looked for in {', '.join(map(str, roots))})", True

            return file, read_jsonl(file, "questions"), from_disk
        zips = ZipMembers(p)
        member = next((m for m in zips.names() if m == name or m.endswith("/raw/" + name) or m == "raw/" + name),
                      None)
        if member is None:
            raise BenchmarkError(f"{p}: no {name} here, in raw/ or data/raw/, nor in a zip archive "
                                 "(expected the MLL-Lab/MindCube download or its unzipped data/ folder)")
        prefix = member.removesuffix(name).removesuffix("raw/")
        where = os.path.join(str(p), member)

        def from_zip(rel: str) -> tuple[bytes | None, str | None, bool]:
            data = zips.read(prefix + rel.lstrip("/")) or zips.read(rel.lstrip("/"))
            if data and image_ok(data):
                return data, None, False
            return None, f"{prefix + rel.lstrip('/')} (in the zip archives of {p})", not data

        return where, read_jsonl(where, "questions", zips.read(member)), from_zip

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        official, strict = Tally(), Tally()
        overall: list[bool] = []
        strict_overall: list[bool] = []
        per: dict[str, list[bool]] = {}
        strict_per: dict[str, list[bool]] = {}
        for it in items:
            response = responses.get(it.id)
            letter = official.read(response, _official)
            boxed = strict.read(response, read_choice, it.options, n_letters=len(it.options or ()) or len(LETTERS))
            hit, s_hit = letter == it.answer, boxed is not None and boxed == it.answer
            setting = it.category or "other"
            per.setdefault(setting, []).append(hit)
            strict_per.setdefault(setting, []).append(s_hit)
            if setting not in NOT_IN_OVERALL:
                overall.append(hit)
                strict_overall.append(s_hit)
        return {
            "accuracy": pct(overall),
            "n": len(overall),
            "parse_failures": official.parse_failures,
            "per_category": breakdown(per),
            "metric": ("accuracy (official MindCube): the answer letter read by the official extractor equals "
                       "gt_answer; item mean over all settings but translation"),
            "strict": pct(strict_overall),
            "strict_parse_failures": strict.parse_failures,
            "missing": official.missing,
            "metrics": {
                "n_translation": len(per.get("translation", [])),
                "strict_per_category": breakdown(strict_per),
                "failure_reasons": official.failure_reasons(),
                "strict_failure_reasons": strict.failure_reasons(sort=True),
            },
        }


BENCHMARK = MindCube()
