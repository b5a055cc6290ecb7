"""Training datasets built from any dataset folder through :mod:`spatial_ssrl.readers`.

- :func:`grpo_dataset`: the rows GRPOTrainer needs: a conversational ``prompt`` (image
  parts and text parts, format suffix included), ``images`` and what the reward reads:
  ``answer``, ``answer_type``, ``options``, plus ``task``, ``variant``, ``id``.
- :func:`sft_dataset`: ``messages`` + ``images`` from a cold-start folder (``ssrl coldstart``).

Both are Hugging Face ``datasets.Dataset`` objects written through an arrow cache inside
the run folder, so memory does not grow with the dataset and nothing is written elsewhere.
"""

from __future__ import annotations

import os
import random
from collections import Counter

from ..prompts import IMAGE_TOKEN, content_parts
from ..readers import (
    DatasetError,
    Record,
    image_problem,
    open_dataset,
    record_image_problem,
)


class DataError(ValueError):
    """A dataset that cannot feed the run (the message says why)."""


def select_rows(index: list[Record], tasks: list[str] | None = None,
                task_weights: dict[str, float] | None = None, max_rows: int | None = None,
                seed: int = 0) -> list[int]:
    """Positions of the training rows. ``tasks`` keeps those tasks; ``task_weights`` redraws
    the rows (seeded, with replacement) so task ``t`` makes up ``w_t / sum(w)`` of them;
    ``max_rows`` caps the count. Without weights every row is kept once, in storage order."""
    by_task: dict[str, list[int]] = {}
    for pos, rec in enumerate(index):
        by_task.setdefault(rec.task, []).append(pos)
    keep = set(tasks) if tasks else set(by_task)
    if tasks:
        unknown = sorted(set(tasks) - set(by_task))
        if unknown:
            raise DataError(f"task(s) {', '.join(unknown)} not in the data (it has: {', '.join(sorted(by_task))})")
    if task_weights:
        unknown = sorted(t for t, w in task_weights.items() if w > 0 and t not in by_task)
        if unknown:
            raise DataError(f"task_weights names {', '.join(unknown)}, which the data does not have "
                            f"(it has: {', '.join(sorted(by_task))})")
        weights = {t: float(task_weights.get(t, 0.0)) for t in by_task if t in keep}
        total = sum(weights.values())
        if total <= 0:
            raise DataError("task_weights leave no task to train on")
        n = max_rows or sum(len(by_task[t]) for t in weights)
        rng = random.Random(seed)
        counts = {t: int(n * w / total) for t, w in weights.items()}
        for t in sorted(weights, key=lambda t: -(n * weights[t] / total - counts[t]))[: n - sum(counts.values())]:
            counts[t] += 1
        out: list[int] = []
        for t in sorted(counts):
            pool = by_task[t]
            picks = rng.sample(pool, len(pool)) * (counts[t] // len(pool)) + rng.sample(pool, counts[t] % len(pool))
            out.extend(picks)
        rng.shuffle(out)
        return out
    out = [p for p, rec in enumerate(index) if rec.task in keep]
    return out[:max_rows] if max_rows else out


def _open(data: str, split: str):
    try:
        reader = open_dataset(data)
        index = reader.index(split)
    except DatasetError as exc:
        raise DataError(str(exc)) from None
    if not index:
        raise DataError(f"the {split} split of {data} is empty")
    return reader, index


def _check_reward_columns(index: list[Record], data: str, split: str) -> None:
    bad = [r for r in index if not r.answer]
    if bad:
        raise DataError(f"{len(bad)} samples in the {split} split of {data} have no answer (e.g. {bad[0].id or '?'}); "
                        "GRPO needs the answer the reward checks")
    bad = [r for r in index if not r.problem]
    if bad:
        raise DataError(f"{len(bad)} samples in the {split} split of {data} have no question (e.g. {bad[0].id or '?'})")


def features_grpo(level: bool = False):
    """The ``datasets`` features of GRPO rows (with ``level`` for online rows)."""
    from datasets import Features, Image, List, Value

    extra = {"level": Value("string")} if level else {}
    return Features({
        "prompt": List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}),
        "images": List(Image()),
        "answer": Value("string"),
        "answer_type": Value("string"),
        "options": List(Value("string")),
        "task": Value("string"),
        "variant": Value("string"),
        **extra,
        "id": Value("string"),
    })


def _features_sft():
    from datasets import Features, Image, List, Value

    return Features({
        "messages": List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}),
        "images": List(Image()),
        "task": Value("string"),
        "id": Value("string"),
    })


def _stamp(reader, split: str) -> tuple:
    """(name, size, mtime) of the split's files: part of the arrow cache's key, so a cache
    built from other files (a dataset split again, say) is never reused."""
    out = []
    for path in reader.files(split):
        st = os.stat(path)
        out.append((os.path.basename(path), st.st_size, st.st_mtime_ns))
    return tuple(out)  # a tuple: datasets would take a list for shards to spread over


