"""How a worker's results cross its result pipe to the parent.

A result is a pickle (protocol 5) whose image bytes travel *out of band*: the pickle holds
the small things (ids, questions, answers, metadata) and a placeholder for each image, and
the images follow it as they are. One frame::

    !QIQQ    body length, number of out-of-band buffers (n), ring start and end (0 0:
             the buffers are in the body)
    !(n+1)Q  the pickle's length, then each buffer's length
    body     the pickle, then the buffers, back to back (or only the pickle)

The worker writes the pieces with one ``writev`` (the images are never copied into a
pickle first); the parent reads the body into one buffer and unpickles it with the
buffers as views of that buffer, so an image arrives as a ``memoryview`` of the frame and
is never copied either. With the images pickled in band, at 600 samples of the default mix
(230 MB of images) the two copies, each into freshly allocated memory, cost the workers
0.25 s and the parent 0.3-0.7 s of CPU, on two cores that had none to spare.

Anything may be sent; only ``bytes`` in the ``images`` of an :class:`EncodedSample` at
least :data:`OUT_OF_BAND_MIN` long go out of band (they are the bulk).

With a :class:`Ring` (a shared memory area of the worker's, mapped by both processes when
the worker is forked) the buffers skip the pipe too: the worker copies them into the ring
and the frame says where; the parent's images are then views of the ring. A ring area is
given back when the last view of its frame is gone (a finaliser on the frame's array), and
the worker learns how far it may write again from the *tail* the parent sends with each
unit (:meth:`RingReader.tail`). A frame that does not fit (the ring is full of results the
parent still holds, or the frame is bigger than the ring) goes through the pipe as above;
so the ring never makes anyone wait. Reading a frame through the pipe was 0.9 s of the
parent's CPU at 2,000 samples (780 MB): the copy out of the pipe, into fresh memory, in
64 KB pieces, each a wake-up of the worker's sending thread."""

from __future__ import annotations

import collections
import io
import mmap
import os
import pickle
import struct
import weakref
from multiprocessing.reduction import ForkingPickler

from ..writers.encoded import EncodedSample

OUT_OF_BAND_MIN = 16 * 1024
"""Images smaller than this are pickled in band: a buffer of its own is not worth it."""

RING_BYTES = 24 * 1024 * 1024
"""A worker's ring: room for about ten units' images of the default mix, and for one unit
of the 1,411 px photo (over 20 MB; a frame bigger than the ring takes the pipe). Its pages
count in the resident size of the worker and of the parent: at 2,000 samples 32 MB took
83% of the frames through the ring, 16 MB 59%, 8 MB 35%."""

_HEAD = struct.Struct("!QIQQ")  # body length, buffers, ring start and end (0, 0: in the pipe)
_IOV_MAX = 512  # pieces per writev call (the system's limit is 1024 on Linux)


class Ring:
    """A shared, anonymous memory area, made before the fork so both processes map it. Its
    offsets are *virtual*: they only grow, ``offset % size`` is the place."""

    def __init__(self, size: int | None = None):
        self.size = int(size or RING_BYTES)
        self.mem = mmap.mmap(-1, self.size)  # MAP_SHARED | MAP_ANONYMOUS


class RingWriter:
    """The worker's side: places frames' buffers in the ring while there is room."""

    def __init__(self, ring: Ring):
        self.ring = ring
        self.head = 0  # where the next frame goes
        self.tail = 0  # everything before it the parent has given back (as last heard)

    def heard(self, tail: int) -> None:
        self.tail = max(self.tail, int(tail))

    def place(self, bufs: list) -> tuple[int, int] | None:
        """Copy ``bufs`` into the ring back to back; their ``(start, end)`` in virtual
        offsets, or None (no room: they go through the pipe)."""
        n = sum(memoryview(b).nbytes for b in bufs)
        size = self.ring.size
        if n == 0 or n > size:
            return None
        start = self.head
        if start % size + n > size:  # no wrapping inside a frame: skip to the ring's start
            start += size - start % size
        if start + n - self.tail > size:
            return None
        at = start % size
        mem = self.ring.mem
        for b in bufs:
            k = memoryview(b).nbytes
            mem[at:at + k] = b
            at += k
        self.head = start + n
        return start, start + n


