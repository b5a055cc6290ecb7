"""verl format: ``data_source``, ``prompt`` (chat list), ``images``, ``ability``,
``reward_model`` (``{"style": "rule", "ground_truth": answer}``) and ``extra_info``.

The user message is a plain string with ``<image>`` tokens and the format suffix, which is
what verl's multimodal RLHF dataset splits into image and text parts.
"""

from __future__ import annotations

import pyarrow as pa

from ..prompts import with_format_suffix
from .base import IMAGE_LIST, IMAGE_STRUCT, INT64, STRING, image_cells
from .encoded import EncodedSample

DATA_SOURCE_PREFIX = "spatial_ssrl"
ABILITY = "spatial"

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
REWARD_MODEL = pa.struct([("style", pa.string()), ("ground_truth", pa.string())])
EXTRA_INFO = pa.struct(
    [
        ("split", pa.string()),
        ("index", pa.int64()),
        ("id", pa.string()),
        ("task", pa.string()),
        ("variant", pa.string()),
        ("answer_type", pa.string()),
        ("answer", pa.string()),
        ("options", pa.list_(pa.string())),
        ("source", pa.string()),
    ]
)
SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(MESSAGE)),
        ("images", pa.list_(IMAGE_STRUCT)),
        ("ability", pa.string()),
        ("reward_model", REWARD_MODEL),
        ("extra_info", EXTRA_INFO),
    ]
)
FEATURES = {
    "data_source": STRING,
    "prompt": [{"role": STRING, "content": STRING}],
    "images": IMAGE_LIST,
    "ability": STRING,
    "reward_model": {"style": STRING, "ground_truth": STRING},
    "extra_info": {
        "split": STRING,
        "index": INT64,
        "id": STRING,
        "task": STRING,
        "variant": STRING,
        "answer_type": STRING,
        "answer": STRING,
        "options": [STRING],
        "source": STRING,
    },
}


def to_row(s: EncodedSample, index: int) -> dict:
    return {
        "data_source": f"{DATA_SOURCE_PREFIX}/{s.task}",
        "prompt": [{"role": "user", "content": with_format_suffix(s.problem)}],
        "images": image_cells(s),
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": s.answer},
        "extra_info": {
            "split": "train",
            "index": index,
            "id": s.id,
            "task": s.task,
            "variant": s.variant,
            "answer_type": s.answer_type,
            "answer": s.answer,
            "options": s.options,
            "source": s.source,
        },
    }
