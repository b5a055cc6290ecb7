"""MMSI-Bench (Xu et al., 2025): 1,000 multi-image spatial-reasoning questions, four options each.

Files, as the authors distribute them (Hugging Face ``RunsenXu/MMSI-Bench``, split ``test``):
``MMSI_Bench.parquet`` with the columns ``id``, ``images`` (a list of encoded images, 2 or more),
``question_type`` (11 types, e.g. "Positional Relationship (Cam.-Obj.)", "MSR"), ``question`` (the
options are inside it, after ``Options:`` as ``A: ..., B: ..., C: ..., D: ...``), ``answer`` (a
letter) and ``thought``. ``path`` is that file or a folder holding it (every ``*.parquet`` below it
is read). Read from the dataset card's loader and lmms-eval's ``lmms_eval/tasks/mmsi_bench/``
(EvolvingLMMs-Lab/lmms-eval @75571cf).

Official rule (``vlmeval/dataset/mmsi_bench.py`` of OpenRobotLab/MMSI-Bench @4e28bff, the authors'
VLMEvalKit copy): the answer text is narrowed to what a double-backtick span holds, then to what
a single-backtick span holds, and the letter is the first standalone capital A-D not followed by
a space and a letter (so the article in "A bike" is not read); right when it equals the answer.
(lmms-eval's ``utils.py`` also narrows to a ``{...}`` span and reads A-F in either case.) Here the text is
:func:`~spatial_ssrl.eval.answers.final_answer` of the response. ``accuracy`` is the item mean;
per ``question_type``.

Circular evaluation (``MMSIBenchCircular`` in the same file; the OpenCompass spatial leaderboard's
protocol): ``circular=True`` (``--circular``) asks each question four times, its
options in the cyclic orders ABCD, BCDA, CDAB, DABC (the option now at letter j is the one
originally at letter j+k, the answer letter follows its text), the question rebuilt as the text
before ``Options:`` plus ``Options: A: ..., B: ...``; a question counts only when all four are
right, and ``accuracy`` is the mean over questions. Questions whose options cannot be read are
skipped there, as the official loader skips them. ``metrics["vanilla"]`` is the official item
mean over the unrotated rows (the paper's figure, and EASI's ``MMSIBench_wo_circular``).

``strict`` is our rule on the same items: the boxed letter (or option text), hedges refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..answers import final_answer, read_choice
from ..base import Benchmark, BenchmarkError, EvalItem, Skipped, Tally, breakdown, pct
from ._io import cell_detail, check_options, parquet_files, read_cell, read_parquet

REQUIRED = ("id", "images", "question_type", "question", "answer")
LETTERS = "ABCD"
INSTRUCTION = "Answer with the option's letter from the given choices."
OPTIONS = ("circular",)
_OPTIONS_AT = "Options:"
_MARK = re.compile(r"(?:^|(?<=[\s,]))([A-D])\s*:\s*")
_DOUBLE_TICK = re.compile(r"``([^`]*)``")
_SINGLE_TICK = re.compile(r"`([^`]*)`")
_LETTER = re.compile(r"\b[A-D]\b(?!\s[a-zA-Z])")


def official_letter(text: str | None) -> str | None:
    """The official MMSI-Bench reading of an answer text (None: no letter found)."""
    if text is None:
        return None
    for span in (_DOUBLE_TICK, _SINGLE_TICK):
        m = span.search(text)
        if m:
            text = m.group(1)
    m = _LETTER.search(text)
    return m.group() if m else None


def _official(response: str) -> tuple[str | None, str | None]:
    letter = official_letter(final_answer(response))
    return letter, None if letter else "no_letter"


def split_options(question: str) -> tuple[str, list[str]] | None:
    """``(text before "Options:", option texts in letter order)``; None when the options after
    the first "Options:" are not A, B, ... in order (at least two)."""
    head, sep, tail = question.partition(_OPTIONS_AT)
    if not sep:
        return None
    marks = []
    for m in _MARK.finditer(tail):
        if len(marks) < len(LETTERS) and m.group(1) == LETTERS[len(marks)]:
            marks.append(m)
    if len(marks) < 2:
        return None
    options = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(tail)
        options.append(tail[m.end():end].strip().rstrip(",").strip())
    return (head.strip(), options) if all(options) else None


def rotations(n: int) -> list[list[int]]:
    """The official cyclic orders: rotation k puts the option at index (j + k) mod n at j."""
    return [[(j + k) % n for j in range(n)] for k in range(n)]


class MMSIBench(Benchmark):
    name = "mmsi-bench"
    aliases = ("MMSI_Bench", "MMSIBench", "mmsi", "mmsi_bench", "MMSIBench_wo_circular", "MMSIBench_circular",
               "MMSI_Bench_Circular")
    hub_repo = "RunsenXu/MMSI-Bench"
    native_circular = True  # the loader's `circular` option asks the four rotations itself
    default_path_hint = "MMSI_Bench.parquet (RunsenXu/MMSI-Bench) or its folder"

    def load(self, path: str, images: bool = True, **options: Any) -> tuple[list[EvalItem], list[Skipped]]:
        """The questions of the parquet files. ``images=False`` (scoring predictions) decodes no
        image: the items are the same, their ``images`` empty (the images are in the table)."""
        check_options(self.name, options, OPTIONS)
        circular = str(options.get("circular", False)).strip().lower() in ("1", "true", "yes", "on")
        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        seen: set[str] = set()
        for file in parquet_files(path, "*.parquet", self.name):
            for n, row in enumerate(read_parquet(file, REQUIRED)):
                item_id = str(row["id"]).strip()
                if not item_id or item_id in seen:
                    raise BenchmarkError(f"{file}: id {item_id!r} is empty or repeated")
                seen.add(item_id)
                answer = str(row["answer"] or "").strip().upper()
                if len(answer) != 1 or answer not in LETTERS:
                    skipped.append(Skipped(item_id, "answer_not_an_option"))
                    continue
                cells = row["images"]
                if cells is None or isinstance(cells, (str, bytes, dict)) or not len(cells):
                    if images:
                        skipped.append(Skipped(item_id, "missing_image", cell_detail(file, n, "images", None)))
                        continue
                    cells = []
                decoded: list[bytes] = []
                for k, cell in enumerate(cells if images else ()):
                    data, reason, detail = read_cell(cell, [file.parent])
                    if data is None:
                        skipped.append(Skipped(item_id, reason or "undecodable_image",
                                               cell_detail(file, n, f"images[{k}]", detail)))
                        break
                    decoded.append(data)
                if images and len(decoded) != len(cells):
                    continue
                n_images = len(cells)
                question = str(row["question"] or "").replace("<image>", "").strip()
                parsed = split_options(question)
                category = str(row["question_type"] or "unknown").strip()
                meta = {"group": item_id, "rotation": 0, "question_type": category}
                if not circular:
                    opts = parsed[1] if parsed and LETTERS.index(answer) < len(parsed[1]) else None
                    items.append(self._item(item_id, question, decoded, answer, opts, category, meta, n_images))
                    continue
                if parsed is None or LETTERS.index(answer) >= len(parsed[1]):
                    skipped.append(Skipped(item_id, "options_unreadable"))
                    continue
                head, opts = parsed
                truth = LETTERS.index(answer)
                for k, order in enumerate(rotations(len(opts))):
                    rotated = [opts[i] for i in order]
                    text = f"{head}\n{_OPTIONS_AT} " + ", ".join(f"{LETTERS[j]}: {o}" for j, o in enumerate(rotated))
                    items.append(self._item(item_id if k == 0 else f"{item_id}#rot{k}", text, decoded,
                                            LETTERS[order.index(truth)], rotated, category, {**meta, "rotation": k},
                                            n_images))
        return items, skipped

    @staticmethod
    def _item(item_id: str, question: str, images: list, answer: str, options: list[str] | None,
              category: str, meta: dict[str, Any], n_images: int) -> EvalItem:
        return EvalItem(id=item_id, question="<image>" * n_images + f"{question}\n{INSTRUCTION}",
                        images=images, answer=answer, options=options, category=category, meta=meta)

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        official, strict = Tally(), Tally()
        rows: list[tuple[str, str, int, bool, bool]] = []  # group, category, rotation, official hit, strict hit
        for it in items:
            response = responses.get(it.id)
            letter = official.read(response, _official)
            boxed = strict.read(response, read_choice, it.options, n_letters=len(it.options or ()) or 4)
            rows.append((str(it.meta.get("group", it.id)), it.category or "unknown", int(it.meta.get("rotation", 0)),
                         letter == it.answer, boxed is not None and boxed == it.answer))
        rotated = any(r[2] for r in rows)

        def summary(which: int) -> tuple[float | None, dict, float | None, dict]:
            """(circular, per category, vanilla, per category) for hits at index ``which``."""
            groups: dict[str, list] = {}
            van: dict[str, list[bool]] = {}
            for group, cat, rot, *hits in rows:
                g = groups.setdefault(group, [cat, True])
                g[1] = g[1] and hits[which]
                if rot == 0:
                    van.setdefault(cat, []).append(hits[which])
            circ: dict[str, list[bool]] = {}
            for cat, ok in groups.values():
                circ.setdefault(cat, []).append(ok)
            return (pct([ok for _, ok in groups.values()]), breakdown(circ),
                    pct([h for v in van.values() for h in v]), breakdown(van))

        circ, circ_per, van, van_per = summary(0)
        s_circ, s_circ_per, s_van, s_van_per = summary(1)
        return {
            "accuracy": circ if rotated else van,
            "n": len(rows),
            "parse_failures": official.parse_failures,
            "per_category": circ_per if rotated else van_per,
            "metric": ("circular accuracy (official MMSI-Bench): a question counts only when all four cyclic option "
                       "orders are right; letter read by the official rule (backtick span, then the first "
                       "standalone A-D); mean over questions" if rotated else
                       "accuracy (official MMSI-Bench): the first standalone A-D letter (inside a backtick span "
                       "when there is one) equals the answer; item mean"),
            "strict": s_circ if rotated else s_van,
            "strict_parse_failures": strict.parse_failures,
            "missing": official.missing,
            "metrics": {
                "vanilla": van,
                "circular": circ if rotated else None,
                "n_questions": len({r[0] for r in rows}),
                "per_category_vanilla": van_per,
                "strict_vanilla": s_van,
                "strict_per_category": s_circ_per if rotated else s_van_per,
                "failure_reasons": official.failure_reasons(),
                "strict_failure_reasons": strict.failure_reasons(sort=True),
            },
        }


BENCHMARK = MMSIBench()
