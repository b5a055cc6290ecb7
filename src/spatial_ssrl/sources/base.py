from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SourceRef:
    """A planned input: a stable id and the path to read it from."""

    id: str
    path: str
    kind: str = "image"


@dataclass
class Item:
    """One input, ready for a task: RGB pixels plus optional geometry.

    ``info`` records what loading did to the file (mode conversion, EXIF orientation,
    resize) so a sample can say exactly how its pixels relate to the file on disk.
    """

    id: str
    rgb: np.ndarray
    path: str | None = None
    depth: np.ndarray | None = None
    mask: np.ndarray | None = None
    intrinsics: tuple[float, float, float, float] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


class SourceSkip(Exception):
    """An input that cannot be used, with a short machine-readable reason."""

    def __init__(self, reason: str, path: str, detail: str = ""):
        self.reason = reason
        self.path = path
        self.detail = detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))
