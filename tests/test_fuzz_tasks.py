"""Fuzzing every task's ``make_params`` / ``check`` / ``render`` on random image sizes and
(for depth and position) random depth maps with NaN, inf, zeros, constants and huge
values, and random intrinsics: each draw gives a sample or a named rejection, never an
exception.

Items are built the way the loaders hand them over (the Item depth contract: float32,
positive and finite where ``mask``, NaN elsewhere; sides >= 16 px, the CLI's smallest
``--min-side``; intrinsics that pass :func:`check_intrinsics`).
"""

from __future__ import annotations

import json
import re

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from spatial_ssrl.sources import Item
from spatial_ssrl.sources.rgbd import check_intrinsics
from spatial_ssrl.tasks import available_tasks, make_task

REASON = re.compile(r"^[a-z][a-z0-9_]*$")
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
ATTEMPTS = 3

RGB_KEYS = [
    (name, variant)
    for name, cls in sorted(available_tasks().items())
    if not cls.requires_depth
    for variant in cls.variants()
]
DEPTH_KEYS = [
    (name, variant)
    for name, cls in sorted(available_tasks().items())
    if cls.requires_depth and name in ("depth", "position")
    for variant in cls.variants()
]


def _rgb(rng, h, w, style):
    if style == "noise":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if style == "flat":
        return np.full((h, w, 3), int(rng.integers(256)), np.uint8)
    if style == "stripes":
        a = np.zeros((h, w, 3), np.uint8)
        a[:, ::2] = 255
        return a
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy * 255 // max(h - 1, 1), xx * 255 // max(w - 1, 1), (yy + xx) % 256], -1).astype(np.uint8)


def _exercise(task, item, seed):
    """Draw, check and (when accepted) render: returns the outcomes (reason or 'ok')."""
    rng = np.random.default_rng(seed)
    outcomes = []
    for _ in range(ATTEMPTS):
        params = task.make_params(rng, item)
        json.dumps(params)  # params are plain JSON data (they go into meta)
        reason = task.check(item, params)
        if reason is not None:
            assert isinstance(reason, str) and REASON.match(reason), reason
            outcomes.append(reason)
            continue
        rendered = task.render(item, params)
        assert rendered.images, "render gave no image"
        for im in rendered.images:
            assert isinstance(im, np.ndarray) and im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3
            assert min(im.shape[:2]) >= 1
        assert isinstance(rendered.problem, str) and rendered.problem
        answer = task.answer(params)
        assert isinstance(answer, str) and answer
        if rendered.options is not None:
            assert all(isinstance(o, str) for o in rendered.options)
        outcomes.append("ok")
    return outcomes


@FUZZ
@given(
    key=st.sampled_from(RGB_KEYS),
    h=st.integers(16, 420),
    w=st.integers(16, 420),
    style=st.sampled_from(["noise", "flat", "stripes", "gradient"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_rgb_tasks_sample_or_reject(key, h, w, style, seed):
    name, variant = key
    task = make_task(name, variant)
    rng = np.random.default_rng(seed)
    rgb = _rgb(rng, h, w, style)
    rgb.setflags(write=False)
    item = Item(id="fuzz", rgb=rgb, path="memory://fuzz")
    _exercise(task, item, seed)


def _depth_map(rng, h, w, kind, scale, holes):
    if kind == "blocks":
        n = int(rng.integers(2, 7))
        levels = rng.uniform(0.5, 20.0, n)
        band = np.minimum(np.mgrid[0:h, 0:w][1] * n // w, n - 1)
        d = levels[band]
    elif kind == "ramp":
        yy, xx = np.mgrid[0:h, 0:w]
        d = 1.0 + 9.0 * yy / h + 0.3 * xx / w
    elif kind == "constant":
        d = np.full((h, w), float(rng.uniform(0.1, 10)))
    elif kind == "zeros":
        d = np.zeros((h, w))
    elif kind == "noise":
        d = rng.uniform(0.1, 100.0, (h, w))
    elif kind == "two_values":
        d = np.where(rng.random((h, w)) < 0.5, 1.0, 2.0)
    else:  # "nan"
        d = np.full((h, w), np.nan)
    d = d * scale
    if holes == "nan_spots":
        d[rng.random((h, w)) < 0.2] = np.nan
    elif holes == "inf_spots":
        d[rng.random((h, w)) < 0.05] = np.inf
        d[rng.random((h, w)) < 0.05] = -np.inf
    elif holes == "zero_half":
        d[:, : w // 2] = 0.0
    elif holes == "single_valid":
        v = d[h // 2, w // 2]
        d[:] = np.nan
        d[h // 2, w // 2] = v
    with np.errstate(over="ignore", invalid="ignore"):
        d32 = d.astype(np.float32)
        mask = np.isfinite(d32) & (d32 > 0)
    d32 = np.where(mask, d32, np.nan).astype(np.float32)
    d32.setflags(write=False)
    mask.setflags(write=False)
    return d32, mask


_intrinsic = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@FUZZ
@given(
    key=st.sampled_from(DEPTH_KEYS),
    h=st.integers(16, 320),
    w=st.integers(16, 320),
    kind=st.sampled_from(["blocks", "ramp", "constant", "zeros", "noise", "two_values", "nan"]),
    scale=st.sampled_from([1.0, 1e-30, 1e-3, 1e3, 1e30, 3e38, 1e300]),
    holes=st.sampled_from(["none", "nan_spots", "inf_spots", "zero_half", "single_valid"]),
    depth_kind=st.sampled_from(["metric", "relative", "order"]),
    intrinsics=st.one_of(st.none(), st.just("typical"), st.tuples(_intrinsic, _intrinsic, _intrinsic, _intrinsic)),
    seed=st.integers(0, 2**32 - 1),
)
def test_depth_tasks_sample_or_reject(key, h, w, kind, scale, holes, depth_kind, intrinsics, seed):
    name, variant = key
    if intrinsics == "typical":
        intrinsics = (1.2 * max(h, w), 1.2 * max(h, w), w / 2.0, h / 2.0)
    if intrinsics is not None:
        assume(check_intrinsics(intrinsics, w, h) is None)  # what the loader lets through
    rng = np.random.default_rng(seed)
    depth, mask = _depth_map(rng, h, w, kind, scale, holes)
    rgb = rng.integers(40, 216, (h, w, 3), dtype=np.uint8)
    rgb.setflags(write=False)
    item = Item(id="fuzz", rgb=rgb, path="memory://fuzz", depth=depth, mask=mask, depth_kind=depth_kind,
                intrinsics=intrinsics, depth_path="memory://fuzz-depth")
    task = make_task(name, variant)
    _exercise(task, item, seed)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(key=st.sampled_from(DEPTH_KEYS), h=st.integers(16, 200), w=st.integers(16, 200))
def test_depth_tasks_on_items_without_depth(key, h, w):
    """A depth task handed an RGB-only item rejects it by name."""
    name, variant = key
    item = Item(id="fuzz", rgb=np.zeros((h, w, 3), np.uint8), path="memory://fuzz")
    task = make_task(name, variant)
    _exercise(task, item, 0)
