"""Run folders: what is ours in them, where to resume, how the final model is written.

A run folder holds ``ssrl_run.json`` (the marker: kind, config, status), TRL/transformers
checkpoints ``checkpoint-N/``, ``train_log.jsonl``, ``validation.jsonl``, an arrow cache
``dataset_cache/`` and, when the run completes, the final model at the top level. A folder
that exists, is not empty and has no marker is someone else's: it is never written to.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import sys
from contextlib import contextmanager
from typing import Any

from .. import __version__
from ..locking import LOCK_FILE, FolderBusy, FolderLock, busy_message, is_locked
from ..models import RUN_MARKER, has_weights, read_marker
from ..writers.base import atomic_write_json, fsync_path

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (the message says why)."""


CHECKPOINT_MARKER = "ssrl_checkpoint.json"  # written last into a checkpoint, once every file is synced


def checkpoint_problem(path: str) -> str | None:
    """Why ``path`` is not a complete checkpoint, or None when it is. Complete means our
    marker is there (written after every file was synced) and every file it lists has the
    size it had then (a truncated or deleted file makes it incomplete again)."""
    marker = os.path.join(path, CHECKPOINT_MARKER)
    try:
        with open(marker, encoding="utf-8") as fh:
            files = json.load(fh)["files"]
        if not isinstance(files, dict) or not files:
            raise ValueError
    except FileNotFoundError:
        return "its save did not finish"
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {CHECKPOINT_MARKER} is unreadable"
    for rel, size in sorted(files.items()):
        p = os.path.join(path, rel)
        try:
            actual = os.path.getsize(p)
        except OSError:
            return f"{rel} is missing"
        if actual != size:
            return f"{rel} has {actual} of its {size} bytes"
    return None


def mark_checkpoint(folder: str, step: int) -> None:
    """Make ``folder`` count as complete: sync every file in it, then write the marker that
    lists them with their sizes (synced too). A save cut short anywhere before the marker's
    rename leaves a folder :func:`checkpoint_problem` refuses."""
    files: dict[str, int] = {}
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            if name == CHECKPOINT_MARKER or name.startswith(".tmp-") or os.path.islink(path):
                continue
            fsync_path(path)
            files[os.path.relpath(path, folder)] = os.path.getsize(path)
        fsync_path(root, directory=True)
    atomic_write_json(os.path.join(folder, CHECKPOINT_MARKER), {"step": step, "files": files}, sync=True)
    fsync_path(folder, directory=True)


def scan_checkpoints(output: str) -> list[tuple[int, str, str | None]]:
    """(step, path, problem or None) of every ``checkpoint-N`` folder, oldest first."""
    if not os.path.isdir(output):
        return []
    found = []
    for name in os.listdir(output):
        m = _CHECKPOINT.match(name)
        path = os.path.join(output, name)
        if m and os.path.isdir(path) and not os.path.islink(path):
            found.append((int(m.group(1)), path, checkpoint_problem(path)))
    return sorted(found)


def complete_checkpoints(output: str) -> list[str]:
    """Checkpoint folders whose save finished and is intact, oldest first."""
    return [p for _, p, problem in scan_checkpoints(output) if problem is None]


def last_checkpoint(output: str) -> str | None:
    done = complete_checkpoints(output)
    return done[-1] if done else None


def incomplete_after(output: str, checkpoint: str | None) -> list[tuple[str, str]]:
    """(path, problem) of the incomplete checkpoints newer than ``checkpoint``."""
    step = int(_CHECKPOINT.match(os.path.basename(checkpoint)).group(1)) if checkpoint else -1
    return [(p, problem) for s, p, problem in scan_checkpoints(output) if problem is not None and s > step]


def _entries(output: str) -> list[str]:
    return [n for n in os.listdir(output) if n != LOCK_FILE] if os.path.isdir(output) else []


