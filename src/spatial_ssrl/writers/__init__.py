"""Writers: turn encoded samples into files, one module per output format."""

from __future__ import annotations

from .base import DatasetWriter
from .canonical import CanonicalWriter
from .easyr1 import EasyR1Writer
from .encoded import EncodedSample, encode_png, encode_sample
from .llamafactory import LlamaFactoryWriter
from .trl import TRLWriter
from .verl import VerlWriter

WRITERS: dict[str, type[DatasetWriter]] = {
    "canonical": CanonicalWriter,
    "trl": TRLWriter,
    "easyr1": EasyR1Writer,
    "verl": VerlWriter,
    "llamafactory": LlamaFactoryWriter,
}


def make_writer(format_name: str, out_dir: str, rows_per_shard: int = 1000) -> DatasetWriter:
    try:
        cls = WRITERS[format_name]
    except KeyError:
        raise ValueError(f"unknown format {format_name!r}; available: {', '.join(WRITERS)}") from None
    return cls(out_dir, rows_per_shard=rows_per_shard)


__all__ = ["WRITERS", "DatasetWriter", "EncodedSample", "encode_png", "encode_sample", "make_writer"]
