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
    "numeric": "I judge how far the marked points are from the camera from perspective, the sizes of familiar "
    "objects and the ground plane, place them in 3D and measure the straight line in meters.",
}
# Tasks whose answer type is shared with a paper task but whose reasoning differs (looked up
# before RATIONALES).
TASK_RATIONALES = {
    "rotation": "I look at which way gravity, the horizon, the sky and the ground, and upright objects "
    "or text point, and whether the content continues into its surroundings, to tell how far it was turned.",
    "correspondence": "I find what surrounds point 1 in the first view (the surface, texture and nearby objects), "
    "work out how the viewpoint changed between the views, and pick the candidate in the second view that shows "
    "that same spot.",
    "temporal": "I compare the frames for how the view shifts and what comes into or leaves sight, chain "
    "them so each step changes the view a little, and orient the chain by the camera's stated motion or the "
    "earliest frame.",
    "camera_motion": "I match things seen in both images and compare how they shift: a turn moves near and far "
    "things alike, a step moves near things more than far ones, and moving forward or backward makes things "
    "grow or shrink around the centre.",
}
TASK_RATIONALES["counting"] = ("I go over the drawn shapes one by one, keep those of the asked colour and kind "
                               "and leave out the rest and anything that belongs to the photo, then count them.")
FALLBACK_RATIONALE = "I examine the spatial cues in the image and pick the answer they support."


def assistant_target(answer: str, answer_type: str, task: str | None = None) -> str:
    rationale = TASK_RATIONALES.get(task or "") or RATIONALES.get(answer_type, FALLBACK_RATIONALE)
    return f"<think>\n{rationale}\n</think>\n\\boxed{{{answer}}}"


def to_record(s: EncodedSample) -> dict:
    return {
        "messages": [
            {"role": "user", "content": with_format_suffix(s.problem)},
            {"role": "assistant", "content": assistant_target(s.answer, s.answer_type, s.task)},
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
