from __future__ import annotations

import pytest

from spatial_ssrl.engine import MixError, allocate, parse_mix


def test_default_mix_follows_paper_counts():
    mix = {e.key: e.weight for e in parse_mix(None)}
    assert mix["flip/2x2"] == 4005 and mix["crop/4-options"] == 20200
    shuffle = {k: v for k, v in mix.items() if k.startswith("shuffle/")}
    assert sum(shuffle.values()) == pytest.approx(16028)
    assert shuffle["shuffle/2x2"] == 4000 and shuffle["shuffle/2x2-masked"] == 4028
    assert shuffle["shuffle/1x3"] + shuffle["shuffle/1x4"] == pytest.approx(4991)
    assert shuffle["shuffle/3x1"] + shuffle["shuffle/4x1"] == pytest.approx(3009)


def test_paper_proportions_at_scale():
    mix = parse_mix(None)
    counts = dict(zip((e.key for e in mix), allocate(40233, mix)))
    assert counts["crop/4-options"] == 20200 and counts["flip/2x2"] == 4005
    assert counts["shuffle/2x2"] == 4000 and counts["shuffle/2x2-masked"] == 4028


def test_weights_and_variants():
    mix = parse_mix("shuffle=0.5,crop=0.5")
    assert sum(e.weight for e in mix if e.task == "shuffle") == pytest.approx(0.5)
    assert [e.key for e in parse_mix("shuffle:3x1,flip")] == ["shuffle/3x1", "flip/2x2"]
    counts = allocate(7, parse_mix("shuffle:2x2=1,flip=1"))
    assert sum(counts) == 7 and abs(counts[0] - counts[1]) == 1


@pytest.mark.parametrize(
    "spec, message",
    [
        ("depthx", "unknown task"),
        ("shuffle=1,flip", "every task"),
        ("shuffle:5y5", "variant"),
        ("shuffle,shuffle", "twice"),
        ("shuffle=0", "zero"),
        ("shuf fle", "cannot read"),
    ],
)
def test_bad_specs_are_named(spec, message):
    with pytest.raises(MixError, match=message):
        parse_mix(spec)


def test_allocate_always_sums():
    mix = parse_mix(None)
    for n in (1, 2, 3, 7, 99, 1001):
        assert sum(allocate(n, mix)) == n


def test_builtin_demo_shows_photos_for_depth_free_tasks(tmp_path):
    """Defect 11: with the built-in inputs the depth-free tasks draw from the real photos
    first; the procedural scenes serve the depth tasks. Read back from the written rows."""
    import glob

    import pyarrow.parquet as pq

    from spatial_ssrl.engine import GenerateConfig, run_generation
    from spatial_ssrl.engine.run import PHOTO_FIRST_QUOTA
    from spatial_ssrl.sources import default_refs

    refs = default_refs()
    photos = {r.id for r in refs if r.kind != "procedural"}
    run_generation(refs, str(tmp_path / "o"), GenerateConfig(num=100, seed=0, mix=parse_mix(None, with_depth=True)))
    rows = pq.read_table(glob.glob(str(tmp_path / "o" / "data" / "*.parquet")), columns=["task", "source"]).to_pylist()
    assert len(rows) == 100
    depth_free = [r for r in rows if r["task"] in ("shuffle", "flip", "crop")]
    assert len(depth_free) >= 40
    assert all(not r["source"].startswith("procedural") for r in depth_free)
    per_photo: dict[str, int] = {}
    for r in depth_free:
        per_photo[r["source"]] = per_photo.get(r["source"], 0) + 1
    assert max(per_photo.values()) <= PHOTO_FIRST_QUOTA
    assert len(per_photo) >= len(photos) - 1  # spread over (nearly) every photo
    procedural = sum(r["source"].startswith("procedural") for r in rows)
    assert procedural <= 55  # was 87 of 100 before
