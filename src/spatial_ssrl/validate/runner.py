"""Validate every (or a seeded sample of) record of a dataset folder."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from ..checks import AmbiguityThresholds
from ..readers import open_dataset
from ..sources import LoadOptions
from . import camera_motion as camera_motion_validator
from . import correspondence as correspondence_validator
from . import counting as counting_validator
from . import crop, depth, flip, position, shuffle
from . import distance as distance_validator
from . import rotation as rotation_validator
from . import temporal as temporal_validator
from .common import Context, Fail, NotCheckable, SourceCache, parse_meta

VALIDATORS: dict[str, Callable[[Context], str]] = {
    "shuffle": shuffle.validate,
    "flip": flip.validate,
    "crop": crop.validate,
    "depth": depth.validate,
    "position": position.validate,
    "rotation": rotation_validator.validate,
    "temporal": temporal_validator.validate,
    "distance": distance_validator.validate,
    "camera_motion": camera_motion_validator.validate,
    "correspondence": correspondence_validator.validate,
    "counting": counting_validator.validate,
}


ANSWER_TYPES = {"shuffle": "permutation", "flip": "flip", "crop": "choice", "depth": "permutation",
                "position": "choice"}
ANSWER_TYPES["rotation"] = "choice"
ANSWER_TYPES["temporal"] = "permutation"
ANSWER_TYPES["distance"] = "numeric"
ANSWER_TYPES["camera_motion"] = "choice"
ANSWER_TYPES["correspondence"] = "choice"
ANSWER_TYPES["counting"] = "choice"


def _options(manifest: dict | None) -> tuple[LoadOptions, AmbiguityThresholds, int]:
    opts = (manifest or {}).get("options") or {}
    load = opts.get("load") or {}
    lo = LoadOptions(min_side=0, max_pixels=int(load.get("max_pixels", LoadOptions.max_pixels)),
                     resize_max_pixels=load.get("resize_max_pixels", LoadOptions.resize_max_pixels) or None)
    thr = opts.get("thresholds") or {}
    known = AmbiguityThresholds.__dataclass_fields__
    return lo, AmbiguityThresholds(**{k: float(v) for k, v in thr.items() if k in known}), \
        int(opts.get("jpeg_quality") or 95)


def validate_record(rec, sources: SourceCache, thresholds: AmbiguityThresholds, fmt: str,
                    jpeg_quality: int = 95) -> dict[str, Any]:
    meta = parse_meta(rec)
    params = meta.get("params") if meta else None
    ctx = Context(record=rec, params=params if isinstance(params, dict) else None, meta=meta,
                  sources=sources, thresholds=thresholds, format=fmt, jpeg_quality=jpeg_quality)
    out: dict[str, Any] = {"id": rec.id, "task": rec.task, "variant": rec.variant}
    t0 = time.perf_counter()
    fn = VALIDATORS.get(rec.task)
    try:
        if fn is None:
            raise NotCheckable(f"no validator for task {rec.task!r}")
        expected_type = ANSWER_TYPES.get(rec.task)
        if rec.answer_type is not None and expected_type and rec.answer_type != expected_type:
            raise Fail(f"answer_type {rec.answer_type!r}, expected {expected_type!r}")
        derived = fn(ctx)
        out["derived"] = derived
        if rec.answer is None:
            raise Fail(f"no stored answer (re-derived {derived!r})")
        if str(rec.answer).strip() != derived:
            raise Fail(f"stored answer {rec.answer!r}, re-derived {derived!r}")
        out["status"] = "passed"
    except Fail as exc:
        out["status"], out["reason"] = "failed", str(exc)
    except NotCheckable as exc:
        out["status"], out["reason"] = "not_checkable", str(exc)
    except Exception as exc:  # noqa: BLE001 - a validator crash is reported, not raised
        out["status"], out["reason"] = "failed", f"validator error: {type(exc).__name__}: {exc}"
    if ctx.notes:
        out["notes"] = ctx.notes
    out["seconds"] = round(time.perf_counter() - t0, 4)
    return out


def validate_dataset(path: str, num: int | None = None, seed: int = 0,
                     progress: Callable[[int], Any] | None = None,
                     on_total: Callable[[int], Any] | None = None,
                     source_roots: dict[str, str] | None = None) -> dict[str, Any]:
    """The validation report of the dataset folder ``path`` (see :mod:`.cli`); ``source_roots``
    (label -> folder) overrides the manifest's where inputs have moved."""
    reader = open_dataset(path)
    positions = None
    total = len(reader.index())
    if num is not None and num < total:
        positions = sorted(random.Random(seed).sample(range(total), num))
    n = total if positions is None else len(positions)
    if on_total:
        on_total(n)
    load, thresholds, jpeg_quality = _options(reader.manifest)
    roots = {**((reader.manifest or {}).get("source_roots") or {}), **(source_roots or {})}
    sources = SourceCache(load, roots=roots, dataset_dir=reader.dir)
    results = []
    t0 = time.perf_counter()
    for rec in reader.records(positions=positions):
        results.append(validate_record(rec, sources, thresholds, reader.format, jpeg_quality))
        if progress:
            progress(1)
    elapsed = time.perf_counter() - t0
    tasks: dict[str, dict[str, Any]] = {}
    for r in results:
        t = tasks.setdefault(r["task"], {"checked": 0, "passed": 0, "failed": 0, "not_checkable": 0,
                                         "not_checkable_reasons": {}, "seconds": 0.0})
        t["seconds"] += r["seconds"]
        if r["status"] == "not_checkable":
            t["not_checkable"] += 1
            t["not_checkable_reasons"][r["reason"]] = t["not_checkable_reasons"].get(r["reason"], 0) + 1
        else:
            t["checked"] += 1
            t[r["status"]] += 1
    for t in tasks.values():
        t["ms_per_sample"] = round(1000 * t.pop("seconds") / max(1, t["checked"] + t["not_checkable"]), 1)
    notes = []
    if reader.format != "canonical":
        notes.append(f"format {reader.format} stores no meta: depth and position samples cannot be re-derived "
                     "(marker positions unknown); shuffle, flip, crop, rotation and counting are re-derived from images + source "
                     "with the manifest's (or default) thresholds")
    if reader.manifest is None:
        notes.append("no manifest.json: default load options and thresholds assumed")
    return {
        "dataset": path,
        "format": reader.format,
        "records": total,
        "validated": len(results),
        "sampled": positions is not None,
        "seed": seed if positions is not None else None,
        "seconds": round(elapsed, 3),
        "tasks": dict(sorted(tasks.items())),
        "failures": [{k: r[k] for k in ("id", "task", "variant", "reason")} for r in results if r["status"] == "failed"],
        "not_checkable": [{k: r[k] for k in ("id", "task", "reason")} for r in results if r["status"] == "not_checkable"],
        "notes": notes,
        "ok": not any(r["status"] == "failed" for r in results),
        "samples": results,
    }
