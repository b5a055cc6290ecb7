"""Run folders: what is ours in them, where to resume, how the final model is written.

A run folder holds ``ssrl_run.json`` (the marker: kind, config, status), TRL/transformers
checkpoints ``checkpoint-N/``, ``train_log.jsonl``, ``validation.jsonl``, an arrow cache
``dataset_cache/`` and, when the run completes, the final model at the top level. A folder
that exists, is not empty and has no marker is someone else's: it is never written to.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
from contextlib import contextmanager
from typing import Any

from .. import __version__
from ..writers.base import atomic_write_json
from .models import RUN_MARKER, read_marker

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (the message says why)."""


def complete_checkpoints(output: str) -> list[str]:
    """Checkpoint folders whose save finished (``trainer_state.json`` is written last),
    oldest first."""
    if not os.path.isdir(output):
        return []
    found = []
    for name in os.listdir(output):
        m = _CHECKPOINT.match(name)
        path = os.path.join(output, name)
        if m and os.path.isfile(os.path.join(path, "trainer_state.json")):
            found.append((int(m.group(1)), path))
    return [p for _, p in sorted(found)]


def last_checkpoint(output: str) -> str | None:
    done = complete_checkpoints(output)
    return done[-1] if done else None


def check_run_folder(output: str, kind: str, resume: bool) -> str | None:
    """Refuse a run folder that cannot be used as asked, writing nothing; return the
    checkpoint to resume from, if any."""
    if os.path.lexists(output) and not os.path.isdir(output):
        raise RunFolderError(f"--output {output} exists and is not a folder")
    entries = os.listdir(output) if os.path.isdir(output) else []
    marker = read_marker(output) if entries else None
    if entries and marker is None:
        raise RunFolderError(f"--output {output} holds files this program did not write; choose another folder")
    if marker is not None and marker.get("kind") != kind:
        raise RunFolderError(f"--output {output} holds a {marker.get('kind')} run, not a {kind} one; "
                             "choose another folder")
    checkpoint = None
    if resume:
        if marker is None:
            raise RunFolderError(f"--resume: {output} holds no run to resume; drop --resume to start one")
        checkpoint = last_checkpoint(output)
        if checkpoint is None:
            raise RunFolderError(f"--resume: {output} has no complete checkpoint yet; drop --resume to start over "
                                 "in another folder")
    elif marker is not None and complete_checkpoints(output):
        raise RunFolderError(f"--output {output} already holds a {kind} run; pass --resume to continue it "
                             "or choose another folder")
    return checkpoint


def prepare_run_folder(output: str, kind: str, config: dict[str, Any], resume: bool) -> str | None:
    """Check and create the run folder; return the checkpoint to resume from, if any."""
    checkpoint = check_run_folder(output, kind, resume)
    os.makedirs(output, exist_ok=True)
    write_marker(output, kind, config, status="running", resumed_from=checkpoint)
    return checkpoint


# What a run writes at its top level before its first checkpoint (removed again if it fails then).
EARLY_FILES = (RUN_MARKER, "train_log.jsonl", "validation.jsonl")
EARLY_DIRS = ("dataset_cache", "model_view")


@contextmanager
def run_folder(output: str, kind: str, config: dict[str, Any], resume: bool):
    """:func:`prepare_run_folder` for the duration of a run. If the run fails before its
    first checkpoint, what it wrote so far is removed again (only our own entries; the folder
    itself only when it is then empty and we created it), so a failed start leaves nothing."""
    existed = os.path.isdir(output) and bool(os.listdir(output))
    checkpoint = prepare_run_folder(output, kind, config, resume)
    try:
        yield checkpoint
    except BaseException:
        if not existed and not complete_checkpoints(output):
            _remove_early_files(output)
        raise


def _remove_early_files(output: str) -> None:
    for name in EARLY_FILES:
        path = os.path.join(output, name)
        if os.path.isfile(path):
            os.unlink(path)
    for name in EARLY_DIRS:
        path = os.path.join(output, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)  # written by this run only: the arrow cache, the symlink view
    try:
        os.rmdir(output)
    except OSError:
        pass  # not empty: something else is there (a partial checkpoint, or not ours): keep it


def write_marker(folder: str, kind: str, config: dict[str, Any], status: str, **extra: Any) -> None:
    previous = read_marker(folder) or {}
    data = {
        "kind": kind,
        "status": status,
        "spatial_ssrl_version": __version__,
        "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": {k: _jsonable(v) for k, v in config.items()},
        "history": previous.get("history", []),
    }
    data.update({k: v for k, v in extra.items() if v is not None})
    if status != previous.get("status"):
        data["history"] = [*data["history"], {"status": status, "at": data["updated"]}]
    atomic_write_json(os.path.join(folder, RUN_MARKER), data)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(os.path.join(folder, RUN_MARKER), 0o666 & ~mask)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool, type(None))):
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)
