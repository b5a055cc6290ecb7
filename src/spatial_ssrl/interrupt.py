"""Ctrl-C: deferred to the points a command checks (:class:`Interrupts`), held while files
are swapped (:func:`sigint_held`), and leaving within the promised time after it
(:func:`exit_interrupted`).

With torch loaded, the interpreter's own teardown (finalising modules and the objects they
hold) takes over a second after the command has finished its work. When ``ssrl`` runs as
a program, :func:`exit_interrupted` runs the exit handlers, flushes the output and leaves
at once with status 130; every file a command keeps is complete by then (atomic renames,
synced markers). Inside another program (a test runner calling the CLI in-process) it is a
plain ``sys.exit(130)``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

AS_PROGRAM = False  # set by the program's entry point (``ssrl`` / ``python -m spatial_ssrl.cli``)


def exit_interrupted(code: int = 130):
    if not AS_PROGRAM:
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


@contextlib.contextmanager
def sigint_held():
    """Hold SIGINT while a swap renames, so Ctrl-C cannot split old and new: a Ctrl-C in the
    block is raised once it ends."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask"):
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
    else:
        yield


class Interrupts:
    """Ctrl-C during a long command, made dependable.

    Python's default handler raises KeyboardInterrupt wherever the main thread happens to
    be, and where that is a weakref callback or a ``__del__`` (an import's module-lock
    callback was seen) the exception is printed as "Exception ignored" and dropped: the
    command went on as if nothing had happened. Here the handler records the signal, and the
    command raises KeyboardInterrupt itself at points it checks (:meth:`check`; ``ssrl
    generate``: every result, and every 50 ms while it waits on its workers). With
    ``raise_at_once`` (a command doing the work in its main thread) the handler also raises
    at once, as Python's would; the record still catches one that got dropped.

    Only when SIGINT has Python's default handler, in the main thread; otherwise nothing
    is installed and :meth:`check` never fires."""

    def __init__(self, raise_at_once: bool):
        self.hit = False
        self._raise_at_once = raise_at_once
        self._holding = 0
        self._old = None

    def __enter__(self) -> Interrupts:  # noqa: PYI034 (Python 3.10 has no typing.Self)
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None

    def _handler(self, signum, frame) -> None:
        self.hit = True
        if self._raise_at_once and not self._holding:
            raise KeyboardInterrupt

    def check(self) -> None:
        if self.hit and not self._holding:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self):
        """No KeyboardInterrupt inside (a Ctrl-C is only recorded)."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
