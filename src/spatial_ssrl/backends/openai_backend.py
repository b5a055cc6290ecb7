"""Generation through an OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp,
LM Studio, a hosted API ...).

Each item becomes one ``POST {api_base}/chat/completions`` whose single user message
interleaves image parts (``data:`` URLs) and text parts in the order of the question's
``<image>`` placeholders. Up to ``max_in_flight`` requests run at once, each on its own
worker thread with its own ``httpx.Client`` (one kept-alive connection each). Results come back to the calling thread: the
``on_result`` callback runs there, once per item, as each finishes; ``generate`` returns
them all in input order.

Failures do not raise: a request that still fails after its retries gives a ``Result`` with
``text=None`` and a short ``error`` ("timeout", "http 500", "connection refused", ...).
Timeouts, connection errors, 429 and 5xx are retried with exponential back-off and jitter
(honouring ``Retry-After``); other 4xx are not retried.

Bounds on what a server can make one request cost. httpx's ``timeout`` bounds each socket
operation, so a server sending a byte now and then (or an endless body) would hold a
request for ever. Each attempt therefore also has a total deadline (``request_deadline``
seconds, by default twice ``timeout``, so a single slow phase still reads ``"timeout"``): a watchdog shuts the attempt's socket down when it
passes, whatever phase the request is in, and the attempt fails with ``"deadline
exceeded"`` (retried like a timeout). The body is read as a stream and given up past
``max_response_bytes`` (8 MiB by default; a ``Content-Length`` above it is refused before
reading): ``"response too large"``, not retried.

Ctrl-C: the ``KeyboardInterrupt`` reaches the caller within a fraction of a second. Items
already delivered through ``on_result`` stay delivered; queued items are dropped, workers
sleeping in a back-off stop at once, and requests in flight are abandoned (their worker
threads are daemons that finish the socket read in the background, discard the answer and
exit without printing anything).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..prompts import IMAGE_TOKEN, content_parts
from .transformers_backend import Item

__all__ = ["Item", "OpenAIBackend", "Result", "build_messages", "image_data_url"]

# The longest single back-off sleep, and the longest Retry-After we honour, in seconds.
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 60.0
_ERROR_TEXT_CHARS = 200
DEFAULT_MAX_RESPONSE_BYTES = 8 << 20
DEADLINE_ERROR = "deadline exceeded"
TOO_LARGE_ERROR = "response too large"


@dataclass
class Result:
    """One item's outcome. ``text`` is the model's answer (``None`` on failure); ``error`` a
    short reason when every attempt failed; ``attempts`` the number of requests made (0 for
    an item that never started); ``seconds`` the wall time from the first attempt to the
    outcome, back-off sleeps included; ``finish_reason`` as the server reported it
    (``"length"`` means ``max_tokens`` cut the answer)."""

    text: str | None = None
    error: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    finish_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


# --- request bodies -------------------------------------------------------------------

def _sniff_mime(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _png_bytes(image) -> bytes:
    buf = io.BytesIO()
    try:
        image.save(buf, format="PNG", compress_level=1)
    except (OSError, ValueError):  # modes PNG cannot hold (CMYK, F, ...)
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def image_data_url(image) -> str:
    """A ``data:`` URL for encoded image bytes (JPEG, PNG, GIF and WebP are sent as they are,
    with their own mime type; other formats are decoded and re-encoded as PNG) or a PIL image
    (encoded as PNG, lossless)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        mime = _sniff_mime(data)
        if mime is None:
            from PIL import Image

            with Image.open(io.BytesIO(data)) as im:
                data, mime = _png_bytes(im), "image/png"
    else:
        data, mime = _png_bytes(image), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _is_image(image) -> bool:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return True
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a core dependency
        return False
    return isinstance(image, Image.Image)


def _check_item(index: int, item: Item) -> None:
    n_slots = item.question.count(IMAGE_TOKEN)
    if n_slots != len(item.images):
        raise ValueError(f"item {index}: the question has {n_slots} {IMAGE_TOKEN} placeholders "
                         f"but {len(item.images)} images")
    for image in item.images:
        if not _is_image(image):
            raise TypeError(f"item {index}: images must be encoded bytes or PIL images, "
                            f"got {type(image).__name__}")


def build_messages(item: Item) -> list[dict]:
    """The one-turn conversation for ``item``: image parts as data URLs and text parts, in
    placeholder order (the question is used as given, format suffix or not)."""
    images = iter(item.images)
    content: list[dict] = []
    for part in content_parts(item.question, format_suffix=False):
        if part["type"] == "image":
            content.append({"type": "image_url", "image_url": {"url": image_data_url(next(images))}})
        else:
            content.append({"type": "text", "text": part["text"]})
    return [{"role": "user", "content": content}]


# --- one request ----------------------------------------------------------------------

