"""The local worker pool: results in plan order, equal to running the units in this
process, and a source's units kept on the worker that has the source loaded."""

from __future__ import annotations

from collections import defaultdict

from spatial_ssrl.engine.worker import Job, WorkerConfig, WorkerPool, run_unit
from spatial_ssrl.sources import default_refs


def _units(n_sources: int, units_per_source: int) -> list[tuple]:
    cfg = WorkerConfig(seed=3)
    photos = [r for r in default_refs() if r.kind == "image"][:n_sources]
    assert len(photos) == n_sources
    units = []
    for ref in photos:
        for u in range(units_per_source):
            jobs = [Job("flip", "2x2", 2 * u + i) for i in range(2)]
            units.append((ref, jobs, cfg))
    return units


def _digest(res) -> list[tuple]:
    return [(r.job.k, r.sample.id if r.sample else None, tuple(r.sample.images) if r.sample else None)
            for r in res.results]


def test_units_of_a_source_stay_on_one_worker_and_results_keep_plan_order():
    units = _units(n_sources=4, units_per_source=5)
    expected = [(ref.id, _digest(run_unit((ref, jobs, cfg)))) for ref, jobs, cfg in units]
    pool = WorkerPool(2)
    try:
        got = [(res.ref.id, _digest(res)) for res in pool.imap(units, key=lambda a: a[0].id)]
        assigned = dict(pool.assigned)
    finally:
        pool.close()
    assert got == expected  # same samples, same bytes, plan order
    workers_of = defaultdict(set)
    for index, (ref, _jobs, _cfg) in enumerate(units):
        workers_of[ref.id].add(assigned[index])
    # 4 sources of 5 units fit in the look-ahead window: each worker takes a source of its
    # own; only the last source may be shared, by a worker that ran out of sources and
    # helps finish it rather than wait
    split = [s for s, ws in workers_of.items() if len(ws) > 1]
    assert len(split) <= 1, dict(workers_of)
    assert set().union(*workers_of.values()) == {0, 1}  # and both workers had work


def test_without_keys_every_worker_takes_units_in_turn():
    units = _units(n_sources=1, units_per_source=6)
    pool = WorkerPool(2)
    try:
        got = [res.ref.id for res in pool.imap(units)]
        assigned = dict(pool.assigned)
    finally:
        pool.close()
    assert got == [u[0].id for u in units]
    assert set(assigned.values()) == {0, 1}


def test_four_sources_without_keys_are_each_loaded_by_both_workers():
    """The contrast to the first test: without keys the workers take units in turn."""
    units = _units(n_sources=4, units_per_source=5)
    pool = WorkerPool(2)
    try:
        list(pool.imap(units))
        assigned = dict(pool.assigned)
    finally:
        pool.close()
    workers_of = defaultdict(set)
    for index, (ref, _jobs, _cfg) in enumerate(units):
        workers_of[ref.id].add(assigned[index])
    assert sum(len(ws) > 1 for ws in workers_of.values()) >= 3, dict(workers_of)


def test_results_through_a_ring_that_wraps_are_the_bytes_run_unit_gives(monkeypatch):
    """Results taken and dropped one by one (as the writer does) free their ring areas, so a
    ring much smaller than the run carries most of them, wrapping round many times, and
    every image is the one the unit gives in this process."""
    import hashlib

    from spatial_ssrl.engine import wire

    def digest(res) -> list:
        return [(r.job.k, hashlib.sha256(b"".join(r.sample.images)).hexdigest()) for r in res.results]

    units = _units(n_sources=4, units_per_source=5)
    expected = [digest(run_unit(u)) for u in units]
    frame = max(sum(len(b) for r in run_unit(u).results for b in r.sample.images) for u in units)
    monkeypatch.setattr(wire, "RING_BYTES", 3 * frame)  # the forked workers inherit it
    pool = WorkerPool(2)
    try:
        got = []
        for res in pool.imap(units, key=lambda a: a[0].id):
            got.append(digest(res))
            del res
        placed = [r.placed for r in pool._rings]
    finally:
        pool.close()
    assert got == expected
    assert sum(placed) >= len(units) // 2, placed
    total = sum(len(b) for u in units for r in run_unit(u).results for b in r.sample.images)
    assert total > 2 * 3 * frame  # the run is bigger than both rings together


def test_results_too_big_for_the_ring_cross_a_widened_pipe_intact(monkeypatch):
    """With a ring too small for any result, every result crosses the result pipe, which the
    pool has widened from Linux's 64 KB (a multi-megabyte result then takes a few reads, not
    one per 64 KB), and arrives as the bytes the unit gives in this process."""
    import fcntl
    import hashlib

    import pytest

    from spatial_ssrl.engine import wire
    from spatial_ssrl.engine.worker import RESULT_PIPE_BYTES

    if not hasattr(fcntl, "F_GETPIPE_SZ"):
        pytest.skip("pipe sizes are a Linux feature")

    def digest(res) -> list:
        return [(r.job.k, hashlib.sha256(b"".join(r.sample.images)).hexdigest()) for r in res.results]

    units = _units(n_sources=2, units_per_source=3)
    here = [run_unit(u) for u in units]
    expected = [digest(res) for res in here]
    largest = max(sum(len(b) for r in res.results for b in r.sample.images) for res in here)
    assert largest > 64 * 1024  # a result bigger than Linux's default pipe
    monkeypatch.setattr(wire, "RING_BYTES", 1)  # the forked workers inherit it
    pool = WorkerPool(2)
    try:
        sizes = [fcntl.fcntl(c.fileno(), fcntl.F_GETPIPE_SZ) for c in pool._result_conns]
        got = [digest(res) for res in pool.imap(units, key=lambda a: a[0].id)]
        placed = [r.placed for r in pool._rings]
    finally:
        pool.close()
    with open("/proc/sys/fs/pipe-max-size", "rb") as fh:
        limit = int(fh.read())
    assert sizes == [min(RESULT_PIPE_BYTES, max(limit, 64 * 1024))] * 2
    assert sizes[0] > 64 * 1024 or limit <= 64 * 1024
    assert placed == [0, 0]
    assert got == expected
