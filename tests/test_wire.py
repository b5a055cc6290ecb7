"""The worker -> parent frame (``engine/wire.py``): what goes in comes out, large images as
read-only views of the frame and never in the pickle, over a real pipe that hands the
bytes over in pieces."""

from __future__ import annotations

import os
import pickle
import threading

import pytest

from spatial_ssrl.engine import wire
from spatial_ssrl.writers.encoded import EncodedSample


def _sample(i: int, sizes: list[int]) -> EncodedSample:
    return EncodedSample(id=f"s{i}", task="flip", variant="2x2", images=[os.urandom(n) for n in sizes],
                         image_names=[f"s{i}-{k}.png" for k in range(len(sizes))], problem="<image>q é",
                         answer="0-1", answer_type="flip", options=["a", "b"], source="src", meta={"k": [1, 2.5, None]})


def _roundtrip(obj) -> tuple[object, int, list]:
    parts = wire.encode(obj)
    r, w = os.pipe()
    errors: list[BaseException] = []

    def send() -> None:
        try:
            wire.write_frame(w, parts)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            os.close(w)

    t = threading.Thread(target=send)
    t.start()  # the frame is larger than the pipe: the writer must wait for the reader
    try:
        got, size = wire.read_frame(r)
        with pytest.raises(EOFError):
            wire.read_frame(r)  # nothing after the frame, and the end is reported
    finally:
        t.join()
        os.close(r)
    assert not errors
    return got, size, parts


def test_large_images_come_out_of_band_as_read_only_views():
    samples = [_sample(i, [300_000, 1_000, 70_000]) for i in range(5)]
    originals = [list(s.images) for s in samples]
    for s in samples:
        wire.out_of_band(s)
    got, size, parts = _roundtrip(("unit", 7, samples))
    assert got[:2] == ("unit", 7)
    for s, g, imgs in zip(samples, got[2], originals):
        assert isinstance(g, EncodedSample)
        assert (g.id, g.problem, g.options, g.meta) == (s.id, s.problem, s.options, s.meta)
        assert [bytes(b) for b in g.images] == imgs
        kinds = [type(b) for b in g.images]
        assert kinds == [memoryview, bytes, memoryview]  # the 1 KB image stays in the pickle
        assert g.images[0].readonly
    # the pickle holds none of the large images' bytes: 10 out-of-band buffers follow it
    main = bytes(parts[1])
    assert len(parts) == 2 + 10
    assert len(main) < 5 * 1_000 + 10_000
    assert originals[0][0][:64] not in main
    assert size == sum(memoryview(p).nbytes for p in parts[1:])


def test_plain_objects_and_an_empty_frame_round_trip():
    obj = {"a": [1, 2, 3], "b": b"x" * 100_000, "c": None}  # bytes outside a sample stay in band
    got, _, parts = _roundtrip(obj)
    assert got == obj and len(parts) == 2
    got, _, _ = _roundtrip(None)
    assert got is None


def test_a_truncated_frame_is_an_eof_not_a_bad_object():
    s = _sample(0, [200_000])
    wire.out_of_band(s)
    data = b"".join(bytes(memoryview(p).cast("B")) for p in wire.encode(s))
    r, w = os.pipe()
    os.write(w, data[:1000])
    os.close(w)
    with pytest.raises(EOFError):
        wire.read_frame(r)
    os.close(r)


def test_write_frame_to_a_closed_pipe_raises_oserror():
    r, w = os.pipe()
    os.close(r)
    with pytest.raises(OSError):
        wire.write_frame(w, wire.encode(b"x" * 10))
    os.close(w)


def test_out_of_band_marks_only_large_bytes():
    s = _sample(0, [wire.OUT_OF_BAND_MIN, wire.OUT_OF_BAND_MIN - 1])
    wire.out_of_band(s)
    assert [type(b) for b in s.images] == [pickle.PickleBuffer, bytes]


# --------------------------------------------------------------------------------------
# The shared ring
# --------------------------------------------------------------------------------------
def _ring_roundtrip(obj, writer: wire.RingWriter, reader: wire.RingReader):
    parts = wire.encode(obj, writer)
    r, w = os.pipe()
    t = threading.Thread(target=lambda: (wire.write_frame(w, parts), os.close(w)))
    t.start()
    try:
        got, size = wire.read_frame(r, reader)
    finally:
        t.join()
        os.close(r)
    return got, size, parts


