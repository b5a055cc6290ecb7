"""The contract every pretext task follows.

A task is a small, picklable object configured by its variant. It separates random
choices from drawing:

- ``make_params(rng, item)`` draws every random choice and returns plain JSON data;
- ``check(item, params)`` returns a rejection reason when the answer would not be
  recoverable from the pixels (or None);
- ``render(item, params)`` turns item + params into images, question and options;
- ``answer(params)`` is a function of the params alone.

Params go into each sample's ``meta`` so any sample can be re-verified and re-rendered.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..checks import AmbiguityThresholds
from ..sources.base import Item


@dataclass
class Rendered:
    images: list[np.ndarray]
    problem: str
    options: list[str] | None = None
    extra_meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    id: str
    task: str
    variant: str
    images: list[np.ndarray]
    problem: str
    answer: str
    answer_type: str
    options: list[str] | None
    source: str
    meta: dict[str, Any]
    depth_source: str | None = None


class PretextTask:
    """Base class: subclasses set ``name``, ``answer_type`` and implement the four steps."""

    name: ClassVar[str] = ""
    answer_type: ClassVar[str] = ""
    # Paper counts per variant in the released 81k set; used as default mixing weights.
    paper_counts: ClassVar[dict[str, float]] = {}
    requires_depth: ClassVar[bool] = False
    # True when the answer is checked pixel for pixel against the source (PNG output by
    # default); False when it lives elsewhere (e.g. in a depth map) and JPEG is enough.
    lossless_output: ClassVar[bool] = True

    def __init__(
        self,
        variant: str | None = None,
        prompt_set: str = "paper",
        thresholds: AmbiguityThresholds | None = None,
    ):
        self.variant = variant or self.default_variant()
        self.prompt_set = prompt_set
        self.thresholds = thresholds or AmbiguityThresholds()

    # -- variants --------------------------------------------------------------------
    @classmethod
    def variants(cls) -> tuple[str, ...]:
        return tuple(cls.paper_counts)

    @classmethod
    def default_variant(cls) -> str:
        return cls.variants()[0]

    @property
    def key(self) -> str:
        return f"{self.name}/{self.variant}"

    # -- the four steps --------------------------------------------------------------
    def make_params(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        raise NotImplementedError

    def check(self, item: Item, params: dict[str, Any]) -> str | None:
        return None

    def render(self, item: Item, params: dict[str, Any]) -> Rendered:
        raise NotImplementedError

    def answer(self, params: dict[str, Any]) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(variant={self.variant!r})"


def generate_sample(
    task: PretextTask,
    item: Item,
    rng: np.random.Generator,
    sample_id: str,
    max_attempts: int = 12,
) -> tuple[Sample | None, Counter]:
    """Draw params until the answer is recoverable (at most ``max_attempts`` draws), then
    render. Returns the sample (or None) and the rejections by reason."""
    rejections: Counter = Counter()
    for attempt in range(max_attempts):
        params = task.make_params(rng, item)
        reason = task.check(item, params)
        if reason:
            rejections[reason] += 1
            continue
        rendered = task.render(item, params)
        meta = {
            "task": task.name,
            "variant": task.variant,
            "params": params,
            "image_size": [item.width, item.height],
            "attempt": attempt,
        }
        meta.update({k: v for k, v in item.info.items()})
        meta.update(rendered.extra_meta)
        return (
            Sample(
                id=sample_id,
                task=task.name,
                variant=task.variant,
                images=rendered.images,
                problem=rendered.problem,
                answer=task.answer(params),
                answer_type=task.answer_type,
                options=rendered.options,
                source=item.path or item.id,
                meta=meta,
                depth_source=item.depth_path,
            ),
            rejections,
        )
    return None, rejections
