"""TRL format: a conversational ``prompt`` for GRPOTrainer / SFTTrainer.

The user message's content interleaves ``{"type": "image"}`` entries and text parts in the
order of the question's ``<image>`` placeholders; the format suffix ends the last text part.
GRPOTrainer passes every other column (``answer``, ``answer_type``, ``options``, ``task``,
...) to reward functions as keyword arguments; ``options`` (the option texts of position
questions, the letters of crop ones) lets the reward accept ``\\boxed{Left}`` as ``ssrl score``
does. ``source`` names the input image, which ``ssrl split`` keeps within one split.
"""

from __future__ import annotations

import pyarrow as pa

from ..prompts import content_parts
from .base import IMAGE_LIST, IMAGE_STRUCT, STRING, image_cells
from .encoded import EncodedSample

CONTENT = pa.struct([("type", pa.string()), ("text", pa.string())])
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.list_(CONTENT))])
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prompt", pa.list_(MESSAGE)),
        ("images", pa.list_(IMAGE_STRUCT)),
        ("answer", pa.string()),
        ("answer_type", pa.string()),
        ("task", pa.string()),
        ("variant", pa.string()),
        ("options", pa.list_(pa.string())),
        ("source", pa.string()),
    ]
)
FEATURES = {
    "id": STRING,
    "prompt": [{"role": STRING, "content": [{"type": STRING, "text": STRING}]}],
    "images": IMAGE_LIST,
    "answer": STRING,
    "answer_type": STRING,
    "task": STRING,
    "variant": STRING,
    "options": [STRING],
    "source": STRING,
}


def to_row(s: EncodedSample, index: int) -> dict:
    return {
        "id": s.id,
        "prompt": [{"role": "user", "content": content_parts(s.problem)}],
        "images": image_cells(s),
        "answer": s.answer,
        "answer_type": s.answer_type,
        "task": s.task,
        "variant": s.variant,
        "options": s.options,
        "source": s.source,
    }
