"""CV-Bench (Tong et al., Cambrian-1, 2024): vision-centric multiple choice built from ADE20K and
COCO (2D: Count, Relation) and Omni3D (3D: Depth, Distance).

Files as distributed (Hugging Face ``nyu-visionx/CV-Bench``): ``test_2d.parquet`` and
``test_3d.parquet`` (configs ``2D`` and ``3D``; older snapshots hold one ``test.parquet``) with
``idx``, ``type`` (2D / 3D), ``task`` (Count, Relation, Depth, Distance), ``image`` (a Hugging
Face image), ``question``, ``choices`` (a list), ``answer`` (``"(A)"``), ``prompt`` (the
question with its ``(A) ...`` choices, as the authors ask it) and ``source`` (ADE20K, COCO,
Omni3D). ``path`` is the dataset folder or one parquet file; ``split=2D`` or ``3D`` keeps one half.

Official rule (cambrian-mllm/cambrian at 539ffc3, ``eval/eval/ade/ade_test.py``,
``eval/eval/coco/coco_test.py`` and ``eval/eval/omni/omni_test.py``, ``extract_mcq_answer``),
applied to :func:`~spatial_ssrl.eval.answers.answer_text`: lower-case the reply; after each of
"answer is", "answer is:", "answer:" in turn, keep only what follows its last occurrence; strip
spaces, then trailing dots (for Omni3D also ``:`` and ``,``), a leading ``(`` and a trailing
``)``; keep the first character when more is left. Right when that character is the answer's
letter (Omni3D also accepts the answer's option text itself). A reply that reads as no option
letter is a parse failure. Overall (the dataset card's formula, also lmms-eval's ``cv_bench``):
accuracy per source, 2D = the mean of ADE20K and COCO, 3D = Omni3D, ``accuracy`` = the mean of
2D and 3D (a half or source not loaded is left out of its mean). ``per_category`` is per task;
``metrics`` has the per-source, 2D, 3D and item-mean figures.

``strict``: the final ``\\boxed{}`` read by the reward's parser (a letter or the choice text),
combined by the same formula.
"""

from __future__ import annotations

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
from ._io import cell_detail, check_options, parquet_files, read_cell, read_parquet

REQUIRED = ("idx", "type", "task", "image", "choices", "answer", "prompt", "source")
SPLITS = ("2D", "3D")
OPTIONS = ("split",)
HALVES = {"2D": ("ADE20K", "COCO"), "3D": ("Omni3D",)}


def official_letter(text: str | None, source: str) -> str:
    """What the official ``extract_mcq_answer`` keeps of a reply (lower case, at most one
    character; ``""`` for nothing)."""
    if text is None:
        return ""
    text = text.lower().strip()
    for key in ("answer is", "answer is:", "answer:"):
        if key in text:
            text = text.split(key)[-1]
    text = text.strip().rstrip(".:," if source == "Omni3D" else ".").lstrip("(").rstrip(")")
    return text[:1]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def combined(per_source: Mapping[str, list[bool]]) -> dict[str, float | None]:
    """The official overall: 2D = mean of the ADE20K and COCO accuracies, 3D = Omni3D, overall
    = mean of 2D and 3D (sources and halves not present are left out)."""
    acc = {s: pct(v) for s, v in per_source.items() if v}
    halves = {h: _mean([acc[s] for s in sources if s in acc]) for h, sources in HALVES.items()}
    return {"accuracy_2d": halves["2D"], "accuracy_3d": halves["3D"],
            "overall": _mean([v for v in halves.values() if v is not None])}


def _files(path: str, split: str | None) -> list[Path]:
    root = Path(path)
    if not root.is_dir():
        return parquet_files(root, "*.parquet", "cv-bench")
    halves = [root / f"test_{h.lower()}.parquet" for h in (SPLITS if split is None else (split,))]
    if all(f.is_file() for f in halves):
        return halves
    found = parquet_files(root, "test*.parquet", "cv-bench")
    if any(f.name.startswith("test_") for f in found):  # the split files: never also the combined one
        found = [f for f in found if f.name.startswith("test_")]
    return found


