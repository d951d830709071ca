"""Real HTTP servers on 127.0.0.1 that speak a provider's wire format, for tests.

`LLMServer(wire)` answers as OpenAI's chat completions ("openai"), Anthropic's Messages
("anthropic"), Gemini's generateContent ("gemini") or Cohere's chat v2 ("cohere") do: their
paths, their auth headers, their success bodies, their streams (Server-Sent Events, when the
request asks for one) and their error bodies (429 with Retry-After, 401, context too long,
quota, 5xx). Script what the next requests get (`reply`, `cut_off`, `filtered`, `rate_limit`,
`error`, `fail`, `hang`, `cut`, `raw`); with nothing scripted it answers `ok: <first 60
chars of the last user message>`. `limit_keys(n, seconds)` emulates a provider's own rate
limit: each key may make n requests in any `seconds`, beyond that it gets the format's 429
with a Retry-After saying when the window frees; `calls` records every request's key, time
and status. It runs in a thread, so `with LLMServer("gemini") as
server:` works from sync and async tests alike.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from . import llm_formats as formats
from .llm_formats import Failure

__all__ = ["WIRES", "Behaviour", "LLMServer", "OpenAIServer", "RecordedRequest"]

WIRES = ("openai", "anthropic", "gemini", "cohere")


@dataclass(frozen=True)
class Behaviour:
    """What the server does with one request."""

    action: str  # "reply", "status", "hang", "raw", "cut"
    content: str = ""
    status: int = 200
    message: str = ""
    failure: Failure = "server"
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    finish: str = "stop"  # stop, length, filter


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # the decoded JSON, or None when the body was not JSON


_PREFIX = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta", "cohere": "/v2"}


class LLMServer:
    """`base_url` is what `<PROVIDER>_BASE_URL` takes. With `api_keys`, other keys get the format's 401."""

    def __init__(self, wire: str = "openai", *, model: str = "test-model",
                 api_keys: Collection[str] | None = None) -> None:
        assert wire in WIRES, wire
        self.wire = wire
        self.model = model
        self.api_keys = None if api_keys is None else frozenset(api_keys)
        self.requests: list[RecordedRequest] = []
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._limit: tuple[int, float] | None = None
        self._windows: dict[str, deque[float]] = {}
        self.calls: list[tuple[str, float, int]] = []  # (key, time.time(), HTTP status) of every request
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._count = 0

    # -- scripting -------------------------------------------------------------------------

    def reply(self, content: str) -> None:
        self._push(Behaviour("reply", content=content))

    def cut_off(self, content: str) -> None:
        """Reply with `content` as a model stopped by its token limit does (`length`, `max_tokens`, `MAX_TOKENS`)."""
        self._push(Behaviour("reply", content=content, finish="length"))

    def filtered(self, content: str = "") -> None:
        """Reply as when the provider's safety filter stopped the answer."""
        self._push(Behaviour("reply", content=content, finish="filter"))

    def rate_limit(self, retry_after: str | None = "2", message: str = "Rate limit reached for requests") -> None:
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        self._push(Behaviour("status", status=429, message=message, failure="rate", headers=headers))

    def error(self, status: int, message: str = "The server had an error while processing your request.") -> None:
        failure: Failure = "server" if status >= 500 else "auth" if status in (401, 403) else "bad"
        self._push(Behaviour("status", status=status, message=message, failure=failure))

    def fail(self, failure: Failure, message: str, status: int | None = None) -> None:
        """Fail as the format does for `failure`, with its own status, type and body."""
        self._push(Behaviour("status", status=status or formats.STATUS[self.wire][failure], message=message,
                             failure=failure))

    def hang(self, seconds: float = 30.0) -> None:
        """Send nothing for `seconds` (or until the server stops), then reply as by default."""
        self._push(Behaviour("hang", seconds=seconds))

    def cut(self) -> None:
        """Send the headers and half of a reply, then close the connection."""
        self._push(Behaviour("cut"))

    def invalid_json(self) -> None:
        self.raw(b'{"id": "broken", "choices": [')

    def raw(self, payload: bytes, status: int = 200) -> None:
        """Send `payload` as it is, labelled JSON: for bodies no well-behaved provider sends."""
        self._push(Behaviour("raw", status=status, content=payload.decode()))

    def limit_keys(self, requests: int, seconds: float) -> None:
        """From now on each key may make `requests` requests in any `seconds`; more get 429."""
        with self._lock:
            self._limit = (requests, seconds)

    def _admit(self, key: str) -> float | None:
        """None if `key` may make a request now (it is counted); else the seconds until it may."""
        with self._lock:
            now = time.time()
            if self._limit is None:
                self.calls.append((key, now, 200))
                return None
            requests, seconds = self._limit
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - seconds:
                window.popleft()
            if len(window) >= requests:
                self.calls.append((key, now, 429))
                return window[0] + seconds - now
            window.append(now)
            self.calls.append((key, now, 200))
            return None

    def _push(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._script.append(behaviour)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{_PREFIX[self.wire]}"

    def __enter__(self) -> LLMServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = False  # joined on close; `_stopping` ends any that hang
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"{self.wire}-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._httpd is not None
        assert self._thread is not None
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    # -- answering -------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else Behaviour("reply")

    def _number(self) -> int:
        with self._lock:
            self._count += 1
            return self._count


class OpenAIServer(LLMServer):
    def __init__(self, *, model: str = "test-model", api_keys: Collection[str] | None = None) -> None:
        super().__init__("openai", model=model, api_keys=api_keys)

    def __enter__(self) -> OpenAIServer:
        super().__enter__()
        return self


class _Handler(BaseHTTPRequestHandler):
    server_state: LLMServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on recorded requests, not on a log."""

    def do_GET(self) -> None:
        self.server_state._record(self._recorded(b""))
        self._send_json(404, formats.failure(self.server_state.wire, 404, "bad", f"Invalid URL (GET {self.path})"))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        state = self.server_state
        wire = state.wire
        request = self._recorded(raw)
        state._record(request)
        body = request.body
        model, stream = self._route(wire, body)
        if model is None:
            self._send_json(404, formats.failure(wire, 404, "bad", f"Invalid URL (POST {self.path})"))
            return
        if state.api_keys is not None and self._key(wire) not in state.api_keys:
            status = formats.STATUS[wire]["auth"]
            message = {"openai": "Incorrect API key provided.", "anthropic": "invalid x-api-key",
                       "gemini": "API key not valid. Please pass a valid API key.", "cohere": "invalid api token"}[wire]
            self._send_json(status, formats.failure(wire, status, "auth", message))
            return
        wait = state._admit(self._key(wire))
        if wait is not None:
            self._send_json(429, formats.failure(wire, 429, "rate", "Rate limit reached for requests"),
                            {"Retry-After": f"{max(wait, 0.01):.2f}"})
            return
        behaviour = state._next()
        if behaviour.action == "hang":
            if state._stopping.wait(behaviour.seconds):
                return
            behaviour = Behaviour("reply")
        if behaviour.action == "status":
            body_out = formats.failure(wire, behaviour.status, behaviour.failure, behaviour.message)
            self._send_json(behaviour.status, body_out, behaviour.headers)
            return
        if behaviour.action == "raw":
            self._send(behaviour.status, behaviour.content.encode(), {"Content-Type": "application/json"})
            return
        if not isinstance(body, dict):
            self._send_json(400, formats.failure(wire, 400, "bad", "We could not parse the JSON body of your request."))
            return
        texts = formats.texts(wire, body)
        text = behaviour.content
        if not text and behaviour.finish != "filter":
            text = f"ok: {str(texts[-1] if texts else '')[:60]}"
        tokens_in = sum(len(t.split()) for t in texts)
        tokens_out = len(text.split())
        number = state._number()
        if stream:
            payload = formats.stream(wire, number, model, text, behaviour.finish, tokens_in, tokens_out)
            headers = {"Content-Type": "text/event-stream"}
        else:
            payload = json.dumps(formats.success(wire, number, model, text, behaviour.finish, tokens_in,
                                          tokens_out)).encode()
            headers = {"Content-Type": "application/json"}
        if behaviour.action == "cut":
            self._send(200, payload, headers, cut=True)
        else:
            self._send(200, payload, headers)

    def _route(self, wire: str, body: Any) -> tuple[str | None, bool]:
        """The model a request asks for and whether it wants a stream; None for a path the format has not."""
        path = self.path
        data = body if isinstance(body, dict) else {}
        if wire == "gemini":
            prefix = "/v1beta/models/"
            for method, stream in ((":generateContent", False), (":streamGenerateContent?alt=sse", True)):
                if path.startswith(prefix) and path.endswith(method):
                    return path[len(prefix): -len(method)], stream
            return None, False
        expected = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages", "cohere": "/v2/chat"}[wire]
        if path != expected:
            return None, False
        return str(data.get("model", self.server_state.model)), bool(data.get("stream"))

    def _key(self, wire: str) -> str:
        if wire == "anthropic":
            return self.headers.get("x-api-key", "")
        if wire == "gemini":
            return self.headers.get("x-goog-api-key", "")
        return self.headers.get("Authorization", "").removeprefix("Bearer ")

    def _recorded(self, raw: bytes) -> RecordedRequest:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        return RecordedRequest(self.command, self.path, headers, body)

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _send(self, status: int, payload: bytes, headers: dict[str, str], *, cut: bool = False) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2] if cut else payload)
            if cut:
                self.wfile.flush()
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer
