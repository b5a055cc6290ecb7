"""3DSRBench (Ma et al., 2024): 3D spatial reasoning on MS-COCO and HSSD images.

Files, as the authors distribute them (Hugging Face ``ccvl/3DSRBench``):
``3dsrbench_v1_vlmevalkit_circular.tsv``, a VLMEvalKit TSV with the columns ``index``, ``qid``,
``question``, ``A``..``D`` (``C``/``D`` empty for two-option questions), ``answer`` (a letter),
``category`` (12 subcategories), ``image`` (base64), ``image_source``, ``image_url``. A qid is
an 8-character base, ``<base>-N`` for the N-th rotation of the options, ``<base>-flip`` for the
left/right-flipped question and ``<base>-flip-N`` for its rotations. ``path`` may be that file
or a folder holding it (the non-circular ``3dsrbench_v1_vlmevalkit.tsv`` and VLMEvalKit's own
``3DSRBench.tsv`` are taken when the circular one is absent; ``file=`` names one).

Scoring (``compute_3dsrbench_results_circular.py`` of the authors): a row is right when the
boxed option letter is the answer; rows are grouped by their qid without a trailing ``-N``
(so a base and its ``-flip`` are separate groups); a group is right only when every row of it
is. ``accuracy`` is the mean over groups, and per type (height, location, orientation,
multi_object, each a set of the 12 subcategories) likewise. ``metrics`` adds the figures
VLMEvalKit prints for the same predictions: ``vanilla`` (per row), ``flip`` (each unflipped
row together with its flipped twin), ``circular`` (= ``accuracy``) and ``flip_circular`` (all
rotations of a question and of its flip together).

The TSV helpers here (:func:`find_file`, :func:`read_tsv`, :func:`tsv_images`) serve every
VLMEvalKit-format benchmark.
"""

from __future__ import annotations

import ast
import base64
import binascii
import csv
import io
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..answers import read_choice
from ..base import Benchmark, BenchmarkError, EvalItem, Skipped

# --------------------------------------------------------------------------- shared TSV helpers


def find_file(path: str | os.PathLike, preferred: Sequence[str], suffix: str, bench: str) -> Path:
    """``path`` itself when it is a file, else the first of ``preferred`` names found in the
    folder (searched recursively), else the only ``*suffix`` file there."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_dir():
        raise BenchmarkError(f"{p}: no such file or folder ({bench})")
    for name in preferred:
        hits = sorted(p.rglob(name))
        if hits:
            return hits[0]
    found = sorted(f for f in p.rglob(f"*{suffix}") if f.is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        raise BenchmarkError(f"{p}: no {suffix} file of {bench} here (expected {preferred[0]})")
    names = ", ".join(str(f.relative_to(p)) for f in found[:6])
    raise BenchmarkError(f"{p}: several {suffix} files ({names}); pass the file itself or file=NAME")


def read_tsv(file: Path, required: Iterable[str]) -> list[dict[str, str]]:
    """The rows of a VLMEvalKit TSV as strings (empty cells are ``""``, never NaN: an option
    reading "None" stays "None"). A missing required column is a :class:`BenchmarkError`
    naming the file and the column."""
    import pandas as pd

    try:
        df = pd.read_csv(file, sep="\t", dtype=str, keep_default_na=False, na_filter=False,
                         quoting=csv.QUOTE_MINIMAL, engine="c")
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"{file}: not a readable TSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise BenchmarkError(f"{file}: missing column {', '.join(repr(c) for c in missing)} "
                             f"(it has: {', '.join(map(str, df.columns))})")
    return df.to_dict("records")


def image_ok(data: bytes) -> bool:
    """True when PIL can read the image header and the file passes ``verify``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
        return True
    except Exception:  # noqa: BLE001 - PIL raises many kinds for bad data
        return False


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.strip(), validate=False)
    except (binascii.Error, ValueError):
        return None


