"""``spatial_ssrl.readers``: every output format read back as the canonical records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from spatial_ssrl.cli import main
from spatial_ssrl.readers import FORMATS, DatasetError, open_dataset

WRITTEN = ("canonical", "trl", "easyr1", "verl", "llamafactory")  # what `ssrl generate` writes
SHARD = "train-00000-of-00001.parquet"


def generate(out: Path, fmt: str) -> Path:
    res = CliRunner().invoke(main, ["generate", "--out", str(out), "--format", fmt, "--seed", "0",
                                    "--num", "12", "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("readers")
    return {fmt: generate(root / fmt, fmt) for fmt in WRITTEN}


def _canonical_view(rec) -> tuple:
    return (rec.id, rec.task, rec.variant, rec.split, rec.answer, rec.answer_type, rec.options,
            rec.source, rec.problem, rec.images)


@pytest.mark.parametrize("fmt", WRITTEN)
def test_every_format_reads_as_the_canonical_dataset(datasets, fmt, tmp_path):
    assert set(WRITTEN) <= set(FORMATS)
    want = [_canonical_view(r) for r in open_dataset(str(datasets["canonical"])).records()]
    assert len(want) == 12 and all(images and None not in images for *_, images in want)
    assert all("MUST BE put in" not in problem for *_, problem, _images in want)
    reader = open_dataset(str(datasets[fmt]))
    assert reader.format == fmt and reader.format_from_manifest
    assert list(reader.splits) == ["train"]
    assert [_canonical_view(r) for r in reader.records()] == want
    # without images: the same records, no image bytes read
    index = reader.index()
    assert [r.id for r in index] == [w[0] for w in want] and not any(r.images for r in index)
    # positions pick rows in storage order
    assert [r.id for r in reader.records(positions=[7, 2])] == [want[2][0], want[7][0]]
    # without a manifest the format is told from the files
    copy = tmp_path / "copy"
    shutil.copytree(datasets[fmt], copy)
    (copy / "manifest.json").unlink()
    bare = open_dataset(str(copy))
    assert bare.format == fmt and not bare.format_from_manifest and bare.manifest is None
    assert [_canonical_view(r) for r in bare.records()] == want


def test_split_names_from_file_names(datasets, tmp_path):
    table = pq.read_table(datasets["canonical"] / "data" / SHARD)
    (tmp_path / "data").mkdir()
    pq.write_table(table.slice(0, 9), tmp_path / "data" / SHARD)
    pq.write_table(table.slice(9), tmp_path / "data" / "test-00000-of-00001.parquet")
    reader = open_dataset(str(tmp_path))
    assert sorted(reader.splits) == ["test", "train"]
    ids = table.column("id").to_pylist()
    assert [(r.split, r.id) for r in reader.index("test")] == [("test", i) for i in ids[9:]]
    assert [r.id for r in reader.index("train")] == ids[:9]
    assert [r.split for r in reader.index()] == ["test"] * 3 + ["train"] * 9  # splits in name order
    with pytest.raises(DatasetError, match="no 'coldstart' split"):
        reader.index("coldstart")

    lf = tmp_path / "lf"
    shutil.copytree(datasets["llamafactory"], lf)
    lines = (lf / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (lf / "train.jsonl").write_text("".join(lines[:9]), encoding="utf-8")
    (lf / "test.jsonl").write_text("".join(lines[9:]), encoding="utf-8")
    reader = open_dataset(str(lf))
    assert sorted(reader.splits) == ["test", "train"]
    assert [r.id for r in reader.index("test")] == ids[9:]
    assert all(r.images and None not in r.images for r in reader.records("test"))


def test_no_dataset(tmp_path):
    with pytest.raises(DatasetError, match="holds no dataset") as err:
        open_dataset(str(tmp_path))
    assert "data/*.parquet" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(str(tmp_path / "nope"))


def test_parquet_missing_a_needed_column(datasets, tmp_path):
    table = pq.read_table(datasets["canonical"] / "data" / SHARD)
    (tmp_path / "data").mkdir()
    pq.write_table(table.drop(["answer"]), tmp_path / "data" / SHARD)
    with pytest.raises(DatasetError, match=rf"data/{SHARD} lacks column\(s\) answer .*canonical") as err:
        open_dataset(str(tmp_path))
    assert "inferred from its columns" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "easyr1"}))
    with pytest.raises(DatasetError, match=r"lacks column\(s\) answer .*easyr1 format \(as manifest.json says"):
        open_dataset(str(tmp_path))
