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

Committing is journalled: once every new file is written and synced, a journal
(``.tmp-split-journal.json``: the moves, the files to drop, the new manifest) is written and
synced, then carried out; the journal goes last. A split killed before the journal leaves
the dataset as it was (its temporary files are dropped at the next start); one killed after
it is finished by the next ``ssrl split`` (or ``ssrl split`` of any settings) before anything
else. Ctrl-C during the commit waits for it (a few renames). One split per dataset at a time
(the folder lock that ``ssrl generate`` takes too).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import dataclass

from ..locking import FolderBusy, FolderLock
from ..readers import DatasetError, open_dataset
from ..readers.dataset import SHARD_NAME
from ..writers.base import atomic_write_json, fsync_path

SPLIT_NAMES = ("train", "test", "coldstart")
TMP_DATA = ".tmp-split-data"
OLD_DATA = ".tmp-old-data"
JOURNAL = ".tmp-split-journal.json"
_TMP_JSONL = re.compile(r"^\.tmp-split-[A-Za-z0-9_]+\.jsonl$")
# atomic_write_json's temporary names for the files a split writes
_TMP_WRITE = re.compile(r"^\.tmp-[a-z0-9_]{8}(?:manifest\.json|README\.md|\.tmp-split-journal\.json)$")


class SplitInterrupted(KeyboardInterrupt):
    """Ctrl-C; ``message`` says what state the dataset is in."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


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
    if not os.path.isdir(dataset_dir):
        raise SplitError(f"{dataset_dir} is not a folder")
    try:
        with FolderLock(dataset_dir):
            _recover(dataset_dir)
            return _split_locked(dataset_dir, test_fraction, coldstart_fraction, seed, rows_per_shard)
    except FolderBusy as exc:
        raise SplitError(str(exc)) from None
    except OSError as exc:  # disk full, a read-only folder: our temporary files are gone by now
        where = exc.filename or dataset_dir
        raise SplitError(f"cannot write {where}: {exc.strerror or exc}; the dataset is as it was") from None


def _split_locked(dataset_dir, test_fraction, coldstart_fraction, seed, rows_per_shard) -> SplitResult:
    try:
        reader = open_dataset(dataset_dir)
        index = reader.index()
    except DatasetError as exc:
        raise SplitError(str(exc)) from None
    if not index:
        raise SplitError(f"{dataset_dir} holds no samples")
    missing = sum(1 for r in index if not r.source)
    if missing:
        raise SplitError(
            f"{missing} of {len(index)} samples in {dataset_dir} carry no source image (datasets written "
            "before spatial-ssrl 0.1 lack it in the trl/easyr1/verl formats); regenerate the dataset")
    assignment = assign_sources([r.source for r in index], test_fraction, coldstart_fraction, seed)
    if reader.format == "llamafactory":
        files, rows, journal = _split_jsonl(reader, assignment)
    else:
        files, rows, journal = _split_parquet(reader, assignment, rows_per_shard)
    sources = Counter(assignment.values())
    journal["manifest"] = _new_manifest(reader, files, rows, dict(sources), test_fraction, coldstart_fraction, seed)
    _commit(reader.dir, journal)
    return SplitResult(rows=dict(rows), sources=dict(sources), files=files)


def _commit(dataset_dir: str, journal: dict) -> None:
    """Write the journal (synced), carry it out, remove it; a Ctrl-C waits for the end."""
    from ..interrupt import sigint_held

    committed = False
    try:
        with sigint_held():
            atomic_write_json(os.path.join(dataset_dir, JOURNAL), journal, sync=True)
            fsync_path(dataset_dir, directory=True)
            _roll_forward(dataset_dir, journal)
            committed = True
    except KeyboardInterrupt:
        if committed:
            raise SplitInterrupted("interrupted; the split had been committed and is complete") from None
        raise


def _roll_forward(dataset_dir: str, journal: dict) -> None:
    """Carry out a journal; safe to repeat from any point it was stopped at."""
    if journal.get("kind") == "parquet":
        data, old, tmp = (os.path.join(dataset_dir, n) for n in ("data", OLD_DATA, TMP_DATA))
        if os.path.isdir(tmp):
            if os.path.isdir(data):
                if os.path.isdir(old):
                    _remove_own_tree(old)
                os.replace(data, old)
            os.replace(tmp, data)
        if os.path.isdir(old):
            _remove_own_tree(old)
    else:
        for tmp_name, final in journal.get("moves", []):
            src = os.path.join(dataset_dir, tmp_name)
            if os.path.isfile(src):
                os.replace(src, os.path.join(dataset_dir, final))
        for name in journal.get("remove", []):
            path = os.path.join(dataset_dir, name)
            if os.path.isfile(path):
                os.unlink(path)
    fsync_path(dataset_dir, directory=True)
    atomic_write_json(os.path.join(dataset_dir, "manifest.json"), journal["manifest"], sync=True)
    os.unlink(os.path.join(dataset_dir, JOURNAL))
    fsync_path(dataset_dir, directory=True)
    _update_card(dataset_dir, journal["manifest"])


def _update_card(dataset_dir: str, manifest: dict) -> None:
    """Our dataset card, when the folder has one, lists the new splits (a user's is left alone)."""
    from ..writers.card import CARD, is_ours, write_card

    card = os.path.join(dataset_dir, CARD)
    if os.path.isfile(card) and not os.path.islink(card) and is_ours(card):
        try:
            write_card(dataset_dir, manifest)
        except OSError:
            pass  # the split is done; a stale card is all this costs


def _recover(dataset_dir: str) -> None:
    """Finish a split whose journal was written (its new files are complete), or drop the
    temporary files of one stopped before it (the dataset was never touched)."""
    journal_path = os.path.join(dataset_dir, JOURNAL)
    journal = None
    if os.path.isfile(journal_path):
        try:
            with open(journal_path, encoding="utf-8") as fh:
                journal = json.load(fh)
        except (OSError, ValueError):
            journal = None
        if not isinstance(journal, dict) or "manifest" not in journal:  # never written so (atomic, synced)
            raise SplitError(f"{journal_path} is unreadable; an interrupted split cannot be finished safely: "
                             "move the dataset's *.jsonl / data files aside and regenerate it")
        _roll_forward(dataset_dir, journal)
    data, old, tmp = (os.path.join(dataset_dir, n) for n in ("data", OLD_DATA, TMP_DATA))
    if os.path.isdir(old) and not os.path.exists(data):  # a split of an older version, stopped mid-swap
        os.replace(old, data)
    if os.path.isdir(tmp):
        _remove_own_tree(tmp)
    if os.path.isdir(old):
        _remove_own_tree(old)
    for name in os.listdir(dataset_dir):
        if _TMP_JSONL.match(name) or _TMP_WRITE.match(name):
            os.unlink(os.path.join(dataset_dir, name))  # rows of a split stopped before its journal


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


def _read_batches(path: str, root: str):
    """Tables of 64 rows from a shard; a shard that cannot be read (a corrupt page, say) is a
    :class:`SplitError` naming it, before anything is replaced."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path, buffer_size=1 << 22)
        schema = pf.schema_arrow
        batches = pf.iter_batches(batch_size=64)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            yield pa.Table.from_batches([batch], schema=schema)
    except (OSError, pa.ArrowException) as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise SplitError(f"cannot read {os.path.relpath(path, root)}: {why}; the dataset is as it was") from None


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
            for table in _read_batches(path, reader.dir):
                schema = table.schema
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
        for name in os.listdir(tmp):
            fsync_path(os.path.join(tmp, name))
        fsync_path(tmp, directory=True)
    except BaseException:
        for sink in sinks.values():
            try:
                sink.close()
            except OSError:
                pass  # the disk that failed the write fails the close too; the file goes next
        _remove_own_tree(tmp)
        raise
    return sorted(final), rows, {"kind": "parquet"}


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
            tmp_paths[split] = tmp
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.writelines(lines)
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:
        for p in tmp_paths.values():
            if os.path.exists(p):
                os.unlink(p)
        raise
    moves = [[os.path.basename(tmp_paths[s]), f"{s}.jsonl"] for s in sorted(tmp_paths, key=lambda s: s == "train")]
    stale = [f"{s}.jsonl" for s in SPLIT_NAMES
             if s not in tmp_paths and os.path.isfile(os.path.join(reader.dir, f"{s}.jsonl"))]
    return sorted(f"{s}.jsonl" for s in tmp_paths), rows, {"kind": "jsonl", "moves": moves, "remove": stale}


def _new_manifest(reader, files, rows, sources, test_fraction, coldstart_fraction, seed) -> dict:
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
    return manifest
