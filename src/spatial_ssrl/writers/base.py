"""Shared machinery: atomic files and parquet shards with Hugging Face feature metadata."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from .encoded import EncodedSample

# Hugging Face `datasets` feature descriptions, in the list syntax every datasets release
# from 2.x on understands. Stored in the parquet schema metadata so `load_dataset(OUT)`
# decodes image columns to PIL images.
STRING = {"dtype": "string", "_type": "Value"}
INT64 = {"dtype": "int64", "_type": "Value"}
IMAGE_LIST = [{"_type": "Image"}]
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def atomic_write_bytes(path: str, data: bytes) -> None:
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def image_cells(sample: EncodedSample) -> list[dict]:
    return [{"bytes": b, "path": n} for b, n in zip(sample.images, sample.image_names)]


class DatasetWriter:
    """Receives encoded samples in output order; ``close()`` returns the files written."""

    format_name = ""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def add(self, sample: EncodedSample) -> None:
        raise NotImplementedError

    def close(self) -> list[str]:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop partial output (temporary files) after a failure."""


class ParquetShardWriter(DatasetWriter):
    """Rows go to ``data/train-XXXXX-of-YYYYY.parquet``. Each shard is written to a hidden
    temporary file and renamed into place only when the run completes, so a crash never
    leaves a half-written shard under a final name."""

    split = "train"

    def __init__(
        self,
        out_dir: str,
        schema: pa.Schema,
        features: dict,
        to_row: Callable[[EncodedSample, int], dict],
        rows_per_shard: int = 1000,
        max_shard_bytes: int = 512 * 1024 * 1024,
    ):
        super().__init__(out_dir)
        meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
        self.schema = schema.with_metadata(meta)
        self.to_row = to_row
        self.rows_per_shard = max(1, int(rows_per_shard))
        # a shard also closes once its images pass this many bytes, so memory stays bounded
        # whatever the image sizes
        self.max_shard_bytes = max(1, int(max_shard_bytes))
        self._buffer_bytes = 0
        self.data_dir = os.path.join(out_dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self._buffer: list[dict] = []
        self._tmp_shards: list[str] = []
        self._count = 0

    def add(self, sample: EncodedSample) -> None:
        self._buffer.append(self.to_row(sample, self._count))
        self._count += 1
        self._buffer_bytes += sum(len(b) for b in sample.images)
        if len(self._buffer) >= self.rows_per_shard or self._buffer_bytes >= self.max_shard_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = pa.Table.from_pylist(self._buffer, schema=self.schema)
        path = os.path.join(self.data_dir, f".tmp-{self.split}-{len(self._tmp_shards):05d}.parquet")
        pq.write_table(table, path, compression="zstd")
        self._tmp_shards.append(path)
        self._buffer = []
        self._buffer_bytes = 0

    def close(self) -> list[str]:
        self._flush()
        n = len(self._tmp_shards)
        final = []
        for i, tmp in enumerate(self._tmp_shards):
            path = os.path.join(self.data_dir, f"{self.split}-{i:05d}-of-{n:05d}.parquet")
            os.replace(tmp, path)
            final.append(path)
        return final

    def abort(self) -> None:
        for tmp in self._tmp_shards:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self._tmp_shards = []
