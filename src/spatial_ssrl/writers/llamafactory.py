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

import json
import os

from ..prompts import with_format_suffix
from . import base as _base
from .base import DatasetWriter, atomic_write_bytes, atomic_write_json
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


class LlamaFactoryWriter(DatasetWriter):
    format_name = "llamafactory"

    def __init__(self, out_dir: str, rows_per_shard: int = 1000):
        super().__init__(out_dir)
        self.image_dir = os.path.join(out_dir, IMAGE_DIR)
        os.makedirs(self.image_dir, exist_ok=True)
        self.tmp_path = os.path.join(out_dir, f".tmp-{DATA_FILE}")
        self._fh = None  # opened by the first add() (or resume(), which keeps what is there)
        self._images: list[str] = []  # every image file written, for abort()
        self._synced_images = 0  # how many of them the last checkpoint synced
        self._finals: list[str] = []
        self._count = 0
        self.rows_per_checkpoint = max(1, int(rows_per_shard))

    def _open(self):
        if self._fh is None:
            self._fh = open(self.tmp_path, "w", encoding="utf-8")  # noqa: SIM115 - held open across rows, closed in close()
        return self._fh

    def add(self, sample: EncodedSample) -> None:
        self._open()
        for data, name in zip(sample.images, sample.image_names):
            path = os.path.join(self.image_dir, name)
            atomic_write_bytes(path, data)
            self._images.append(path)
        self._fh.write(json.dumps(to_record(sample), ensure_ascii=False) + "\n")
        self._count += 1
        if self._count % self.rows_per_checkpoint == 0:
            # a checkpoint vouches for every image its records name: those written since
            # the last one reach the disk (with their names) before the records do
            for path in self._images[self._synced_images:]:
                _base.fsync_path(path)
            _base.fsync_path(self.image_dir)
            self._synced_images = len(self._images)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            if self.on_checkpoint is not None:
                self.on_checkpoint({"offset": self._fh.buffer.tell(), "rows": self._count})

    @property
    def rows(self) -> int:
        return self._count

    def resume(self, state: dict) -> None:
        """Keep the records up to the checkpoint; images of later records are written again
        under the same names (the same samples come again)."""
        offset, rows = int(state["offset"]), int(state["rows"])
        if self._fh is not None:
            raise RuntimeError("resume() must come before the first add()")
        if not os.path.isfile(self.tmp_path) or os.path.getsize(self.tmp_path) < offset:
            raise ValueError(f"{self.tmp_path}: shorter than the interrupted run recorded")
        with open(self.tmp_path, "r+b") as fh:
            fh.truncate(offset)
        self._fh = open(self.tmp_path, "a", encoding="utf-8")  # noqa: SIM115 - held open across rows, closed in close()
        self._count = rows

    def close(self) -> list[str]:
        self._open().close()
        final = os.path.join(self.out_dir, DATA_FILE)
        os.replace(self.tmp_path, final)
        self._finals.append(final)
        info = os.path.join(self.out_dir, "dataset_info.json")
        atomic_write_json(info, dataset_info())
        self._finals.append(info)
        return [final, info, self.image_dir]

    def release(self) -> None:
        if self._fh is not None and not self._fh.closed:
            try:
                self._fh.close()
            except OSError:
                pass

    def abort(self) -> None:
        """Remove what this writer made: the record file (temporary or final), the dataset
        entry and the images, then ``images/`` itself when nothing else is in it."""
        if self._fh is not None and not self._fh.closed:
            try:
                self._fh.close()
            except OSError:
                pass
        for path in [self.tmp_path, *self._finals, *self._images]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._images = []
        self._finals = []
        try:
            os.rmdir(self.image_dir)
        except OSError:
            pass
