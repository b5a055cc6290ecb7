"""Writers: turn encoded samples into files, one module per output format, and the part
writer (:mod:`.parts`) that every engine writes them with."""

from __future__ import annotations

from .encoded import EncodedSample, encode_png, encode_sample

FORMAT_ENTRIES: dict[str, tuple[str, ...]] = {
    "canonical": ("data",),
    "trl": ("data",),
    "easyr1": ("data", "format_prompt.jinja"),
    "verl": ("data",),
    "llamafactory": ("images", "train.jsonl", "dataset_info.json"),
}
"""Each output format and the top-level entries of the folder it writes, besides
``manifest.json`` (the output folder's rules, :mod:`..engine.outdir`, read it)."""
FORMATS = tuple(FORMAT_ENTRIES)


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}; available: {', '.join(FORMATS)}")
    return name


__all__ = ["FORMATS", "FORMAT_ENTRIES", "EncodedSample", "check_format", "encode_png", "encode_sample"]
