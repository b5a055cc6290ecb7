"""Temporal order (issue 24; not one of the paper's five tasks).

``k`` frames of one clip (3 to 6), shown as ``k`` images in shuffled order and labeled 1..k
in the question (``Frame 1: <image> Frame 2: <image> ...``). The answer lists the labels
from the earliest frame to the latest, joined by hyphens (``3-1-4-2``): a permutation, as
for shuffle.

Clips
-----
- **Videos** given in ``--input`` (``.mp4``, ``.webm``, ``.mkv``, ...; PyAV, the ``video``
  extra): the params hold the frame numbers drawn (presentation order, see
  :mod:`spatial_ssrl.sources.video`) and their times; only those frames are decoded.
- **Procedural scenes** (built in): a camera path drawn here, a steady motion of one kind
  (``forward``, ``backward``, sideways ``left`` / ``right``, or a pan ``turn_left`` /
  ``turn_right``) with ``k`` poses centred on a random place and heading in the room; frame
  ``i`` is the scene rendered from pose ``i``
  (:func:`~spatial_ssrl.sources.procedural.render_view`). The poses are in the params.

Frames are shown at most :data:`FRAME_MAX_SIDE` pixels on their longer side (a video's
frames are reduced with an area filter; scenes are rendered at that size).

A still camera's path through a still scene looks as plausible backwards, so the question
removes the reversal: for a scene it names the camera's motion ("the camera moved steadily
forward"); for a video, whose motion is unknown, it names the earliest frame's label.

Variants (easy to hard): ``{k}-frames`` for k = 3..6, frames far apart, and
``{k}-frames-close``, frames near each other (smaller changes to read). Gaps between
consecutive frames: videos, :data:`VIDEO_GAPS_S` seconds (each gap drawn in the range,
reduced to what the clip holds); scenes, :data:`STEPS` metres or degrees per frame.

Ambiguity filter (named rejections): ``temporal_near_static`` (every pair of frames closer
than ``thresholds.temporal_frame_distance`` on thumbnails: the clip barely changes),
``temporal_repeated_frames`` (some pair that close: their order cannot be told),
``temporal_clip_too_short`` (a video with fewer than ``k`` frames),
``temporal_pose_<reason>`` (a pose the camera cannot take in the room: ``outside_room``,
``inside_object``, ... of :func:`~spatial_ssrl.sources.procedural.pose_problem`),
``temporal_frame_unreadable`` (a video frame that does not decode) and
``temporal_needs_a_clip`` (a still image: the engine deals this task only videos and
procedural scenes, so this guards direct use).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any, ClassVar

import numpy as np

from ..checks import mad, thumbnail
from ..prompts import get_prompt_set
from ..sources.base import Item
from ..sources.procedural import Pose, parse_procedural_path, pose_problem, render_view
from ..sources.video import VideoDecodeError
from .base import PretextTask, Rendered

FRAME_MAX_SIDE = 448
"""Longest side (pixels) of a shown frame; smaller clips are shown at their own size."""
VIDEO_GAPS_S = {"wide": (0.5, 1.5), "close": (0.1, 0.3)}
"""Seconds between consecutive frames drawn from a video, per gap kind."""
STEPS = {
    "wide": {"walk": (0.45, 0.7), "move": (0.3, 0.5), "turn": (7.0, 12.0)},
    "close": {"walk": (0.2, 0.3), "move": (0.1, 0.18), "turn": (2.5, 4.5)},
}
"""Camera step per frame along a procedural path: metres for a walk (forward, backward) or
a sideways move, degrees for a turn. A walk changes the view least per metre, so its
steps are longer."""
MOTIONS = ("forward", "backward", "left", "right", "turn_left", "turn_right")
CENTRE = {"x": (-1.0, 1.0), "y": (-0.25, 0.25), "z": (-0.5, 1.5), "yaw_deg": (-25.0, 25.0), "pitch_deg": (-6.0, 6.0)}
"""Ranges of the middle of a procedural path (scene frame, metres and degrees)."""
THUMB_SIZE = (32, 24)
CLIP_KINDS = frozenset({"video", "procedural"})
_VARIANT = re.compile(r"^([3-6])-frames(-close)?$")


def frame_size(width: int, height: int, max_side: int = FRAME_MAX_SIDE) -> tuple[int, int]:
    """(width, height) of a shown frame for a clip of ``width`` x ``height``."""
    scale = min(1.0, max_side / float(max(width, height)))
    return max(1, round(width * scale)), max(1, round(height * scale))


def step_pose(pose: Pose, motion: str, step: float) -> Pose:
    """``pose`` after one step of ``motion`` (metres along the camera's own axes, or degrees
    of yaw)."""
    if motion == "forward":
        return pose.moved(forward=step)
    if motion == "backward":
        return pose.moved(forward=-step)
    if motion == "left":
        return pose.moved(right=-step)
    if motion == "right":
        return pose.moved(right=step)
    if motion == "turn_left":
        return pose.moved(turn_deg=-step)
    if motion == "turn_right":
        return pose.moved(turn_deg=step)
    raise ValueError(f"unknown camera motion {motion!r}")


def _scene_seed(item: Item) -> int | None:
    path = item.path or ""
    if not path.startswith("procedural:"):
        return None
    try:
        return parse_procedural_path(path)[0]
    except ValueError:
        return None


# Frames of the last procedural paths rendered in this process: a sample's frames are
# checked, then drawn.
_PATH_CACHE: OrderedDict = OrderedDict()
_PATH_CACHE_LOCK = threading.Lock()
PATH_CACHE_ENTRIES = 2


def render_path(seed: int, size: tuple[int, int], poses: list[dict]) -> list[np.ndarray]:
    """Scene ``seed`` rendered at ``size`` from each pose (their ``to_dict`` forms)."""
    key = (int(seed), int(size[0]), int(size[1]), tuple(Pose.from_dict(p) for p in poses))
    with _PATH_CACHE_LOCK:
        hit = _PATH_CACHE.get(key)
        if hit is not None:
            _PATH_CACHE.move_to_end(key)
            return hit
    frames = [render_view(key[0], key[1:3], pose).rgb for pose in key[3]]
    with _PATH_CACHE_LOCK:
        _PATH_CACHE[key] = frames
        while len(_PATH_CACHE) > PATH_CACHE_ENTRIES:
            _PATH_CACHE.popitem(last=False)
    return frames


def frame_distances(frames: list[np.ndarray]) -> np.ndarray:
    """k x k mean absolute differences (0-255) between the frames' thumbnails."""
    thumbs = [thumbnail(f, *THUMB_SIZE) for f in frames]
    k = len(thumbs)
    d = np.zeros((k, k), dtype=np.float64)
    for i in range(k):
        for j in range(i + 1, k):
            d[i, j] = d[j, i] = mad(thumbs[i], thumbs[j])
    return d


