"""A third-party task used by the plugin test: how far was the image rotated? (Named
quarter_turn: the built-in task `rotation` already takes that name.)"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from spatial_ssrl.tasks.base import PretextTask, Rendered

LETTERS = "ABCD"


class RotationTask(PretextTask):
    name = "quarter_turn"
    answer_type = "choice"
    paper_counts: ClassVar[dict[str, float]] = {"4-way": 1.0}

    def make_params(self, rng, item):
        return {"quarter_turns": int(rng.integers(4))}

    def render(self, item, params):
        img = np.ascontiguousarray(np.rot90(item.rgb, k=-params["quarter_turns"]))
        return Rendered(
            images=[img],
            problem="<image>How far clockwise was this image rotated? A. 0 B. 90 C. 180 D. 270",
            options=["0", "90", "180", "270"],
        )

    def answer(self, params):
        return LETTERS[params["quarter_turns"]]