class _Attempt:
    """The outcome of one HTTP attempt: an answer, or an error that may be retried."""

    __slots__ = ("error", "finish_reason", "retry", "retry_after", "text")

    def __init__(self, text=None, finish_reason=None, error=None, retry=False, retry_after=None):
        self.text = text
        self.finish_reason = finish_reason
        self.error = error
        self.retry = retry
        self.retry_after = retry_after


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _ERROR_TEXT_CHARS else text[:_ERROR_TEXT_CHARS - 3] + "..."


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _server_message(data: bytes) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        return _short(_text(data))
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return _short(err.get("message") or err.get("detail") or err)
        return _short(err)
    return _short(body)


def _retry_after(response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value)))
    except ValueError:
        return None  # an HTTP date; the exponential back-off covers it


def _transport_error(exc) -> _Attempt:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return _Attempt(error="timeout", retry=True)
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError)):
        return _Attempt(error=f"bad request: {_short(exc)}")
    if isinstance(exc, httpx.ConnectError):
        cause, text = exc, str(exc)
        while cause is not None:
            if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
                return _Attempt(error="connection refused", retry=True)
            cause = cause.__cause__ or cause.__context__
        return _Attempt(error=f"connection error: {_short(text)}", retry=True)
    if isinstance(exc, httpx.RemoteProtocolError):
        return _Attempt(error="connection closed", retry=True)
    return _Attempt(error=f"connection error: {_short(exc) or type(exc).__name__}", retry=True)


