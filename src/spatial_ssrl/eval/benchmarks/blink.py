"""BLINK (Fu et al., ECCV 2024): perception questions a human answers "within a blink"; here
its spatial subtasks: Spatial_Relation, Relative_Depth, Multi-view_Reasoning and
Object_Localization (``tasks=all`` loads all 14).

Files as distributed (Hugging Face ``BLINK-Benchmark/BLINK``, one config per subtask): a folder
per subtask holding ``val-00000-of-00001.parquet`` and ``test-...parquet`` (the Hub's converted
copy: ``<Task>/val/0000.parquet``), with ``idx`` (``val_<Task>_<n>``), ``question``, ``prompt``
(the question with its ``(A) ...`` choices, as the authors ask it), ``choices`` (a list),
``answer`` (``"(A)"``; ``"hidden"`` in the test split), ``image_1``..``image_4`` (Hugging Face
images; unused ones empty). ``path`` is the dataset root, a subtask folder (that subtask) or one parquet
file (read whole); ``split=val`` by default (the test split has no answers).

Official rule (zeyofu/BLINK_Benchmark at 2d6a779, ``eval/test_benchmark.py`` ``analyze_answer``
and ``eval/evaluate.py``), applied to :func:`~spatial_ssrl.eval.answers.answer_text`: a reply
that is exactly one letter A-E, or exactly ``(A)``..``(E)``, is that choice; otherwise the
whitespace-separated tokens of the reply, and those of its last paragraph (after the last blank
line), are matched against the choice tokens ``(A)``, ``(B)``...: when exactly one choice token
is in the last paragraph it is the answer, else when exactly one is in the whole reply it is.
Anything else the authors hand to GPT-3.5-turbo (``eval/multiple_choice.py``) to map onto a
choice. We call no model: in its place the reply's leading option letter is read as lmms-eval's
``blink`` task reads every reply (``lmms_eval/tasks/blink/utils.py`` at 75571cf: an optional
``(``, one letter, then ``)``, ``.`` or a space), kept only when it names one of the choices;
``metrics["judge_stand_in"]`` counts the replies read that way, and a reply neither rule reads
is a parse failure. A choice is right when it equals the answer. ``accuracy`` is the mean over
the loaded subtasks of each subtask's accuracy (``evaluate.py``: "averaged over all subtasks");
``metrics["item_mean"]`` is the plain item mean.

``strict``: the final ``\\boxed{}`` read by the reward's parser (a letter or the choice text).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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

SPATIAL_TASKS = ("Spatial_Relation", "Relative_Depth", "Multi-view_Reasoning", "Object_Localization")
ALL_TASKS = ("Art_Style", "Counting", "Forensic_Detection", "Functional_Correspondence", "IQ_Test", "Jigsaw",
             "Multi-view_Reasoning", "Object_Localization", "Relative_Depth", "Relative_Reflectance",
             "Semantic_Correspondence", "Spatial_Relation", "Visual_Correspondence", "Visual_Similarity")
SPLITS = ("val", "test")
REQUIRED = ("idx", "prompt", "choices", "answer")
IMAGE_COLUMNS = ("image_1", "image_2", "image_3", "image_4")
OPTIONS = ("tasks", "split")
_LEADING_LETTER = re.compile(r"[(\s]*([A-Za-z])[).\s]*")


def task_of(idx: str, split: str) -> str:
    """The subtask in an ``idx`` such as ``val_Multi-view_Reasoning_12`` (as ``evaluate.py``
    splits it: after the split name, without the trailing number)."""
    rest = idx.split(split, 1)[-1].lstrip("_")
    return "_".join(rest.split("_")[:-1])


def official_choice(text: str | None, n_choices: int) -> tuple[str | None, str | None]:
    """``(letter, how)`` by the official rule (``how``: "rule" or "judge_stand_in"), or
    ``(None, reason)`` when neither the rule nor the stand-in reads a choice."""
    if text is None:
        return None, "no_response"
    text = text.strip()
    if text in ("A", "B", "C", "D", "E"):
        return text, "rule"
    if text in ("(A)", "(B)", "(C)", "(D)", "(E)"):
        return text[1], "rule"
    tokens = [f"({chr(65 + i)})" for i in range(n_choices)]
    in_all = [t for t in tokens if t in set(text.split())]
    in_last = [t for t in tokens if t in set(text.split("\n\n")[-1].split())]
    if len(in_last) == 1:
        return in_last[0][1], "rule"
    if len(in_all) == 1:
        return in_all[0][1], "rule"
    m = _LEADING_LETTER.match(text)
    letter = m.group(1).upper() if m else ""
    if letter and ord(letter) - 65 < n_choices:
        return letter, "judge_stand_in"
    return None, "needs_llm_judge"


def _wanted(tasks: str | Sequence[str] | None) -> tuple[str, ...]:
    if tasks is None:
        return SPATIAL_TASKS
    names = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t.strip()]
    if names == ["all"]:
        return ALL_TASKS
    unknown = [t for t in names if t not in ALL_TASKS]
    if unknown or not names:
        raise BenchmarkError(f"blink: unknown task(s) {', '.join(unknown) or '(none)'}; "
                             f"known: all, {', '.join(ALL_TASKS)}")
    return tuple(names)


def _files(path: str, split: str, wanted: Sequence[str]) -> list[Path]:
    root = Path(path)
    if root.is_dir():
        task_dirs = [root / t for t in wanted if (root / t).is_dir()]
        if task_dirs:  # the dataset root: only the folders of the wanted subtasks
            found = [f for d in task_dirs for f in parquet_files(d, "*.parquet", "blink")]
        else:
            found = parquet_files(root, "*.parquet", "blink")
        found = [f for f in found if f.name.startswith(f"{split}-") or f.parent.name == split]
        if not found:
            raise BenchmarkError(f"{root}: no {split} parquet file of BLINK here "
                                 f"(expected <Task>/{split}-00000-of-00001.parquet)")
        return sorted(found)
    return parquet_files(root, "*.parquet", "blink")


class Blink(Benchmark):
    name = "blink"
    aliases = ("BLINK", "blink_spatial")
    hub_repo = "BLINK-Benchmark/BLINK"
    hub_config = SPATIAL_TASKS  # one Hub config per subtask
    default_path_hint = "BLINK-Benchmark/BLINK folder (<Task>/val-*.parquet), a subtask folder or a parquet file"

    def load(self, path: str, images: bool = True, **options: Any) -> tuple[list[EvalItem], list[Skipped]]:
        """The questions of the wanted subtasks. ``images=False`` (scoring predictions) decodes no
        image: the items are the same, their ``images`` empty (the images are in the table)."""
        check_options(self.name, options, OPTIONS)
        split = options.get("split", "val")
        if split not in SPLITS:
            raise BenchmarkError(f"blink: split must be one of {', '.join(SPLITS)}, not {split!r}")
        # a file is read whole and a subtask folder gives its subtask, unless tasks= says otherwise;
        # the dataset root gives the spatial subtasks
        own = "all" if Path(path).is_file() else Path(path).name if Path(path).name in ALL_TASKS else None
        tasks = options.get("tasks", own)
        wanted = _wanted(tasks)
        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        seen: set[str] = set()
        for file in _files(path, split, wanted):
            for n, row in enumerate(read_parquet(file, REQUIRED, IMAGE_COLUMNS + ("question",))):
                item_id = str(row["idx"] or "").strip()
                if not item_id or item_id in seen:
                    raise BenchmarkError(f"{file}: idx {item_id!r} is empty or repeated")
                seen.add(item_id)
                task = task_of(item_id, split)
                if task not in wanted:
                    continue
                choices = [str(c) for c in (row["choices"] or [])]
                answer = str(row["answer"] or "").strip()
                if answer == "hidden":
                    raise BenchmarkError(f"{file}: the {split} split has no answers (they are hidden); use split=val")
                letter = answer.strip("()").upper()
                if len(choices) < 2 or len(letter) != 1 or not 0 <= ord(letter) - 65 < len(choices):
                    skipped.append(Skipped(item_id, "answer_not_an_option"))
                    continue
                columns = [col for col in IMAGE_COLUMNS if not (
                    row.get(col) is None
                    or (isinstance(row[col], dict) and not row[col].get("bytes") and not row[col].get("path")))]
                decoded: list[bytes] = []
                reason = None
                for col in columns if images else ():
                    data, reason, detail = read_cell(row[col], [file.parent, file.parent.parent])
                    if data is None:
                        skipped.append(Skipped(item_id, reason or "undecodable_image",
                                               cell_detail(file, n, col, detail)))
                        break
                    decoded.append(data)
                if images and reason is not None:
                    continue
                if images and not columns:
                    skipped.append(Skipped(item_id, "missing_image", f"{file}: row {n}, no image in "
                                                                     f"{', '.join(IMAGE_COLUMNS)}"))
                    continue
                prompt = str(row["prompt"] or "").replace("<image>", "").strip()
                items.append(EvalItem(
                    id=item_id, question="<image>" * len(columns) + prompt, images=decoded, answer=letter,
                    options=choices, category=task, meta={"question": row.get("question")},
                ))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        per_task: dict[str, list[bool]] = {}
        strict_per_task: dict[str, list[bool]] = {}
        unread: dict[str, int] = {}
        stand_in = 0
        strict = Tally()
        for it in items:
            response = responses.get(it.id)
            n = len(it.options or ())
            letter, how = official_choice(answer_text(response), n)
            if letter is None and response is not None:
                unread[how or "unparseable"] = unread.get(how or "unparseable", 0) + 1
            stand_in += how == "judge_stand_in"
            task = it.category or "unknown"
            per_task.setdefault(task, []).append(letter == it.answer)
            boxed = strict.read(response, read_choice, it.options, n_letters=n or None)
            strict_per_task.setdefault(task, []).append(boxed == it.answer)
        task_acc = [pct(v) for v in per_task.values()]
        strict_acc = [pct(v) for v in strict_per_task.values()]
        report = {
            "accuracy": sum(task_acc) / len(task_acc) if task_acc else None,
            "n": len(items),
            "parse_failures": sum(unread.values()),
            "per_category": breakdown(per_task),
            "metric": ("BLINK official: the choice read by analyze_answer (exact letter, or the one (X) token "
                       "of the last paragraph / the reply; the GPT-3.5 matching step replaced by the leading "
                       "letter), equal to the answer; mean of the subtask accuracies"),
            "missing": strict.missing,
            "metrics": {
                "item_mean": pct([h for v in per_task.values() for h in v]),
                "judge_stand_in": stand_in,
                "official_failure_reasons": unread,
                "strict_per_category": breakdown(strict_per_task),
            },
        }
        return with_strict(report, sum(strict_acc) / len(strict_acc) if strict_acc else None, strict)


BENCHMARK = Blink()
