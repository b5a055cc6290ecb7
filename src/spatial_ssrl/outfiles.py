"""Report files written by ``--out FILE`` (``ssrl validate``, ``score``, ``overlap``,
``preview``): never replace a file this program did not write.

A command names the marker its own output carries near the start of the file (a first JSON
key such as ``"generator": "ssrl validate"``, or ``<meta name="generator" ...>`` in HTML).
An existing ``FILE`` is replaced only when its first few KiB hold that marker, or when the
user passed ``--overwrite``. Some files are refused even then: a dataset's own files
(``manifest.json``, ``data/``, ``images/`` ... of a folder holding a ``manifest.json``, or of
the dataset the command reads) and the command's input files. The new file goes through a
hidden temporary name of our own pattern (``.tmp-ssrl-out-*``) and one rename, so a reader
never sees half a report; a user's ``FILE.tmp`` is never touched.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable

TMP_PREFIX = ".tmp-ssrl-out-"
_HEAD_BYTES = 4096
MANIFEST = "manifest.json"
# a dataset folder's own top-level entries (writers.FORMAT_ENTRIES and the manifest;
# spelled out here so that checking --out imports no writer; a test compares the two)
DATASET_ENTRIES = frozenset({MANIFEST, "data", "images", "train.jsonl", "dataset_info.json", "format_prompt.jinja"})


class OutFileError(Exception):
    """One line saying why ``--out FILE`` cannot be written."""


def json_marker(command: str) -> str:
    """What a JSON report of ``ssrl COMMAND`` starts with (its first key)."""
    return f'"generator": "ssrl {command}"'


def json_report(command: str, report: dict, indent: int = 1) -> bytes:
    """``report`` as JSON text with the ``generator`` key (:func:`json_marker`) first."""
    return (json.dumps({"generator": f"ssrl {command}", **report}, indent=indent) + "\n").encode()


def is_ours(path: str, markers: Iterable[str]) -> bool:
    """Whether the regular file ``path`` starts (within 4 KiB) with one of ``markers``."""
    try:
        if os.path.islink(path) or not os.path.isfile(path):
            return False
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return False
    return any(m in head for m in markers)


def _dataset_owner(path: str, datasets: Iterable[str]) -> str | None:
    """The dataset folder ``path`` would land in as one of its own entries, if any."""
    real = os.path.realpath(path)
    folders = {os.path.realpath(d) for d in datasets if d}
    parent = os.path.dirname(real)
    for _ in range(3):  # FILE, data/FILE, images/sub/FILE
        if parent in folders or os.path.isfile(os.path.join(parent, MANIFEST)):
            rel = os.path.relpath(real, parent)
            if rel.split(os.sep)[0] in DATASET_ENTRIES:
                return parent
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    return None


def check_out_file(path: str, markers: Iterable[str], overwrite: bool = False,
                   datasets: Iterable[str] = (), inputs: Iterable[str] = ()) -> None:
    """Raise :class:`OutFileError` when ``path`` may not be (re)written; run it before the
    work so a refusal comes first. ``markers``: what our own earlier output holds."""
    markers = list(markers)
    owner = _dataset_owner(path, datasets)
    if owner is not None:
        raise OutFileError(f"{path} is a file of the dataset in {owner}; choose another --out")
    for src in inputs:
        try:
            if src and os.path.exists(path) and os.path.samefile(path, src):
                raise OutFileError(f"{path} is an input of this command; choose another --out")
        except OSError:
            pass
    if os.path.isdir(path):
        raise OutFileError(f"{path} is a folder; --out takes a file name")
    if os.path.lexists(path) and not overwrite and not is_ours(path, markers):
        raise OutFileError(f"{path} exists and was not written by this command; pass --overwrite to replace it "
                           "or choose another --out")


def write_out_file(path: str, data: bytes, markers: Iterable[str], overwrite: bool = False,
                   datasets: Iterable[str] = (), inputs: Iterable[str] = ()) -> None:
    """Check ``path`` again (see :func:`check_out_file`) and write ``data`` there atomically."""
    from .writers.base import current_umask

    check_out_file(path, markers, overwrite, datasets, inputs)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX)
    except OSError as exc:
        raise OutFileError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutFileError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
