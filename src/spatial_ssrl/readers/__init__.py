"""Reading datasets back: the inverse of :mod:`spatial_ssrl.writers`.

``open_dataset(folder)`` recognises every format ``ssrl generate`` writes (canonical, trl,
easyr1 and verl parquet shards under ``data/``; llamafactory's ``train.jsonl`` with
``images/``), from ``manifest.json`` when present, else from the files themselves, and
returns a :class:`DatasetReader` whose records all have the canonical shape
(:class:`Record`): id, task, variant, question without the format suffix, answer, answer
type, options, source, meta and the image bytes.

Shards named ``<split>-XXXXX-of-YYYYY.parquet`` belong to split ``<split>`` (``train``,
``test``, ``coldstart`` ...), the naming ``datasets.load_dataset`` also understands;
``train.jsonl`` is the llamafactory ``train`` split and ``<split>.jsonl`` any other.

Only pyarrow and the standard library are used: no torch, no ``datasets``.
Problems a user can cause (no dataset in the folder, a file lacking the columns its format
needs, an unreadable file) raise :class:`DatasetError` with a one-line message.
"""

from __future__ import annotations

from .dataset import (
    FORMATS,
    PARQUET_FORMATS,
    DatasetError,
    DatasetReader,
    Record,
    image_problem,
    open_dataset,
    record_image_problem,
    split_of,
)

__all__ = ["FORMATS", "PARQUET_FORMATS", "DatasetError", "DatasetReader", "Record", "image_problem", "open_dataset",
           "record_image_problem", "split_of"]
