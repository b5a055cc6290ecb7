"""Where batches run: the executor interface and its local implementations.

An executor runs a function on each of a list of arguments (``map``) and yields the results
in the order of the arguments, however the work was spread; the run's driver gives it
:func:`.worker.run_batch` with each round's batches (and, at the end, verl's re-indexing).
Two implementations: :class:`ProcessPool` (local worker processes, ``multiprocessing``
with fork, or forkserver where there is no fork) and :class:`.ray_engine.RayData` (Ray Data tasks);
:class:`InProcess` runs everything in the calling process (one worker).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait

AHEAD_PER_WORKER = 4
"""How far past the result due next a free worker may look for work of its own."""
POLL_SECONDS = 0.05
"""How often a waiting driver calls ``check`` (a Ctrl-C is acted on within this)."""


class Executor:
    """Runs work somewhere; :meth:`map` yields results in argument order."""

    name = "local"
    workers = 1

    def map(self, fn: Callable, args: list, check: Callable[[], None], key=None) -> Iterator:
        """``fn(a)`` for each of ``args``, in order; ``check()`` is called at least every
        :data:`POLL_SECONDS` while waiting (it raises to stop the run). ``key(a)``, where
        given, says what ``a`` starts and ends with loading (its first and last source): an
        executor that can may give ``a`` to the worker that loaded its start last."""
        raise NotImplementedError

    def close(self) -> None:
        """The run is done: let the workers go."""

    def terminate(self) -> None:
        """Stop now: when this returns nothing of this executor still writes."""


class InProcess(Executor):
    def map(self, fn, args, check, key=None):
        for a in args:
            check()
            yield fn(a)


def _serve(conn) -> None:
    """A worker: ``(fn, arg)`` in, ``(True, fn(arg))`` or ``(False, error)`` out, until
    ``None`` or the parent is gone. Ctrl-C is the parent's to act on (SIGINT was blocked
    from before the fork until it is ignored here)."""
    import pickle

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if msg is None:
            return
        fn, arg = msg
        del msg
        try:
            reply = (True, fn(arg))
        except Exception as exc:  # noqa: BLE001 - a bug in a task: the parent raises it
            reply = (False, exc)
        del arg
        try:
            conn.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            conn.send((False, RuntimeError(f"a worker's result could not be sent back: {exc!r}")))
        except (EOFError, OSError):
            return
        del reply


def default_context():
    """fork on Linux (the workers inherit what the parent loaded: the procedural scenes'
    textures, plugin tasks); forkserver elsewhere where there is one, else spawn."""
    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and "fork" in methods:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class WorkerDied(RuntimeError):
    pass


class ProcessPool(Executor):
    """``workers`` local processes (``multiprocessing``), each with a pipe of its own and at
    most one call at a time: a worker that is free takes the next argument, so a run's last
    batches are shared as evenly as they can be. No lock or queue is shared between two
    processes and no thread runs in the parent, so stopping (SIGTERM, then SIGKILL after
    1 s) waits on nothing a killed worker could have left half done."""

    def __init__(self, workers: int, context=None):
        ctx = context or default_context()
        self.workers = max(1, int(workers))
        self._procs: list = []
        self._conns: list = []
        self._stale: set[int] = set()
        self._last: list = [None] * self.workers  # what each worker's last call ended with
        main = threading.current_thread() is threading.main_thread()
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if main else None
        try:
            for _ in range(self.workers):
                mine, theirs = ctx.Pipe()
                p = ctx.Process(target=_serve, args=(theirs,), name="ssrl-worker", daemon=True)
                self._conns.append(mine)
                try:
                    p.start()
                finally:
                    theirs.close()
                self._procs.append(p)
        except BaseException:
            self.terminate()
            raise
        finally:
            if old is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a Ctrl-C held meanwhile lands here

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def map(self, fn, args, check, key=None, ahead: int | None = None):
        """As :meth:`Executor.map`. A free worker takes, among the next few arguments, the
        first that starts with what it ended with last, else the first that starts with
        nothing another worker has, else the first. ``args`` may be endless when ``ahead``
        bounds how many arguments are handed out past the result due next."""
        todo = iter(enumerate(args))
        running: dict[int, int] = {}  # worker -> the index of the argument it works on
        pending: list = []  # (index, argument, (first, last)) fetched, not handed out yet
        done: dict = {}
        reach = ahead or AHEAD_PER_WORKER * self.workers
        due = 0
        exhausted = False
        try:
            while True:
                while not exhausted and (not pending or pending[-1][0] < due + reach - 1):
                    item = next(todo, None)
                    if item is None:
                        exhausted = True
                    else:
                        pending.append((*item, key(item[1]) if key else (None, None)))
                for w in range(self.workers):
                    if w in running or w in self._stale or not pending:
                        continue
                    pick = self._pick(w, pending, running, due + reach)
                    if pick is None:
                        continue
                    index, arg, keys = pending.pop(pick)
                    self._conns[w].send((fn, arg))
                    running[w] = index
                    self._last[w] = keys[1]
                while due in done:
                    yield done.pop(due)
                    due += 1
                if exhausted and not pending and not running and not done:
                    return
                busy = [*running, *self._stale]
                ready = wait([*(self._conns[w] for w in busy), *(self._procs[w].sentinel for w in busy)],
                             POLL_SECONDS)
                for w in busy:
                    if self._conns[w] in ready:
                        try:
                            ok, value = self._conns[w].recv()
                        except (EOFError, OSError):
                            raise self._died(w) from None
                        if w in self._stale:  # the answer to a call whose map was given up
                            self._stale.discard(w)
                            continue
                        if not ok:
                            running.pop(w)
                            raise value
                        done[running.pop(w)] = value
                    elif self._procs[w].sentinel in ready:
                        raise self._died(w)
                check()
        finally:
            self._stale.update(running)  # their answers, when they come, are nobody's

    def _pick(self, w: int, pending: list, running: dict, limit: int) -> int | None:
        others = {self._last[v] for v in running if v != w}
        first_free = None
        for pos, (index, _arg, (start, _end)) in enumerate(pending):
            if index >= limit:
                break
            if start is not None and start == self._last[w]:
                return pos
            if first_free is None and start not in others:
                first_free = pos
        if first_free is None and pending[0][0] < limit:
            return 0
        return first_free

    def _died(self, w: int) -> WorkerDied:
        p = self._procs[w]
        p.join(0.5)
        return WorkerDied(f"a worker process died (exit code {p.exitcode}: killed, or out of memory?)")

    def close(self, timeout: float = 5.0) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        deadline = time.monotonic() + timeout
        for p in self._procs:
            p.join(max(0.0, deadline - time.monotonic()))
        self.terminate()

    def terminate(self, timeout: float = 1.0) -> None:
        """SIGTERM to every worker, SIGKILL to any alive after ``timeout``; returns when all
        have exited (at most ``2 * timeout``)."""
        for kill in (False, True):
            for p in self._procs:
                with contextlib.suppress(OSError, ValueError):
                    if p.exitcode is None:
                        p.kill() if kill else p.terminate()
            deadline = time.monotonic() + timeout
            for p in self._procs:
                with contextlib.suppress(OSError, ValueError, AssertionError):
                    p.join(max(0.0, deadline - time.monotonic()))
            if all(p.exitcode is not None for p in self._procs):
                break
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()