def check_run_folder(output: str, kind: str, resume: bool, holding_lock: bool = False) -> str | None:
    """Refuse a run folder that cannot be used as asked, writing nothing; return the
    checkpoint to resume from, if any."""
    if not is_main_process():  # the main process checks, locks and writes; the others follow it
        return last_checkpoint(output) if resume else None
    if os.path.lexists(output) and not os.path.isdir(output):
        raise RunFolderError(f"--out {output} exists and is not a folder")
    if not holding_lock and is_locked(output):
        raise RunFolderError(busy_message(output))
    entries = _entries(output)
    marker = read_marker(output) if entries else None
    if entries and marker is None:
        raise RunFolderError(f"--out {output} holds files this program did not write; choose another folder")
    if marker is not None and marker.get("kind") != kind:
        raise RunFolderError(f"--out {output} holds a {marker.get('kind')} run, not a {kind} one; "
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
        raise RunFolderError(f"--out {output} already holds a {kind} run; pass --resume to continue it "
                             "or choose another folder")
    return checkpoint


def is_main_process() -> bool:
    """Rank 0 of a launch (``accelerate launch`` / ``torchrun`` set ``RANK``), or a lone
    process: the one that locks the run folder and writes markers and logs."""
    return os.environ.get("RANK", "0") == "0"


def finished_run(output: str, kind: str, max_steps: Any = None) -> dict | None:
    """The marker of a completed ``kind`` run in ``output`` that ``max_steps`` would not take
    further (so resuming it has nothing to do), else None."""
    marker = read_marker(output) if os.path.isdir(output) else None
    if not marker or marker.get("kind") != kind or marker.get("status") != "complete":
        return None
    steps = marker.get("steps")
    if isinstance(max_steps, int) and max_steps > 0 and isinstance(steps, int) and max_steps > steps:
        return None
    return marker if has_weights(output) else None


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# What a run writes at its top level before its first checkpoint (removed again if it fails then).
EARLY_FILES = (RUN_MARKER, "train_log.jsonl", "validation.jsonl", "online_samples.jsonl", "train_samples.jsonl")
EARLY_DIRS = ("dataset_cache", "model_view")


@contextmanager
def run_folder(output: str, kind: str, config: dict[str, Any], resume: bool):
    """Hold ``output`` for a run: its lock (one writer per folder), the checks of
    :func:`check_run_folder` made again under it, incomplete checkpoints of an earlier run
    removed (said in one line), the marker set to "running" and, when the run ends in an
    error or an interrupt, to "failed" / "interrupted". A run that fails before its first
    complete checkpoint removes what it wrote (our entries only; the folder only when this
    run created it), so a failed start leaves the folder as it found it. Yields the
    checkpoint to resume from, if any. Only the main process of a launch locks and writes."""
    main = is_main_process()
    created = not os.path.exists(output)
    lock = FolderLock(output)
    if main:
        os.makedirs(output, exist_ok=True)
        try:
            lock.acquire()
        except FolderBusy as exc:
            if created:
                _rmdir(output)
            raise RunFolderError(str(exc)) from None
    if not main:
        barrier()  # wait for the main process to lock, check and clear the folder
    try:
        checkpoint = check_run_folder(output, kind, resume, holding_lock=main)
        if main:
            stale = incomplete_after(output, checkpoint)
            for path, _problem in stale:
                shutil.rmtree(path)  # a checkpoint-N folder of our own run whose save did not finish
            if stale:
                names = ", ".join(f"{os.path.basename(p)} ({why})" for p, why in stale)
                then = f"resuming from {os.path.basename(checkpoint)}" if checkpoint else "starting over"
                _say(f"incomplete checkpoint removed: {names}; {then}")
            if not resume:
                _remove_early_files(output, keep_folder=True)  # an earlier failed start's leftovers
            write_marker(output, kind, config, status="running", resumed_from=checkpoint)
    except BaseException:
        lock.release()
        if created and main:
            _rmdir(output)
        raise
    if main:
        barrier()  # the folder is ready: the other processes may write their caches now
    try:
        yield checkpoint
    except BaseException as exc:
        if main:
            _note_free_space(exc, output)
            if complete_checkpoints(output) or not created and resume:
                status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                for path, _problem in incomplete_after(output, last_checkpoint(output)):
                    shutil.rmtree(path, ignore_errors=True)  # a save cut short: never resumed from
                write_marker(output, kind, config, status=status, error=_one_line(exc))
            else:
                _remove_early_files(output, keep_folder=True)
                lock.release()
                if created:
                    _rmdir(output)
        raise
    finally:
        lock.release()


def world_size() -> int:
    """Processes in the launch (1 without one)."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - training needs torch
        return 1
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def barrier() -> None:
    """Wait for every process of a launch (nothing without one). The process group is up by
    the time a run folder is set up: TRL's config object starts it when it is built."""
    if world_size() > 1:
        import torch.distributed as dist

        dist.barrier()


def _note_free_space(exc: BaseException, output: str) -> None:
    """Remember on ``exc`` the bytes free where the run writes, as they were when it failed
    (before the partial checkpoint is removed), so the message can say the disk was full."""
    try:
        st = os.statvfs(output)
        exc.ssrl_free_bytes = st.f_bavail * st.f_frsize
    except (OSError, AttributeError, TypeError):
        pass


def _one_line(exc: BaseException) -> str | None:
    if isinstance(exc, KeyboardInterrupt):
        return None
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # not empty: something else is there: keep it


def _remove_early_files(output: str, keep_folder: bool = False) -> None:
    for name in EARLY_FILES:
        path = os.path.join(output, name)
        if os.path.isfile(path):
            os.unlink(path)
    for name in EARLY_DIRS:
        path = os.path.join(output, name)
        if os.path.islink(path):
            os.unlink(path)
        elif os.path.isdir(path):
            shutil.rmtree(path)  # written by a run of ours only: the arrow cache, the symlink view
    for _step, path, problem in scan_checkpoints(output):
        if problem is not None:
            shutil.rmtree(path)
    for name in os.listdir(output):
        if name.startswith(".tmp-") and name != LOCK_FILE and os.path.isfile(os.path.join(output, name)):
            os.unlink(os.path.join(output, name))  # our atomic writes' temporary files
    if not keep_folder:
        _rmdir(output)


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
