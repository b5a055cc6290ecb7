"""The same seed, inputs and options give the same files, byte for byte, whatever number of
local worker processes makes them (1: the driver's own process; 2 and 3: a process pool)
and in whatever order the batches finish. Shard boundaries follow the plan alone.

The inputs include a truncated PNG, so a second round deals its slots again; the batches
are small, so there are many parts, several per worker. tests/test_ray_engine.py compares
the Ray engine's files with these."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
from spatial_ssrl.sources import discover_rgbd


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from PIL import Image
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(data, name)()).save(d / f"{name}.png")
    (d / "broken.png").write_bytes((d / "coffee.png").read_bytes()[:300])
    return d


def files_of(out: Path) -> dict[str, str]:
    """Every file of the dataset (the manifest aside, which records times and the worker
    count) with the SHA-256 of its bytes."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != "manifest.json"}


def run(photos: Path, out: Path, fmt: str, workers: int, **kw) -> dict:
    refs, _ = discover_rgbd([str(photos)])
    cfg = GenerateConfig(num=kw.pop("num", 60), seed=3, mix=parse_mix(kw.pop("tasks", None)), format=fmt,
                         workers=workers, batch_samples=kw.pop("batch_samples", 8), **kw)
    return run_generation(refs, str(out), cfg).manifest


@pytest.mark.parametrize("fmt", ["canonical", "verl", "llamafactory"])
def test_files_are_the_same_for_1_2_and_3_workers(photos, tmp_path, fmt):
    manifests = {w: run(photos, tmp_path / f"w{w}", fmt, w) for w in (1, 2, 3)}
    got = {w: files_of(tmp_path / f"w{w}") for w in manifests}
    assert got[1] == got[2] == got[3]
    m = manifests[1]
    assert m["num_written"] == 60 and m["skips"] == {"corrupt_or_truncated": 1}  # a second round
    for w, mw in manifests.items():
        assert mw["options"]["workers"] == w and mw["options"]["batch_samples"] == 8
        for key in ("counts", "rejections", "skips", "unfilled", "sources", "files"):
            assert mw[key] == m[key], (w, key)
    if fmt == "llamafactory":
        ids = [json.loads(line)["id"] for line in (tmp_path / "w1" / "train.jsonl").read_text().splitlines()]
        assert len(ids) == len(set(ids)) == 60
        assert sorted(got[1]) == sorted(["dataset_info.json", "train.jsonl",
                                         *(f"images/{p.name}" for p in (tmp_path / "w1" / "images").iterdir())])
        return
    shards = m["files"]
    assert shards == [f"data/train-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    assert len(shards) >= 60 // 8 and max(pq.read_metadata(tmp_path / "w1" / f).num_rows for f in shards) <= 8
    if fmt == "verl":  # extra_info.index: the row's position in the dataset, across the parts
        index = [r["extra_info"]["index"] for f in shards
                 for r in pq.read_table(tmp_path / "w2" / f, columns=["extra_info"]).to_pylist()]
        assert index == list(range(60))


def test_parquet_metadata_holds_nothing_of_the_run(photos, tmp_path):
    """What a shard's footer records is the same in every run: the writer (created_by), the
    schema with the Hugging Face features, row groups cut by rows and bytes; no path, host,
    process or time."""
    run(photos, tmp_path / "a", "canonical", 2, num=16, tasks="flip")
    f = min((tmp_path / "a" / "data").glob("*.parquet"))
    meta = pq.read_metadata(f)
    raw = f.read_bytes()
    for what in (str(tmp_path), "tmp-part", "tmp-w"):
        assert what.encode() not in raw
    assert set(meta.metadata) == {b"huggingface", b"ARROW:schema"}
    assert meta.created_by.startswith("parquet-cpp-arrow version")


def test_default_batch_size_follows_the_options_alone():
    from spatial_ssrl.engine.run import batch_limit

    def limit(**kw):
        return batch_limit(GenerateConfig(mix=parse_mix(None), **kw))

    assert limit(num=100) == 64 and limit(num=20_000) == 313 and limit(num=81_053) == 1000
    assert limit(num=20_000, workers=7) == 313
    assert limit(num=20_000, rows_per_shard=100) == 100 and limit(num=500, batch_samples=16) == 16
    assert limit(num=500, batch_samples=16, rows_per_shard=5) == 5


def test_a_source_stays_in_one_batch_when_it_fits():
    from types import SimpleNamespace

    from spatial_ssrl.engine.run import cut_batches

    def units(*sources):  # (source id, jobs) per unit
        return [(SimpleNamespace(id=s), [None] * n) for s, n in sources]

    u = units(("a", 8), ("a", 8), ("a", 2), ("b", 8), ("c", 3), ("c", 8), ("d", 8))
    # a (18) and b (8) would pass 20: cut; b and c (11) fit together; d would pass 20: cut
    assert cut_batches(u, 20) == [(0, 3), (3, 6), (6, 7)]
    assert cut_batches(units(("a", 8), ("a", 8)), 4) == [(0, 1), (1, 2)]  # a unit larger than a batch goes alone
    # a source larger than a batch: batches of its own, the last of which the next source joins
    assert cut_batches(units(*[("a", 8)] * 10, ("b", 8), ("b", 8)), 30) == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert cut_batches([], 8) == []