class TemporalTask(PretextTask):
    name = "temporal"
    answer_type = "permutation"
    # Not a paper task: no paper counts, so it stays out of the default mix and comes in by
    # ``--tasks temporal`` (its first variant) or ``--tasks all``.
    paper_counts: ClassVar[dict[str, float]] = {}
    # The engine deals this task only sources of these kinds (and videos to no other task).
    source_kinds: ClassVar[frozenset[str]] = CLIP_KINDS
    VARIANTS = ("4-frames", "3-frames", "5-frames", "6-frames",
                "3-frames-close", "4-frames-close", "5-frames-close", "6-frames-close")

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        return cls.VARIANTS

    def __init__(self, variant: str | None = None, frame_max_side: int = FRAME_MAX_SIDE, **kwargs: Any):
        super().__init__(variant, **kwargs)
        m = _VARIANT.match(self.variant)
        if not m:
            raise ValueError("temporal variant must be 'K-frames' or 'K-frames-close' with K in 3..6; "
                             f"got {self.variant!r}")
        self.k = int(m.group(1))
        self.gap = "close" if m.group(2) else "wide"
        if int(frame_max_side) < 16:
            raise ValueError(f"frame_max_side must be at least 16 pixels, got {frame_max_side}")
        self.frame_max_side = int(frame_max_side)

    # -- drawing ---------------------------------------------------------------------------
    def _shown(self, rng: np.random.Generator) -> list[int]:
        """shown[j] = the time index of the frame shown as label j + 1 (never in time order)."""
        perm = rng.permutation(self.k)
        while np.array_equal(perm, np.arange(self.k)):
            perm = rng.permutation(self.k)
        return [int(p) for p in perm]

    def make_params(self, rng: np.random.Generator, item: Item) -> dict[str, Any]:
        clip = getattr(item, "clip", None)
        if clip is not None:
            return self._video_params(rng, clip)
        seed = _scene_seed(item)
        if seed is not None:
            return self._path_params(rng, item, seed)
        return {"source_kind": "still", "k": self.k}

    def _video_params(self, rng: np.random.Generator, clip) -> dict[str, Any]:
        n, k = clip.frame_count, self.k
        size = list(frame_size(clip.width, clip.height, self.frame_max_side))
        params: dict[str, Any] = {"source_kind": "video", "k": k, "gap": self.gap, "frame_size": size}
        if n < k:
            params.update(frames=None, shown=self._shown(rng))
            return params
        fps = clip.fps if clip.fps > 0 else 25.0
        lo, hi = VIDEO_GAPS_S[self.gap]
        widest = (n - 1) // (k - 1)  # the largest even gap the clip holds
        gaps = [int(min(widest, max(1, round(float(rng.uniform(lo, hi)) * fps)))) for _ in range(k - 1)]
        start = int(rng.integers(n - sum(gaps)))
        frames = [start]
        for g in gaps:
            frames.append(frames[-1] + g)
        params.update(frames=frames, times_s=[round(clip.time_of(i), 6) for i in frames], shown=self._shown(rng))
        return params

    def _path_params(self, rng: np.random.Generator, item: Item, seed: int) -> dict[str, Any]:
        motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
        kind = "turn" if motion.startswith("turn_") else "walk" if motion in ("forward", "backward") else "move"
        lo, hi = STEPS[self.gap][kind]
        step = float(rng.uniform(lo, hi))
        centre = Pose(**{key: float(rng.uniform(a, b)) for key, (a, b) in CENTRE.items()})
        # the path runs through the centre: (k - 1) / 2 steps back, then k - 1 steps on
        back = {"forward": "backward", "backward": "forward", "left": "right", "right": "left",
                "turn_left": "turn_right", "turn_right": "turn_left"}[motion]
        pose = centre
        for _ in range(self.k - 1):
            pose = step_pose(pose, back, step / 2.0)
        poses = [pose]
        for _ in range(self.k - 1):
            poses.append(step_pose(poses[-1], motion, step))
        return {
            "source_kind": "procedural",
            "k": self.k,
            "gap": self.gap,
            "scene": seed,
            "frame_size": list(frame_size(item.width, item.height, self.frame_max_side)),
            "motion": motion,
            "step": round(step, 6),
            "poses": [p.to_dict() for p in poses],
            "shown": self._shown(rng),
        }

    # -- the frames --------------------------------------------------------------------------
    def frames(self, item: Item, params: dict[str, Any]) -> list[np.ndarray]:
        """The clip's frames in time order, at the shown size."""
        size = tuple(params["frame_size"])
        if params["source_kind"] == "video":
            return item.clip.frames(params["frames"], size)  # type: ignore[attr-defined]
        return render_path(params["scene"], size, params["poses"])

    def check(self, item: Item, params: dict[str, Any]) -> str | None:
        kind = params.get("source_kind")
        if kind == "still":
            return "temporal_needs_a_clip"
        if kind == "video" and params["frames"] is None:
            return "temporal_clip_too_short"
        if kind == "procedural":
            for p in params["poses"]:
                problem = pose_problem(params["scene"], Pose.from_dict(p))
                if problem:
                    return f"temporal_pose_{problem}"
        try:
            frames = self.frames(item, params)
        except VideoDecodeError:
            return "temporal_frame_unreadable"
        d = frame_distances(frames)
        limit = self.thresholds.temporal_frame_distance
        off = d[np.triu_indices(len(frames), k=1)]
        if off.max() < limit:
            return "temporal_near_static"
        if off.min() < limit:
            return "temporal_repeated_frames"
        return None

    def render(self, item: Item, params: dict[str, Any]) -> Rendered:
        frames = self.frames(item, params)
        shown = params["shown"]
        images = [np.ascontiguousarray(frames[t]) for t in shown]
        prompts = get_prompt_set(self.prompt_set)
        if params["source_kind"] == "procedural":
            problem = prompts.temporal(self.k, motion=params["motion"])
        else:
            problem = prompts.temporal(self.k, first=shown.index(0) + 1)
        w, h = params["frame_size"]
        return Rendered(images=images, problem=problem, extra_meta={"output_size": [w, h]})

    def answer(self, params: dict[str, Any]) -> str:
        shown = params["shown"]
        return "-".join(str(shown.index(t) + 1) for t in range(len(shown)))
