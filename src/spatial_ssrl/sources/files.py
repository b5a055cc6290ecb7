"""Discovery: turn ``--input`` arguments (folders, files, list files) into source refs.

Robustness rules shared with :func:`.rgbd.discover_rgbd`:

- Folders are walked by :func:`walk_folders`: links are followed, but each real folder
  (device + inode) is entered once, so a symlink loop cannot repeat files or run forever
  (a folder reached again is counted as ``repeated_folder``); a folder that cannot be
  listed is counted as ``unreadable_folder``; entries that are not regular files or
  folders (FIFOs, sockets, devices) are counted as ``not_a_regular_file`` and never
  opened (opening a FIFO blocks); dangling links are counted as ``broken_link``. One
  regular file reached under two names (a link to it) is used once (``duplicate_file``).
- File names are bytes on Linux. Undecodable bytes are kept as Python's
  ``surrogateescape`` characters from discovery to loading, so such a file is read and its
  samples are seeded from its real name bytes (see :mod:`..seeding`); the text written
  to a dataset shows each such byte as ``\\xNN`` (:func:`.base.display_path`).
  List files and manifests are read the same way: a line that is not UTF-8 names the
  file whose name has those bytes.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from .base import SourceRef, display_path
from .video import VIDEO_EXTENSIONS

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})


class InputError(ValueError):
    """A usage mistake in the inputs (a path that does not exist, an empty list file)."""


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def source_kind_of(path: str) -> str:
    """``video`` for a video file name (:data:`.video.VIDEO_EXTENSIONS`), else ``image``."""
    return "video" if os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS else "image"


def _noter(ignored: Counter) -> Callable[[str, str], None]:
    note = getattr(ignored, "note", None)
    if note is not None:
        return note

    def count(reason: str, where: str) -> None:
        ignored[reason] += 1

    return count


def walk_folders(root: Path | str, note: Callable[[str, str], None]) -> Iterator[tuple[str, list[str]]]:
    """Yield ``(folder, regular file names)`` for ``root`` and its sub-folders, top-down,
    sub-folders in sorted order, hidden (``.``) names left out: the order ``os.walk``
    with ``followlinks=True`` gave, without its loops (see the module docstring).

    ``note(reason, where)`` receives ``repeated_folder``, ``unreadable_folder``,
    ``not_a_regular_file``, ``broken_link`` and ``unreadable``.
    """
    visited: set[tuple[int, int]] = set()
    # an explicit stack: a deep tree cannot hit the recursion limit
    stack: list[str] = [os.fspath(root)]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            note("unreadable_folder", f"{display_path(folder)} ({exc.strerror or exc})")
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            note("repeated_folder", display_path(folder))
            continue
        visited.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            note("unreadable_folder", f"{display_path(folder)} ({exc.strerror or exc})")
            continue
        files: list[str] = []
        subdirs: list[str] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                est = entry.stat()  # follows links
            except FileNotFoundError:
                note("broken_link", display_path(entry.path))
                continue
            except OSError as exc:
                note("unreadable", f"{display_path(entry.path)} ({exc.strerror or exc})")
                continue
            if stat.S_ISDIR(est.st_mode):
                subdirs.append(entry.path)
            elif stat.S_ISREG(est.st_mode):
                files.append(entry.name)
            else:
                note("not_a_regular_file", display_path(entry.path))
        yield folder, files
        stack.extend(reversed(subdirs))


class SeenFiles:
    """De-duplication of discovered files: by absolute path (silently: the same name given
    twice) and by device + inode (a link to a file already taken: ``duplicate_file``)."""

    def __init__(self) -> None:
        self.paths: set[str] = set()
        self.inodes: set[tuple[int, int]] = set()

    def first(self, path: str, note: Callable[[str, str], None] | None = None) -> bool | None:
        """True when ``path`` is new; False when the same path was seen; None when it is
        another name of a file already seen (noted as ``duplicate_file``)."""
        if path in self.paths:
            return False
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            st = None
        if st is not None and stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in self.inodes:
                if note is not None:
                    note("duplicate_file", display_path(path))
                return None
            self.inodes.add(key)
        self.paths.add(path)
        return True


def _walk_images(root: Path, ignored: Counter) -> list[Path]:
    found = []
    for dirpath, filenames in walk_folders(root, _noter(ignored)):
        for name in filenames:
            if _is_image_name(name) or source_kind_of(name) == "video":
                found.append(Path(dirpath) / name)
            else:
                ignored["not_an_image_extension"] += 1
    return found


def read_list_file(path: Path) -> list[Path]:
    """Paths named by a list file (one per line, ``#`` comments, relative to its folder);
    an :class:`InputError` when it names none. Lines are UTF-8; bytes that are not are kept
    as ``surrogateescape`` characters, i.e. they name the file with those bytes."""
    entries = _read_list_file(path)
    if not entries:
        raise InputError(f"list file {path} names no images")
    return entries


def _read_list_file(path: Path) -> list[Path]:
    base = path.parent
    entries = []
    try:
        fh = open(path, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise InputError(f"cannot read list file {display_path(str(path))}: {exc.strerror or exc}") from None
    with fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            p = Path(os.path.expanduser(line))
            entries.append(p if p.is_absolute() else base / p)
    return entries


def discover(inputs: list[str]) -> tuple[list[SourceRef], Counter]:
    """Expand input arguments into an ordered, de-duplicated list of source refs.

    - a folder is searched recursively for image extensions and video extensions (``.mp4``,
      ``.webm``, ``.mkv``, ``.mov``, ``.m4v``: refs of kind ``video``); others are counted as
      ``not_an_image_extension``;
    - a ``.txt``/``.lst``/``.list`` file lists one path per line (relative paths are taken
      from the list file's folder; ``#`` starts a comment); listed paths that do not exist
      are kept and become ``not_found`` skips when loaded;
    - any other file is taken as an image whatever its extension (a non-image becomes a
      ``not_an_image`` skip when loaded), or as a video when its extension says so.

    Ids are stable: ``<folder name>/<path inside the folder>`` for folder inputs, the
    file name for single files, made unique with a ``#n`` suffix if two inputs collide.
    Folder walking, links, FIFOs, unreadable folders and non-UTF-8 names: see the module
    docstring.
    """
    ignored: Counter = Counter()
    refs: list[SourceRef] = []
    seen = SeenFiles()
    used_ids: Counter = Counter()
    note = _noter(ignored)

    def add(path: Path, sid: str) -> None:
        key = os.path.abspath(path)
        if not seen.first(key, note):
            return
        used_ids[sid] += 1
        if used_ids[sid] > 1:
            sid = f"{sid}#{used_ids[sid]}"
        refs.append(SourceRef(id=sid, path=key, kind=source_kind_of(key)))

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
            _missing_input(p, raw)
    return refs, ignored


def _missing_input(p: Path, raw: object) -> None:
    """Raise the :class:`InputError` for an input that is neither a folder nor a file."""
    if os.path.lexists(p) and os.path.exists(p):
        raise InputError(f"input is not a regular file or folder: {display_path(str(raw))}")
    if os.path.lexists(p):
        raise InputError(f"input is a dangling link: {display_path(str(raw))}")
    raise InputError(f"input path does not exist: {display_path(str(raw))}")
