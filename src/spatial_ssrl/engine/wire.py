"""How a worker's results cross its result pipe to the parent.

A result is a pickle (protocol 5) whose image bytes travel *out of band*: the pickle holds
the small things (ids, questions, answers, metadata) and a placeholder for each image, and
the images follow it as they are. One frame::

    !QI    body length, number of out-of-band buffers (n)
    !(n+1)Q  the pickle's length, then each buffer's length
    body   the pickle, then the buffers, back to back

The worker writes the pieces with one ``writev`` (the images are never copied into a
pickle first); the parent reads the body into one buffer and unpickles it with the
buffers as views of that buffer, so an image arrives as a ``memoryview`` of the frame and
is never copied either. With the images pickled in band, at 600 samples of the default mix
(230 MB of images) the two copies, each into freshly allocated memory, cost the workers
0.25 s and the parent 0.3-0.7 s of CPU, on two cores that had none to spare.

Anything may be sent; only ``bytes`` in the ``images`` of an :class:`EncodedSample` at
least :data:`OUT_OF_BAND_MIN` long go out of band (they are the bulk)."""

from __future__ import annotations

import io
import os
import pickle
import struct
from multiprocessing.reduction import ForkingPickler

from ..writers.encoded import EncodedSample

OUT_OF_BAND_MIN = 16 * 1024
"""Images smaller than this are pickled in band: a buffer of its own is not worth it."""

_HEAD = struct.Struct("!QI")
_IOV_MAX = 512  # pieces per writev call (the system's limit is 1024 on Linux)


def out_of_band(sample: EncodedSample) -> None:
    """Mark ``sample``'s large images to travel out of band (in place: the worker is done
    with it)."""
    sample.images = [pickle.PickleBuffer(b) if isinstance(b, bytes) and len(b) >= OUT_OF_BAND_MIN else b
                     for b in sample.images]


def encode(obj) -> list:
    """The frame of ``obj``: a list of buffers to write in order."""
    bufs: list[memoryview] = []

    def keep(pb: pickle.PickleBuffer) -> bool:
        bufs.append(pb.raw())
        return False  # false: out of band

    out = io.BytesIO()
    ForkingPickler(out, 5, True, keep).dump(obj)  # (file, protocol, fix_imports, buffer_callback)
    main = out.getbuffer()
    lengths = [main.nbytes, *(b.nbytes for b in bufs)]
    head = _HEAD.pack(sum(lengths), len(bufs)) + struct.pack(f"!{len(lengths)}Q", *lengths)
    return [head, main, *bufs]


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


def read_frame(fd: int) -> tuple[object, int]:
    """One frame from ``fd``: the object and the frame's body size in bytes. Raises
    ``EOFError`` when the pipe ends first."""
    size, nbufs = _HEAD.unpack(_read_exactly(fd, _HEAD.size))
    lengths = struct.unpack(f"!{nbufs + 1}Q", _read_exactly(fd, 8 * (nbufs + 1)))
    body = memoryview(_read_exactly(fd, size))
    main = body[:lengths[0]]
    buffers = []
    at = lengths[0]
    for n in lengths[1:]:
        buffers.append(body[at:at + n].toreadonly())
        at += n
    return pickle.loads(main, buffers=buffers), size
