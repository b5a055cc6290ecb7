"""Uniform frame sampling from a video file, for video benchmarks (VSI-Bench).

Decoding uses PyAV (``pip install 'spatial-ssrl[video]'``; the wheels bundle FFmpeg),
imported only when a video is actually decoded, so the rest of the package never needs it.

Sampling rule (:func:`uniform_indices`): ``n`` indices spread evenly over the whole video,
first and last frame included (index ``i * (total - 1) / (n - 1)`` rounded half up); a video
with ``total <= n`` frames gives every frame once; ``n == 1`` gives the middle frame. The frame
count is the number of video packets the container holds (read by demuxing, not the header's
``nb_frames``, which re-muxed files sometimes get wrong); when the decoder turns out to yield
fewer frames than that, the indices are recomputed on the decoded count.
"""

from __future__ import annotations

import io
from typing import Any

from .base import BenchmarkError

VIDEO_EXTRA_HINT = "pip install 'spatial-ssrl[video]'"


class VideoError(Exception):
    """A video that cannot be opened or decoded (the benchmark skips its items)."""


def require_decoder() -> Any:
    """The PyAV module, or a one-line :class:`BenchmarkError` naming the extra to install."""
    try:
        import av
    except ImportError:
        raise BenchmarkError(f"decoding videos needs PyAV, which is not installed: {VIDEO_EXTRA_HINT}") from None
    return av


def uniform_indices(total: int, n: int) -> list[int]:
    """``n`` frame indices spread evenly over ``total`` frames, both ends included."""
    if n < 1:
        raise ValueError(f"frames must be at least 1, got {n}")
    if total <= 0:
        return []
    if total <= n:
        return list(range(total))
    if n == 1:
        return [(total - 1) // 2]
    # round(i * (total-1) / (n-1)) half up, in integers
    return [(2 * i * (total - 1) + (n - 1)) // (2 * (n - 1)) for i in range(n)]


def count_frames(path: str) -> int:
    """The number of video frames of ``path`` (packets of its first video stream)."""
    av = require_decoder()
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"{path}: {exc}") from None


def _decode(path: str, wanted: set[int]) -> tuple[dict[int, Any], int]:
    """PIL images of the frames at ``wanted`` (presentation order) and the number of frames
    decoded (all of them when some wanted index was not reached)."""
    av = require_decoder()
    last = max(wanted)
    found: dict[int, Any] = {}
    decoded = 0
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                decoded = index + 1
                if index in wanted:
                    found[index] = frame.to_image()
                if index >= last:
                    break
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"{path}: {exc}") from None
    return found, decoded


def _jpeg(image: Any, max_side: int | None, quality: int) -> bytes:
    image = image.convert("RGB")
    if max_side and max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def sample_frames(path: str, n: int, max_side: int | None = None, quality: int = 90) -> tuple[list[bytes], list[int]]:
    """``n`` uniformly sampled frames of the video at ``path`` as JPEG bytes, and their
    indices. ``max_side`` downscales frames whose longer side exceeds it. Raises
    :class:`VideoError` for an unreadable video, :class:`BenchmarkError` without PyAV."""
    total = count_frames(path)
    indices = uniform_indices(total, n)
    if not indices:
        raise VideoError(f"{path}: no frames")
    found, decoded = _decode(path, set(indices))
    if len(found) < len(indices):  # the decoder gave fewer frames than the container has packets
        indices = uniform_indices(decoded, n)
        if not indices:
            raise VideoError(f"{path}: no frame could be decoded")
        found, _ = _decode(path, set(indices))
        if len(found) < len(indices):
            raise VideoError(f"{path}: frames could not be decoded")
    return [_jpeg(found[i], max_side, quality) for i in indices], indices
