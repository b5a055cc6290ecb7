"""A small OpenAI chat-completions server for tests and benches (standard library only).

    with OpenAIServer(delay=0.1, answer=lambda body: "42") as server:
        backend = OpenAIBackend(server.api_base, "test-model")

It serves ``POST /v1/chat/completions`` (and ``GET /v1/models``) on 127.0.0.1 at a free
port, one thread per connection (HTTP/1.1 keep-alive). Configurable:

* ``delay``: seconds before each answer (a number, or a function of the request body);
* ``answer``: a function of the request body giving the answer text (default: the text of
  the question, so each answer names its item);
* ``script``: scripted misbehaviour, either a dict ``{token: [action, ...]}`` where the
  n-th request whose question contains ``token`` gets the n-th action (later requests are
  answered normally), or a function ``(question_text, n) -> action | None`` with ``n``
  counting that exact question's requests from 0. Actions: ``Fail(status)`` answers an
  error status, ``Sleep(seconds)`` waits (longer than a client's timeout, typically) and
  then answers normally, ``DROP`` closes the connection without answering. Hostile
  servers: ``Drip(interval)`` sends a normal answer one byte per ``interval`` seconds
  (the body only, or with ``headers=True`` the status line and headers too),
  ``Endless()`` sends a body that never ends (no length, spaces for ever), ``Huge(size)``
  a well-formed answer of ``size`` bytes (with its ``Content-Length``, or with
  ``length=False`` none and the connection closed at the end).

It records every chat request (``server.requests``: body, headers, arrival time) and the
largest number of chat requests it was working on at once (``server.max_concurrent``).
Stopping it wakes any handler still sleeping, which then closes its connection quietly.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Fail:
    status: int = 500
    message: str = "scripted failure"
    retry_after: float | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


DROP = "drop"


@dataclass(frozen=True)
class Drip:
    interval: float = 1.0
    headers: bool = False


@dataclass(frozen=True)
class Endless:
    chunk: int = 1 << 16


@dataclass(frozen=True)
class Huge:
    size: int
    length: bool = True


@dataclass
class Recorded:
    body: dict
    headers: dict
    time: float = field(default_factory=time.monotonic)

    @property
    def question(self) -> str:
        return question_text(self.body)

    @property
    def image_urls(self) -> list[str]:
        return image_urls(self.body)


def _user_content(body: dict) -> list[dict]:
    content = body["messages"][-1]["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def question_text(body: dict) -> str:
    """The text parts of the last message, joined."""
    return "".join(p.get("text", "") for p in _user_content(body) if p.get("type") == "text")


def image_urls(body: dict) -> list[str]:
    """The image URLs of the last message, in order."""
    return [p["image_url"]["url"] for p in _user_content(body) if p.get("type") == "image_url"]


def part_kinds(body: dict) -> list[str]:
    """``"image"`` / ``"text"`` for each content part of the last message, in order."""
    return ["image" if p.get("type") == "image_url" else p.get("type") for p in _user_content(body)]


def decode_data_url(url: str) -> tuple[str, bytes]:
    """``(mime, bytes)`` of a base64 ``data:`` URL."""
    head, _, payload = url.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64"):
        raise ValueError(f"not a base64 data URL: {url[:40]!r}")
    return head[5:-7], base64.b64decode(payload, validate=True)


class _Stopped(Exception):
    pass


class OpenAIServer:
    def __init__(self, answer: Callable[[dict], str] | None = None, delay: float | Callable[[dict], float] = 0.0,
                 script: dict | Callable[[str, int], object] | None = None, model: str = "test-model") -> None:
        self.answer = answer or question_text
        self.delay = delay
        self.script = script
        self.model = model
        self.requests: list[Recorded] = []
        self.concurrent = 0
        self.max_concurrent = 0
        self._seen_tokens: Counter = Counter()
        self._seen_questions: Counter = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._stop.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="openai-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_concurrent = self.concurrent
            self._seen_tokens.clear()
            self._seen_questions.clear()

    # -- behaviour
    def _action(self, question: str):
        """The scripted action for this request (counted under the lock)."""
        with self._lock:
            n = self._seen_questions[question]
            self._seen_questions[question] += 1
            if callable(self.script):
                return self.script(question, n)
            for token, actions in (self.script or {}).items():
                if token in question:
                    k = self._seen_tokens[token]
                    self._seen_tokens[token] += 1
                    return actions[k] if k < len(actions) else None
        return None

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self._stop.wait(seconds):
            raise _Stopped

    def chat(self, body: dict, headers: dict):
        """``(status, payload, extra_headers)`` for one request, or ``None`` to drop it."""
        with self._lock:
            self.requests.append(Recorded(body=body, headers=headers))
        question = question_text(body)
        action = self._action(question)
        delay = self.delay(body) if callable(self.delay) else self.delay
        self._sleep(delay)
        if action == DROP:
            return None
        if isinstance(action, Fail):
            extra = {"Retry-After": str(action.retry_after)} if action.retry_after is not None else {}
            return action.status, {"error": {"message": action.message, "type": "test", "code": action.status}}, extra
        if isinstance(action, Sleep):
            self._sleep(action.seconds)
        if isinstance(action, (Drip, Endless, Huge)):
            return action
        text = self.answer(body)
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": len(text.split()), "total_tokens": len(text.split())},
        }, {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    owner: OpenAIServer

    def log_message(self, format, *args) -> None:  # quiet
        pass

    def _send(self, status: int, payload: dict, extra: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _hostile(self, action) -> None:
        """Answer as ``action`` says (the raw bytes written here, the connection closed after)."""
        w, owner = self.wfile, self.owner
        if isinstance(action, Drip):
            body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "slow"},
                                            "finish_reason": "stop"}]}).encode()
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n").encode()
            if not action.headers:
                w.write(head)
                w.flush()
                head = b""
            for k in range(len(head + body)):
                w.write((head + body)[k:k + 1])
                w.flush()
                owner._sleep(action.interval)
            return
        if isinstance(action, Endless):
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{")
            spaces = b" " * action.chunk
            while not owner._stop.is_set():
                w.write(spaces)
            return
        prefix = b'{"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "'
        suffix = b'"}}]}'
        fill = action.size - len(prefix) - len(suffix)
        length = f"Content-Length: {action.size}\r\n" if action.length else ""
        w.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n".encode())
        w.write(prefix)
        block = b"a" * (1 << 20)
        while fill > 0 and not owner._stop.is_set():
            w.write(block[:fill])
            fill -= len(block)
        w.write(suffix)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": self.owner.model, "object": "model"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            body = json.loads(raw)
            question_text(body)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            self._send(400, {"error": {"message": f"bad request: {exc}"}})
            return
        owner = self.owner
        with owner._lock:
            owner.concurrent += 1
            owner.max_concurrent = max(owner.max_concurrent, owner.concurrent)
        try:
            reply = owner.chat(body, dict(self.headers))
        except _Stopped:
            reply = None
        finally:
            with owner._lock:
                owner.concurrent -= 1
        if reply is None:
            self.close_connection = True
            return
        try:
            if isinstance(reply, (Drip, Endless, Huge)):
                self.close_connection = True
                self._hostile(reply)
                return
            self._send(*reply)
        except (BrokenPipeError, ConnectionResetError, _Stopped):  # the client gave up (timed out)
            self.close_connection = True

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
