"""Video files as sources: clips whose frames a task decodes on demand.

Decoding uses PyAV (the ``video`` extra: ``pip install 'spatial-ssrl[video]'``; its wheels
bundle FFmpeg), imported only when a video is opened, so image-only runs never need it.

A video ``--input`` (:data:`VIDEO_EXTENSIONS`) becomes a ``SourceRef`` of kind ``video``.
Loading it (:func:`load_video_item`) reads no frame but one: it demuxes the first video
stream's packets (no decoding) to learn every frame's presentation timestamp and which
frames are keyframes, and decodes the middle frame as the item's ``rgb`` (what the
run's blank-image check looks at). The item is a :class:`VideoItem`: an ordinary
:class:`~.base.Item` plus its :class:`VideoClip`, so image-only tasks are never handed
one (the engine deals videos only to tasks that take clips), and a task that takes clips
asks the clip for exactly the frames it drew.

Frame numbers
-------------
Frame ``i`` is the ``i``-th frame in presentation order: the packet timestamps sorted
(B-frames make the decoding order differ). ``VideoClip.frames`` seeks to the keyframe at
or before the first wanted frame, decodes forward to it, and seeks again only when a
keyframe lies between one wanted frame and the next, so a few frames of a long video cost
a few groups of pictures, not the whole file. A stream whose packets carry no timestamps
is decoded from the start and its frames counted instead.

Skips (named): ``not_found``, ``not_a_file``, ``unreadable``, ``video_needs_pyav`` (the
extra is not installed), ``not_a_video`` (FFmpeg cannot open it), ``no_video_stream``,
``video_too_short`` (fewer than two frames), ``too_many_pixels``, ``too_small``,
``corrupt_or_truncated`` (a frame that should be there does not decode).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from PIL import Image

from .base import Item, SourceRef, SourceSkip, display_path

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv"})
VIDEO_EXTRA_HINT = "pip install 'spatial-ssrl[video]'"
FRAME_CACHE_ENTRIES = 16
"""Decoded (and resized) frames a clip keeps: a task checks the frames it drew and then
draws them, so each is decoded once."""


def is_video_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


class VideoDecodeError(Exception):
    """A frame the index promises could not be decoded."""


def _av():
    try:
        import av
    except ImportError:
        return None
    return av


def resize_frame(rgb: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """``rgb`` at ``size`` = (width, height) by an area (box) filter; unchanged when it
    already has that size or ``size`` is None."""
    if size is None or (rgb.shape[1], rgb.shape[0]) == (int(size[0]), int(size[1])):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((int(size[0]), int(size[1])), Image.Resampling.BOX))


@dataclass
class VideoClip:
    """The frame index of one video file and on-demand decoding of its frames."""

    path: str
    width: int
    height: int
    frame_count: int
    fps: float
    time_base: Fraction | None
    pts: tuple[int, ...] | None
    """Presentation timestamps of frames 0..n-1 (stream time base); None: the stream gives
    none, frames are numbered in decoding output order."""
    keyframes: tuple[int, ...] = ()
    """Timestamps of the keyframes, sorted."""
    codec: str = ""
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __getstate__(self) -> dict:  # the cache and its lock stay in this process
        state = dict(self.__dict__)
        state["_cache"], state["_lock"] = OrderedDict(), None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- timing --------------------------------------------------------------------------
    def time_of(self, i: int) -> float:
        """Seconds of frame ``i`` after frame 0."""
        if self.pts is not None and self.time_base is not None:
            return float((self.pts[i] - self.pts[0]) * self.time_base)
        return i / self.fps if self.fps > 0 else float(i)

    def describe(self) -> dict[str, Any]:
        """What a sample's meta records about its clip."""
        return {"frames": self.frame_count, "fps": round(self.fps, 6), "width": self.width,
                "height": self.height, "codec": self.codec,
                "duration_s": round(self.time_of(self.frame_count - 1), 6) if self.frame_count else 0.0}

    # -- decoding ------------------------------------------------------------------------
    def frames(self, indices, size: tuple[int, int] | None = None) -> list[np.ndarray]:
        """Frames ``indices`` (any order, repeats allowed) as read-only RGB uint8 arrays,
        resized to ``size`` = (width, height) when given. :class:`VideoDecodeError` when one
        does not decode."""
        idx = [int(i) for i in indices]
        for i in idx:
            if not 0 <= i < self.frame_count:
                raise VideoDecodeError(f"frame {i} is outside the clip's {self.frame_count} frames")
        key_size = None if size is None else (int(size[0]), int(size[1]))
        out: dict[int, np.ndarray] = {}
        with self._lock:
            for i in idx:
                hit = self._cache.get((i, key_size))
                if hit is not None:
                    self._cache.move_to_end((i, key_size))
                    out[i] = hit
        missing = sorted({i for i in idx if i not in out})
        if missing:
            decoded = self._decode(missing)
            with self._lock:
                for i in missing:
                    a = np.ascontiguousarray(resize_frame(decoded[i], key_size), dtype=np.uint8)
                    a.setflags(write=False)
                    out[i] = a
                    self._cache[(i, key_size)] = a
                    while len(self._cache) > FRAME_CACHE_ENTRIES:
                        self._cache.popitem(last=False)
        return [out[i] for i in idx]

    def _decode(self, wanted: list[int]) -> dict[int, np.ndarray]:
        av = _av()
        if av is None:
            raise VideoDecodeError(f"decoding videos needs PyAV: {VIDEO_EXTRA_HINT}")
        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                if self.pts is None:
                    return self._decode_counting(container, stream, wanted)
                try:
                    return self._decode_seeking(container, stream, wanted)
                except (VideoDecodeError, av.error.FFmpegError):
                    pass  # a file whose seeking misleads: read it from the start instead
            with av.open(self.path) as container:
                return self._decode_through(container, container.streams.video[0], wanted)
        except VideoDecodeError:
            raise
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise VideoDecodeError(f"{type(exc).__name__}: {exc}") from None

    def _decode_through(self, container, stream, wanted: list[int]) -> dict[int, np.ndarray]:
        """Decode from the start, keeping the frames whose timestamps are wanted."""
        want = {self.pts[i]: i for i in wanted}
        out: dict[int, np.ndarray] = {}
        for frame in container.decode(stream):
            i = want.get(frame.pts)
            if i is not None and i not in out:
                out[i] = frame.to_ndarray(format="rgb24")
                if len(out) == len(want):
                    return out
        raise VideoDecodeError(f"frames {sorted(set(want.values()) - set(out))} did not decode")

    def _decode_counting(self, container, stream, wanted: list[int]) -> dict[int, np.ndarray]:
        want = set(wanted)
        out: dict[int, np.ndarray] = {}
        for n, frame in enumerate(container.decode(stream)):
            if n in want:
                out[n] = frame.to_ndarray(format="rgb24")
                if len(out) == len(want):
                    return out
        raise VideoDecodeError(f"frames {sorted(want - set(out))} did not decode")

    def _decode_seeking(self, container, stream, wanted: list[int]) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        frames_iter = None
        last = None  # pts of the last frame decoded
        for i in wanted:
            target = self.pts[i]
            if frames_iter is None or last is None or last >= target or self._keyframe_between(last, target):
                container.seek(int(target), stream=stream, backward=True, any_frame=False)
                frames_iter = container.decode(stream)
            for frame in frames_iter:
                if frame.pts is None:
                    raise VideoDecodeError("a decoded frame has no timestamp")
                last = frame.pts
                if frame.pts == target:
                    out[i] = frame.to_ndarray(format="rgb24")
                    break
                if frame.pts > target:
                    raise VideoDecodeError(f"frame {i} (pts {target}) was passed over by the decoder")
            else:
                raise VideoDecodeError(f"frame {i} (pts {target}) did not decode")
        return out

    def _keyframe_between(self, after: int, upto: int) -> bool:
        """A keyframe with ``after < pts <= upto`` (seeking there beats decoding through)."""
        import bisect

        k = bisect.bisect_right(self.keyframes, after)
        return k < len(self.keyframes) and self.keyframes[k] <= upto


