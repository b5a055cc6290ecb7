"""EmbSpatial-Bench (Du et al., ACL 2024): egocentric spatial relations (left, right, above,
under, close, far) in embodied scenes from Matterport3D, AI2-THOR and ScanNet.

Files as distributed: Hugging Face ``FlagEval/EmbSpatial-Bench`` (parquet files, split ``test``)
or the authors' ``embspatial_bench.json`` (Hugging Face ``Phineas476/EmbSpatial-Bench``, a JSON
list). Each row has ``question_id``, ``question``, ``answer_options`` (a list), ``answer`` (the
index of the right option), ``relation``, ``data_source`` (mp3d, ai2thor, scannet), ``image`` (a
Hugging Face image in the parquet, base64 in the JSON), ``scene_id`` and ``objects``. ``path`` is
one of those files or a folder holding them.

Official rule: the authors released no scoring code (mengfeidu/EmbSpatial-Bench at 75792fc holds
only the README); the EASI leaderboard scores it with VLMEvalKit (open-compass/VLMEvalKit at
e8e78f0, ``vlmeval/dataset/embspatialbench.py`` through ``eval_mcq_score`` and the rule-based
``can_match_option`` of ``vlmeval/dataset/utils/spatial_bench/matching_func.py``; no LLM judge).
:func:`easi_option_letter` is that matcher in our words, applied to
:func:`~spatial_ssrl.eval.answers.answer_text`; a reply it reads nothing from is a parse failure.
``accuracy`` is the item mean; ``per_category`` per data source (VLMEvalKit's grouping);
``metrics["per_relation"]`` per relation (lmms-eval's ``embspatial`` breakdown).

``strict``: the final ``\\boxed{}`` read by the reward's parser (a letter or the option text).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from pathlib import Path
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
from ._io import (
    cell_detail,
    check_options,
    check_row,
    image_ok,
    parquet_files,
    read_cell,
    read_json_list,
    read_parquet,
)

REQUIRED = ("question_id", "question", "answer_options", "answer", "image")
OPTIONAL = ("relation", "data_source", "scene_id")
JSON_NAME = "embspatial_bench.json"

# --------------------------------------------------------------- the EASI option matcher

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\ufeff]")
_OPEN = r"[(\[{（【]"
_CLOSE = r"[)\]}）】]"
_ANSWER_BLOCK = re.compile(r"<\s*answer\b[^>]*>\s*([A-Ja-j])(?:\s*[.．:：)\]】、])?.*?<\s*/\s*answer\s*>",
                           re.IGNORECASE | re.DOTALL)
_THINK_CLOSE = re.compile(r"</\s*think\s*>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<\s*think\s*>", re.IGNORECASE)
_OPTION_PREFIX = re.compile(r"^(?:[*_>\-\s]*)(?:option|选项)\s+[A-J]\s*[:：]", re.IGNORECASE)
_ALONE = re.compile(r"^\s*[*_`>（）\[\]【】()]*\s*([A-Fa-f])\s*[*_`（）\[\]【】()]*\s*$")
_LABELLED = re.compile(r"^\s*([A-F])\s*[.．:：)\]】、-]\s+", re.IGNORECASE)
_TIGHT = r".,:;!?)\]】》」』，。；、：）"
_INLINE = re.compile(r"(?<![A-Za-z])[*_`（\[{(]*\s*([A-F])\s*[*_`）\]})]*(?=$|[\s" + _TIGHT + "])")


def _anchored(letters: str, tag: str) -> re.Pattern:
    return re.compile(rf"(?<![A-Za-z]){_OPEN}?\s*([{letters}])\s*{_CLOSE}?\s*</\s*{tag}\s*>", re.IGNORECASE)


def _phrase(letters: str) -> re.Pattern:
    return re.compile(r"(?i)(?:final\s*answer|the\s*answer\s*is|answer(?:\s*is)?|correct\s*answer|"
                      r"答案|最终答案|结论|所以|因此|我选(?:择)?|选择|选)\s*[:：>＝=]?\s*"
                      rf"{_OPEN}?\s*([{letters}])\s*{_CLOSE}?(?:\b|[.)、。])")


def _from_lines(lines: list[str]) -> str | None:
    """From the last line up: a line that is one letter, a line opening with ``A.``/``B)``, or a
    line whose standalone capital letters are all the same one."""
    for line in reversed([ln.strip() for ln in lines if ln.strip()]):
        if _OPTION_PREFIX.search(line):
            continue
        m = _ALONE.fullmatch(line) or _LABELLED.match(line)
        if m:
            return m.group(1).upper()
        found = set(_INLINE.findall(line))
        if len(found) == 1:
            return found.pop()
    return None


def easi_option_letter(text: str | None, letters: str = "ABCDEF", tail_lines: int = 6, window: int = 800) -> str | None:
    """The option letter VLMEvalKit's ``can_match_option`` reads from a reply, else None. In
    order: an ``<answer>`` block opening with a letter; a letter just before ``</answer>`` or
    ``</think>`` near the end; the last lines after the think block, then the last lines of the
    reply's tail (see :func:`_from_lines`); the first "answer is X"-style phrase; finally the one
    distinct standalone capital letter of the whole reply (option-list lines left out)."""
    if not isinstance(text, str):
        return None
    text = _ZERO_WIDTH.sub("", text.strip())
    m = _ANSWER_BLOCK.search(text)
    if m:
        return m.group(1).upper()
    tail = text[-window:]
    for tag in ("answer", "think"):
        m = _anchored(letters, tag).search(tail)
        if m:
            return m.group(1).upper()
    closes = list(_THINK_CLOSE.finditer(text)) or list(_THINK_OPEN.finditer(text))
    after = text[closes[-1].end():].strip() if closes else text
    for segment in (after, tail):
        pick = _from_lines(segment.splitlines()[-tail_lines:])
        if pick:
            return pick
    m = _phrase(letters).search(text)
    if m:
        return m.group(1).upper()
    kept = "\n".join(ln for ln in text.splitlines() if not _OPTION_PREFIX.search(ln))
    found = set(re.findall(rf"(?<![A-Za-z]){_OPEN}?\s*([{letters}])\s*{_CLOSE}?(?![A-Za-z])", kept))
    return found.pop() if len(found) == 1 else None


# ------------------------------------------------------------------------------ the loader


def _answer_letter(raw: Any, n: int) -> str | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int) or (isinstance(raw, str) and raw.strip().isdigit()):
        i = int(raw)
    elif isinstance(raw, str) and len(raw.strip().strip("()")) == 1:
        i = ord(raw.strip().strip("()").upper()) - 65
    else:
        return None
    return chr(65 + i) if 0 <= i < n else None


def _json_image(cell: Any) -> tuple[bytes | None, str | None]:
    if isinstance(cell, str) and cell.strip():
        try:
            data = base64.b64decode(cell, validate=False)
        except (binascii.Error, ValueError):
            return None, "undecodable_image"
        return (data, None) if image_ok(data) else (None, "undecodable_image")
    return None, "missing_image"


def _rows(path: str) -> list[tuple[Path, list[dict[str, Any]]]]:
    p = Path(path)
    if p.is_dir():
        jsons = sorted(p.rglob(JSON_NAME))
        if not any(p.rglob("*.parquet")) and jsons:
            p = jsons[0]
    if p.suffix == ".json":
        rows = read_json_list(str(p), "questions")
        for i, row in enumerate(rows):
            check_row(str(p), f"item {i}", row, REQUIRED)
        return [(p, rows)]
    return [(f, read_parquet(f, REQUIRED, OPTIONAL)) for f in parquet_files(p, "*.parquet", "embspatial")]


class EmbSpatial(Benchmark):
    name = "embspatial"
    aliases = ("EmbSpatial-Bench", "EmbSpatialBench", "embspatial_bench")
    hub_repo = "FlagEval/EmbSpatial-Bench"
    default_path_hint = "FlagEval/EmbSpatial-Bench folder (test parquet files), a parquet file or embspatial_bench.json"

    def load(self, path: str, images: bool = True, **options: Any) -> tuple[list[EvalItem], list[Skipped]]:
        """The questions of the parquet files (or the authors' JSON). ``images=False`` (scoring
        predictions) decodes no image: the items are the same, their ``images`` empty (the
        images are in the table, or base64 in the JSON)."""
        check_options(self.name, options, ())
        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        seen: set[str] = set()
        for file, rows in _rows(path):
            for n, row in enumerate(rows):
                item_id = str(row["question_id"] or "").strip()
                if not item_id or item_id in seen:
                    raise BenchmarkError(f"{file}: question_id {item_id!r} is empty or repeated")
                seen.add(item_id)
                options_ = row["answer_options"]
                if not isinstance(options_, (list, tuple)) or len(options_) < 2:
                    skipped.append(Skipped(item_id, "no_options"))
                    continue
                options_ = [str(o) for o in options_]
                letter = _answer_letter(row["answer"], len(options_))
                if letter is None:
                    skipped.append(Skipped(item_id, "answer_not_an_option"))
                    continue
                decoded: list[bytes] = []
                if images:
                    cell = row["image"]
                    data, reason, detail = ((*_json_image(cell), None) if file.suffix == ".json"
                                            else read_cell(cell, [file.parent]))
                    if data is None:
                        where = cell_detail(file, n, "image", detail)
                        skipped.append(Skipped(item_id, reason or "undecodable_image", where))
                        continue
                    decoded = [data]
                lines = [f"{chr(65 + i)}. {o}" for i, o in enumerate(options_)]
                question = "\n".join(["<image>" + str(row["question"]).strip(), *lines,
                                      "Answer with the option's letter."])
                items.append(EvalItem(
                    id=item_id, question=question, images=decoded, answer=letter, options=options_,
                    category=str(row.get("data_source") or "unknown"),
                    meta={"relation": str(row.get("relation") or "unknown"), "scene_id": row.get("scene_id")},
                ))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        per_source: dict[str, list[bool]] = {}
        per_relation: dict[str, list[bool]] = {}
        hits: list[bool] = []
        strict_hits: list[bool] = []
        failures = 0
        strict = Tally()
        for it in items:
            response = responses.get(it.id)
            letter = easi_option_letter(answer_text(response))
            failures += response is not None and letter is None
            hit = letter == it.answer
            hits.append(hit)
            per_source.setdefault(it.category or "unknown", []).append(hit)
            per_relation.setdefault(str(it.meta.get("relation", "unknown")), []).append(hit)
            boxed = strict.read(response, read_choice, it.options, n_letters=len(it.options or ()) or None)
            strict_hits.append(boxed == it.answer)
        report = {
            "accuracy": pct(hits),
            "n": len(items),
            "parse_failures": failures,
            "per_category": breakdown(per_source),
            "metric": ("EmbSpatial-Bench as VLMEvalKit (EASI) scores it: the option letter read by its rule-based "
                       "can_match_option equals the answer; item mean"),
            "missing": strict.missing,
            "metrics": {"per_relation": breakdown(per_relation)},
        }
        return with_strict(report, pct(strict_hits), strict)


BENCHMARK = EmbSpatial()
