"""Digests of a written dataset that tests compare across runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq


def parquet_rows(out: Path) -> list[tuple[str, str]]:
    """(id, hash of every column and every image byte) of each row, in dataset order."""
    got = []
    for f in sorted((out / "data").glob("*.parquet")):
        for r in pq.read_table(f).to_pylist():
            h = hashlib.sha256(json.dumps({k: v for k, v in r.items() if k != "images"}, sort_keys=True).encode())
            for im in r["images"]:
                h.update(im["bytes"])
            got.append((r["id"], h.hexdigest()))
    return got