@dataclass
class VideoItem(Item):
    """A video source: ``rgb`` is its middle frame (at most ``resize_max_pixels``), ``clip``
    decodes any frame."""

    clip: VideoClip | None = None


def open_clip(path: str) -> VideoClip:
    """Index the first video stream of ``path``. Raises :class:`SourceSkip` (reasons in the
    module docstring)."""
    av = _av()
    if av is None:
        raise SourceSkip("video_needs_pyav", path, VIDEO_EXTRA_HINT)
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise SourceSkip("no_video_stream", path)
            stream = container.streams.video[0]
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
            pts: list[int] = []
            keys: list[int] = []
            no_pts = 0
            for packet in container.demux(stream):
                if not packet.size:  # the flush packet at the end
                    continue
                if packet.pts is None:
                    no_pts += 1
                    continue
                pts.append(int(packet.pts))
                if packet.is_keyframe:
                    keys.append(int(packet.pts))
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            tb = stream.time_base
            codec = stream.codec_context.name or ""
    except SourceSkip:
        raise
    except PermissionError as exc:
        raise SourceSkip("unreadable", path, f"permission denied: {exc.strerror or exc}") from exc
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise SourceSkip("not_a_video", path, str(exc).strip() or type(exc).__name__) from exc
    if no_pts or len(set(pts)) != len(pts):
        # no usable timestamps: frames are numbered as the decoder gives them out
        count = no_pts + len(pts)
        return VideoClip(path, width, height, count, fps, Fraction(tb) if tb else None, None, (), codec)
    return VideoClip(path, width, height, len(pts), fps, Fraction(tb) if tb else None, tuple(sorted(pts)),
                     tuple(sorted(keys)), codec)


