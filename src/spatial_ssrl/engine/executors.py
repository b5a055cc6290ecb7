"""Where batches run: the executor interface and its local implementations.

An executor runs a function on each of a list of arguments (``map``) and yields the results
in the order of the arguments, however the work was spread; the run's driver gives it
:func:`.worker.run_batch` with each round's batches (and, at the end, verl's re-indexing).
Two implementations: :class:`ProcessPool` (local worker processes, a plain
``concurrent.futures`` pool) and :class:`.ray_engine.RayData` (Ray Data tasks);
:class:`InProcess` runs everything in the calling process (one worker).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

_END = object()
POLL_SECONDS = 0.05
"""How often a waiting driver calls ``check`` (a Ctrl-C is acted on within this)."""


class Executor:
    """Runs work somewhere; :meth:`map` yields results in argument order."""

    name = "local"
    workers = 1

    def map(self, fn: Callable, args: list, check: Callable[[], None]) -> Iterator:
        """``fn(a)`` for each of ``args``, in order; ``check()`` is called at least every
        :data:`POLL_SECONDS` while waiting (it raises to stop the run)."""
        raise NotImplementedError

    def close(self) -> None:
        """The run is done: let the workers go."""

    def terminate(self) -> None:
        """Stop now: when this returns nothing of this executor still writes."""


class InProcess(Executor):
    def map(self, fn, args, check):
        for a in args:
            check()
            yield fn(a)


def _ignore_sigint() -> None:
    """A worker leaves Ctrl-C to the parent (it stops the workers itself); SIGINT was blocked
    from before the fork, so none can arrive before this."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _noop() -> None:
    return None


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
    """``workers`` local processes (``concurrent.futures.ProcessPoolExecutor``). Every
    argument is submitted at once; the pool hands them to its workers in order, so a
    worker's next batch is usually the one after its last (the sources it has loaded)."""

    def __init__(self, workers: int, context=None):
        from .worker import release_free_heap

        self.workers = max(1, int(workers))
        release_free_heap()  # the workers start without the heap this process freed
        main = threading.current_thread() is threading.main_thread()
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if main else None
        try:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context or default_context(),
                                             initializer=_ignore_sigint)
            # start every worker now, inside the blocked window (fork starts them all at the
            # first call; the other methods one per call while none is idle)
            for f in [self._pool.submit(_noop) for _ in range(self.workers)]:
                f.result()
        except BaseException:
            if old is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
            self.terminate()
            raise
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a Ctrl-C held meanwhile lands here

    def map(self, fn, args, check, ahead: int | None = None):
        """As :meth:`Executor.map`; ``args`` may be endless when ``ahead`` bounds how many
        calls are submitted before their results are taken."""
        todo, pending = iter(args), deque()
        try:
            while True:
                while ahead is None or len(pending) < ahead:
                    a = next(todo, _END)
                    if a is _END:
                        break
                    pending.append(self._pool.submit(fn, a))
                if not pending:
                    return
                fut = pending.popleft()
                while not wait([fut], POLL_SECONDS, FIRST_COMPLETED)[0]:
                    check()
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    raise WorkerDied("a worker process died (killed, or out of memory)") from None
        finally:
            for fut in pending:
                fut.cancel()

    def pids(self) -> list[int]:
        return [p.pid for p in getattr(self._pool, "_processes", {}).values()]

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def terminate(self, timeout: float = 1.0) -> None:
        """SIGTERM to every worker, SIGKILL to any alive after ``timeout``; waits on no lock."""
        pool = getattr(self, "_pool", None)
        if pool is None:
            return
        procs = list((getattr(pool, "_processes", None) or {}).values())
        with contextlib.suppress(Exception):
            pool.shutdown(wait=False, cancel_futures=True)
        for kill in (False, True):
            for p in procs:
                with contextlib.suppress(OSError, ValueError):
                    if p.exitcode is None:
                        p.kill() if kill else p.terminate()
            deadline = time.monotonic() + timeout
            for p in procs:
                with contextlib.suppress(OSError, ValueError, AssertionError):
                    p.join(max(0.0, deadline - time.monotonic()))
            if all(p.exitcode is not None for p in procs):
                break
