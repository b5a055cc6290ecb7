"""Fuzzing the manifest (``.jsonl``) and list (``.txt``) readers of
:mod:`spatial_ssrl.sources`: random bytes (non-UTF-8 included) and random JSON lines.
Every line is either a ref or a counted skip (``manifest_bad_line`` ...); a file with no
usable line is an :class:`InputError`; nothing else is raised.
"""

from __future__ import annotations

import json
from pathlib import Path

from fuzzing import REASON, remove_tmpdirs, tmpdir  # noqa: F401 (remove_tmpdirs: module fixture)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spatial_ssrl.sources import SourceRef, discover, discover_rgbd
from spatial_ssrl.sources.files import InputError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def _tmpdir() -> Path:
    return tmpdir("fuzz-readers-")


def _check_report(refs, report):
    assert all(isinstance(r, SourceRef) for r in refs)
    assert len({r.id for r in refs}) == len(refs), "ids are unique"
    for reason, count in report.items():
        assert REASON.match(reason) and count > 0, (reason, count)
    for r in refs:
        assert isinstance(r.path, str) and r.path


def _discover_rgbd(path: Path):
    try:
        refs, report = discover_rgbd([str(path)])
    except InputError as exc:
        assert str(exc)
        return None
    _check_report(refs, report)
    return refs, report


def _discover(path: Path):
    try:
        refs, ignored = discover([str(path)])
    except InputError as exc:
        assert str(exc)
        return None
    _check_report(refs, ignored)
    return refs, ignored


# Line pieces: random bytes, with newlines and invalid UTF-8 likely.
_line_bytes = st.lists(
    st.one_of(st.binary(max_size=40), st.sampled_from([b"\n", b"\r\n", b"\xff\xfe", b"\x80", b"#", b"\x00", b"{}"])),
    max_size=12,
).map(b"".join)


@FUZZ
@given(data=_line_bytes)
def test_manifest_random_bytes(data):
    p = _tmpdir() / "pairs.jsonl"
    p.write_bytes(data)
    _discover_rgbd(p)


@FUZZ
@given(data=_line_bytes)
def test_list_file_random_bytes(data):
    p = _tmpdir() / "inputs.txt"
    p.write_bytes(data)
    _discover(p)
    _discover_rgbd(p)


_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, 0, -1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["a.png", "../b.jpg", "/abs/c.png", "d.npy", "~/e.png", " ", "", "\udcff.png", "x\x00y.png"]),
)
_json = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=10,
)
_KEYS = ["rgb", "depth", "mask", "depth_format", "intrinsics", "depth_scale", "baseline", "disparity_offset",
         "doffs", "id", "unknown_key"]
_entry = st.one_of(
    _json,
    st.dictionaries(
        st.sampled_from(_KEYS),
        st.one_of(
            _json,
            st.lists(st.one_of(st.integers(), st.floats(), st.sampled_from([10**400, True])), min_size=3, max_size=5),
            st.sampled_from(["diode", "megadepth", "png16", "disparity", "npy", "bogus"]),
        ),
        max_size=8,
    ),
)


def _dump(entry) -> bytes:
    # ensure_ascii=False + surrogateescape: lone surrogates become raw (non-UTF-8) bytes
    return json.dumps(entry, ensure_ascii=False).encode("utf-8", "surrogateescape")


@FUZZ
@example(entries=[{"rgb": "a.png", "depth_scale": 10**400}], junk=[])  # OverflowError in math.isfinite
@example(entries=[{"rgb": "a.png", "depth": "a.npy", "intrinsics": [10**400, 1, 1, 1]}], junk=[])
@example(entries=[{"rgb": "a.png", "doffs": -(10**400)}, {"rgb": "ok.png"}], junk=[b"\xff"])
@given(
    entries=st.lists(st.one_of(_entry, st.just({"rgb": "ok.png"})), min_size=1, max_size=8),
    junk=st.lists(st.sampled_from([b"", b"# comment", b"{", b"\xff\xfe{}", b"[]", b"null", b"1e999", b"NaN"]),
                  max_size=3),
)
def test_manifest_random_json_lines(entries, junk):
    d = _tmpdir()
    (d / "ok.png").write_bytes(b"")  # exists, never opened by discovery
    lines = []
    for e in entries:
        try:
            lines.append(_dump(e))
        except (UnicodeEncodeError, ValueError):
            lines.append(b"{")
    lines += junk
    p = d / "pairs.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    out = _discover_rgbd(p)
    content = [ln for ln in lines if ln.strip() and not ln.strip().startswith(b"#")]
    if out is None:
        return
    refs, report = out
    # each non-blank, non-comment line is a ref, a bad line, or a duplicate of a taken file
    accounted = len(refs) + report.get("manifest_bad_line", 0) + report.get("duplicate_rgb", 0) \
        + report.get("duplicate_file", 0)
    assert accounted == len(content), (accounted, len(content), dict(report))
