"""SITE (Wang et al., 2025): Spatial Intelligence Thorough Evaluation, the image part (single-
and multi-image multiple choice gathered from 31 datasets plus the authors' own view-taking
questions), in six categories.

Files (Hugging Face ``franky-veteran/SITE-Bench``, configuration ``image_test``, split ``test``):
one row per question with ``question``, ``options`` (a list of option texts), ``answer`` (the
letter), ``category``, ``dataset`` (the source dataset) and ``visual`` (image paths relative to
the dataset folder; the media ship as ``data_chunked_NN.zip`` archives). Fields read from the
authors' lmms-eval task (``eval_scripts/sitebench/utils.py`` and ``site_image.yaml`` of
wenqi-wang20/SITE-Bench @36295bb, copied into lmms-eval's ``lmms_eval/tasks/sitebench/``).
``path`` is the annotation file (parquet, JSON lines or a JSON list) or the downloaded folder:
there the files whose path names ``image`` (not ``video``) are read (``file=NAME`` picks one),
and images are looked up on disk below the folder, else inside its zip archives (nothing is
extracted). An item whose images cannot be read is skipped, named in the report.

Official rule (``parse_multi_choice_response`` and ``spatial_process_results`` of the same
``utils.py``), applied to :func:`~spatial_ssrl.eval.answers.final_answer` of the response, padded
with a space each side: the candidate letters are those written ``(X)``; if none, those standing
alone between spaces; if none, those followed by a full stop; if none, those written ``X:``,
``:X`` or ``: X``; of several candidates the one whose last " X " comes latest wins. The official
script picks a random letter when none is found; here that is a parse failure, scored wrong.
The headline is the chance-adjusted accuracy (CAA) the SITE paper reports: each question scores
its hit minus 1/n (n options) and ``accuracy`` = 100 * sum(hit - 1/n) / sum(1 - 1/n), so chance is
0 and a perfect run 100 (it can go below 0); ``per_category`` is the CAA per category and
``metrics["raw_accuracy"]`` the plain item mean, ``metrics["per_dataset"]`` CAA per source dataset.

``strict`` is the CAA under our rule on the same items: the boxed letter (or option text),
hedges refused.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..answers import final_answer, read_choice
from ..base import Benchmark, BenchmarkError, EvalItem, Skipped, Tally, pct
from ._io import (
    ZipMembers,
    check_options,
    check_row,
    image_ok,
    read_json_list,
    read_jsonl,
    read_parquet,
)

KEYS = ("question", "options", "answer", "category", "visual")
SUFFIXES = (".parquet", ".jsonl", ".json")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
VIDEO = (".mp4", ".avi", ".mov", ".mkv", ".webm")
INSTRUCTION = "Answer with the option's letter."
OPTIONS = ("file",)


def official_letter(text: str | None, n_options: int) -> str | None:
    """The official SITE reading of an answer text among the first ``n_options`` letters."""
    if text is None:
        return None
    padded = f" {text.strip()} "
    choices = LETTERS[:n_options]
    tests = (lambda c: f"({c})" in padded, lambda c: f" {c} " in padded, lambda c: f"{c}." in padded,
             lambda c: f"{c}:" in padded or f":{c}" in padded or f": {c}" in padded)
    for test in tests:
        found = [c for c in choices if test(c)]
        if found:
            # the latest " X " wins; none found that way (-1 each): the first candidate
            return max(found, key=lambda c: (padded.rfind(f" {c} "), -choices.index(c)))
    return None


def _official(response: str, n_options: int) -> tuple[str | None, str | None]:
    letter = official_letter(final_answer(response), n_options)
    return letter, None if letter else "no_letter"


def caa(rows: Sequence[tuple[bool, int]]) -> float | None:
    """Chance-adjusted accuracy in percent of ``(hit, number of options)`` rows."""
    baseline = sum(1.0 - 1.0 / n for _, n in rows)
    return 100.0 * sum(float(h) - 1.0 / n for h, n in rows) / baseline if baseline else None


def _caa_breakdown(groups: Mapping[str, list[tuple[bool, int]]]) -> dict[str, dict[str, Any]]:
    return {k: {"n": len(v), "accuracy": caa(v), "raw_accuracy": pct([h for h, _ in v])}
            for k, v in sorted(groups.items())}


def _option_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(value)
                break
            except (ValueError, SyntaxError):
                continue
    if not isinstance(value, (list, tuple)):
        return None
    return [str(v).strip() for v in value]


class SITE(Benchmark):
    name = "site"
    aliases = ("SITE", "SITE-Bench", "site-bench", "sitebench", "SiteBenchImage", "site_bench_image")
    hub_repo = "franky-veteran/SITE-Bench"
    hub_config = "image_test"
    default_path_hint = "franky-veteran/SITE-Bench download (image_test annotations, data_chunked_NN.zip media)"

    def load(self, path: str, images: bool = True, **options: Any) -> tuple[list[EvalItem], list[Skipped]]:
        """The image questions of the annotation files. ``images=False`` (scoring predictions)
        opens no image, so none is skipped for a missing one: ``images`` then holds the row's
        ``visual`` paths as written (relative to the dataset folder)."""
        check_options(self.name, options, OPTIONS)
        root = Path(path)
        files = self._files(root, options.get("file"))
        base = root if root.is_dir() else root.parent
        zips: ZipMembers | None = None

        def read_image(rel: str, file: Path) -> tuple[bytes | None, str | None, bool]:
            """``(bytes, None, False)`` or ``(None, where it was looked for, missing?)``."""
            nonlocal zips
            rel = rel.replace("\\", "/").lstrip("/")
            inside = [d for d in (file.parent, *file.parent.parents) if d == base or base in d.parents]
            folders = list(dict.fromkeys([*inside, base]))
            for folder in folders:
                f = folder / rel
                if f.is_file():
                    data = f.read_bytes()
                    return (data, None, False) if image_ok(data) else (None, str(f), False)
            if zips is None:
                zips = ZipMembers(base)
            data = zips.read(rel)
            if data and image_ok(data):
                return data, None, False
            where = f"{rel} (in the zip archives of {base})" if data else \
                f"{rel} (looked for in {', '.join(map(str, folders))} and their zip archives)"
            return None, where, not data

        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        seen: set[str] = set()
        for file in files:
            for n, row in enumerate(self._rows(file)):
                check_row(str(file), f"row {n}", row, KEYS)
                item_id = str(row.get("id", "")).strip() or (f"{n}" if len(files) == 1 else f"{file.stem}:{n}")
                if item_id in seen:
                    raise BenchmarkError(f"{file}: id {item_id!r} is repeated")
                seen.add(item_id)
                opts = _option_list(row["options"])
                if opts is None or not 2 <= len(opts) <= len(LETTERS):
                    raise BenchmarkError(f"{file}: row {n}: 'options' is not a list of at least two option texts")
                answer = str(row["answer"] or "").strip().upper()
                if len(answer) != 1 or answer not in LETTERS[:len(opts)]:
                    skipped.append(Skipped(item_id, "answer_not_an_option"))
                    continue
                rels = row["visual"]
                rels = [rels] if isinstance(rels, str) else [str(r) for r in (rels or [])]
                if any(r.lower().endswith(VIDEO) for r in rels):
                    skipped.append(Skipped(item_id, "video_item"))
                    continue
                if images:
                    got = [read_image(r, file) for r in rels]
                    bad = next((g for g in got if g[0] is None), None)
                    if not got or bad is not None:
                        reason = "missing_image" if bad is None or bad[2] else "undecodable_image"
                        skipped.append(Skipped(item_id, reason,
                                               bad[1] if bad else f"{file}: row {n}, 'visual' is empty"))
                        continue
                    media: list = [g[0] for g in got]
                else:
                    media = list(rels)
                question = str(row["question"] or "").strip()
                lines = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(opts))
                if (question + lines).count("<image>") != len(media):  # not interleaved: images first
                    question = "<image>" * len(media) + question.replace("<image>", "").strip()
                    lines = lines.replace("<image>", "")
                items.append(EvalItem(
                    id=item_id, question=f"{question}\n{lines}\n{INSTRUCTION}", images=media, answer=answer,
                    options=opts, category=str(row["category"] or "unknown").strip(),
                    meta={"dataset": str(row.get("dataset") or "unknown"), "visual": rels},
                ))
        return items, skipped

    def _files(self, root: Path, name: Any) -> list[Path]:
        if name:
            root = root / str(name)
        if root.is_file():
            if root.suffix not in SUFFIXES:
                raise BenchmarkError(f"{root}: not a SITE annotation file (expected {', '.join(SUFFIXES)})")
            return [root]
        if not root.is_dir():
            raise BenchmarkError(f"{root}: no such file or folder ({self.name})")
        found = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix in SUFFIXES
                       and "image" in f.relative_to(root).as_posix().lower()
                       and "video" not in f.relative_to(root).as_posix().lower())
        if not found:
            raise BenchmarkError(f"{root}: no SITE image annotation file here (a parquet, jsonl or json file "
                                 "with 'image' in its path, e.g. the image_test configuration)")
        kinds = {f.suffix for f in found}
        if len(kinds) > 1:  # the same table in two formats: take one
            found = [f for f in found if f.suffix == next(s for s in SUFFIXES if s in kinds)]
        return found

    @staticmethod
    def _rows(file: Path) -> list:
        if file.suffix == ".parquet":
            return read_parquet(file, KEYS, ("dataset", "id"))
        if file.suffix == ".jsonl":
            return read_jsonl(file, "questions")
        return read_json_list(str(file), "questions")

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        official, strict = Tally(), Tally()
        rows: list[tuple[bool, int]] = []
        strict_rows: list[tuple[bool, int]] = []
        per: dict[str, list[tuple[bool, int]]] = {}
        strict_per: dict[str, list[tuple[bool, int]]] = {}
        per_dataset: dict[str, list[tuple[bool, int]]] = {}
        for it in items:
            n = len(it.options or ()) or 4
            response = responses.get(it.id)
            letter = official.read(response, _official, n)
            boxed = strict.read(response, read_choice, it.options, n_letters=n)
            row, s_row = (letter == it.answer, n), (boxed is not None and boxed == it.answer, n)
            rows.append(row)
            strict_rows.append(s_row)
            per.setdefault(it.category or "unknown", []).append(row)
            strict_per.setdefault(it.category or "unknown", []).append(s_row)
            per_dataset.setdefault(str(it.meta.get("dataset", "unknown")), []).append(row)
        return {
            "accuracy": caa(rows),
            "n": len(rows),
            "parse_failures": official.parse_failures,
            "per_category": _caa_breakdown(per),
            "metric": ("chance-adjusted accuracy (official SITE): 100 * sum(hit - 1/n) / sum(1 - 1/n) over questions "
                       "with n options; letter read by the official parser, none found = wrong (the official "
                       "script guesses at random)"),
            "strict": caa(strict_rows),
            "strict_parse_failures": strict.parse_failures,
            "missing": official.missing,
            "metrics": {
                "raw_accuracy": pct([h for h, _ in rows]),
                "strict_raw_accuracy": pct([h for h, _ in strict_rows]),
                "per_dataset": _caa_breakdown(per_dataset),
                "strict_per_category": _caa_breakdown(strict_per),
                "failure_reasons": official.failure_reasons(),
                "strict_failure_reasons": strict.failure_reasons(sort=True),
            },
        }


BENCHMARK = SITE()