class CVBench(Benchmark):
    name = "cv-bench"
    aliases = ("CV-Bench", "CVBench", "cv_bench")  # the halves: --option split=2D / 3D
    hub_repo = "nyu-visionx/CV-Bench"
    default_path_hint = "nyu-visionx/CV-Bench folder (test_2d.parquet, test_3d.parquet) or a parquet file"

    def load(self, path: str, images: bool = True, **options: Any) -> tuple[list[EvalItem], list[Skipped]]:
        """The questions of the parquet files. ``images=False`` (scoring predictions) decodes no
        image: the items are the same, their ``images`` empty (the images are in the table)."""
        check_options(self.name, options, OPTIONS)
        split = options.get("split")
        if split is not None:
            split = str(split).upper()
            if split not in SPLITS:
                raise BenchmarkError(f"cv-bench: split must be 2D or 3D, not {options['split']!r}")
        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        seen: set[str] = set()
        for file in _files(path, split):
            for n, row in enumerate(read_parquet(file, REQUIRED, ("question",))):
                kind = str(row["type"] or "").strip().upper()
                if split is not None and kind != split:
                    continue
                item_id = f"{kind}_{row['idx']}"
                if row["idx"] is None or item_id in seen:
                    raise BenchmarkError(f"{file}: idx {row['idx']!r} is empty or repeated")
                seen.add(item_id)
                choices = [str(c) for c in (row["choices"] or [])]
                letter = str(row["answer"] or "").strip().strip("()").upper()
                if len(choices) < 2 or len(letter) != 1 or not 0 <= ord(letter) - 65 < len(choices):
                    skipped.append(Skipped(item_id, "answer_not_an_option"))
                    continue
                decoded: list[bytes] = []
                if images:
                    data, reason, detail = read_cell(row["image"], [file.parent])
                    if data is None:
                        skipped.append(Skipped(item_id, reason or "undecodable_image",
                                               cell_detail(file, n, "image", detail)))
                        continue
                    decoded = [data]
                items.append(EvalItem(
                    id=item_id, question="<image>" + str(row["prompt"] or "").replace("<image>", "").strip(),
                    images=decoded, answer=letter, options=choices, category=str(row["task"] or "unknown"),
                    meta={"type": kind, "source": str(row["source"] or "unknown")},
                ))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        per_source: dict[str, list[bool]] = {}
        strict_source: dict[str, list[bool]] = {}
        per_task: dict[str, list[bool]] = {}
        failures = 0
        strict = Tally()
        for it in items:
            response = responses.get(it.id)
            source = str(it.meta.get("source", "unknown"))
            n = len(it.options or ())
            got = official_letter(answer_text(response), source)
            if response is not None and not (len(got) == 1 and 0 <= ord(got) - 97 < n):
                failures += 1
            hit = got == it.answer.lower() or (source == "Omni3D" and got == (it.options or [""])[ord(it.answer) - 65])
            per_source.setdefault(source, []).append(hit)
            per_task.setdefault(it.category or "unknown", []).append(hit)
            boxed = strict.read(response, read_choice, it.options, n_letters=n or None)
            strict_source.setdefault(source, []).append(boxed == it.answer)
        official = combined(per_source)
        report = {
            "accuracy": official["overall"],
            "n": len(items),
            "parse_failures": failures,
            "per_category": breakdown(per_task),
            "metric": ("CV-Bench official (Cambrian extract_mcq_answer: the first character after the last "
                       "'answer is'/'answer:'); mean of 2D (ADE20K and COCO averaged) and 3D (Omni3D)"),
            "missing": strict.missing,
            "metrics": {
                "accuracy_2d": official["accuracy_2d"],
                "accuracy_3d": official["accuracy_3d"],
                "per_source": breakdown(per_source),
                "item_mean": pct([h for v in per_source.values() for h in v]),
                "strict_per_source": breakdown(strict_source),
            },
        }
        return with_strict(report, combined(strict_source)["overall"], strict)


BENCHMARK = CVBench()
