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
from typing import Any, Literal

__all__ = ["WIRES", "Behaviour", "LLMServer", "OpenAIServer", "RecordedRequest"]

Failure = Literal["rate", "auth", "context", "quota", "server", "bad", "overloaded"]
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
        self._push(Behaviour("status", status=status or _STATUS[self.wire][failure], message=message,
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


# -- the formats ------------------------------------------------------------------------------

_STATUS: dict[str, dict[Failure, int]] = {
    "openai": {"rate": 429, "auth": 401, "context": 400, "quota": 429, "server": 500, "bad": 400, "overloaded": 503},
    "anthropic": {"rate": 429, "auth": 401, "context": 400, "quota": 400, "server": 500, "bad": 400,
                  "overloaded": 529},
    "gemini": {"rate": 429, "auth": 400, "context": 400, "quota": 429, "server": 500, "bad": 400, "overloaded": 503},
    "cohere": {"rate": 429, "auth": 401, "context": 400, "quota": 429, "server": 500, "bad": 400, "overloaded": 503},
}


def _texts(wire: str, body: dict[str, Any]) -> list[str]:
    """Every message text of a request, the last user message last."""
    if wire == "gemini":
        texts = [p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts", [])]
        return texts + [p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", [])]
    texts = [body["system"]] if wire == "anthropic" and isinstance(body.get("system"), str) else []
    return texts + [str(m.get("content", "")) for m in body.get("messages", []) if isinstance(m, dict)]


def _success(wire: str, number: int, model: str, text: str, finish: str, tokens_in: int, tokens_out: int,
             ) -> dict[str, Any]:
    if wire == "openai":
        reason = {"stop": "stop", "length": "length", "filter": "content_filter"}[finish]
        return {"id": f"chatcmpl-test{number}", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                             "finish_reason": reason}],
                "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                          "total_tokens": tokens_in + tokens_out}}
    if wire == "anthropic":
        reason = {"stop": "end_turn", "length": "max_tokens", "filter": "refusal"}[finish]
        return {"id": f"msg_test{number}", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": reason, "stop_sequence": None,
                "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}
    if wire == "gemini":
        reason = {"stop": "STOP", "length": "MAX_TOKENS", "filter": "SAFETY"}[finish]
        return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": reason,
                                "index": 0}],
                "usageMetadata": {"promptTokenCount": tokens_in, "candidatesTokenCount": tokens_out,
                                  "totalTokenCount": tokens_in + tokens_out},
                "modelVersion": model, "responseId": f"resp-test{number}"}
    reason = {"stop": "COMPLETE", "length": "MAX_TOKENS", "filter": "ERROR_TOXIC"}[finish]
    return {"id": f"cohere-test{number}", "finish_reason": reason,
            "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
            "usage": {"billed_units": {"input_tokens": tokens_in, "output_tokens": tokens_out},
                      "tokens": {"input_tokens": tokens_in, "output_tokens": tokens_out}}}


def _stream(wire: str, number: int, model: str, text: str, finish: str, tokens_in: int, tokens_out: int,
            ) -> bytes:
    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    events: list[tuple[str | None, Any]] = []
    if wire == "openai":
        reason = {"stop": "stop", "length": "length", "filter": "content_filter"}[finish]
        base = {"id": f"chatcmpl-test{number}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model}
        events.append((None, {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                   "finish_reason": None}]}))
        events += [(None, {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]})
                   for p in pieces]
        events.append((None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}))
        events.append((None, {**base, "choices": [], "usage": {"prompt_tokens": tokens_in,
                                                               "completion_tokens": tokens_out,
                                                               "total_tokens": tokens_in + tokens_out}}))
        body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for _, e in events)
        return body + b"data: [DONE]\n\n"
    if wire == "anthropic":
        reason = {"stop": "end_turn", "length": "max_tokens", "filter": "refusal"}[finish]
        events.append(("message_start", {"type": "message_start", "message": {
            "id": f"msg_test{number}", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "usage": {"input_tokens": tokens_in, "output_tokens": 1}}}))
        events.append(("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": {"type": "text", "text": ""}}))
        events.append(("ping", {"type": "ping"}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": p}}) for p in pieces]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": reason,
                                                                            "stop_sequence": None},
                                         "usage": {"output_tokens": tokens_out}}))
        events.append(("message_stop", {"type": "message_stop"}))
    elif wire == "gemini":
        for i, p in enumerate(pieces):
            last = i == len(pieces) - 1
            chunk: dict[str, Any] = {"candidates": [{"content": {"parts": [{"text": p}], "role": "model"},
                                                     "index": 0}], "modelVersion": model}
            if last:
                chunk["candidates"][0]["finishReason"] = {"stop": "STOP", "length": "MAX_TOKENS",
                                                          "filter": "SAFETY"}[finish]
                chunk["usageMetadata"] = {"promptTokenCount": tokens_in, "candidatesTokenCount": tokens_out,
                                          "totalTokenCount": tokens_in + tokens_out}
            events.append((None, chunk))
    return b"".join((f"event: {name}\n".encode() if name else b"") + b"data: " + json.dumps(e).encode() + b"\n\n"
                    for name, e in events)


