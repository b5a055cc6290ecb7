"""Optional dependencies of the training and evaluation tests."""

from __future__ import annotations

import importlib
import os

import pytest


def require(module: str):
    """Import ``module``; skip when it is missing, except under CI (``CI`` set), where a
    missing training dependency must fail the run rather than skip the tests."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def run_cli(*args, ok: bool = True):
    """Run ``ssrl ARGS`` in-process (paths may be Path objects); with ``ok``, assert exit 0."""
    from click.testing import CliRunner

    from spatial_ssrl.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def edit_rows(folder):
    """Every row of a dataset folder's parquet shards, in order, and a ``save()`` that writes
    each shard back with its own rows (changed in place) and schema. A run writes one shard
    per part of its plan, so a test must not assume one shard."""
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    shards = sorted((Path(folder) / "data").glob("*.parquet"))
    tables = [pq.read_table(s) for s in shards]
    rows = [r for t in tables for r in t.to_pylist()]

    def save() -> None:
        start = 0
        for shard, table in zip(shards, tables):
            pq.write_table(pa.Table.from_pylist(rows[start:start + table.num_rows], schema=table.schema), shard)
            start += table.num_rows

    return rows, save


def assert_validate_catches(folder, report, tampered: dict[str, str]) -> None:
    """``ssrl validate FOLDER`` fails exactly the samples in ``tampered`` (id -> a phrase its
    reason must hold), writing its report to ``report``."""
    import json

    res = run_cli("validate", folder, "--out", report, ok=False)
    assert res.exit_code == 1, res.output
    with open(report, encoding="utf-8") as fh:
        failed = {f["id"]: f["reason"] for f in json.load(fh)["failures"]}
    assert set(failed) == set(tampered), failed
    for sid, why in tampered.items():
        assert why in failed[sid], (sid, failed[sid])
