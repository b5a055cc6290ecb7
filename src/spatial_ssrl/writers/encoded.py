"""Samples with their images encoded, the form that crosses process boundaries and that
every writer consumes."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..tasks.base import Sample

try:  # the fast exact PNG writer (https://github.com/dofuuz/py-fpng-nb), where a wheel installs
    from fpng import fpng_ext as _fpng_ext
except Exception:  # noqa: BLE001 - ImportError, or a broken build: Pillow does it all
    _fpng_ext = None

DEFAULT_PNG_COMPRESS_LEVEL = 1
DEFAULT_JPEG_QUALITY = 95
IMAGE_FORMATS = ("auto", "png", "jpeg")

#: ``auto``: fpng for what it can take (C-contiguous uint8 HxWx3 / HxWx4) when installed,
#: Pillow otherwise; ``fpng``: the same, but fpng must be installed; ``pillow``: always Pillow
#: (zlib at ``compress_level``: slower, files about 10-30% smaller). Every choice is lossless.
PNG_ENCODERS = ("auto", "fpng", "pillow")
#: The encoder ``encode_png`` uses when none is passed. Read from the environment so that it
#: reaches worker processes too (``SPATIAL_SSRL_PNG_ENCODER=pillow`` for smaller files); code
#: in one process may also assign it.
DEFAULT_PNG_ENCODER = os.environ.get("SPATIAL_SSRL_PNG_ENCODER", "auto").strip().lower() or "auto"
FPNG_AVAILABLE = _fpng_ext is not None


def _fpng_can_take(a: np.ndarray) -> bool:
    return (
        isinstance(a, np.ndarray)
        and a.dtype == np.uint8
        and a.ndim == 3
        and a.shape[2] in (3, 4)
        and a.shape[0] > 0
        and a.shape[1] > 0
        and a.flags.c_contiguous
    )


def png_encoder_for(rgb: np.ndarray, encoder: str | None = None) -> str:
    """``fpng`` or ``pillow``: the encoder ``encode_png(rgb, encoder=encoder)`` will use."""
    enc = DEFAULT_PNG_ENCODER if encoder is None else encoder
    if enc not in PNG_ENCODERS:
        raise ValueError(f"unknown PNG encoder {enc!r}; expected one of {', '.join(PNG_ENCODERS)}")
    if enc == "pillow":
        return "pillow"
    if _fpng_ext is None:
        if enc == "fpng":
            raise ImportError("PNG encoder 'fpng' asked for but the fpng package is not installed")
        return "pillow"
    return "fpng" if _fpng_can_take(rgb) else "pillow"


def encode_png(
    rgb: np.ndarray, compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL, encoder: str | None = None
) -> bytes:
    """Lossless PNG bytes of ``rgb``: decoded, they equal ``rgb`` exactly whatever the encoder.

    fpng (``encoder`` ``auto``/``fpng``, the default where it installs) writes an 8-bit
    RGB/RGBA PNG about 20x faster than Pillow at level 1, with files about 12% (photos) to
    28% (noise) larger, and ignores ``compress_level``; Pillow (``encoder="pillow"``, and the
    way for every other shape/dtype) honours ``compress_level``."""
    if png_encoder_for(rgb, encoder) == "fpng":
        out = _fpng_ext.encode_ndarray(rgb)
        if out:  # fpng answers b"" for what it refuses (e.g. beyond its size limits)
            return bytes(out)
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
    """Encoded files (PNG or JPEG bytes)."""
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
    png_encoder: str | None = None,
) -> EncodedSample:
    """Encode a sample's images as PNG (lossless: the default, so answers stay checkable
    pixel for pixel) or JPEG. ``png_encoder``: see ``encode_png`` (None: ``DEFAULT_PNG_ENCODER``)."""
    if encoding == "png":
        images = [encode_png(im, compress_level, png_encoder) for im in sample.images]
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