def load_video_item(ref: SourceRef, options: Any = None) -> VideoItem:
    """Index the video ``ref`` names and decode its middle frame; ``options`` is a
    ``LoadOptions`` (``min_side``, ``max_pixels``, ``resize_max_pixels`` for that frame)."""
    path = ref.path
    if not os.path.exists(path):
        raise SourceSkip("not_found", path)
    if not os.path.isfile(path):
        raise SourceSkip("not_a_file", path)
    clip = open_clip(path)
    w, h = clip.width, clip.height
    if clip.frame_count < 2:
        raise SourceSkip("video_too_short", path, f"{clip.frame_count} frame(s)")
    max_pixels = getattr(options, "max_pixels", None)
    if max_pixels and w * h > max_pixels:
        raise SourceSkip("too_many_pixels", path, f"{w}x{h} > limit of {max_pixels} pixels")
    min_side = getattr(options, "min_side", 0) or 0
    if min(w, h) < min_side:
        raise SourceSkip("too_small", path, f"{w}x{h}, shorter side below {min_side} px")
    middle = (clip.frame_count - 1) // 2
    try:
        (rgb,) = clip.frames([middle])
    except VideoDecodeError as exc:
        raise SourceSkip("corrupt_or_truncated", path, f"frame {middle}: {exc}") from exc
    info: dict[str, Any] = {"video": {**clip.describe(), "poster_frame": middle}}
    limit = getattr(options, "resize_max_pixels", None)
    if limit and w * h > limit:
        from .images import _resize_to_fit

        rgb, resize = _resize_to_fit(np.asarray(rgb), int(limit))
        if resize:
            info["resize"] = resize
        rgb = np.ascontiguousarray(rgb)
        rgb.setflags(write=False)
    return VideoItem(id=ref.id, rgb=rgb, path=display_path(ref.name or path), info=info, clip=clip)


def video_ref(path: str, sid: str) -> SourceRef:
    return SourceRef(id=sid, path=path, kind="video")


__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoClip",
    "VideoDecodeError",
    "VideoItem",
    "is_video_name",
    "load_video_item",
    "open_clip",
    "resize_frame",
    "video_ref",
]
