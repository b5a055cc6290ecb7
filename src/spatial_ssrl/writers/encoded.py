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
DEFAULT_JPEG_QUALITY = 95
IMAGE_FORMATS = ("auto", "png", "jpeg")


def encode_png(rgb: np.ndarray, compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def encode_jpeg(rgb: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def image_encoding(image_format: str, lossless_task: bool) -> str:
    """``png`` or ``jpeg`` for one sample. ``auto`` keeps PNG (lossless) for tasks whose
    answer is checked pixel for pixel (shuffle, flip, crop) and uses JPEG for tasks whose
    answer lives in the depth map (depth, position): re-encoding a photo losslessly there
    would cost ten times the time and bytes and check nothing more."""
    if image_format == "auto":
        return "png" if lossless_task else "jpeg"
    if image_format not in ("png", "jpeg"):
        raise ValueError(f"unknown image format {image_format!r}; expected one of {', '.join(IMAGE_FORMATS)}")
    return image_format


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
    depth_source: str | None = None

    @property
    def meta_json(self) -> str:
        return json.dumps(self.meta, sort_keys=True, separators=(",", ":"))


def encode_sample(
    sample: Sample,
    compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL,
    encoding: str = "png",
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> EncodedSample:
    """Encode a sample's images as PNG (lossless: the default, so answers stay checkable
    pixel for pixel) or JPEG."""
    if encoding == "png":
        images = [encode_png(im, compress_level) for im in sample.images]
        ext = "png"
    elif encoding == "jpeg":
        images = [encode_jpeg(im, jpeg_quality) for im in sample.images]
        ext = "jpg"
    else:
        raise ValueError(f"unknown encoding {encoding!r}")
    names = [f"{sample.id}-{i}.{ext}" for i in range(len(images))]
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
        depth_source=sample.depth_source,
    )
