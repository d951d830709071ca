"""A real HTTP server on 127.0.0.1 that speaks OpenAI's chat-completions wire format, for tests.

Script what the next requests get (`reply`, `rate_limit`, `error`, `hang`, `invalid_json`, `raw`);
with nothing scripted it answers `ok: <first 60 chars of the last user message>`. It runs
in a thread, so `with OpenAIServer() as server:` works from sync and async tests alike.
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

__all__ = ["Behaviour", "OpenAIServer", "RecordedRequest"]


@dataclass(frozen=True)
class Behaviour:
    """What the server does with one request."""

    action: str  # "reply", "status", "hang", "raw"
    content: str = ""
    status: int = 200
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    finish_reason: str = "stop"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # the decoded JSON, or None when the body was not JSON


class OpenAIServer:
    """`base_url` ends in `/v1`. With `api_keys`, other bearer tokens get OpenAI's 401."""

    def __init__(self, *, model: str = "test-model", api_keys: Collection[str] | None = None) -> None:
        self.model = model
        self.api_keys = None if api_keys is None else frozenset(api_keys)
        self.requests: list[RecordedRequest] = []
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._count = 0

    # -- scripting -------------------------------------------------------------------------

    def reply(self, content: str) -> None:
        self._push(Behaviour("reply", content=content))

    def cut_off(self, content: str) -> None:
        """Reply with `content` as a model stopped by its token limit does: `finish_reason: length`."""
        self._push(Behaviour("reply", content=content, finish_reason="length"))

    def rate_limit(self, retry_after: str | None = "2", message: str = "Rate limit reached for requests") -> None:
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        self._push(Behaviour("status", status=429, message=message, headers=headers))

    def error(self, status: int, message: str = "The server had an error while processing your request.") -> None:
        self._push(Behaviour("status", status=status, message=message))

    def hang(self, seconds: float = 30.0) -> None:
        """Send nothing for `seconds` (or until the server stops), then reply as by default."""
        self._push(Behaviour("hang", seconds=seconds))

    def invalid_json(self) -> None:
        self.raw(b'{"id": "chatcmpl-broken", "choices": [')

    def raw(self, payload: bytes, status: int = 200) -> None:
        """Send `payload` as it is, labelled JSON: for bodies no well-behaved provider sends."""
        self._push(Behaviour("raw", status=status, content=payload.decode()))

    def _push(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._script.append(behaviour)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> OpenAIServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # Handler threads are joined on close; `_stopping` ends any that hang.
        self._httpd.daemon_threads = False
        # A short poll so that leaving the block takes milliseconds, not serve_forever's default half second.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="openai-server", daemon=True)
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

    def _completion(self, body: Any, content: str, finish_reason: str = "stop") -> dict[str, Any]:
        messages = body.get("messages", []) if isinstance(body, dict) else []
        if not content:
            users = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
            content = f"ok: {str(users[-1] if users else '')[:60]}"
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))
        completion_tokens = len(content.split())
        with self._lock:
            self._count += 1
            number = self._count
        return {
            "id": f"chatcmpl-test{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model) if isinstance(body, dict) else self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


def _error_body(status: int, message: str) -> dict[str, Any]:
    kinds = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
             429: "requests", 500: "server_error"}
    codes = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
    return {"error": {"message": message, "type": kinds.get(status, "server_error"), "param": None,
                      "code": codes.get(status)}}


class _Handler(BaseHTTPRequestHandler):
    server_state: OpenAIServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on recorded requests, not on a log."""

    def do_GET(self) -> None:
        self.server_state._record(self._recorded(b""))
        self._send_json(404, _error_body(404, f"Invalid URL (GET {self.path})"))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        state = self.server_state
        request = self._recorded(raw)
        state._record(request)
        if not self.path.endswith("/chat/completions"):
            self._send_json(404, _error_body(404, f"Invalid URL (POST {self.path})"))
            return
        if state.api_keys is not None and self.headers.get("Authorization", "") not in {
                f"Bearer {key}" for key in state.api_keys}:
            self._send_json(401, _error_body(401, "Incorrect API key provided."))
            return
        body = request.body
        behaviour = state._next()
        if behaviour.action == "hang":
            if state._stopping.wait(behaviour.seconds):
                return
            behaviour = Behaviour("reply")
        if behaviour.action == "status":
            self._send_json(behaviour.status, _error_body(behaviour.status, behaviour.message), behaviour.headers)
        elif behaviour.action == "raw":
            self._send(behaviour.status, behaviour.content.encode(), {"Content-Type": "application/json"})
        elif not isinstance(body, dict):
            self._send_json(400, _error_body(400, "We could not parse the JSON body of your request."))
        else:
            self._send_json(200, state._completion(body, behaviour.content, behaviour.finish_reason))

    def _recorded(self, raw: bytes) -> RecordedRequest:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        return RecordedRequest(self.command, self.path, headers, body)

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer
