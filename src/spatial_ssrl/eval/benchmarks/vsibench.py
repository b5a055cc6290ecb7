"""VSI-Bench (Yang et al., "Thinking in Space", CVPR 2025; Hugging Face ``nyu-visionx/VSI-Bench``,
scoring of github.com/vision-x-nyu/thinking-in-space ``lmms_eval/tasks/vsibench/utils.py``).

Files as distributed: the question table ``test-00000-of-00001.parquet`` (columns ``id, dataset,
scene_name, question_type, question, ground_truth, options``; newer releases add ``pruned``, the
VSI-Bench-Debiased mark, and ``test.jsonl`` with the same fields) and the videos, unzipped from
``arkitscenes.zip``, ``scannet.zip``, ``scannetpp.zip``, at ``<dataset>/<scene_name>.mp4``.
``path`` is a parquet / jsonl file, or the folder holding ``test-*.parquet`` (else ``test.jsonl``);
videos are looked up under option ``video_root`` (default: that folder). A missing video skips its
questions (``missing_video``), an unreadable one ``undecodable_video`` (the video's path in the
``detail``); scoring predictions (``images=False``) opens no video.

Frames: option ``frames`` (default 32, at most 128) sampled uniformly over the whole video, first
and last included (:mod:`spatial_ssrl.eval.video`), become the item's images (JPEG bytes), one
``<image>`` each, first in the question; option ``max_side`` downscales them. Decoding needs
PyAV (``pip install 'spatial-ssrl[video]'``). The paper's script used 128 frames.

Score, official rule (``accuracy``; ``lmms_eval/tasks/vsibench/utils.py`` of
vision-x-nyu/thinking-in-space, commit 51e089c3ae69): the answer (:func:`~spatial_ssrl.eval.answers.answer_text`:
the last box's content, else the text after the think block, stripped) is cut to its first
space-separated word with trailing dots removed (``fuzzy_matching``). Multiple-choice types: that
word equal to the answer letter, case-insensitively ("A. right" and "b" read, "(B)" and "The" do
not: a first word that is no option letter is a parse failure). Numeric types (counting, absolute
distance, object and room size): that word as a float ("4 meters" reads 4, "about 4" nothing),
scored by mean relative accuracy, the mean over theta in 0.50, 0.55, ..., 0.95 of
[|p - g| / g <= 1 - theta] with the official plain ``<=`` (truth 5, prediction 4: 0.6);
unparseable or unanswered = 0. Official overall: the three relative-direction levels averaged into
one task, then the unweighted mean over the tasks. ``strict``: the boxed letter or the boxed
number read by the reward's parser (hedges refused), MRA with a 1e-9 tolerance at the boundaries
(truth 5, prediction 4: 0.7), aggregated the same way. ``metrics`` also has the item mean (what
the Spatial-SSRL paper's ``check_accuracy.py`` printed) and, when the table has ``pruned``, the
same figures on VSI-Bench-Debiased.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

from ..answers import answer_text, read_choice, read_number
from ..base import (
    Benchmark,
    BenchmarkError,
    EvalItem,
    Skipped,
    Tally,
    breakdown,
    with_strict,
)
from ._io import check_options, check_row

NUMERIC_TYPES = frozenset({"object_abs_distance", "object_counting", "object_size_estimation", "room_size_estimation"})
CHOICE_TYPES = frozenset({"object_rel_direction_easy", "object_rel_direction_medium", "object_rel_direction_hard",
                          "object_rel_distance", "route_planning", "obj_appearance_order"})
REL_DIRECTION = "object_rel_direction"
COLUMNS = ("id", "dataset", "scene_name", "question_type", "question", "ground_truth")
OPTIONS = ("frames", "video_root", "max_side")
DEFAULT_FRAMES = 32
MAX_FRAMES = 128
LETTERS = "ABCDEFGH"
MRA_THRESHOLDS = tuple(round(0.50 + 0.05 * k, 2) for k in range(10))  # 0.50, 0.55, ..., 0.95
_OPTION_LINE = re.compile(r"^\s*\(?([A-H])\s*[.):]\s*(.*)$", re.DOTALL)


def mean_relative_accuracy(pred: float, truth: float) -> float:
    """The mean over theta in 0.50..0.95 (step 0.05) of [|pred - truth| / |truth| <= 1 - theta]
    (inclusive; a tolerance of 1e-9 keeps the boundaries inclusive despite float rounding). A
    zero ground truth, which the official code cannot score, counts only an exact zero."""
    if not (math.isfinite(pred) and math.isfinite(truth)):
        return 0.0
    if truth == 0:
        rel = 0.0 if pred == 0 else math.inf
    else:
        rel = abs(pred - truth) / abs(truth)
    return sum(rel <= (1.0 - t) + 1e-9 for t in MRA_THRESHOLDS) / len(MRA_THRESHOLDS)


def official_mra(pred: float, truth: float) -> float:
    """The official mean relative accuracy: ``np.linspace(.5, .95, 10)`` thresholds and a plain
    ``<=`` (no tolerance), so float rounding decides the boundaries as it does there (truth 5,
    prediction 4: 0.6, where :func:`mean_relative_accuracy` gives 0.7). A zero ground truth,
    which the official code cannot score, counts only an exact zero."""
    import numpy as np

    if not (math.isfinite(pred) and math.isfinite(truth)):
        return 0.0
    if truth == 0:
        return 1.0 if pred == 0 else 0.0
    rel = abs(pred - truth) / truth
    return float((rel <= 1 - np.linspace(0.5, 0.95, 10)).mean())


def first_word(response: str | None) -> str | None:
    """The official ``fuzzy_matching``: the answer's first space-separated word, trailing dots
    removed, stripped; None for a missing response."""
    text = answer_text(response)
    return None if text is None else text.split(" ")[0].rstrip(".").strip()


def task_of(question_type: str) -> str:
    """The task a question type is averaged in: the three relative-direction levels are one."""
    return REL_DIRECTION if question_type.startswith(REL_DIRECTION + "_") else question_type


def _question_files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        shards = sorted(glob.glob(os.path.join(path, "test-*.parquet")))
        if shards:
            return shards
        jsonl = os.path.join(path, "test.jsonl")
        if os.path.isfile(jsonl):
            return [jsonl]
        raise BenchmarkError(f"{path}: no test-*.parquet or test.jsonl (the VSI-Bench question table)")
    raise BenchmarkError(f"{path}: not found")


def _read_rows(file: str) -> list[dict[str, Any]]:
    if file.endswith(".jsonl"):
        rows = []
        try:
            with open(file, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise BenchmarkError(f"{file}: line {n} is not JSON ({exc})") from None
        except OSError as exc:
            raise BenchmarkError(f"{file}: cannot read ({exc.strerror or exc})") from None
        for n, row in enumerate(rows):
            check_row(file, f"row {n}", row, COLUMNS)
        return rows
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(file)
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"{file}: cannot read as parquet ({exc})") from None
    for key in COLUMNS:
        if key not in table.column_names:
            raise BenchmarkError(f"{file}: no column '{key}' (it has: {', '.join(table.column_names)})")
    return table.to_pylist()


def _options(raw: Any) -> list[str]:
    """Option texts without their letters (the table stores ``"A. front-left"``)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    out = []
    for j, opt in enumerate(raw):
        text = str(opt)
        m = _OPTION_LINE.match(text)
        out.append(m.group(2).strip() if m and m.group(1) == LETTERS[j] else text.strip())
    return out


