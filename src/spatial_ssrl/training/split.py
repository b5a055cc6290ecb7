"""Held-out splits by source image (``ssrl split``).

Every sample names the input it was made from (``source``). Sources, not rows, are dealt
to the splits: the unique sources are ordered by a seeded hash and the first
``round(test_fraction * n)`` go to ``test``, the next ``round(coldstart_fraction * n)`` to
``coldstart``, the rest to ``train`` (at least one source per requested split whenever
there are enough sources). No source is ever in two splits, so a model is never validated
on crops, flips or depth questions of an image it trained on (the public code validates on
its first training rows).

The dataset is split in place and in its own format: parquet shards become
``data/<split>-XXXXX-of-YYYYY.parquet`` (the naming ``datasets.load_dataset`` reads as
splits), llamafactory's ``train.jsonl`` becomes ``train.jsonl`` + ``test.jsonl`` (+
``coldstart.jsonl``) over the same ``images/``. New files are written under temporary
names first; the old shards are swapped out only when every new one is complete, and only
files the manifest lists (or our own shard names) are ever removed. Re-splitting a split
dataset re-deals all its rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass

from ..readers import DatasetError, open_dataset
from ..readers.dataset import SHARD_NAME
from ..writers.base import atomic_write_json

SPLIT_NAMES = ("train", "test", "coldstart")
TMP_DATA = ".tmp-split-data"
OLD_DATA = ".tmp-old-data"


class SplitError(ValueError):
    """The dataset cannot be split as asked (the message says why)."""


@dataclass
class SplitResult:
    rows: dict[str, int]
    sources: dict[str, int]
    files: list[str]


def _source_key(seed: int, source: str) -> str:
    return hashlib.sha256(f"{seed}\0{source}".encode("utf-8", "surrogateescape")).hexdigest()


def assign_sources(sources: list[str], test_fraction: float, coldstart_fraction: float = 0.0,
                   seed: int = 0) -> dict[str, str]:
    """source -> split name. Deterministic in (sources, fractions, seed), independent of order."""
    for name, f in (("test", test_fraction), ("coldstart", coldstart_fraction)):
        if not 0.0 <= f < 1.0:
            raise SplitError(f"--{name}-fraction must be in [0, 1), got {f}")
    if test_fraction + coldstart_fraction >= 1.0:
        raise SplitError("test and coldstart fractions leave nothing for train")
    unique = sorted(set(sources), key=lambda s: _source_key(seed, s))
    n = len(unique)
    wanted = [f for f in (test_fraction, coldstart_fraction) if f > 0]
    if n < len(wanted) + 1:
        raise SplitError(f"the dataset has {n} source image(s): too few to hold out any by source "
                         f"(need at least {len(wanted) + 1})")

    def count(f: float) -> int:
        return 0 if f <= 0 else max(1, round(f * n))

    n_test, n_cold = count(test_fraction), count(coldstart_fraction)
    while n_test + n_cold > n - 1:  # keep at least one source for train
        if n_cold > 1 and n_cold >= n_test:
            n_cold -= 1
        elif n_test > 1:
            n_test -= 1
        else:
            break
    out = {}
    for i, s in enumerate(unique):
        out[s] = "test" if i < n_test else ("coldstart" if i < n_test + n_cold else "train")
    return out


def _row_source(fmt: str, row: dict) -> str | None:
    if fmt == "verl":
        info = row.get("extra_info") or {}
        return info.get("source")
    return row.get("source")


def split_dataset(dataset_dir: str, test_fraction: float = 0.05, coldstart_fraction: float = 0.0,
                  seed: int = 0, rows_per_shard: int = 1000) -> SplitResult:
    """Split ``dataset_dir`` in place by source image; returns rows and sources per split."""
    _recover(dataset_dir)
    try:
        reader = open_dataset(dataset_dir)
    except DatasetError as exc:
        raise SplitError(str(exc)) from None
    index = reader.index()
    if not index:
        raise SplitError(f"{dataset_dir} holds no samples")
    missing = sum(1 for r in index if not r.source)
    if missing:
        raise SplitError(
            f"{missing} of {len(index)} samples in {dataset_dir} carry no source image (datasets written "
            "before spatial-ssrl 0.1 lack it in the trl/easyr1/verl formats); regenerate the dataset")
    assignment = assign_sources([r.source for r in index], test_fraction, coldstart_fraction, seed)
    if reader.format == "llamafactory":
        files, rows = _split_jsonl(reader, assignment)
    else:
        files, rows = _split_parquet(reader, assignment, rows_per_shard)
    sources = Counter(assignment.values())
    _update_manifest(reader, files, rows, dict(sources), test_fraction, coldstart_fraction, seed)
    return SplitResult(rows=dict(rows), sources=dict(sources), files=files)


def _recover(dataset_dir: str) -> None:
    """Finish or undo a swap that was interrupted between its two renames."""
    data, old, tmp = (os.path.join(dataset_dir, n) for n in ("data", OLD_DATA, TMP_DATA))
    if os.path.isdir(old) and not os.path.exists(data):
        os.replace(old, data)
    if os.path.isdir(tmp):
        _remove_own_tree(tmp)
    if os.path.isdir(old):
        _remove_own_tree(old)


def _own_shard(name: str) -> bool:
    """Our shard names: ``<split>-XXXXX-of-YYYYY.parquet`` and ``.tmp-*.parquet``."""
    return bool(SHARD_NAME.match(name)) or (name.startswith(".tmp-") and name.endswith(".parquet"))


def _remove_own_tree(path: str) -> None:
    """Remove a data folder made of our shard files only; anything else stays where it is."""
    for name in os.listdir(path):
        if _own_shard(name):
            os.unlink(os.path.join(path, name))
    try:
        os.rmdir(path)
    except OSError:
        pass  # something not ours is left inside: keep the folder


class _ShardSink:
    """Rows of one split, written as shards of at most ``rows_per_shard`` rows under
    temporary names inside ``folder``."""

    def __init__(self, split: str, folder: str, schema, rows_per_shard: int):
        self.split, self.folder, self.schema, self.limit = split, folder, schema, rows_per_shard
        self.paths: list[str] = []
        self._writer = None
        self._rows = 0

    def write(self, table) -> None:
        import pyarrow.parquet as pq

        offset = 0
        while offset < table.num_rows:
            if self._writer is None:
                path = os.path.join(self.folder, f".tmp-{self.split}-{len(self.paths):05d}.parquet")
                self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
                self._rows = 0
                self.paths.append(path)
            take = min(self.limit - self._rows, table.num_rows - offset)
            self._writer.write_table(table.slice(offset, take))
            self._rows += take
            offset += take
            if self._rows >= self.limit:
                self.close()

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()


def _verl_split_field(table, split: str):
    """verl rows name their split in ``extra_info.split``: make it the one they now belong to."""
    import pyarrow as pa

    i = table.schema.get_field_index("extra_info")
    col = table.column(i).combine_chunks()
    names = [col.type.field(k).name for k in range(col.type.num_fields)]
    if "split" not in names:
        return table
    children = [col.field(k) for k in range(col.type.num_fields)]
    children[names.index("split")] = pa.array([split] * len(col), pa.string())
    new = pa.StructArray.from_arrays(children, fields=list(col.type), mask=col.is_null())
    return table.set_column(i, table.schema.field(i), new)


def _split_parquet(reader, assignment: dict[str, str], rows_per_shard: int):
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = os.path.join(reader.dir, "data")
    foreign = [n for n in os.listdir(data) if not _own_shard(n)]
    if foreign:
        raise SplitError(f"{data} holds files this program did not write ({', '.join(sorted(foreign)[:3])}); "
                         "move them out before splitting")
    tmp = os.path.join(reader.dir, TMP_DATA)
    os.makedirs(tmp, exist_ok=True)
    rows: Counter = Counter()
    sinks: dict[str, _ShardSink] = {}
    src_col = "extra_info" if reader.format == "verl" else "source"
    try:
        for path in reader.files():
            pf = pq.ParquetFile(path, buffer_size=1 << 22)
            schema = pf.schema_arrow
            for batch in pf.iter_batches(batch_size=64):
                table = pa.Table.from_batches([batch], schema=schema)
                dest = [assignment[_row_source(reader.format, {src_col: v})]
                        for v in table.column(src_col).to_pylist()]
                for split in sorted(set(dest)):
                    part = table.filter(pa.array([d == split for d in dest]))
                    if reader.format == "verl":
                        part = _verl_split_field(part, split)
                    sink = sinks.setdefault(split, _ShardSink(split, tmp, schema, rows_per_shard))
                    sink.write(part)
                    rows[split] += part.num_rows
        final: list[str] = []
        for split, sink in sorted(sinks.items()):
            sink.close()
            for i, p in enumerate(sink.paths):
                name = f"{split}-{i:05d}-of-{len(sink.paths):05d}.parquet"
                os.replace(p, os.path.join(tmp, name))
                final.append(os.path.join("data", name))
    except BaseException:
        for sink in sinks.values():
            sink.close()
        _remove_own_tree(tmp)
        raise
    old = os.path.join(reader.dir, OLD_DATA)
    os.replace(data, old)
    os.replace(tmp, data)
    _remove_own_tree(old)
    return sorted(final), rows


def _split_jsonl(reader, assignment: dict[str, str]):
    outs: dict[str, list[str]] = {}
    rows: Counter = Counter()
    for path in reader.files():
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                rec = json.loads(line)
                split = assignment[rec.get("source")]
                outs.setdefault(split, []).append(line if line.endswith("\n") else line + "\n")
                rows[split] += 1
    tmp_paths = {}
    try:
        for split, lines in outs.items():
            tmp = os.path.join(reader.dir, f".tmp-split-{split}.jsonl")
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.writelines(lines)
            tmp_paths[split] = tmp
    except BaseException:
        for p in tmp_paths.values():
            if os.path.exists(p):
                os.unlink(p)
        raise
    # train last: until it is replaced, the old full train.jsonl is what a reader sees
    for split in sorted(tmp_paths, key=lambda s: s == "train"):
        os.replace(tmp_paths[split], os.path.join(reader.dir, f"{split}.jsonl"))
    for split in SPLIT_NAMES:
        stale = os.path.join(reader.dir, f"{split}.jsonl")
        if split not in tmp_paths and os.path.isfile(stale) and split != "train":
            os.unlink(stale)
    return sorted(f"{s}.jsonl" for s in tmp_paths), rows


def _update_manifest(reader, files, rows, sources, test_fraction, coldstart_fraction, seed) -> None:
    manifest = dict(reader.manifest or {})
    kept = [f for f in manifest.get("files", []) if not (f.startswith("data/") or f.endswith(".jsonl"))]
    manifest["files"] = sorted(kept + list(files))
    manifest["splits"] = {
        "by": "source",
        "seed": seed,
        "test_fraction": test_fraction,
        "coldstart_fraction": coldstart_fraction,
        "rows": dict(sorted(rows.items())),
        "sources": dict(sorted(sources.items())),
    }
    atomic_write_json(os.path.join(reader.dir, "manifest.json"), manifest)