def _grpo_rows(data: str, split: str, positions: list[int], stamp=None):
    reader = open_dataset(data)
    order = {}
    for i, p in enumerate(positions):
        order.setdefault(p, []).append(i)
    # read each needed row once in storage order, then emit in the requested order
    rows: dict[int, dict] = {}
    for pos, rec in zip(sorted(order), reader.records(split, positions=sorted(order))):
        if record_image_problem(rec):
            continue  # counted and named by the caller (grpo_dataset)
        n_tokens = (rec.problem or "").count(IMAGE_TOKEN)
        if n_tokens != len(rec.images):
            raise DataError(f"sample {rec.id}: its question has {n_tokens} <image> placeholder(s) but "
                            f"{len(rec.images)} image(s)")
        rows[pos] = {
            "prompt": [{"role": "user", "content": content_parts(rec.problem or "")}],
            "images": [{"bytes": b, "path": None} for b in rec.images],
            "answer": rec.answer,
            "answer_type": rec.answer_type,
            "options": rec.options,
            "task": rec.task,
            "variant": rec.variant,
            "id": rec.id,
        }
    for p in positions:
        if p in rows:
            yield rows[p]


def _from_generator(dataset_cls, gen, kwargs, features, cache_dir):
    """``Dataset.from_generator`` with our own errors raised as themselves (datasets wraps
    whatever the generator raises in DatasetGenerationError)."""
    try:
        return dataset_cls.from_generator(gen, gen_kwargs=kwargs, features=features, cache_dir=cache_dir)
    except Exception as exc:
        cause = exc
        while cause is not None:
            if isinstance(cause, (DataError, DatasetError)):
                raise DataError(str(cause)) from None
            if isinstance(cause, OSError):  # the cache's disk is full or read-only
                raise cause from None
            cause = cause.__cause__ or cause.__context__
        raise


def plan_grpo_rows(data: str, split: str = "train", tasks=None, task_weights=None, max_rows: int | None = None,
                   seed: int = 0) -> tuple[list[int], dict]:
    """Check ``data``'s ``split`` for what GRPO needs and choose its rows (no images read):
    returns (positions, stats)."""
    _reader, index = _open(data, split)
    _check_reward_columns(index, data, split)
    positions = select_rows(index, tasks, task_weights, max_rows, seed)
    if not positions:
        raise DataError(f"no rows of the {split} split of {data} are left to train on")
    counts = Counter(index[p].task for p in positions)
    return positions, {"rows": len(positions), "per_task": dict(sorted(counts.items()))}


def grpo_dataset(data: str, split: str = "train", cache_dir: str | None = None, tasks=None,
                 task_weights=None, max_rows: int | None = None, seed: int = 0, positions: list[int] | None = None):
    """The GRPO training set of ``data``'s ``split`` (rows from :func:`plan_grpo_rows` unless
    ``positions`` are given); returns (dataset, stats)."""
    from datasets import Dataset

    if positions is None:
        positions, stats = plan_grpo_rows(data, split, tasks, task_weights, max_rows, seed)
    else:
        stats = {"rows": len(positions)}
    kwargs = {"data": os.path.abspath(data), "split": split, "positions": positions,
              "stamp": _stamp(open_dataset(data), split)}
    ds = _from_generator(Dataset, _grpo_rows, kwargs, features_grpo(), cache_dir)
    _, index = _open(data, split)
    wanted = {index[p].id for p in positions}
    skipped = sorted(wanted - set(ds["id"]))
    if skipped:
        stats["skipped_undecodable_image"] = skipped
        stats["rows"] = len(ds)
        if len(ds) == 0:
            raise DataError(f"every training row of the {split} split of {data} has an undecodable image")
    if "per_task" not in stats or skipped:
        stats["per_task"] = dict(sorted(Counter(ds["task"]).items()))
    return ds, stats


def say_skipped(stats: dict, what: str) -> None:
    """One line naming the rows left out for an undecodable image, if any."""
    import sys

    skipped = stats.get("skipped_undecodable_image") or []
    if skipped:
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        print(f"skipped {len(skipped)} {what} with an undecodable image: {', '.join(skipped[:3])}{more}",
              file=sys.stderr, flush=True)


def sft_dataset(data: str, split: str = "train", cache_dir: str | None = None, max_rows: int | None = None):
    """``messages`` + ``images`` rows of a cold-start folder (format ``sft``)."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    reader, index = _open(data, split)
    if reader.format != "sft":
        raise DataError(f"{data} is a {reader.format} dataset, not cold-start data")

    def rows(files: list[str], limit: int | None, stamp=None):
        n = 0
        for path in files:
            pf = pq.ParquetFile(path, buffer_size=1 << 22)
            for batch in pf.iter_batches(batch_size=16, columns=["messages", "images", "task", "id"]):
                for row in batch.to_pylist():
                    if limit is not None and n >= limit:
                        return
                    n += 1
                    if any(image_problem((im or {}).get("bytes")) for im in row.get("images") or []):
                        continue  # counted and named below
                    yield row

    ds = _from_generator(Dataset, rows, {"files": reader.files(split), "limit": max_rows, "stamp": _stamp(reader, split)}, _features_sft(), cache_dir)
    taken = index[: max_rows or len(index)]
    kept = set(ds["id"])
    stats = {"rows": len(ds), "per_task": dict(sorted(Counter(r.task for r in taken if r.id in kept).items()))}
    skipped = sorted({r.id for r in taken} - kept)
    if skipped:
        stats["skipped_undecodable_image"] = skipped
        if len(ds) == 0:
            raise DataError(f"every example of the {split} split of {data} has an undecodable image")
    return ds, stats


def validation_records(data: str, split: str, num: int, seed: int = 0) -> list[Record]:
    """``num`` held-out records spread evenly over tasks and variants (images included)."""
    from .coldstart import pick_even

    reader, index = _open(data, split)
    positions = pick_even(index, num, seed)
    return [r for r in reader.records(split, positions=positions) if not record_image_problem(r)]
