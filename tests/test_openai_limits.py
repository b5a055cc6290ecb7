"""What a hostile or broken OpenAI-compatible server can make one request cost: bounded in
time (a total deadline per attempt) and in memory (a cap on the answer's size).

On the code before these bounds, the drip tests ran for the whole drip (tens of seconds),
the endless body grew memory until killed and the huge answers were accepted."""

from __future__ import annotations

import resource
import time

import pytest

pytest.importorskip("httpx")

from openai_server import Drip, Endless, Huge, OpenAIServer

from spatial_ssrl.backends.openai_backend import (
    DEADLINE_ERROR,
    TOO_LARGE_ERROR,
    Item,
    OpenAIBackend,
)


def _backend(server, **kw) -> OpenAIBackend:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("retries", 0)
    return OpenAIBackend(server.api_base, "test-model", api_key="", **kw)


def _run(action, **kw):
    with OpenAIServer(script={"BAD": [action] * 5}) as server:
        t0 = time.monotonic()
        results = _backend(server, **kw).generate([Item("BAD", []), Item("fine", [])])
        return results, time.monotonic() - t0


@pytest.mark.parametrize("headers", [False, True], ids=["body", "headers"])
def test_a_server_dripping_bytes_hits_the_deadline(headers):
    # ~110 bytes at 0.05 s each: over 5 s without a deadline; each byte well within --timeout
    results, elapsed = _run(Drip(0.05, headers=headers), timeout=0.5)  # deadline: 2 x timeout = 1 s
    bad, fine = results
    assert bad.text is None and bad.error == DEADLINE_ERROR and bad.attempts == 1
    assert 0.9 <= bad.seconds < 2.0
    assert fine.ok and fine.text == "fine"
    assert elapsed < 3


def test_the_deadline_can_be_set_apart_from_the_timeout_and_is_retried():
    results, elapsed = _run(Drip(0.05), timeout=5, request_deadline=0.4, retries=1)
    bad = results[0]
    assert bad.error == DEADLINE_ERROR and bad.attempts == 2
    assert elapsed < 3


def test_an_endless_body_stops_at_the_size_cap():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results, elapsed = _run(Endless(), timeout=30)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    bad, fine = results
    assert bad.text is None and bad.error == TOO_LARGE_ERROR and bad.attempts == 1  # not retried
    assert fine.ok
    assert elapsed < 5
    assert grown_mib < 200


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "no-length"])
def test_a_huge_answer_is_refused(with_length):
    size = (300 << 20) if with_length else (20 << 20)
    results, elapsed = _run(Huge(size, length=with_length), timeout=30)
    bad, fine = results
    assert bad.text is None and bad.error == TOO_LARGE_ERROR
    assert fine.ok
    assert elapsed < 5


def test_the_size_cap_is_an_option_and_answers_within_it_pass():
    with OpenAIServer(script={"BIG": [Huge(5000)]}) as server:
        backend = _backend(server, max_response_bytes=4096, timeout=5)
        big, small = backend.generate([Item("BIG", []), Item("small", [])])
    assert big.error == TOO_LARGE_ERROR
    assert small.text == "small"


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="request_deadline"):
        OpenAIBackend("http://127.0.0.1:9/v1", "m", request_deadline=0)
    with pytest.raises(ValueError, match="max_response_bytes"):
        OpenAIBackend("http://127.0.0.1:9/v1", "m", max_response_bytes=0)
