"""Temporal order: match every shown frame back to the clip and read the order from it.

Nothing of the generator is used: the clip's frames are produced here from the source.

- Procedural scene: each pose of ``meta.params`` is rendered again through the scene's
  public renderer at the shown frames' size. Every shown image must equal exactly one of
  those renders; the poses must follow one steady motion, the one the question names
  (recomputed from each pose to the next in the earlier camera's frame), and every pose
  must be one the camera can take.
- Video with meta: the file is demuxed for its frames' timestamps and decoded from its
  start (no seeking, unlike the generator), keeping the stored frame numbers; each is
  reduced to the shown size with an area filter and every shown image must equal exactly
  one of them. The frame the question calls the earliest must be the earliest.
- Video without meta (exports that keep none): every frame of the clip is decoded and
  each shown image searched for among them; a shown image that matches several frames
  leaves the sample not checkable.

The derived answer lists the labels by time. The ambiguity rule is checked again on the
re-made frames (no two closer than ``temporal_frame_distance`` on thumbnails).
"""

from __future__ import annotations

import itertools
import math
import os
import re
from fractions import Fraction

import numpy as np
from PIL import Image

from ..checks import mad as thumb_mad
from ..checks import thumbnail
from ..prompts import TEMPORAL_MOTIONS
from ..sources.naming import resolve
from .common import Context, Fail, NotCheckable, mad, matches

_VARIANT = re.compile(r"^([3-6])-frames(-close)?$")
_SHOWN = re.compile(r"Frame (\d+): <image>")
_MOTION = re.compile(r"While the clip was recorded, the camera (.+?)\.(?: |$)")
_FIRST = re.compile(r"The frame labeled (\d+) is the earliest")
MAX_SEARCH_FRAMES = 20_000
"""Longest clip searched frame by frame when a sample keeps no meta."""


def validate(ctx: Context) -> str:
    m = _VARIANT.match(ctx.record.variant or "")
    if not m:
        raise NotCheckable(f"unknown temporal variant {ctx.record.variant!r}")
    k = int(m.group(1))
    problem = ctx.record.problem or ""
    labels = [int(x) for x in _SHOWN.findall(problem)]
    if labels != list(range(1, k + 1)):
        raise Fail(f"the question does not show frames labeled 1..{k} in order")
    if len(ctx.record.images) != k:
        raise Fail(f"{len(ctx.record.images)} images, the variant shows {k}")
    shown = [ctx.image(j) for j in range(k)]
    if len({im.shape for im in shown}) != 1:
        raise Fail("the frames are not all of one size")
    source = ctx.record.source or ""
    if source.startswith("procedural:"):
        times = _procedural(ctx, shown, problem)
    else:
        times = _video(ctx, shown, problem)
    return "-".join(str(j + 1) for j in sorted(range(k), key=lambda j: times[j]))


# ----------------------------------------------------------------------------- matching


def _match(ctx: Context, shown: list[np.ndarray], frames: list[np.ndarray], what: str) -> list[int]:
    """For each shown image, the one frame it equals (index into ``frames``)."""
    out = []
    for j, img in enumerate(shown):
        dists = [mad(img, f) for f in frames]
        fits = matches(dists, ctx.tol(j), ctx.lossless(j))
        if len(fits) != 1:
            raise Fail(f"frame {j + 1} matches {'no' if not fits else 'more than one'} {what}")
        out.append(fits[0])
    if len(set(out)) != len(out):
        raise Fail(f"two shown frames are the same {what}")
    return out


def _ambiguity(ctx: Context, frames: list[np.ndarray]) -> None:
    thumbs = [thumbnail(f, 32, 24) for f in frames]
    closest = min(thumb_mad(thumbs[a], thumbs[b]) for a in range(len(thumbs)) for b in range(a + 1, len(thumbs)))
    if closest < ctx.thresholds.temporal_frame_distance:
        raise Fail("ambiguity rule: two frames of the clip are near-identical")


# --------------------------------------------------------------------------- procedural


def _step(a, b) -> str | None:
    """The motion from pose ``a`` to pose ``b``: a turn in place or a step along one of
    ``a``'s own axes (None: neither, or both)."""
    rel = a.to_camera(b.position)
    turn = b.yaw_deg - a.yaw_deg
    moved = float(np.linalg.norm(rel))
    if abs(b.pitch_deg - a.pitch_deg) > 1e-6:
        return None
    if moved < 1e-6:
        if abs(turn) < 1e-6:
            return None
        return "turn_right" if turn > 0 else "turn_left"
    if abs(turn) > 1e-6:
        return None
    axis = int(np.argmax(np.abs(rel)))
    if abs(rel[axis]) < 0.999 * moved or axis == 1:  # not along one level axis
        return None
    if axis == 0:
        return "right" if rel[0] > 0 else "left"
    return "forward" if rel[2] > 0 else "backward"


def _stated_motion(problem: str) -> str:
    m = _MOTION.search(problem)
    if not m:
        raise Fail("the question names no camera motion")
    for key, text in TEMPORAL_MOTIONS.items():
        if m.group(1) == text:
            return key
    raise Fail(f"the question names an unknown camera motion ({m.group(1)!r})")


