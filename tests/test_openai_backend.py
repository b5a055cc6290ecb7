"""The OpenAI-compatible chat backend against the local test server (tests/openai_server.py)."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("httpx")

from openai_server import DROP, Fail, OpenAIServer, Sleep, decode_data_url, part_kinds

from spatial_ssrl.backends.openai_backend import Item, OpenAIBackend, Result

HERE = Path(__file__).resolve().parent


def _backend(server, **kw) -> OpenAIBackend:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5.0)
    return OpenAIBackend(server.api_base, "test-model", api_key="", **kw)


def _token_answer(body) -> str:
    """'A7' for a question containing 'Q7'."""
    from openai_server import question_text

    q = question_text(body)
    token = next(w for w in q.replace("?", " ").split() if w.startswith("Q"))
    return "A" + token[1:]


def _pil(seed: int, mode: str = "RGB", size=(16, 12)) -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def test_answers_in_input_order_and_on_result_as_each_finishes():
    n = 12
    # Later items answer sooner, so completion order differs from input order; item 0 is slow.
    delays = {f"Q{i}": (1.2 if i == 0 else 0.01 * (n - i)) for i in range(n)}

    def delay(body):
        from openai_server import question_text

        return next(d for t, d in delays.items() if question_text(body).endswith(t + "?"))

    calls: list[tuple[int, Result, float]] = []
    with OpenAIServer(answer=_token_answer, delay=delay) as server:
        items = [Item(f"What is Q{i}?", []) for i in range(n)]
        t0 = time.monotonic()
        results = _backend(server, max_in_flight=4).generate(
            items, on_result=lambda i, r: calls.append((i, r, time.monotonic() - t0)))
        total = time.monotonic() - t0
    assert [r.text for r in results] == [f"A{i}" for i in range(n)]
    assert all(r.ok and r.error is None and r.attempts == 1 and r.finish_reason == "stop" for r in results)
    assert sorted(i for i, _, _ in calls) == list(range(n))
    assert all(results[i] is r for i, r, _ in calls)
    order = [i for i, _, _ in calls]
    assert order != sorted(order) and order[-1] == 0
    # The fast items were delivered while the slow one was still in flight.
    assert max(t for i, _, t in calls if i != 0) < 0.8
    assert total >= 1.2


def test_images_arrive_as_data_urls_in_placeholder_order():
    jpeg = _encoded(_pil(1), "JPEG")
    png = _encoded(_pil(2), "PNG")
    pil_rgb = _pil(3)
    pil_gray = _pil(4, mode="L")
    bmp = _encoded(_pil(5), "BMP")
    items = [
        Item("<image>first, then<image> and <image>: which?", [jpeg, png, pil_rgb]),
        Item("Compare <image><image>", [pil_gray, bmp]),
        Item("No image here.", []),
    ]
    with OpenAIServer(answer=lambda body: "ok") as server:
        results = _backend(server).generate(items)
        by_question = {r.question: r for r in server.requests}
    assert all(r.text == "ok" for r in results)
    assert len(by_question) == 3

    first = by_question["first, then and : which?"]
    assert part_kinds(first.body) == ["image", "text", "image", "text", "image", "text"]
    texts = [p["text"] for p in first.body["messages"][0]["content"] if p["type"] == "text"]
    assert texts == ["first, then", " and ", ": which?"]
    (m0, b0), (m1, b1), (m2, b2) = (decode_data_url(u) for u in first.image_urls)
    assert (m0, b0) == ("image/jpeg", jpeg)
    assert (m1, b1) == ("image/png", png)
    assert m2 == "image/png" and np.array_equal(np.asarray(Image.open(io.BytesIO(b2))), np.asarray(pil_rgb))

    second = by_question["Compare "]
    assert part_kinds(second.body) == ["text", "image", "image"]
    (g_mime, g_bytes), (b_mime, b_bytes) = (decode_data_url(u) for u in second.image_urls)
    assert g_mime == "image/png" and np.array_equal(np.asarray(Image.open(io.BytesIO(g_bytes))), np.asarray(pil_gray))
    # Formats other than JPEG/PNG/GIF/WebP are re-encoded losslessly as PNG.
    assert b_mime == "image/png" and np.array_equal(np.asarray(Image.open(io.BytesIO(b_bytes))),
                                                    np.asarray(_pil(5)))

    third = by_question["No image here."]
    assert part_kinds(third.body) == ["text"] and third.image_urls == []


def test_request_body_headers_and_api_key(monkeypatch):
    with OpenAIServer(answer=lambda body: "x") as server:
        OpenAIBackend(server.api_base + "/", "my-model", api_key="sk-test", max_tokens=77, temperature=0.5,
                      top_p=0.9, extra_body={"top_k": 5, "seed": 1}).generate([Item("hi", [])])
        monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
        OpenAIBackend(server.api_base, "m").generate([Item("hi", [])])
        monkeypatch.delenv("OPENAI_API_KEY")
        OpenAIBackend(server.api_base, "m").generate([Item("hi", [])])
        reqs = list(server.requests)
    body = reqs[0].body
    assert body["model"] == "my-model" and body["max_tokens"] == 77
    assert body["temperature"] == 0.5 and body["top_p"] == 0.9 and body["top_k"] == 5 and body["seed"] == 1
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    auth = [{k.lower(): v for k, v in r.headers.items()}.get("authorization") for r in reqs]
    assert auth == ["Bearer sk-test", "Bearer sk-env", None]


def test_transient_failures_are_retried():
    script = {"FLAKY": [Fail(500)], "BUSY": [Fail(429, retry_after=0.05)], "DROPPED": [DROP],
              "GATEWAY": [Fail(502), Fail(503)]}
    with OpenAIServer(answer=lambda body: "fine", script=script) as server:
        items = [Item(q, []) for q in ("FLAKY", "BUSY", "DROPPED", "GATEWAY", "plain")]
        t0 = time.monotonic()
        results = _backend(server).generate(items)
        elapsed = time.monotonic() - t0
    assert [r.text for r in results] == ["fine"] * 5
    assert [r.attempts for r in results] == [2, 2, 2, 3, 1]
    assert all(r.error is None for r in results)
    assert results[1].seconds >= 0.05  # Retry-After honoured
    assert elapsed < 2


def test_persistent_failures_are_recorded_while_the_rest_succeed():
    script = {"BROKEN": [Fail(500)] * 10, "INVALID": [Fail(400, message="max_tokens is too large")] * 10}
    with OpenAIServer(answer=lambda body: "fine", script=script) as server:
        items = [Item(f"item {i}", []) for i in range(6)]
        items[2] = Item("BROKEN", [])
        items[4] = Item("INVALID", [])
        results = _backend(server, retries=2, max_in_flight=3).generate(items)
        n_invalid = sum(r.question == "INVALID" for r in server.requests)
    assert [r.text for r in results] == ["fine", "fine", None, "fine", None, "fine"]
    assert results[2].error == "http 500" and results[2].attempts == 3 and not results[2].ok
    # Other 4xx are not retried; the server's reason is kept.
    assert results[4].error == "http 400: max_tokens is too large" and results[4].attempts == 1
    assert n_invalid == 1


def test_slow_request_is_retried_then_recorded_as_timeout():
    script = {"STUCK": [Sleep(3)] * 10, "ONCE": [Sleep(3)]}
    with OpenAIServer(answer=lambda body: "late", script=script) as server:
        items = [Item("STUCK", []), Item("ONCE", []), Item("quick", [])]
        t0 = time.monotonic()
        results = _backend(server, timeout=0.3, retries=1).generate(items)
        elapsed = time.monotonic() - t0
    assert results[0].error == "timeout" and results[0].text is None and results[0].attempts == 2
    assert 0.6 <= results[0].seconds < 1.5
    assert results[1].text == "late" and results[1].attempts == 2
    assert results[2].text == "late" and results[2].attempts == 1
    assert elapsed < 2


def test_connection_refused():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", retries=1, backoff=0.01, timeout=2)
    (result,) = backend.generate([Item("hello", [])])
    assert result.error == "connection refused" and result.attempts == 2 and result.text is None


@pytest.mark.parametrize("max_in_flight", [1, 5])
def test_in_flight_limit(max_in_flight):
    with OpenAIServer(answer=lambda body: "a", delay=0.05) as server:
        results = _backend(server, max_in_flight=max_in_flight).generate([Item(f"q{i}", []) for i in range(20)])
        peak = server.max_concurrent
    assert all(r.text == "a" for r in results)
    assert peak == max_in_flight


def test_bad_items_raise_before_any_request():
    with OpenAIServer() as server:
        backend = _backend(server)
        with pytest.raises(ValueError, match="placeholders"):
            backend.generate([Item("fine", []), Item("<image><image>", [b"\xff\xd8\xff"])])
        with pytest.raises(TypeError, match="images must be"):
            backend.generate([Item("<image>", ["not-an-image.png"])])
        assert server.requests == []
        assert backend.generate([]) == []


def test_an_image_that_does_not_decode_is_recorded():
    with OpenAIServer(answer=lambda body: "ok") as server:
        results = _backend(server).generate([Item("<image>", [b"garbage"]), Item("fine", [])])
    assert results[0].text is None and results[0].error.startswith("bad input")
    assert results[1].text == "ok"


def test_exception_in_on_result_stops_the_run_quietly(monkeypatch):
    hook_calls = []
    monkeypatch.setattr(threading, "excepthook", lambda args: hook_calls.append(args))
    calls = []

    def on_result(i, r):
        calls.append(i)
        raise KeyboardInterrupt

    script = {"SLOW": [Sleep(3)] * 3, "FAILING": [Fail(500)] * 3}
    with OpenAIServer(answer=lambda body: "a", script=script) as server:
        items = [Item("fast", []), Item("SLOW", []), Item("FAILING", []), *[Item(f"q{i}", []) for i in range(10)]]
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            _backend(server, max_in_flight=3, backoff=5.0).generate(items, on_result=on_result)
        assert time.monotonic() - t0 < 1.0
        time.sleep(0.2)
        n_requests = len(server.requests)
        time.sleep(0.3)
        n_later = len(server.requests)
    assert calls == [0]
    # 3 in flight, perhaps one more sent just before the interrupt; then nothing new starts
    # (FAILING's worker sleeps in a 5 s back-off and must not retry).
    assert n_requests <= 5 and n_later == n_requests
    assert hook_calls == []


_CHILD = """
import sys
from spatial_ssrl.backends.openai_backend import Item, OpenAIBackend

api_base = sys.argv[1]
items = [Item("fast 0", []), Item("fast 1", []), Item("FAILING", [])] + [Item(f"SLOW {i}", []) for i in range(6)]
backend = OpenAIBackend(api_base, "m", max_in_flight=4, timeout=60, backoff=30)

def on_result(i, r):
    print("got", i, r.text, flush=True)

backend.generate(items, on_result=on_result)
print("finished", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to a child differs on Windows")
def test_ctrl_c_stops_fast_without_worker_tracebacks(tmp_path):
    script = {"SLOW": [Sleep(30)] * 20, "FAILING": [Fail(503)] * 20}
    with OpenAIServer(answer=lambda body: "done", script=script) as server:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, server.api_base], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        try:
            lines = [proc.stdout.readline(), proc.stdout.readline()]
            assert sorted(lines) == ["got 0 done\n", "got 1 done\n"]
            time.sleep(0.2)  # the SLOW requests are in flight, FAILING sleeps in its back-off
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=5)
            elapsed = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert elapsed < 2.0, elapsed
    assert "finished" not in out and "got" not in out
    assert "KeyboardInterrupt" in err
    assert err.count("Traceback") == 1, err
    assert "Exception in thread" not in err and "Exception ignored" not in err, err
