"""The output folder of ``ssrl generate``: what in it is ours, where a new run is staged, and
how it replaces the previous one.

Rules:

- a file is *ours* when the previous run's ``manifest.json`` (one of ours: it names a
  ``spatial_ssrl_version`` and a ``files`` list) lists it, when it is an image of a listed
  llamafactory record (``images/<id>-<i>.<ext>``), or when its name is one of our temporary
  names (``.tmp-*``). Nothing else is ever removed, ``--overwrite`` or not;
- a new run is written into a hidden staging folder inside OUT (``.tmp-ssrl-run``) and moved
  into place only when it finished and wrote at least one sample; the previous dataset stays
  untouched until then, so an interrupted or failed run loses nothing;
- a staging folder holding durable parts of a killed or interrupted run (its journal says
  so) is kept for ``--resume``; a new run without ``--resume`` refuses to discard it unless
  ``--overwrite`` is given; one with nothing durable is simply dropped;
- one run at a time per OUT: a lock file (``.tmp-ssrl-lock``) is held while a run works;
- a folder holding, where the dataset goes, files that are not ours is refused, and the
  message says what is there (it is not "a dataset").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field

from ..interrupt import sigint_held
from ..writers import FORMAT_ENTRIES
from ..writers.base import current_umask
from ..writers.llamafactory import IMAGE_DIR

MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"
STAGING_PREFIX = ".tmp-ssrl-"
RUN_DIR = STAGING_PREFIX + "run"
LOCK_FILE = STAGING_PREFIX + "lock"  # the same file spatial_ssrl.locking.FolderLock takes
_IMAGE_NAME = re.compile(r"^(?P<id>.+)-(?P<i>\d+)\.(?:png|jpe?g|webp)$", re.IGNORECASE)


class OutDirError(Exception):
    """A one-line reason the output folder cannot be used."""


def _is_tmp(name: str) -> bool:
    return name.startswith(TMP_PREFIX)


def _safe_rel(p: object) -> str | None:
    """A manifest path as a normalised path inside OUT, or None for anything else."""
    if not isinstance(p, str) or not p or os.path.isabs(p):
        return None
    n = os.path.normpath(p)
    if n == "." or n.startswith("..") or "\x00" in n:
        return None
    return n


@dataclass
class Ownership:
    """What the previous run in OUT wrote, from its manifest."""

    manifest_ours: bool = False
    manifest_present: bool = False
    files: set[str] = field(default_factory=set)       # listed paths, relative to OUT
    image_ids: set[str] = field(default_factory=set)   # ids of listed llamafactory records
    image_paths: set[str] = field(default_factory=set)  # images named by listed records

    def owns(self, rel: str) -> bool:
        rel = os.path.normpath(rel)
        if _is_tmp(os.path.basename(rel)) or rel in self.files:
            return True
        if rel == MANIFEST:
            return self.manifest_ours
        head, _, name = rel.partition(os.sep)
        if head == IMAGE_DIR and IMAGE_DIR in self.files and os.sep not in name:
            if rel in self.image_paths:
                return True
            m = _IMAGE_NAME.match(name)
            return bool(m and m.group("id") in self.image_ids)
        return False

    @property
    def top_level(self) -> list[str]:
        return sorted({f.split(os.sep, 1)[0] for f in self.files})


def read_ownership(out: str) -> Ownership:
    own = Ownership()
    path = os.path.join(out, MANIFEST)
    if not os.path.lexists(path):
        return own
    own.manifest_present = True
    try:
        with open(path, "rb") as fh:
            m = json.loads(fh.read(64 * 1024 * 1024).decode("utf-8"))
    except (OSError, ValueError):
        return own
    if not (isinstance(m, dict) and "spatial_ssrl_version" in m and isinstance(m.get("files"), list)):
        return own
    own.manifest_ours = True
    own.files = {r for r in (_safe_rel(f) for f in m["files"]) if r}
    if IMAGE_DIR in own.files:
        for rel in own.files:
            if rel.endswith(".jsonl") and os.path.isfile(os.path.join(out, rel)):
                _read_records(os.path.join(out, rel), own)
    return own


def _read_records(path: str, own: Ownership) -> None:
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(rec, dict):
                    continue
                if isinstance(rec.get("id"), str):
                    own.image_ids.add(rec["id"])
                for img in rec.get("images") or []:
                    r = _safe_rel(img)
                    if r and r.startswith(IMAGE_DIR + os.sep):
                        own.image_paths.add(r)
    except OSError:
        pass


def _scan(out: str, entry: str, own: Ownership) -> tuple[list[str], list[str]]:
    """(our files, foreign files) under OUT/entry, as paths relative to OUT. Links count as
    files (never followed)."""
    ours: list[str] = []
    foreign: list[str] = []
    top = os.path.join(out, entry)
    if os.path.islink(top) or not os.path.isdir(top):
        (ours if own.owns(entry) else foreign).append(entry)
        return ours, foreign
    if _is_tmp(entry):
        return [entry], []
    for root, dirs, names in os.walk(top, onerror=lambda e: foreign.append(os.path.relpath(e.filename, out))):
        for d in list(dirs):
            if os.path.islink(os.path.join(root, d)):
                dirs.remove(d)
                names.append(d)
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), out)
            (ours if own.owns(rel) else foreign).append(rel)
    return ours, foreign


def _describe(out: str, entry: str, foreign: list[str]) -> str:
    p = os.path.join(out, entry)
    if len(foreign) == 1 and foreign[0] == entry:
        kind = "a link" if os.path.islink(p) else ("a folder" if os.path.isdir(p) else "a file")
        if entry == MANIFEST:
            return f"{p} (a manifest.json not written by ssrl)"
        return f"{p} ({kind} not written by ssrl)"
    eg = ", ".join(os.path.relpath(f, entry) for f in sorted(foreign)[:3])
    more = "" if len(foreign) <= 3 else ", ..."
    return f"{p}/ ({len(foreign)} file{'s' * (len(foreign) != 1)} not written by ssrl: {eg}{more})"


def check_out_path(out: str) -> bool:
    """Refuse, in one line, an --out that cannot become a folder: a file, a dangling link,
    a path under a file, a folder we cannot write in. Creates the folder; returns whether it
    did."""
    if os.path.islink(out) and not os.path.exists(out):
        raise OutDirError(f"--out {out} is a link to {os.readlink(out)}, which does not exist")
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutDirError(f"--out {out} exists and is not a folder")
    parent = os.path.abspath(out)
    while not os.path.exists(parent):
        if os.path.islink(parent):
            raise OutDirError(f"--out {out}: {parent} is a link to {os.readlink(parent)}, which does not exist")
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OutDirError(f"--out {out}: {parent} is a file, not a folder")
    created = not os.path.isdir(out)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise OutDirError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutDirError(f"cannot write in --out {out}: permission denied")
    return created


def inspect(out: str, fmt: str, overwrite: bool) -> Ownership:
    """Check that a run of format ``fmt`` may go to OUT; returns what the previous run owns.

    Raises OutDirError when files that are not ours sit where the dataset goes, or when a
    dataset of ours is there and ``overwrite`` is off."""
    own = read_ownership(out)
    writes = [*FORMAT_ENTRIES.get(fmt, ("data",)), MANIFEST]
    problems = []
    for entry in writes:
        if not os.path.lexists(os.path.join(out, entry)):
            continue
        _, foreign = _scan(out, entry, own)
        if foreign:
            problems.append(_describe(out, entry, foreign))
    if problems:
        raise OutDirError(
            "--out holds files ssrl did not write where the dataset goes: " + "; ".join(problems)
            + "; move them or choose another --out (nothing was changed)"
        )
    present = [e for e in own.top_level if os.path.lexists(os.path.join(out, e))]
    if own.manifest_ours and not overwrite:
        shown = ", ".join([MANIFEST, *present])
        raise OutDirError(
            f"{out} already holds a dataset ({shown}); pass --overwrite to replace it or choose another --out"
        )
    return own


def remove_owned(out: str, entry: str, own: Ownership) -> list[str]:
    """Delete our files under OUT/entry and the folders they leave empty; returns what was
    kept (foreign files)."""
    ours, foreign = _scan(out, entry, own)
    for rel in ours:
        p = os.path.join(out, rel)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)  # a .tmp-* folder: ours by name
        else:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
    top = os.path.join(out, entry)
    if os.path.isdir(top) and not os.path.islink(top):
        for root, _dirs, _names in sorted(os.walk(top), key=lambda t: -len(t[0])):
            try:
                os.rmdir(root)
            except OSError:
                pass
    return foreign


def clear_leftovers(out: str, fmt: str, own: Ownership) -> None:
    """Drop our own leftovers where the new run writes (temporary files, empty folders of an
    interrupted run) and stale staging folders of ours (not the run folder, which the caller
    judges: it may hold a run to resume)."""
    for name in os.listdir(out):
        if name.startswith(STAGING_PREFIX) and name not in (RUN_DIR, LOCK_FILE):
            p = os.path.join(out, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
    for entry in FORMAT_ENTRIES.get(fmt, ("data",)):
        p = os.path.join(out, entry)
        if os.path.lexists(p) and not own.owns(entry) and entry not in own.top_level:
            remove_owned(out, entry, own)


def restore_interrupted_swap(out: str) -> bool:
    """Undo a swap that was killed (SIGKILL, power loss) between setting the previous run
    aside and moving the new manifest in: OUT then has no manifest and a ``.tmp-ssrl-old-*``
    folder holds the previous run's. The previous run's entries go back to their places (an
    entry of the same name in OUT came from our staging folder and is dropped) and its
    manifest last. Returns whether anything was restored."""
    if not os.path.isdir(out) or os.path.lexists(os.path.join(out, MANIFEST)):
        return False
    restored = False
    for name in sorted(os.listdir(out)):
        trash = os.path.join(out, name)
        if not (name.startswith(STAGING_PREFIX + "old-") and os.path.isfile(os.path.join(trash, MANIFEST))):
            continue
        for entry in sorted(os.listdir(trash)):
            if entry == MANIFEST:
                continue
            dst = os.path.join(out, entry)
            if os.path.isdir(dst) and not os.path.islink(dst):
                shutil.rmtree(dst)  # the interrupted new run's copy, moved in from our staging folder
            elif os.path.lexists(dst):
                os.unlink(dst)
            os.replace(os.path.join(trash, entry), dst)
        os.replace(os.path.join(trash, MANIFEST), os.path.join(out, MANIFEST))
        os.rmdir(trash)
        restored = True
        break
    return restored


class Staging:
    """A hidden folder in OUT that a run writes into; ``commit()`` swaps it in.

    ``resumable_rows``: rows of an interrupted run found in it and kept for the run to resume
    (0 when the run starts afresh)."""

    def __init__(self, out: str, fmt: str, overwrite: bool, resume: bool = False):
        from .journal import read_journal

        self.created = check_out_path(out)
        self.out = out
        self.fmt = fmt
        self.overwrite = overwrite
        self.resumable_rows = 0
        self._folder_lock = None
        try:
            self._lock()
            restore_interrupted_swap(out)  # before anything reads or clears OUT
            self.own = inspect(out, fmt, overwrite)
            clear_leftovers(out, fmt, self.own)
            self.path = os.path.join(out, RUN_DIR)
            if os.path.lexists(self.path) and not (os.path.isdir(self.path) and not os.path.islink(self.path)):
                os.unlink(self.path)  # ours by name
            if os.path.isdir(self.path):
                js = read_journal(self.path)
                rows = js.rows if js.resumable else 0
                if rows and resume:
                    self.resumable_rows = rows
                elif rows and not overwrite:
                    about = js.about
                    of = f" of {about['num']}" if "num" in about else ""
                    raise OutDirError(
                        f"{out} holds an interrupted run with {rows}{of} samples on disk; pass --resume "
                        "(with the same options) to continue it, or --overwrite to start afresh"
                    )
                else:
                    shutil.rmtree(self.path)
            if not os.path.isdir(self.path):
                os.mkdir(self.path)
                os.chmod(self.path, 0o777 & ~current_umask())
        except OutDirError:
            self._unlock()
            raise
        except OSError as exc:
            self._unlock()
            if self.created:
                try:
                    os.rmdir(out)
                except OSError:
                    pass
            raise OutDirError(f"cannot write in --out {out}: {exc.strerror or exc}") from None

    def _lock(self) -> None:
        from ..locking import FolderBusy, FolderLock

        lock = FolderLock(self.out)
        try:
            lock.acquire()
        except FolderBusy as exc:
            raise OutDirError(str(exc)) from None
        self._folder_lock = lock

    def _unlock(self) -> None:
        if self._folder_lock is None:
            return
        self._folder_lock.release()
        self._folder_lock = None

    def keep(self) -> None:
        """Leave the staged run in place for ``--resume`` and let other runs in."""
        self._unlock()

    @property
    def replaces(self) -> bool:
        return self.own.manifest_ours

    def discard(self) -> None:
        """Drop the staged run (and --out itself when this run created it and it is empty)."""
        shutil.rmtree(self.path, ignore_errors=True)
        self._unlock()
        if self.created:
            try:
                os.rmdir(self.out)
            except OSError:
                pass

    def commit(self, finish=None) -> list[str]:
        """Move the staged run into OUT, replacing the previous run's files (ours only), then
        call ``finish()`` (if given) while OUT is still locked. Returns foreign files left in place."""
        out = self.out
        own = inspect(out, self.fmt, self.overwrite)  # again: the folder may have changed meanwhile
        new = sorted(os.listdir(self.path))
        kept: list[str] = []
        with sigint_held():
            trash = tempfile.mkdtemp(prefix=STAGING_PREFIX + "old-", dir=out)
            moved: list[str] = []
            try:
                if own.manifest_ours:
                    os.replace(os.path.join(out, MANIFEST), os.path.join(trash, MANIFEST))
                old = [e for e in own.top_level if e != MANIFEST and os.path.lexists(os.path.join(out, e))]
                for entry in old:
                    if entry in new:
                        os.replace(os.path.join(out, entry), os.path.join(trash, entry))
                    else:
                        kept += remove_owned(out, entry, own)
                for entry in new:
                    p = os.path.join(out, entry)
                    if entry != MANIFEST and os.path.lexists(p):
                        left = remove_owned(out, entry, own)  # our empty leftovers
                        if left:
                            raise OutDirError(f"{p} appeared during the run; the new dataset was not moved in")
                for entry in [*(e for e in new if e != MANIFEST), *(e for e in new if e == MANIFEST)]:
                    os.replace(os.path.join(self.path, entry), os.path.join(out, entry))
                    moved.append(entry)
            except BaseException:
                # take back what was moved in, put the previous run back where it was; the
                # staged run is dropped by the caller
                for entry in reversed(moved):
                    try:
                        os.replace(os.path.join(out, entry), os.path.join(self.path, entry))
                    except OSError:
                        pass
                for entry in os.listdir(trash):
                    dst = os.path.join(out, entry)
                    if not os.path.lexists(dst):
                        os.replace(os.path.join(trash, entry), dst)
                raise
            for entry in os.listdir(trash):
                kept += [os.path.join(out, k) for k in remove_owned(trash, entry, own)]
            try:
                os.rmdir(trash)
            except OSError:
                pass
            self.created = False  # OUT now holds the dataset
            try:
                if finish is not None:
                    finish()
            finally:
                self.discard()
        return kept
