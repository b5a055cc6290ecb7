"""Pretext tasks and their registry.

Each task lives in its own module. Tasks register by name; third-party packages add
theirs through the ``spatial_ssrl.tasks`` entry-point group (the entry point names a
:class:`~spatial_ssrl.tasks.base.PretextTask` subclass)::

    [project.entry-points."spatial_ssrl.tasks"]
    mytask = "mypkg.tasks:MyTask"
"""

from __future__ import annotations

from importlib.metadata import entry_points

from .base import PretextTask, Rendered, Sample, generate_sample
from .camera_motion import CameraMotionTask
from .correspondence import CorrespondenceTask
from .counting import CountingTask
from .crop import CropTask
from .depth import DepthTask
from .distance import DistanceTask
from .flip import FlipTask
from .position import PositionTask
from .rotation import RotationTask
from .shuffle import ShuffleTask
from .temporal import TemporalTask

ENTRY_POINT_GROUP = "spatial_ssrl.tasks"

_REGISTRY: dict[str, type[PretextTask]] = {}
_entry_points_loaded = False


def register_task(cls: type[PretextTask]) -> type[PretextTask]:
    """Register a task class under its ``name`` (usable as a class decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


for _cls in (ShuffleTask, FlipTask, CropTask, DepthTask, PositionTask):
    register_task(_cls)
register_task(RotationTask)  # issue 24: registered, outside the default (paper) mix
register_task(DistanceTask)  # issue 24: metric distance, only by --tasks
register_task(TemporalTask)  # issue 24: temporal order of clip frames, only by --tasks
register_task(CorrespondenceTask)  # issue 24: cross-view correspondence, only by --tasks
register_task(CameraMotionTask)  # issue 24: camera motion between two views, only by --tasks
register_task(CountingTask)  # issue 24, point 6: counting drawn shapes, only by --tasks


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        cls = ep.load()
        if getattr(cls, "name", None) != ep.name:
            cls.name = ep.name
        register_task(cls)


def available_tasks() -> dict[str, type[PretextTask]]:
    _load_entry_points()
    return dict(_REGISTRY)


def get_task_class(name: str) -> type[PretextTask]:
    tasks = available_tasks()
    try:
        return tasks[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; available: {', '.join(sorted(tasks))}") from None


def make_task(name: str, variant: str | None = None, **options) -> PretextTask:
    return get_task_class(name)(variant, **options)


def rerender(meta: dict, item, **options) -> tuple[Rendered, str]:
    """Re-create a sample from its stored ``meta`` and its source item: returns the
    rendered images/question and the answer implied by the stored params."""
    task = make_task(meta["task"], meta["variant"], **options)
    params = meta["params"]
    return task.render(item, params), task.answer(params)


__all__ = [
    "CameraMotionTask",
    "CorrespondenceTask",
    "CountingTask",
    "CropTask",
    "DepthTask",
    "DistanceTask",
    "FlipTask",
    "PositionTask",
    "PretextTask",
    "Rendered",
    "RotationTask",
    "Sample",
    "ShuffleTask",
    "TemporalTask",
    "available_tasks",
    "generate_sample",
    "get_task_class",
    "make_task",
    "register_task",
    "rerender",
]
