from __future__ import annotations

from pixels import read_rows

from spatial_ssrl.engine import GenerateConfig, parse_mix, run_generation
from spatial_ssrl.seeding import sample_seed
from spatial_ssrl.sources import builtin_photos


def _run(tmp_path, name, **kw):
    out = tmp_path / name
    cfg = GenerateConfig(num=kw.pop("num", 24), mix=parse_mix(kw.pop("tasks", None)), **kw)
    result = run_generation(builtin_photos(), str(out), cfg)
    return read_rows(out), result.manifest


def test_worker_count_does_not_change_content(tmp_path):
    one, m1 = _run(tmp_path, "w1", seed=5, workers=1)
    two, m2 = _run(tmp_path, "w2", seed=5, workers=2)
    assert len(one) == len(two) == 24
    assert one == two  # every column, image bytes included, in the same order
    assert m1["counts"] == m2["counts"] and m1["rejections"] == m2["rejections"]


def test_seed_changes_content(tmp_path):
    a, _ = _run(tmp_path, "s1", seed=1, workers=1, num=8)
    b, _ = _run(tmp_path, "s2", seed=2, workers=1, num=8)
    assert [r["id"] for r in a] != [r["id"] for r in b]
    assert [r["images"][0]["bytes"] for r in a] != [r["images"][0]["bytes"] for r in b]


def test_sample_seed_is_a_function_of_identity():
    s = sample_seed(0, "skimage/astronaut.png", "shuffle/2x2", 3)
    assert s == sample_seed(0, "skimage/astronaut.png", "shuffle/2x2", 3)
    others = {
        sample_seed(1, "skimage/astronaut.png", "shuffle/2x2", 3),
        sample_seed(0, "skimage/coffee.png", "shuffle/2x2", 3),
        sample_seed(0, "skimage/astronaut.png", "flip/2x2", 3),
        sample_seed(0, "skimage/astronaut.png", "shuffle/2x2", 4),
    }
    assert s not in others and len(others) == 4


def test_requested_mix_is_met_exactly(tmp_path):
    rows, m = _run(tmp_path, "mix", seed=0, workers=1, num=20, tasks="shuffle:1x3=1,crop=3")
    assert m["num_written"] == 20
    assert m["counts"] == {"crop": {"4-options": 15}, "shuffle": {"1x3": 5}}
    assert sum(r["task"] == "crop" for r in rows) == 15
    assert len({r["id"] for r in rows}) == 20


def test_parts_close_on_row_count_and_on_bytes(tmp_path, monkeypatch):
    """A batch's part is cut into pieces of at most ``rows_per_shard`` rows or
    MAX_SHARD_BYTES of images, and into row groups of at most ROWS_PER_GROUP rows or
    MAX_GROUP_BYTES of images; every piece is under its part name when close() returns."""
    import pyarrow.parquet as pq

    from spatial_ssrl.writers import parts
    from spatial_ssrl.writers.encoded import EncodedSample

    def sample(i):
        return EncodedSample(id=f"s{i}", task="flip", variant="2x2", images=[bytes(1000)], image_names=[f"s{i}.png"],
                             problem="<image>q", answer="0-0", answer_type="flip", options=None, source="x", meta={})

    def write(folder, n, **kw):
        (folder / "data").mkdir(parents=True)
        w = parts.PartWriter("canonical", str(folder), "r01-000007", **kw)
        for i in range(n):
            w.add(sample(i))
        w.close()
        assert sorted(p.name for p in (folder / "data").iterdir()) == [rel.split("/")[1] for rel, _ in w.parts]
        return [(rel, rows, pq.ParquetFile(folder / rel).metadata) for rel, rows in w.parts]

    got = write(tmp_path / "a", 10, rows_per_shard=4)
    assert [rows for _, rows, _ in got] == [meta.num_rows for _, _, meta in got] == [4, 4, 2]
    assert [rel for rel, _, _ in got] == [f"data/.tmp-part-r01-000007-00{i}.parquet" for i in range(3)]
    monkeypatch.setattr(parts, "MAX_SHARD_BYTES", 2500)
    monkeypatch.setattr(parts, "MAX_GROUP_BYTES", 1500)
    got = write(tmp_path / "b", 7, rows_per_shard=100)
    assert [rows for _, rows, _ in got] == [3, 3, 1]
    assert [[meta.row_group(g).num_rows for g in range(meta.num_row_groups)] for _, _, meta in got] == [[2, 1], [2, 1], [1]]