class RingReader:
    """The parent's side: views of the frames in the ring, and the tail to send back."""

    def __init__(self, ring: Ring):
        self.ring = ring
        self._frames: collections.deque = collections.deque()  # [end, released], in arrival order
        self._tail = 0
        self.placed = 0  # frames that came through the ring (for tests and benchmarks)

    def views(self, start: int, end: int, lengths: list[int]) -> list[memoryview]:
        import numpy as np

        at = start % self.ring.size
        whole = np.frombuffer(self.ring.mem, dtype=np.uint8, count=end - start, offset=at)
        entry = [end, False]
        self._frames.append(entry)
        weakref.finalize(whole, entry.__setitem__, 1, True)  # the last view gone: give it back
        self.placed += 1
        view = memoryview(whole)
        out, pos = [], 0
        for n in lengths:
            out.append(view[pos:pos + n].toreadonly())
            pos += n
        return out

    def tail(self) -> int:
        """Everything before this offset is free again (frames are given back in the order
        they came; a frame held longer holds back those after it)."""
        frames = self._frames
        while frames and frames[0][1]:
            self._tail = frames.popleft()[0]
        return self._tail


def out_of_band(sample: EncodedSample) -> None:
    """Mark ``sample``'s large images to travel out of band (in place: the worker is done
    with it)."""
    sample.images = [pickle.PickleBuffer(b) if isinstance(b, bytes) and len(b) >= OUT_OF_BAND_MIN else b
                     for b in sample.images]


def encode(obj, ring: RingWriter | None = None) -> list:
    """The frame of ``obj``: a list of buffers to write in order. With ``ring``, the
    out-of-band buffers are copied into it when they fit, and only the pickle is sent."""
    bufs: list[memoryview] = []

    def keep(pb: pickle.PickleBuffer) -> bool:
        bufs.append(pb.raw())
        return False  # false: out of band

    out = io.BytesIO()
    ForkingPickler(out, 5, True, keep).dump(obj)  # (file, protocol, fix_imports, buffer_callback)
    main = out.getbuffer()
    lengths = [main.nbytes, *(b.nbytes for b in bufs)]
    placed = ring.place(bufs) if ring is not None and bufs else None
    start, end = placed or (0, 0)
    body = main.nbytes if placed else sum(lengths)
    head = _HEAD.pack(body, len(bufs), start, end) + struct.pack(f"!{len(lengths)}Q", *lengths)
    return [head, main] if placed else [head, main, *bufs]


def write_frame(fd: int, parts: list) -> None:
    """Write every byte of ``parts`` to ``fd`` (a blocking pipe), with as few calls as the
    pipe allows."""
    views = [memoryview(p).cast("B") for p in parts]
    views = [v for v in views if v.nbytes]
    while views:
        n = os.writev(fd, views[:_IOV_MAX])
        while n and views:
            if n >= views[0].nbytes:
                n -= views[0].nbytes
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


def _read_exactly(fd: int, n: int) -> bytearray:
    """``n`` bytes from ``fd`` straight into one buffer of that size (``os.read`` of the
    whole remaining length would allocate that much on every call, and a pipe hands over
    64 KB at a time)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            raise EOFError
        got += k
    return buf


def read_frame(fd: int, ring: RingReader | None = None) -> tuple[object, int]:
    """One frame from ``fd``: the object and the bytes it brought (pipe and ring). Raises
    ``EOFError`` when the pipe ends first. A frame placed in the ring needs ``ring``."""
    size, nbufs, start, end = _HEAD.unpack(_read_exactly(fd, _HEAD.size))
    lengths = struct.unpack(f"!{nbufs + 1}Q", _read_exactly(fd, 8 * (nbufs + 1)))
    body = memoryview(_read_exactly(fd, size))
    main = body[:lengths[0]]
    if end > start:
        if ring is None:
            raise ValueError("a frame in a ring, read without it")
        return pickle.loads(main, buffers=ring.views(start, end, list(lengths[1:]))), size + end - start
    buffers = []
    at = lengths[0]
    for n in lengths[1:]:
        buffers.append(body[at:at + n].toreadonly())
        at += n
    return pickle.loads(main, buffers=buffers), size
