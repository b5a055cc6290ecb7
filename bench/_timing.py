"""Timing helpers shared by the bench scripts: exclusive per-step timers that wrap the
functions a worker calls, and the decode and encode floors (each on the fastest exact
codec installed, so that ratios against them stay honest)."""

from __future__ import annotations

import statistics
from functools import wraps
from time import perf_counter as perf

from PIL import Image


class StepTimer:
    """Accumulates seconds per named step. Wrapped calls nested inside other wrapped calls
    are subtracted from their caller, so the steps of one sample add up to its total."""

    def __init__(self, steps) -> None:
        self.steps = tuple(steps)
        self.reset()

    def reset(self) -> None:
        self.t = dict.fromkeys(self.steps, 0.0)
        self._stack: list[float] = []

    def wrap(self, fn, step: str):
        @wraps(fn)
        def inner(*args, **kwargs):
            self._stack.append(0.0)
            t0 = perf()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = perf() - t0
                self.t[step] += dt - self._stack.pop()
                if self._stack:
                    self._stack[-1] += dt

        return inner

    def wrap_task(self, task, params_step: str, render_step: str) -> None:
        """Time a (cached) task object's steps in place; idempotent."""
        if getattr(task, "_bench_wrapped", False):
            return
        task.make_params = self.wrap(task.make_params, params_step)
        task.check = self.wrap(task.check, params_step)
        task.render = self.wrap(task.render, render_step)
        task._bench_wrapped = True


def floor_decode(path: str) -> float:
    """Seconds to decode ``path`` with the fastest decoder the loader has for it: the exact
    fast decoders of ``sources/fast_decode.py`` (RGB JPEG, 8-bit RGB PNG) when installed,
    else Pillow's own ``load``."""
    from spatial_ssrl.sources.fast_decode import decode_rgb

    t0 = perf()
    with Image.open(path) as im:
        if decode_rgb(path, im) is None:
            im.load()
    return perf() - t0


def floor_decode_pillow(path: str) -> float:
    """Seconds for Pillow alone to decode ``path`` (the reference without fast decoders)."""
    t0 = perf()
    with Image.open(path) as im:
        im.load()
    return perf() - t0


def fastest_png_encoder() -> str:
    """The fastest exact PNG encoder installed: ``fpng`` when importable, else ``pillow``."""
    from spatial_ssrl.writers.encoded import FPNG_AVAILABLE

    return "fpng" if FPNG_AVAILABLE else "pillow"


def floor_encode(images, level: int) -> float:
    """Seconds to PNG-encode ``images`` with the fastest exact encoder installed (fpng where
    it installs and the array suits it, else Pillow at ``level``), whatever encoder the run
    itself is set to use (``SPATIAL_SSRL_PNG_ENCODER``)."""
    from spatial_ssrl.writers.encoded import encode_png

    t0 = perf()
    for a in images:
        encode_png(a, level, encoder="auto")
    return perf() - t0


def floor_encode_pillow(images, level: int) -> float:
    """Seconds for Pillow alone to PNG-encode ``images`` at ``level`` (the reference)."""
    from spatial_ssrl.writers.encoded import encode_png

    t0 = perf()
    for a in images:
        encode_png(a, level, encoder="pillow")
    return perf() - t0


def med(xs):
    return statistics.median(xs) if xs else float("nan")