def _failure(wire: str, status: int, failure: Failure, message: str) -> dict[str, Any]:
    if wire == "openai":
        kind, code = {"rate": ("requests", "rate_limit_exceeded"), "auth": ("invalid_request_error", "invalid_api_key"),
                      "context": ("invalid_request_error", "context_length_exceeded"),
                      "quota": ("insufficient_quota", "insufficient_quota"), "server": ("server_error", None),
                      "bad": ("invalid_request_error", None), "overloaded": ("server_error", None)}[failure]
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    if wire == "anthropic":
        kind = {"rate": "rate_limit_error", "auth": "authentication_error", "context": "invalid_request_error",
                "quota": "invalid_request_error", "server": "api_error", "bad": "invalid_request_error",
                "overloaded": "overloaded_error"}[failure]
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_test"}
    if wire == "gemini":
        state = {"rate": "RESOURCE_EXHAUSTED", "auth": "INVALID_ARGUMENT", "context": "INVALID_ARGUMENT",
                 "quota": "RESOURCE_EXHAUSTED", "server": "INTERNAL", "bad": "INVALID_ARGUMENT",
                 "overloaded": "UNAVAILABLE"}[failure]
        error: dict[str, Any] = {"code": status, "message": message, "status": state}
        if failure == "auth":
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                                 "domain": "googleapis.com"}]
        return {"error": error}
    return {"id": "cohere-error", "message": message}


class _Handler(BaseHTTPRequestHandler):
    server_state: LLMServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on recorded requests, not on a log."""

    def do_GET(self) -> None:
        self.server_state._record(self._recorded(b""))
        self._send_json(404, _failure(self.server_state.wire, 404, "bad", f"Invalid URL (GET {self.path})"))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        state = self.server_state
        wire = state.wire
        request = self._recorded(raw)
        state._record(request)
        body = request.body
        model, stream = self._route(wire, body)
        if model is None:
            self._send_json(404, _failure(wire, 404, "bad", f"Invalid URL (POST {self.path})"))
            return
        if state.api_keys is not None and self._key(wire) not in state.api_keys:
            status = _STATUS[wire]["auth"]
            message = {"openai": "Incorrect API key provided.", "anthropic": "invalid x-api-key",
                       "gemini": "API key not valid. Please pass a valid API key.", "cohere": "invalid api token"}[wire]
            self._send_json(status, _failure(wire, status, "auth", message))
            return
        wait = state._admit(self._key(wire))
        if wait is not None:
            self._send_json(429, _failure(wire, 429, "rate", "Rate limit reached for requests"),
                            {"Retry-After": f"{max(wait, 0.01):.2f}"})
            return
        behaviour = state._next()
        if behaviour.action == "hang":
            if state._stopping.wait(behaviour.seconds):
                return
            behaviour = Behaviour("reply")
        if behaviour.action == "status":
            self._send_json(behaviour.status, _failure(wire, behaviour.status, behaviour.failure, behaviour.message),
                            behaviour.headers)
            return
        if behaviour.action == "raw":
            self._send(behaviour.status, behaviour.content.encode(), {"Content-Type": "application/json"})
            return
        if not isinstance(body, dict):
            self._send_json(400, _failure(wire, 400, "bad", "We could not parse the JSON body of your request."))
            return
        texts = _texts(wire, body)
        text = behaviour.content
        if not text and behaviour.finish != "filter":
            text = f"ok: {str(texts[-1] if texts else '')[:60]}"
        tokens_in = sum(len(t.split()) for t in texts)
        tokens_out = len(text.split())
        number = state._number()
        if stream:
            payload = _stream(wire, number, model, text, behaviour.finish, tokens_in, tokens_out)
            headers = {"Content-Type": "text/event-stream"}
        else:
            payload = json.dumps(_success(wire, number, model, text, behaviour.finish, tokens_in,
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
