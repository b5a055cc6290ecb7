"""One self-contained HTML page showing samples of a written dataset.

``write_preview(dataset_dir, out_path)`` reads a dataset in any output format through
:mod:`spatial_ssrl.readers` (pyarrow / json only), picks ``num`` samples deterministically
from ``seed``, spread round-robin over the tasks (and, within a task, over its variants),
and writes one HTML file (:mod:`.page`, styled by ``style.css``): a header with the
manifest's summary, then a section per task with each sample's images (embedded as base64
data URIs), question, answer, answer type / options and parameters (the ``meta`` JSON,
canonical format only). Long text is folded into a closed ``<details>`` whose one-line
summary gives its line count, so each sample's images and question come first: a procedural
scene's description (``meta.scene``, about 100 lines) always, and the rest of ``meta`` when
it runs over ``page.FOLD_LINES`` lines (depth and position, with their per-region
statistics); short meta, the question and the answer fields are shown as they are.

Images whose longer side exceeds ``max_side`` (default 512) are downscaled for display and
embedded as JPEG (:mod:`.images`), which keeps pages of large photos small and quick to
open; smaller images, and every image when ``max_side=0``, are embedded as their stored
bytes. Captions always give the stored image's pixel size (and the size shown, when
downscaled).

Mistakes a user can make (a folder with no dataset, a parquet lacking the columns its
format needs, an unreadable file) raise :class:`PreviewError` with a readable message.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict

from ..readers import DatasetError, open_dataset
from .images import DEFAULT_MAX_SIDE
from .page import GENERATOR_META, render_page


class PreviewError(Exception):
    """A dataset folder the preview cannot read (the message says why)."""


def _select(index: list[tuple[str, str]], num: int, seed: int) -> list[int]:
    """``num`` positions, round-robin over tasks (in a seeded order) and, within a task,
    round-robin over its variants; each variant's rows in a seeded random order. ``index``
    holds each row's (task, variant)."""
    groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for pos, (task, variant) in enumerate(index):
        groups[task][variant].append(pos)
    queues: dict[str, list[int]] = {}
    for task, variants in groups.items():
        rng = random.Random(f"ssrl-preview:{seed}:{task}")
        lanes = []
        for variant in sorted(variants):
            rows = list(variants[variant])
            rng.shuffle(rows)
            lanes.append(rows)
        rng.shuffle(lanes)
        queue: list[int] = []
        depth = max(len(lane) for lane in lanes)
        for i in range(depth):
            queue.extend(lane[i] for lane in lanes if i < len(lane))
        queues[task] = queue
    order = sorted(queues)
    random.Random(f"ssrl-preview:{seed}").shuffle(order)
    picked: list[int] = []
    depth = max((len(q) for q in queues.values()), default=0)
    for i in range(depth):
        for task in order:
            if i < len(queues[task]) and len(picked) < num:
                picked.append(queues[task][i])
    return picked


def render_preview(dataset_dir: str, num: int = 50, seed: int = 0,
                   max_side: int = DEFAULT_MAX_SIDE) -> tuple[str, int]:
    """The preview page's HTML and the number of samples it shows. Images whose longer side
    exceeds ``max_side`` are embedded as downscaled JPEG copies (``0``: stored bytes always)."""
    if num < 1:
        raise PreviewError(f"num must be at least 1 (got {num})")
    if max_side < 0:
        raise PreviewError(f"max_side must be 0 (originals) or a positive number of pixels (got {max_side})")
    if not os.path.isdir(dataset_dir):
        raise PreviewError(f"{dataset_dir} is not a folder")
    try:
        reader = open_dataset(dataset_dir)
        index = [(r.task, r.variant) for r in reader.records(with_images=False)]
        picked = sorted(_select(index, num, seed))
        samples = list(zip(picked, reader.records(positions=picked)))
    except DatasetError as exc:
        raise PreviewError(str(exc)) from None
    samples.sort(key=lambda ps: (ps[1].task, ps[1].variant, ps[0]))
    return render_page(reader, index, [s for _, s in samples], seed, max_side), len(samples)


def write_preview(dataset_dir: str, out_path: str, num: int = 50, seed: int = 0,
                  max_side: int = DEFAULT_MAX_SIDE, overwrite: bool = False) -> int:
    """Write a self-contained HTML page showing ``num`` samples of the dataset in
    ``dataset_dir`` to ``out_path``; return the number of samples shown. Images whose longer
    side exceeds ``max_side`` pixels are shown downscaled (JPEG); ``max_side=0`` embeds
    every image's stored bytes. An existing ``out_path`` is replaced only when an earlier
    preview wrote it (or with ``overwrite``); a dataset's own files never (see
    :mod:`spatial_ssrl.outfiles`)."""
    from ..outfiles import OutFileError, check_out_file, write_out_file

    rules = {"markers": [GENERATOR_META], "overwrite": overwrite, "datasets": [dataset_dir]}
    try:
        check_out_file(out_path, **rules)
        page, shown = render_preview(dataset_dir, num=num, seed=seed, max_side=max_side)
        write_out_file(out_path, page.encode("utf-8"), **rules)
    except OutFileError as exc:
        raise PreviewError(str(exc)) from None
    return shown


__all__ = ["DEFAULT_MAX_SIDE", "PreviewError", "render_preview", "write_preview"]
