"""Samples with their images encoded, the form that crosses process boundaries and that
every writer consumes."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..tasks.base import Sample

DEFAULT_PNG_COMPRESS_LEVEL = 1


def encode_png(rgb: np.ndarray, compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


@dataclass
class EncodedSample:
    id: str
    task: str
    variant: str
    images: list[bytes]
    image_names: list[str]
    problem: str
    answer: str
    answer_type: str
    options: list[str] | None
    source: str
    meta: dict[str, Any]

    @property
    def meta_json(self) -> str:
        return json.dumps(self.meta, sort_keys=True, separators=(",", ":"))


def encode_sample(sample: Sample, compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL) -> EncodedSample:
    """PNG-encode a sample's images (lossless, so every answer stays checkable from pixels)."""
    images = [encode_png(im, compress_level) for im in sample.images]
    names = [f"{sample.id}-{i}.png" for i in range(len(images))]
    return EncodedSample(
        id=sample.id,
        task=sample.task,
        variant=sample.variant,
        images=images,
        image_names=names,
        problem=sample.problem,
        answer=sample.answer,
        answer_type=sample.answer_type,
        options=sample.options,
        source=sample.source,
        meta=sample.meta,
    )