def _parse_answer(data: bytes) -> _Attempt:
    try:
        body = json.loads(data)
        choice = body["choices"][0]
        content = choice["message"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return _Attempt(error=f"bad response: {_short(_text(data))}")
    if isinstance(content, list):  # some servers answer in content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content is None:
        return _Attempt(error="bad response: no message content")
    return _Attempt(text=content, finish_reason=choice.get("finish_reason"))


class _Watchdog:
    """One worker's deadline keeper. httpx tells it (through the ``trace`` request extension)
    the network stream of each connection it opens; the worker's client holds one
    connection, so that stream is the one any request of the worker uses. :meth:`arm`
    starts an attempt's clock; when it runs out first, the socket is shut down, which ends
    whatever read or write the request is blocked in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stream = None
        self._timer: threading.Timer | None = None
        self._active = False
        self.fired = False

    def trace(self, event: str, info: dict) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            with self._lock:
                self._stream = info.get("return_value")
                if self.fired and self._active:
                    self._cut()

    def _cut(self) -> None:
        sock = self._stream.get_extra_info("socket") if self._stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _expire(self) -> None:
        with self._lock:
            if self._active:
                self.fired = True
                self._cut()

    def arm(self, seconds: float) -> None:
        with self._lock:
            self._active, self.fired = True, False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        with self._lock:
            self._active = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


# --- the backend ----------------------------------------------------------------------

class OpenAIBackend:
    """Chat completions from an OpenAI-compatible server.

    ``api_base`` is the URL up to and including the version segment
    (``http://127.0.0.1:8000/v1``); ``api_key`` defaults to ``$OPENAI_API_KEY`` and may be
    absent for local servers. ``timeout`` (seconds) bounds each phase of a request
    (connect, send, and the wait for the answer); ``request_deadline`` (default: 2 x ``timeout``)
    the whole of one attempt, and ``max_response_bytes`` (default 8 MiB) the answer's body.
    ``retries`` is the number of retries after
    the first attempt; the ``k``-th retry waits about ``backoff * 2**(k-1)`` seconds
    (times a random factor in [0.5, 1.5), at most 30 s, at least a server's ``Retry-After``).
    ``extra_body`` is merged into every request body last (``{"top_k": 20}``,
    ``{"chat_template_kwargs": {...}}``, ...)."""

    def __init__(self, api_base: str, model: str, api_key: str | None = None, max_in_flight: int = 8,
                 timeout: float = 120.0, retries: int = 4, backoff: float = 1.0, max_tokens: int = 1024,
                 temperature: float = 0.0, top_p: float = 1.0, extra_body: dict | None = None,
                 request_deadline: float | None = None,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if request_deadline is not None and request_deadline <= 0:
            raise ValueError(f"request_deadline must be positive, got {request_deadline}")
        if max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be at least 1, got {max_response_bytes}")
        self.api_base = api_base.rstrip("/")
        self.url = f"{self.api_base}/chat/completions"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.max_in_flight = int(max_in_flight)
        self.timeout = float(timeout)
        self.request_deadline = float(request_deadline) if request_deadline is not None else 2 * self.timeout
        self.max_response_bytes = int(max_response_bytes)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.extra_body = dict(extra_body or {})

    def __repr__(self) -> str:
        return (f"OpenAIBackend({self.api_base!r}, model={self.model!r}, max_in_flight={self.max_in_flight}, "
                f"timeout={self.timeout}, retries={self.retries})")

    def request_body(self, item: Item) -> dict:
        body = {
            "model": self.model,
            "messages": build_messages(item),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }
        body.update(self.extra_body)
        return body

    def _client(self):
        """A worker's client: one connection (so its watchdog knows the socket in use)."""
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.Client(
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            headers=headers,
        )

    def _read_body(self, response) -> bytes | None:
        """The body, or None past ``max_response_bytes`` (then the rest is never read)."""
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_response_bytes:
            return None
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > self.max_response_bytes:
                return None
        return bytes(data)

    def _attempt(self, client, body: dict, watchdog: _Watchdog | None = None) -> _Attempt:
        import httpx

        watchdog = watchdog or _Watchdog()
        watchdog.arm(self.request_deadline)
        try:
            with client.stream("POST", self.url, json=body, extensions={"trace": watchdog.trace}) as response:
                code = response.status_code
                if code == 429 or code >= 500:
                    return _Attempt(error=f"http {code}", retry=True, retry_after=_retry_after(response))
                if 300 <= code < 400:
                    return _Attempt(error=f"http {code}")
                data = self._read_body(response)
                if data is None:
                    return _Attempt(error=TOO_LARGE_ERROR)
        except httpx.TransportError as exc:
            if watchdog.fired:
                return _Attempt(error=DEADLINE_ERROR, retry=True)
            return _transport_error(exc)
        finally:
            watchdog.disarm()
        if code >= 400:
            return _Attempt(error=f"http {code}: {_server_message(data)}")
        return _parse_answer(data)

    def _delay(self, retry: int, retry_after: float | None) -> float:
        delay = min(MAX_BACKOFF, self.backoff * 2 ** (retry - 1)) * (0.5 + random.random())
        return max(delay, retry_after or 0.0)

    def _run_item(self, client, item: Item, stop: threading.Event,
                  watchdog: _Watchdog | None = None) -> Result | None:
        """The item's result after its retries, or ``None`` when ``stop`` was set first."""
        t0 = time.monotonic()
        try:
            body = self.request_body(item)
        except Exception as exc:  # noqa: BLE001 - an image that does not decode, ...
            return Result(error=f"bad input: {_short(exc)}", seconds=time.monotonic() - t0)
        attempts = 0
        while True:
            attempts += 1
            outcome = self._attempt(client, body, watchdog)
            if stop.is_set():
                return None
            if outcome.error is None:
                return Result(text=outcome.text, attempts=attempts, seconds=time.monotonic() - t0,
                              finish_reason=outcome.finish_reason)
            if not outcome.retry or attempts > self.retries:
                return Result(error=outcome.error, attempts=attempts, seconds=time.monotonic() - t0)
            if stop.wait(self._delay(attempts, outcome.retry_after)):
                return None

    def generate(self, items: Sequence[Item],
                 on_result: Callable[[int, Result], None] | None = None) -> list[Result]:
        """One ``Result`` per item, in input order. ``on_result(index, result)`` runs in the
        calling thread as each item finishes (in completion order); an exception it raises
        stops the run and propagates, like ``KeyboardInterrupt``. A question whose
        placeholder count differs from its image count raises ``ValueError`` before any
        request is sent."""
        items = list(items)
        for i, item in enumerate(items):
            _check_item(i, item)
        if not items:
            return []

        todo: queue.SimpleQueue = queue.SimpleQueue()
        for i in range(len(items)):
            todo.put(i)
        done: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()
        n_workers = min(self.max_in_flight, len(items))

        def worker() -> None:
            client = self._client()
            watchdog = _Watchdog()
            try:
                while not stop.is_set():
                    try:
                        i = todo.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        result = self._run_item(client, items[i], stop, watchdog)
                    except BaseException as exc:  # noqa: BLE001 - a worker must neither die nor print
                        result = None if stop.is_set() else Result(error=f"internal error: {_short(exc)}")
                    if result is None:
                        return
                    done.put((i, result))
            finally:
                with contextlib.suppress(Exception):
                    client.close()

        threads = [threading.Thread(target=worker, name=f"openai-backend-{k}", daemon=True)
                   for k in range(n_workers)]
        results: list[Result | None] = [None] * len(items)
        remaining = len(items)
        try:
            for t in threads:
                t.start()
            while remaining:
                try:
                    i, result = done.get(timeout=0.2)
                except queue.Empty:
                    i = None  # (checked outside the handler: an interrupt here must not chain to Empty)
                if i is None:
                    if not any(t.is_alive() for t in threads) and done.empty():
                        raise RuntimeError("openai backend: workers stopped with items outstanding")
                    continue
                results[i] = result
                remaining -= 1
                if on_result is not None:
                    on_result(i, result)
        finally:
            stop.set()  # on an interrupt: no new requests, back-off sleeps end, answers in flight dropped
        return results  # type: ignore[return-value]


def make_generate(spec, decoding):
    """A GenerateFn sending each item to ``spec.api_base`` as ``spec.api_model``; requests stay
    in flight across items (``run.chunk``: the evaluation hands over large chunks)."""
    limits = {"request_deadline": spec.request_deadline}
    if spec.max_response_bytes is not None:
        limits["max_response_bytes"] = spec.max_response_bytes
    backend = OpenAIBackend(spec.api_base, spec.api_model, max_in_flight=spec.in_flight, timeout=spec.timeout,
                            retries=spec.retries, max_tokens=decoding.max_new_tokens,
                            temperature=decoding.temperature, top_p=decoding.top_p, **limits)

    def run(items, on_result):
        backend.generate(items, on_result=lambda i, r: on_result(i, r.text, r.error))

    run.chunk = 4096
    return run
