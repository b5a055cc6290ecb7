"""Writers: turn encoded samples into files, one module per output format, and the part
writer (:mod:`.parts`) that every engine writes them with."""

from __future__ import annotations

from .encoded import EncodedSample, encode_png, encode_sample

FORMATS = ("canonical", "trl", "easyr1", "verl", "llamafactory")


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}; available: {', '.join(FORMATS)}")
    return name


__all__ = ["FORMATS", "EncodedSample", "check_format", "encode_png", "encode_sample"]
