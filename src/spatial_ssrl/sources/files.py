"""Discovery: turn ``--input`` arguments (folders, files, list files) into source refs."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from .base import SourceRef

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})


class InputError(ValueError):
    """A usage mistake in the inputs (a path that does not exist, an empty list file)."""


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _walk_images(root: Path, ignored: Counter) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if _is_image_name(name):
                found.append(Path(dirpath) / name)
            else:
                ignored["not_an_image_extension"] += 1
    return found


def read_list_file(path: Path) -> list[Path]:
    """Paths named by a list file (one per line, ``#`` comments, relative to its folder);
    an :class:`InputError` when it names none."""
    entries = _read_list_file(path)
    if not entries:
        raise InputError(f"list file {path} names no images")
    return entries


def _read_list_file(path: Path) -> list[Path]:
    base = path.parent
    entries = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            p = Path(os.path.expanduser(line))
            entries.append(p if p.is_absolute() else base / p)
    return entries


def discover(inputs: list[str]) -> tuple[list[SourceRef], Counter]:
    """Expand input arguments into an ordered, de-duplicated list of source refs.

    - a folder is searched recursively for image extensions (others are counted as
      ``not_an_image_extension``);
    - a ``.txt``/``.lst``/``.list`` file lists one path per line (relative paths are taken
      from the list file's folder; ``#`` starts a comment); listed paths that do not exist
      are kept and become ``not_found`` skips when loaded;
    - any other file is taken as an image whatever its extension (a non-image becomes a
      ``not_an_image`` skip when loaded).

    Ids are stable: ``<folder name>/<path inside the folder>`` for folder inputs, the
    file name for single files, made unique with a ``#n`` suffix if two inputs collide.
    """
    ignored: Counter = Counter()
    refs: list[SourceRef] = []
    seen_paths: set[str] = set()
    used_ids: Counter = Counter()

    def add(path: Path, sid: str) -> None:
        key = os.path.abspath(path)
        if key in seen_paths:
            return
        seen_paths.add(key)
        used_ids[sid] += 1
        if used_ids[sid] > 1:
            sid = f"{sid}#{used_ids[sid]}"
        refs.append(SourceRef(id=sid, path=key))

    for raw in inputs:
        p = Path(os.path.expanduser(str(raw)))
        if p.is_dir():
            root_name = p.resolve().name or "input"
            for f in _walk_images(p, ignored):
                add(f, f"{root_name}/{f.relative_to(p).as_posix()}")
        elif p.is_file():
            if p.suffix.lower() in LIST_EXTENSIONS:
                for f in read_list_file(p):
                    add(f, f.name)
            else:
                add(p, p.name)
        else:
            raise InputError(f"input path does not exist: {raw}")
    return refs, ignored