def tsv_images(rows: Sequence[Mapping[str, str]], column: str = "image",
               index_column: str = "index") -> Callable[[Mapping[str, str]], tuple[list[bytes] | None, str | None]]:
    """A decoder of a row's ``image`` cell: base64 (or a Python list of base64 strings, for
    several images); a cell of up to 64 characters names the ``index`` of the row holding the
    image (VLMEvalKit's space saving). Returns ``(encoded images, None)`` or ``(None, reason)``."""
    by_index = {str(r.get(index_column, "")): r.get(column, "") for r in rows}
    cache: dict[str, tuple[list[bytes] | None, str | None]] = {}

    def decode(row: Mapping[str, str]) -> tuple[list[bytes] | None, str | None]:
        cell = str(row.get(column, "") or "").strip()
        if 0 < len(cell) <= 64:
            target = by_index.get(cell)
            if target is None or len(str(target).strip()) <= 64:
                return None, "undecodable_image"
            cell = str(target).strip()
        if not cell:
            return None, "missing_image"
        if cell in cache:
            return cache[cell]
        parts: list[str] = [cell]
        if cell.startswith("[") and cell.endswith("]"):
            try:
                value = ast.literal_eval(cell)
            except (ValueError, SyntaxError):
                value = None
            if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                parts = value
        images = []
        for part in parts:
            data = _b64(part)
            if not data or not image_ok(data):
                cache[cell] = (None, "undecodable_image")
                return cache[cell]
            images.append(data)
        cache[cell] = (images, None)
        return cache[cell]

    return decode


def option_letters(row: Mapping[str, str], letters: str = "ABCDEFGH") -> list[str]:
    """The option texts of a row, in letter order, up to the first empty one."""
    options = []
    for letter in letters:
        value = row.get(letter)
        if value is None or not str(value).strip():
            break
        options.append(str(value).strip())
    return options


def mcq_question(question: str, options: Sequence[str], n_images: int = 1, hint: str = "") -> str:
    """``<image>`` placeholders first, the question, the ``A. ...`` lines, the box instruction."""
    lines = ["<image>" * n_images + (f"Hint: {hint.strip()}\n" if hint.strip() else "") + question.strip()]
    lines += [f"{chr(65 + i)}. {text}" for i, text in enumerate(options)]
    lines.append("Answer with the option's letter.")
    return "\n".join(lines)


def pct(hits: Sequence[bool]) -> float | None:
    return 100.0 * sum(hits) / len(hits) if hits else None


# --------------------------------------------------------------------------------- 3DSRBench

TYPES = {
    "height": ("height_higher",),
    "location": ("location_above", "location_closer_to_camera", "location_next_to"),
    "orientation": ("orientation_in_front_of", "orientation_on_the_left", "orientation_viewpoint"),
    "multi_object": ("multi_object_closer_to", "multi_object_facing", "multi_object_viewpoint_towards_object",
                     "multi_object_parallel", "multi_object_same_direction"),
}
_SUB_TO_TYPE = {sub: t for t, subs in TYPES.items() for sub in subs}
_ROTATION = re.compile(r"-\d+$")


def question_type(subcategory: str) -> str:
    """One of the four types for a subcategory (by its prefix when it is not one of the 12)."""
    if subcategory in _SUB_TO_TYPE:
        return _SUB_TO_TYPE[subcategory]
    return next((t for t in TYPES if subcategory.startswith(t)), subcategory or "unknown")


def circular_key(qid: str) -> str:
    """The official circular group: the qid without a trailing ``-N`` (``-flip`` kept)."""
    return _ROTATION.sub("", qid)


def flip_key(qid: str) -> str:
    """VLMEvalKit's flip pair: the qid with ``-flip`` removed (rotation kept)."""
    return qid.replace("-flip", "")


def flip_circular_key(qid: str) -> str:
    """VLMEvalKit's flip+circular group: every rotation of a question and of its flip."""
    return circular_key(qid).replace("-flip", "")


SETTINGS: dict[str, Callable[[str], str] | None] = {
    "vanilla": None, "flip": flip_key, "circular": circular_key, "flip_circular": flip_circular_key,
}

PREFERRED_FILES = ("3dsrbench_v1_vlmevalkit_circular.tsv", "3DSRBench.tsv", "3dsrbench_v1_vlmevalkit.tsv")
REQUIRED = ("index", "qid", "question", "A", "B", "answer", "category", "image")


def grouped(rows: Sequence[tuple[str, str, str, bool]], key: Callable[[str], str] | None) -> list[tuple[str, str, bool]]:
    """``(group key, type, right)`` per group of ``(id, qid, type, right)`` rows; a group is
    right when all its rows are (its type is its first row's)."""
    groups: dict[str, list] = {}
    for item_id, qid, qtype, hit in rows:
        k = item_id if key is None else key(qid)
        g = groups.setdefault(k, [qtype, True])
        g[1] = g[1] and hit
    return [(k, t, ok) for k, (t, ok) in groups.items()]


