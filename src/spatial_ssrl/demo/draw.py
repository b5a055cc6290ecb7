"""The pretext playground without the page: which inputs there are, and one draw of a task
at a difficulty level from one of them.

A draw goes the way ``ssrl generate`` makes a sample: the input is loaded by the sources'
loaders (the built-in inputs, an upload read as an image file, or the source of a row of a
dataset), the task is made at a variant of the chosen level, its random stream is
``seeding.sample_rng(seed, input id, task key, 0)``, ``tasks.generate_sample`` draws until
the answer is recoverable, and the images are encoded as a dataset stores them (PNG for
tasks checked pixel for pixel, JPEG for the others). The files are written under the app's
temporary folder; the sample's ``meta`` comes along, so ``ssrl validate``'s code can
re-derive the answer from it.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

from ..checks import is_near_uniform
from ..engine.worker import sample_id
from ..seeding import sample_rng
from ..sources import (
    LoadOptions,
    SourceRef,
    SourceSkip,
    default_refs,
    load_item,
    load_source_item,
)
from ..tasks import available_tasks, get_task_class, make_task
from ..tasks.base import generate_sample
from ..tasks.levels import level_by_name, paper_level, task_levels
from ..writers.encoded import EncodedSample, encode_sample, image_encoding
from .files import (
    MAX_UPLOAD_PIXELS,
    DemoFiles,
    UploadError,
    check_image_file,
    upload_name,
)

MAX_ATTEMPTS = 12
"""Draws of a task's random choices before a draw gives up (``ssrl generate``'s default)."""
STILL_KINDS = frozenset({"image", "rgbd", "procedural"})
DEPTH_KINDS = frozenset({"rgbd", "procedural"})
LOAD = LoadOptions(max_pixels=MAX_UPLOAD_PIXELS)
"""How inputs are read: ``ssrl generate``'s defaults (shorter side at least 112 px, images
over 4.2 MP downscaled), with the demo's pixel bound."""


class DrawError(ValueError):
    """A draw that cannot be made; the message says why, in one line, for the page."""


@dataclass
class Draw:
    sample: EncodedSample
    image_paths: list[str]
    seed: int
    level: str
    input_label: str
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict:
        """The sample as a canonical dataset row holds it (without the image bytes)."""
        s = self.sample
        return {"id": s.id, "task": s.task, "variant": s.variant, "level": self.level, "seed": self.seed,
                "answer": s.answer, "answer_type": s.answer_type, "options": s.options, "source": s.source,
                "depth_source": s.depth_source, "image_names": list(s.image_names), "meta": s.meta}


def task_names() -> list[str]:
    return list(available_tasks())


def level_names(task: str) -> list[str]:
    return [lv.name for lv in task_levels(task)]


def default_level(task: str) -> str:
    return paper_level(task)


def input_kinds(task: str) -> frozenset[str]:
    """The kinds of input ``task`` takes (as the engine deals them): the kinds it names,
    else the still inputs, only those with depth for a task that needs depth."""
    cls = get_task_class(task)
    kinds = getattr(cls, "source_kinds", None)
    if kinds:
        return frozenset(kinds)
    return DEPTH_KINDS if getattr(cls, "requires_depth", False) else STILL_KINDS


def _kind_text(kinds: frozenset[str]) -> str:
    names = {"image": "a photo", "rgbd": "an RGB-D pair", "procedural": "a procedural scene", "video": "a video"}
    return " or ".join(names.get(k, k) for k in sorted(kinds))


