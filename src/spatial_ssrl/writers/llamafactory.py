"""LLaMA-Factory format: sharegpt-style records with image files.

- ``images/<id>-<i>.png``: the images, as files;
- ``train.jsonl``: one record per sample, ``{"messages": [user, assistant], "images": [...]}``,
  the user turn holding the question with ``<image>`` tokens and the format suffix, the
  assistant turn the boxed answer;
- ``dataset_info.json``: the entry LLaMA-Factory reads (``dataset_dir`` = the output folder,
  dataset name ``spatial_ssrl``).

Image paths are relative to the output folder, which LLaMA-Factory uses as its media folder
when ``dataset_dir`` points there.
"""

from __future__ import annotations

from ..prompts import with_format_suffix
from .encoded import EncodedSample

DATASET_NAME = "spatial_ssrl"
DATA_FILE = "train.jsonl"
IMAGE_DIR = "images"


def dataset_info() -> dict:
    return {
        DATASET_NAME: {
            "file_name": DATA_FILE,
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
            },
        }
    }


# One short rationale per answer type, so supervised targets follow the requested format.
RATIONALES = {
    "permutation": "I compare the edges, lines and content of the labelled pieces to see which ones "
    "continue each other, and put each piece where it fits in the original image.",
    "flip": "I look for the patch whose content does not continue across its edges or appears upside "
    "down or mirrored, and decide whether it was flipped vertically or horizontally.",
    "choice": "I compare each option with the content, scale and orientation around the marked region "
    "and keep the one that fits.",
}
FALLBACK_RATIONALE = "I examine the spatial cues in the image and pick the answer they support."


def assistant_target(answer: str, answer_type: str) -> str:
    rationale = RATIONALES.get(answer_type, FALLBACK_RATIONALE)
    return f"<think>\n{rationale}\n</think>\n\\boxed{{{answer}}}"


def to_record(s: EncodedSample) -> dict:
    return {
        "messages": [
            {"role": "user", "content": with_format_suffix(s.problem)},
            {"role": "assistant", "content": assistant_target(s.answer, s.answer_type)},
        ],
        "images": [f"{IMAGE_DIR}/{name}" for name in s.image_names],
        "id": s.id,
        "task": s.task,
        "variant": s.variant,
        "answer": s.answer,
        "answer_type": s.answer_type,
        "options": s.options,
        "source": s.source,
    }