class ThreeDSRBench(Benchmark):
    name = "3dsrbench"
    native_circular = True  # circular evaluation is the loader's own `circular` option
    default_path_hint = "3dsrbench_v1_vlmevalkit_circular.tsv (ccvl/3DSRBench) or its folder"

    def load(self, path: str, *, file: str | None = None, circular: bool = True
             ) -> tuple[list[EvalItem], list[Skipped]]:
        """Every row of the TSV; ``circular=False`` keeps only the unrotated rows (the base and
        flipped questions), a quicker run whose groups are single rows."""
        tsv = find_file(Path(path) / file if file else path, PREFERRED_FILES, ".tsv", self.name)
        rows = read_tsv(tsv, REQUIRED)
        decode = tsv_images(rows)
        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        seen: set[str] = set()
        for row in rows:
            item_id = str(row["index"]).strip()
            qid = str(row["qid"]).strip()
            if not item_id or item_id in seen:
                raise BenchmarkError(f"{tsv}: index {item_id!r} is empty or repeated")
            seen.add(item_id)
            if not circular and _ROTATION.search(qid):
                continue
            options = option_letters(row, "ABCD")
            answer = str(row["answer"]).strip().upper()
            if len(options) < 2 or answer not in "ABCD"[:len(options)] or not answer:
                skipped.append(Skipped(item_id, "answer_not_an_option"))
                continue
            images, reason = decode(row)
            if images is None:
                skipped.append(Skipped(item_id, reason or "undecodable_image"))
                continue
            sub = str(row["category"]).strip()
            items.append(EvalItem(
                id=item_id,
                question=mcq_question(str(row["question"]), options, len(images), str(row.get("hint", "") or "")),
                images=images, answer=answer, options=options, category=question_type(sub),
                meta={"qid": qid, "subcategory": sub, "group": circular_key(qid)},
            ))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        rows: list[tuple[str, str, str, bool]] = []
        sub_of: dict[str, str] = {}
        missing = failures = 0
        reasons: Counter = Counter()
        for it in items:
            response = responses.get(it.id)
            hit = False
            if response is None:
                missing += 1
            else:
                letter, reason = read_choice(response, it.options, n_letters=len(it.options or ()) or None)
                if letter is None:
                    failures += 1
                    reasons[reason or "unparseable"] += 1
                hit = letter is not None and letter == it.answer
            qid = str(it.meta.get("qid", it.id))
            rows.append((it.id, qid, it.category or "unknown", hit))
            sub_of[circular_key(qid)] = str(it.meta.get("subcategory", it.category))

        settings: dict[str, dict[str, Any]] = {}
        for setting, key in SETTINGS.items():
            groups = grouped(rows, key)
            per_type: dict[str, list[bool]] = {}
            for _, qtype, ok in groups:
                per_type.setdefault(qtype, []).append(ok)
            settings[setting] = {
                "accuracy": pct([ok for _, _, ok in groups]), "n": len(groups),
                "per_type": {t: {"n": len(v), "accuracy": pct(v)} for t, v in sorted(per_type.items())},
            }
        per_sub: dict[str, list[bool]] = {}
        for k, _, ok in grouped(rows, circular_key):
            per_sub.setdefault(sub_of.get(k, "unknown"), []).append(ok)
        rotated = any(_ROTATION.search(qid) for _, qid, _, _ in rows)
        circ = settings["circular"]
        return {
            "accuracy": circ["accuracy"],
            "n": len(rows),
            "parse_failures": failures,
            "per_category": circ["per_type"],
            "metric": ("circular accuracy (official 3DSRBench): a question counts only when all its option "
                       "rotations are right (a flipped question is its own group); mean over groups"
                       + ("" if rotated else "; no rotated rows loaded, so groups are single rows")),
            "metrics": {
                **{s: v["accuracy"] for s, v in settings.items()},
                "n_groups": circ["n"],
                "settings": settings,
                "per_subcategory": {s: {"n": len(v), "accuracy": pct(v)} for s, v in sorted(per_sub.items())},
                "failure_reasons": dict(reasons),
            },
            "missing": missing,
        }


BENCHMARK = ThreeDSRBench()