class VSIBench(Benchmark):
    name = "vsi-bench"
    aliases = ("vsibench", "VSI-Bench", "VSI_Bench")
    hub_repo = "nyu-visionx/VSI-Bench"
    modality = "video"
    default_path_hint = "the VSI-Bench folder: test-*.parquet and <dataset>/<scene_name>.mp4 videos"

    def load(self, path: str, images: bool = True, **options: Any) -> tuple[list[EvalItem], list[Skipped]]:
        """The questions of the table, their frames sampled from the videos. ``images=False``
        (scoring predictions) opens no video and needs no decoder, so no question is skipped for
        its video: ``images`` then holds the video's path (not checked), the question has
        ``frames`` placeholders (a video shorter than that gives fewer when sampled) and
        ``meta["frame_indices"]`` is None."""
        check_options("vsi-bench", options, OPTIONS)
        try:
            n_frames = int(options.get("frames") or DEFAULT_FRAMES)
        except (TypeError, ValueError):
            raise BenchmarkError(f"vsi-bench: frames must be an integer, got {options.get('frames')!r}") from None
        if not 1 <= n_frames <= MAX_FRAMES:
            raise BenchmarkError(f"vsi-bench: frames must be between 1 and {MAX_FRAMES}, got {n_frames}")
        max_side = options.get("max_side")
        try:
            max_side = int(max_side) if max_side else None
        except (TypeError, ValueError):
            raise BenchmarkError(f"vsi-bench: max_side must be an integer, got {max_side!r}") from None
        files = _question_files(path)
        video_root = str(options.get("video_root") or (path if os.path.isdir(path) else os.path.dirname(path) or "."))

        rows: list[tuple[str, dict[str, Any]]] = [(f, r) for f in files for r in _read_rows(f)]
        if images:
            from ..video import VideoError, sample_frames

        videos: dict[str, tuple[list[bytes], list[int]] | str] = {}
        items: list[EvalItem] = []
        skipped: list[Skipped] = []
        seen: set[str] = set()
        for file, row in rows:
            item_id = str(row["id"])
            if item_id in seen:
                raise BenchmarkError(f"{file}: id {item_id} occurs twice")
            seen.add(item_id)
            qtype = str(row["question_type"])
            opts = _options(row.get("options"))
            truth_raw = row["ground_truth"]
            if qtype in NUMERIC_TYPES or (qtype not in CHOICE_TYPES and not opts):
                kind = "numeric"
                try:
                    truth: Any = float(str(truth_raw).strip())
                except ValueError:
                    raise BenchmarkError(f"{file}: id {item_id}: 'ground_truth' {truth_raw!r} is not a number") from None
            else:
                kind = "choice"
                if not opts:
                    raise BenchmarkError(f"{file}: id {item_id} ({qtype}) has no 'options'")
                truth = str(truth_raw).strip().upper()
                if truth not in LETTERS[:len(opts)]:
                    raise BenchmarkError(f"{file}: id {item_id}: 'ground_truth' {truth_raw!r} is not an option letter")

            video = os.path.join(video_root, str(row["dataset"]), f"{row['scene_name']}.mp4")
            if not images:
                frames, indices = [video], None
            else:
                if video not in videos:
                    if not os.path.isfile(video):
                        videos[video] = "missing_video"
                    else:
                        try:
                            videos[video] = sample_frames(video, n_frames, max_side=max_side)
                        except VideoError:
                            videos[video] = "undecodable_video"
                got = videos[video]
                if isinstance(got, str):
                    skipped.append(Skipped(item_id, got, video))
                    continue
                frames, indices = got
            text = str(row["question"]).strip()
            if kind == "choice":
                lines = "\n".join(f"{LETTERS[j]}. {o}" for j, o in enumerate(opts))
                body = f"{text}\n{lines}\nAnswer with the option's letter."
            else:
                body = f"{text}\nAnswer with a number."
            question = "<image>" * (len(frames) if images else n_frames) + "\nThese are frames of a video.\n" + body
            pruned = row.get("pruned")
            items.append(EvalItem(
                id=item_id, question=question, images=frames, answer=truth, options=opts if kind == "choice" else None,
                category=qtype,
                meta={"kind": kind, "task": task_of(qtype), "dataset": row["dataset"], "scene_name": row["scene_name"],
                      "frame_indices": indices, "pruned": None if pruned is None else bool(pruned)},
            ))
        return items, skipped

    def score(self, items: list[EvalItem], responses: Mapping[str, str]) -> dict[str, Any]:
        tally = Tally()
        scored: list[tuple[EvalItem, float]] = []
        strict: list[tuple[EvalItem, float]] = []
        failures = missing = 0
        for it in items:
            response = responses.get(it.id)
            missing += response is None
            word = first_word(response)
            value = strict_value = 0.0
            if it.meta.get("kind") == "numeric":
                try:
                    pred = float(word) if word is not None else None
                except ValueError:
                    pred = None
                if pred is not None:
                    value = official_mra(pred, float(it.answer))
                boxed_pred = tally.read(response, read_number, fallback_reason="no_number")
                if boxed_pred is not None:
                    strict_value = mean_relative_accuracy(boxed_pred, float(it.answer))
            else:
                letters = LETTERS[:len(it.options or ())].lower()
                pred = word if word and word.lower() in letters and len(word) == 1 else None
                value = 1.0 if pred is not None and pred.lower() == str(it.answer).lower() else 0.0
                letter = tally.read(response, read_choice, it.options, n_letters=len(it.options or ()))
                if letter is not None:
                    strict_value = 1.0 if letter == it.answer else 0.0
            failures += response is not None and pred is None
            scored.append((it, value))
            strict.append((it, strict_value))

        overall, tasks, item_mean = _aggregate(scored)
        per_type: dict[str, list[float]] = {}
        kinds: dict[str, str] = {}
        for it, v in scored:
            per_type.setdefault(it.category or "all", []).append(v)
            kinds[it.category or "all"] = "MRA" if it.meta.get("kind") == "numeric" else "accuracy"
        metrics: dict[str, Any] = {"item_mean": item_mean, "tasks": tasks}
        marked = [(it, v) for it, v in scored if it.meta.get("pruned") is not None]
        if marked:
            kept = [(it, v) for it, v in marked if not it.meta["pruned"]]
            d_overall, d_tasks, d_mean = _aggregate(kept)
            metrics["debiased"] = {"accuracy": d_overall, "n": len(kept), "item_mean": d_mean, "tasks": d_tasks}
        report = {
            "accuracy": overall,
            "n": len(scored),
            "parse_failures": failures,
            "missing": missing,
            "per_category": {k: {**entry, "metric": kinds[k]} for k, entry in breakdown(per_type).items()},
            "metric": "official VSI-Bench rule (thinking-in-space lmms_eval/tasks/vsibench/utils.py): first word of "
                      "the answer; multiple choice by exact letter, numeric by mean relative accuracy (theta "
                      "0.50..0.95, plain <=); overall = unweighted mean over tasks, the three relative-direction "
                      "levels averaged into one",
            "metrics": metrics,
        }
        return with_strict(report, _aggregate(strict)[0], tally)


def _aggregate(scored: list[tuple[EvalItem, float]]) -> tuple[float | None, dict[str, float], float | None]:
    """(official overall, per-task score, item mean), in percent."""
    if not scored:
        return None, {}, None
    per_type: dict[str, list[float]] = {}
    for it, v in scored:
        per_type.setdefault(it.category or "all", []).append(v)
    type_means = {k: sum(v) / len(v) for k, v in per_type.items()}
    grouped: dict[str, list[float]] = {}
    for qtype, mean in type_means.items():
        grouped.setdefault(task_of(qtype), []).append(mean)
    tasks = {k: 100.0 * sum(v) / len(v) for k, v in sorted(grouped.items())}
    overall = sum(tasks.values()) / len(tasks)
    item_mean = 100.0 * sum(v for _, v in scored) / len(scored)
    return overall, tasks, item_mean


BENCHMARK = VSIBench()