def test_images_through_the_ring_are_views_of_it_and_the_pipe_carries_only_the_pickle():
    ring = wire.Ring(4 * 1024 * 1024)
    writer, reader = wire.RingWriter(ring), wire.RingReader(ring)
    s = _sample(0, [300_000, 200_000])
    want = list(s.images)
    wire.out_of_band(s)
    got, size, parts = _ring_roundtrip(s, writer, reader)
    assert len(parts) == 2  # header and pickle: the images went into the ring
    assert sum(memoryview(p).nbytes for p in parts) < 10_000
    assert [bytes(b) for b in got.images] == want
    assert all(isinstance(b, memoryview) and b.readonly for b in got.images)
    assert reader.placed == 1 and size >= 500_000
    # the bytes the parent sees are the ring's own: a write into the ring shows through
    ring.mem[0:4] = b"ABCD"
    assert bytes(got.images[0][:4]) == b"ABCD"


def test_an_area_comes_back_when_its_last_view_is_gone_in_arrival_order():
    ring = wire.Ring(1024 * 1024)
    writer, reader = wire.RingWriter(ring), wire.RingReader(ring)
    frames = []
    for i in range(3):
        s = _sample(i, [200_000])
        wire.out_of_band(s)
        frames.append(_ring_roundtrip(s, writer, reader)[0])
    assert reader.placed == 3
    assert reader.tail() == 0  # all three still held
    del frames[1]
    assert reader.tail() == 0  # the second is free, but the first still holds the way
    del frames[0]
    assert reader.tail() == 400_000  # now both
    del frames[0]
    assert reader.tail() == 600_000


def test_the_tail_waits_for_every_view_of_a_frame():
    ring = wire.Ring(1024 * 1024)
    writer, reader = wire.RingWriter(ring), wire.RingReader(ring)
    a = _sample(0, [200_000, 100_000])
    wire.out_of_band(a)
    got, _, _ = _ring_roundtrip(a, writer, reader)
    second = got.images[1]
    del got
    assert reader.tail() == 0  # one view of the frame is alive
    del second
    assert reader.tail() == 300_000


def test_a_full_ring_sends_through_the_pipe_and_wraps_once_given_back():
    ring = wire.Ring(1024 * 1024)
    writer, reader = wire.RingWriter(ring), wire.RingReader(ring)
    held = []
    for i in range(3):  # 3 x 300 KB fit; the 4th does not
        s = _sample(i, [300_000])
        wire.out_of_band(s)
        held.append(_ring_roundtrip(s, writer, reader)[0])
    s = _sample(3, [300_000])
    want = bytes(s.images[0])
    wire.out_of_band(s)
    got, _, parts = _ring_roundtrip(s, writer, reader)
    assert len(parts) == 3 and reader.placed == 3  # through the pipe
    assert bytes(got.images[0]) == want
    # the parent gives the first two back and says so with the next unit
    del held[:2]
    writer.heard(reader.tail())
    s = _sample(4, [300_000])
    want = bytes(s.images[0])
    wire.out_of_band(s)
    got, _, parts = _ring_roundtrip(s, writer, reader)
    assert len(parts) == 2 and reader.placed == 4  # through the ring, at its start again
    assert writer.head == 1024 * 1024 + 300_000
    assert bytes(got.images[0]) == want
    assert bytes(held[0].images[0]) != want and len(held) == 1  # the held frame is untouched
    # a frame bigger than the ring always takes the pipe
    big = _sample(5, [2 * 1024 * 1024])
    wire.out_of_band(big)
    assert len(wire.encode(big, writer)) == 3


def test_a_ring_frame_read_without_the_ring_is_refused():
    ring = wire.Ring(1024 * 1024)
    s = _sample(0, [100_000])
    wire.out_of_band(s)
    parts = wire.encode(s, wire.RingWriter(ring))
    r, w = os.pipe()
    wire.write_frame(w, parts)
    os.close(w)
    with pytest.raises(ValueError, match="ring"):
        wire.read_frame(r)
    os.close(r)
