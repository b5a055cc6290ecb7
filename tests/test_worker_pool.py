"""The local executor: a process pool running batches. Results come back in plan
order whatever order the workers finish in, a batch's part is the same bytes whichever
process wrote it, a failure in a worker reaches the driver, and stopping takes at most
about 2 s and leaves no process behind."""

from __future__ import annotations

import hashlib
import os
import signal
import time

import pytest

from spatial_ssrl.engine.executors import InProcess, ProcessPool, WorkerDied
from spatial_ssrl.engine.worker import BatchSpec, Job, WorkerConfig, run_batch
from spatial_ssrl.sources import default_refs
from spatial_ssrl.writers.parts import environment


def _specs(out, n_sources: int, units_per_source: int, fmt: str = "canonical") -> list[BatchSpec]:
    cfg = WorkerConfig(seed=3)
    photos = [r for r in default_refs() if r.kind == "image"][:n_sources]
    assert len(photos) == n_sources
    specs = []
    for b, ref in enumerate(photos):
        units = [(ref, [Job("flip", "2x2", 2 * u + i) for i in range(2)]) for u in range(units_per_source)]
        specs.append(BatchSpec(1, b, units, cfg, fmt, str(out), 1000, environment()))
    return specs


def _digests(out, summaries) -> list:
    return [(s.batch_no, [(rel, n, hashlib.sha256((out / rel).read_bytes()).hexdigest()) for rel, n in s.parts],
             [[r.sample for r in res.results] for res in s.results]) for s in summaries]


def test_batches_in_a_pool_write_the_parts_this_process_writes(tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    for d in (here, there):
        (d / "data").mkdir(parents=True)
    expected = _digests(here, InProcess().map(run_batch, _specs(here, 4, 3), lambda: None))
    pool = ProcessPool(2)
    try:
        assert len(set(pool.pids())) == 2 and os.getpid() not in pool.pids()
        got = _digests(there, pool.map(run_batch, _specs(there, 4, 3), lambda: None))
    finally:
        pool.close()
    assert got == expected  # plan order, the same ids, the same bytes
    assert [b for b, _, _ in got] == [0, 1, 2, 3]


def test_results_come_in_argument_order_whatever_finishes_first():
    pool = ProcessPool(2)
    try:
        got = list(pool.map(time.sleep, [0.4, 0.0, 0.2, 0.0], lambda: None))
        squares = list(pool.map(abs, range(-20, 0), lambda: None, ahead=3))
    finally:
        pool.close()
    assert got == [None] * 4
    assert squares == list(range(20, 0, -1))


def _slow_int(text: str) -> int:
    time.sleep(0.3)
    return int(text)


def test_a_free_worker_takes_the_work_that_continues_its_own():
    """Calls keyed by what they start and end with: consecutive calls of one key stay with
    one worker while another worker has work of its own."""
    pool = ProcessPool(2)
    try:
        args = [("a", 0.3), ("a", 0.3), ("a", 0.3), ("b", 0.3), ("b", 0.3), ("b", 0.3)]
        got = list(pool.map(_pid_after, args, lambda: None, key=lambda a: (a[0], a[0])))
    finally:
        pool.close()
    assert [k for k, _ in got] == ["a", "a", "a", "b", "b", "b"]  # argument order
    assert len({pid for k, pid in got if k == "a"}) == 1 and len({pid for k, pid in got if k == "b"}) == 1


def _pid_after(arg):
    time.sleep(arg[1])
    return arg[0], os.getpid()


def test_a_worker_error_reaches_the_driver():
    pool = ProcessPool(2)
    try:
        with pytest.raises(ValueError):
            list(pool.map(_slow_int, ["1", "not a number"], lambda: None))
        # the pool goes on, and the answer of the call given up ("1") goes to nobody
        assert list(pool.map(int, ["7", "8", "9"], lambda: None)) == [7, 8, 9]
    finally:
        pool.terminate()


def test_a_killed_worker_is_reported_not_waited_for():
    pool = ProcessPool(2)
    try:
        it = pool.map(time.sleep, [30, 30, 30], lambda: None)
        time.sleep(0.5)
        os.kill(pool.pids()[0], signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(WorkerDied):
            next(it)
        assert time.monotonic() - t0 < 5
    finally:
        pool.terminate()


def test_terminate_stops_busy_workers_at_once():
    pool = ProcessPool(2)
    pids = pool.pids()
    checks = []

    def check():
        checks.append(time.monotonic())
        if len(checks) > 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(pool.map(time.sleep, [30, 30, 30], check))
    assert checks[-1] - checks[0] < 1.0  # polled every POLL_SECONDS while waiting
    t0 = time.monotonic()
    pool.terminate()
    assert time.monotonic() - t0 < 2.0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_workers_ignore_sigint():
    """Ctrl-C reaches every process of the terminal's group; only the driver acts on it."""
    pool = ProcessPool(2)
    try:
        for pid in pool.pids():
            os.kill(pid, signal.SIGINT)
        assert list(pool.map(abs, [-1, -2, -3], lambda: None)) == [1, 2, 3]
    finally:
        pool.close()