class Inputs:
    """What the playground draws from: the built-in inputs, uploads and, with ``--data``,
    the rows of a dataset."""

    def __init__(self, files: DemoFiles, data: str | None = None):
        self.files = files
        self.builtin: dict[str, SourceRef] = {}
        for ref in default_refs():
            self.builtin[self._label(ref)] = ref
        self.reader = None
        self.rows = 0
        if data is not None:
            from ..readers import open_dataset

            self.reader = open_dataset(data)  # DatasetError: the caller says it in a line
            self.rows = len(self.reader.index())

    @staticmethod
    def _label(ref: SourceRef) -> str:
        if ref.kind == "procedural":
            return f"procedural scene {ref.path.split(':', 1)[1]} (RGB-D)"
        name = os.path.basename(ref.path)
        return f"{name} (RGB-D, Middlebury)" if ref.kind == "rgbd" else f"{name} (photo)"

    def builtin_for(self, task: str) -> list[str]:
        """Labels of the built-in inputs ``task`` takes, in catalogue order."""
        kinds = input_kinds(task)
        return [label for label, ref in self.builtin.items() if ref.kind in kinds]

    # -- loading one input ---------------------------------------------------------------
    def load_builtin(self, label: str, task: str):
        ref = self.builtin.get(label)
        if ref is None:
            raise DrawError(f"no built-in input {label!r}")
        return self._load_ref(ref, task), self._label(ref), []

    def load_upload(self, path: str | None, task: str):
        if not path:
            raise DrawError("no image uploaded: choose a file first")
        name = upload_name(path)
        try:
            check_image_file(path, name)
        except UploadError as exc:
            raise DrawError(str(exc)) from None
        ref = SourceRef(id=f"upload/{name}", path=path)
        return self._load_ref(ref, task), f"upload {name}", []

    def load_row(self, row: float | None, task: str):
        if self.reader is None:
            raise DrawError("no dataset: start the demo with --data FOLDER to draw from its rows")
        if row is None or int(row) != row or not 0 <= int(row) < self.rows:
            raise DrawError(f"row must be a whole number from 0 to {self.rows - 1}")
        from ..validate.common import NotCheckable, SourceCache, parse_meta

        i = int(row)
        rec = next(iter(self.reader.records(positions=[i])))
        meta = parse_meta(rec)
        label = f"row {i} ({rec.id}, {rec.task}/{rec.variant})"
        kinds = input_kinds(task)
        has_depth = bool(rec.source and rec.source.startswith("procedural:")) or bool(
            rec.depth_source or (meta or {}).get("depth_source"))
        need_depth = not (kinds & {"image"})
        if need_depth and not has_depth:
            raise DrawError(f"{task} needs {_kind_text(kinds)}; {label} has no depth recorded")
        roots = (self.reader.manifest or {}).get("source_roots") or {}
        cache = SourceCache(LOAD, roots=roots, dataset_dir=self.reader.dir)
        try:
            item = cache.item(rec, meta, need_depth)
            return item, label, [f"drawn from the source of {label}: {rec.source}"]
        except NotCheckable as exc:
            if need_depth or not rec.images or not rec.images[0]:
                raise DrawError(f"{label}: its source cannot be read here ({exc})") from None
            note = f"{label}: its source cannot be read here ({exc}); drawn from the row's first image instead"
        path = os.path.join(self.files.new_draw_folder(), "row-image")
        with open(path, "wb") as fh:
            fh.write(bytes(rec.images[0]))
        ref = SourceRef(id=f"row/{rec.id}", path=path)
        return self._load_ref(ref, task), label, [note]

    @staticmethod
    def _load_ref(ref: SourceRef, task: str):
        kinds = input_kinds(task)
        if ref.kind not in kinds:
            what = {"image": "a photo without depth", "rgbd": "an RGB-D pair",
                    "procedural": "a procedural scene", "video": "a video"}.get(ref.kind, ref.kind)
            raise DrawError(f"{task} needs {_kind_text(kinds)}; this input is {what} "
                            "(the built-in list shows the inputs this task takes)")
        rgb_only = ref.kind == "rgbd" and not getattr(get_task_class(task), "requires_depth", False)
        try:
            return load_item(ref, LOAD) if rgb_only else load_source_item(ref, LOAD)
        except SourceSkip as exc:
            detail = f" ({exc.detail})" if exc.detail else ""
            raise DrawError(f"this input cannot be used: {exc.reason.replace('_', ' ')}{detail}") from None


def draw(item, input_label: str, task: str, level: str, seed: int, files: DemoFiles,
         notes: list[str] | None = None) -> Draw:
    """One sample of ``task`` at ``level`` from ``item`` with ``seed``, its images written
    under ``files``; :class:`DrawError` when none can be made."""
    try:
        lv = level_by_name(task, level)
    except KeyError as exc:
        raise DrawError(str(exc.args[0])) from None
    names = [v for v, _ in lv.variants]
    variant = random.Random(f"ssrl-demo:{seed}:{task}:{level}").choices(names, weights=[w for _, w in lv.variants])[0]
    t = make_task(task, variant)
    if is_near_uniform(item.rgb, t.thresholds):
        raise DrawError("this input is nearly uniform: no content to build a question from")
    rng = sample_rng(seed, item.id, t.key, 0)
    sample, rejections = generate_sample(t, item, rng, sample_id(seed, item.id, t.key, 0), MAX_ATTEMPTS)
    if sample is None:
        why = ", ".join(f"{k} {v}" for k, v in rejections.most_common())
        raise DrawError(f"no {t.key} sample from this input in {MAX_ATTEMPTS} tries (rejected: {why}); "
                        "try another draw, level or input")
    encoded = encode_sample(sample, encoding=image_encoding("auto", t.lossless_output))
    folder = files.new_draw_folder()
    paths = []
    for name, data in zip(encoded.image_names, encoded.images):
        path = os.path.join(folder, name)
        with open(path, "wb") as fh:
            fh.write(bytes(data))
        paths.append(path)
    return Draw(sample=encoded, image_paths=paths, seed=int(seed), level=level, input_label=input_label,
                notes=list(notes or []))