def _procedural(ctx: Context, shown: list[np.ndarray], problem: str) -> list[int]:
    from ..sources.procedural import (
        Pose,
        parse_procedural_path,
        pose_problem,
        render_view,
    )

    params = ctx.params
    if not params or not isinstance(params.get("poses"), list):
        raise NotCheckable("the camera poses are kept only in meta (canonical format)")
    k = len(shown)
    try:
        seed = parse_procedural_path(ctx.record.source)[0]
        poses = [Pose.from_dict(p) for p in params["poses"]]
    except (ValueError, TypeError) as exc:
        raise Fail(f"unreadable scene or poses: {exc}") from None
    if len(poses) != k:
        raise Fail(f"{len(poses)} poses for {k} frames")
    for p in poses:
        problem_ = pose_problem(seed, p)
        if problem_:
            raise Fail(f"a pose the camera cannot take ({problem_})")
    motion = _stated_motion(problem)
    steps = {_step(a, b) for a, b in itertools.pairwise(poses)}
    if steps != {motion}:
        raise Fail(f"the poses do not move steadily as the question says ({motion}; steps: "
                   f"{sorted(str(s) for s in steps)})")
    h, w = shown[0].shape[:2]
    frames = [np.asarray(render_view(seed, (w, h), p).rgb) for p in poses]
    times = _match(ctx, shown, frames, "render of the path")
    _ambiguity(ctx, frames)
    return times


# -------------------------------------------------------------------------------- video


def _open(path: str):
    try:
        import av
    except ImportError:
        raise NotCheckable("decoding the video needs PyAV: pip install 'spatial-ssrl[video]'") from None
    try:
        return av, av.open(path)
    except (av.error.FFmpegError, OSError) as exc:
        raise NotCheckable(f"source video cannot be opened: {exc}") from None


def _timestamps(path: str) -> list[int] | None:
    """The frames' presentation timestamps, sorted (None: the stream has none)."""
    _av, container = _open(path)
    with container:
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.size]
    if any(p is None for p in pts) or len(set(pts)) != len(pts):
        return None
    return sorted(pts)


def _decode(path: str, wanted: set[int] | None, pts: list[int] | None, size: tuple[int, int]) -> dict[int, np.ndarray]:
    """Frames (all when ``wanted`` is None) decoded from the start, at ``size``."""
    number = {p: i for i, p in enumerate(pts)} if pts is not None else None
    out: dict[int, np.ndarray] = {}
    _av, container = _open(path)
    with container:
        for n, frame in enumerate(container.decode(container.streams.video[0])):
            i = n if number is None else number.get(frame.pts)
            if i is None or (wanted is not None and i not in wanted) or i in out:
                continue
            img = Image.fromarray(frame.to_ndarray(format="rgb24"))
            if img.size != size:
                img = img.resize(size, Image.Resampling.BOX)
            out[i] = np.asarray(img)
            if wanted is not None and len(out) == len(wanted):
                break
            if wanted is None and len(out) > MAX_SEARCH_FRAMES:
                raise NotCheckable(f"the clip has over {MAX_SEARCH_FRAMES} frames to search without meta")
    return out


def _video(ctx: Context, shown: list[np.ndarray], problem: str) -> list[int]:
    path = resolve(ctx.record.source, ctx.sources.roots, ctx.sources.dataset_dir)
    if not path:
        raise NotCheckable("no source recorded")
    if not os.path.isfile(path):
        raise NotCheckable(f"source cannot be re-read: not_found ({path})")
    m = _FIRST.search(problem)
    if not m:
        raise Fail("the question names no earliest frame")
    first = int(m.group(1))
    h, w = shown[0].shape[:2]
    pts = _timestamps(path)
    params = ctx.params or {}
    stored = params.get("frames")
    if stored is not None:
        if not isinstance(stored, list) or len(stored) != len(shown) or stored != sorted(set(stored)):
            raise Fail("the stored frame numbers are not increasing")
        got = _decode(path, set(stored), pts, (w, h))
        if len(got) != len(stored):
            raise Fail(f"frames {sorted(set(stored) - set(got))} are not in the video")
        frames = [got[i] for i in stored]
        if pts is not None and params.get("times_s") is not None:
            _av, container = _open(path)
            with container:
                tb = Fraction(container.streams.video[0].time_base)
            times = [float((pts[i] - pts[0]) * tb) for i in stored]
            if any(not math.isclose(a, b, abs_tol=1e-3) for a, b in zip(times, params["times_s"])):
                raise Fail("the stored frame times are not those of the stored frames")
        order = _match(ctx, shown, frames, "stored frame of the video")
    else:
        every = _decode(path, None, pts, (w, h))
        numbers = sorted(every)
        candidates = [every[i] for i in numbers]
        order = []
        for j, img in enumerate(shown):
            dists = [mad(img, f) for f in candidates]
            fits = matches(dists, ctx.tol(j), ctx.lossless(j))
            if not fits:
                raise Fail(f"frame {j + 1} matches no frame of the video")
            if len(fits) > 1:
                raise NotCheckable("a shown frame matches several frames of the video (no meta to tell which)")
            order.append(numbers[fits[0]])
        if len(set(order)) != len(order):
            raise Fail("two shown frames are the same frame of the video")
        frames = [every[i] for i in sorted(order)]
    if order.index(min(order)) + 1 != first:
        raise Fail(f"the question calls frame {first} the earliest, the video says "
                   f"{order.index(min(order)) + 1}")
    _ambiguity(ctx, frames)
    return order
