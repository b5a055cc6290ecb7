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
