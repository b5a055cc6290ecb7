"""The canonical format: every field a sample has, one row per sample.

Columns: id, task, variant, images, problem, answer, answer_type, options, source,
depth_source (the depth file of RGB-D samples, else null), meta (a JSON string holding every
parameter needed to re-derive the answer).
"""

from __future__ import annotations

import pyarrow as pa

from .base import IMAGE_LIST, IMAGE_STRUCT, STRING, image_cells
from .encoded import EncodedSample

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("task", pa.string()),
        ("variant", pa.string()),
        ("images", pa.list_(IMAGE_STRUCT)),
        ("problem", pa.string()),
        ("answer", pa.string()),
        ("answer_type", pa.string()),
        ("options", pa.list_(pa.string())),
        ("source", pa.string()),
        ("depth_source", pa.string()),
        ("meta", pa.string()),
    ]
)
FEATURES = {
    "id": STRING,
    "task": STRING,
    "variant": STRING,
    "images": IMAGE_LIST,
    "problem": STRING,
    "answer": STRING,
    "answer_type": STRING,
    "options": [STRING],
    "source": STRING,
    "depth_source": STRING,
    "meta": STRING,
}


def to_row(s: EncodedSample, index: int) -> dict:
    return {
        "id": s.id,
        "task": s.task,
        "variant": s.variant,
        "images": image_cells(s),
        "problem": s.problem,
        "answer": s.answer,
        "answer_type": s.answer_type,
        "options": s.options,
        "source": s.source,
        "depth_source": s.depth_source,
        "meta": s.meta_json,
    }
