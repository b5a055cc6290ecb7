"""One writer per folder: an exclusive lock that every command writing a dataset or a run
folder holds while it works.

The lock is ``fcntl.flock`` on ``.tmp-ssrl-lock`` inside the folder (the name
``ssrl generate`` has always used, so generate, split and the trainers exclude one another
on the same folder). The holder writes its PID into the file, so a second command can name
it. The kernel drops the lock when the holder dies, however it dies, so a stale file never
blocks anyone. The file is removed on release; a process that opened the old file just
before it went checks, once it holds the lock, that the path still names the file it
locked, and starts over when it does not.
"""

from __future__ import annotations

import os

LOCK_FILE = ".tmp-ssrl-lock"


class FolderBusy(Exception):
    """Another process holds the folder's lock (the message names the folder and its PID)."""


def _holder(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            pid = fh.read(32).strip()
    except OSError:
        return ""
    return pid if pid.isdigit() else ""


def busy_message(folder: str) -> str:
    pid = _holder(os.path.join(folder, LOCK_FILE))
    who = f" (PID {pid})" if pid else ""
    return f"{folder} is in use by another ssrl command{who}; wait for it to finish or choose another folder"


class FolderLock:
    """``with FolderLock(folder, "ssrl split"):`` holds ``folder``'s lock or raises
    :class:`FolderBusy` at once (never waits). The folder must exist."""

    def __init__(self, folder: str, what: str = "ssrl"):
        self.folder = folder
        self.what = what
        self.path = os.path.join(folder, LOCK_FILE)
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        import fcntl

        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise FolderBusy(busy_message(self.folder)) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed it as we opened it: lock the new one
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._fd = fd
            return self
        raise FolderBusy(f"{self.folder}: could not take the lock (it kept changing hands)")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def is_locked(folder: str) -> bool:
    """Whether some process holds ``folder``'s lock now (a run marker saying "running" with no
    lock held is a run that died)."""
    import fcntl

    path = os.path.join(folder, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
