"""EasyR1 format: ``problem`` (with ``<image>`` tokens), ``answer``, ``images``: the keys
EasyR1's example configs use (``data.prompt_key=problem``, ``data.answer_key=answer``,
``data.image_key=images``; the code default for the prompt key is ``prompt``, so set it).

Point ``data.train_files`` at ``OUT/data`` (the shard folder). EasyR1 adds the format suffix
through a jinja template (``data.format_prompt``); the writer drops one beside the data as
``format_prompt.jinja``.
"""

from __future__ import annotations

import pyarrow as pa

from ..prompts import FORMAT_SUFFIX
from .base import (
    IMAGE_LIST,
    IMAGE_STRUCT,
    STRING,
    image_cells,
)
from .encoded import EncodedSample

SCHEMA = pa.schema(
    [
        ("problem", pa.string()),
        ("answer", pa.string()),
        ("images", pa.list_(IMAGE_STRUCT)),
        ("id", pa.string()),
        ("task", pa.string()),
        ("variant", pa.string()),
        ("answer_type", pa.string()),
        ("options", pa.list_(pa.string())),
        ("source", pa.string()),
    ]
)
FEATURES = {
    "problem": STRING,
    "answer": STRING,
    "images": IMAGE_LIST,
    "id": STRING,
    "task": STRING,
    "variant": STRING,
    "answer_type": STRING,
    "options": [STRING],
    "source": STRING,
}
FORMAT_TEMPLATE = "{{ content | trim }} " + FORMAT_SUFFIX + "\n"


def to_row(s: EncodedSample, index: int) -> dict:
    return {
        "problem": s.problem,
        "answer": s.answer,
        "images": image_cells(s),
        "id": s.id,
        "task": s.task,
        "variant": s.variant,
        "answer_type": s.answer_type,
        "options": s.options,
        "source": s.source,
    }
