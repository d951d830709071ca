"""What the wire formats share: reading an error body, Retry-After, Server-Sent Events, and the
mapping from an HTTP status and a provider's words to an error kind."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import msgspec

from .._errors import ErrorKind, LLMError

__all__ = ["MESSAGE_CHARS", "classify", "decode_json", "one_line", "provider_message", "retry_after_seconds",
           "sse_data"]

MESSAGE_CHARS = 200

# A prompt over the model's context window, in the words providers use for it.
_CONTEXT = re.compile(
    r"context[_ ]length|context window|maximum context|prompt is too long|too many tokens|input is too long"
    r"|exceeds the maximum number of tokens|reduce the length|token limit exceeded|maximum input length",
    re.IGNORECASE)
# Quota (money or a daily allowance) rather than a rate: waiting seconds does not help.
_PER_MINUTE = re.compile(r"per minute|per second|/ ?minute|/ ?min\b|\bRPM\b|\bTPM\b", re.IGNORECASE)
_QUOTA = re.compile(r"insufficient_quota|quota exceeded|exceeded your current quota|spend limit|credit balance"
                    r"|billing|per day|daily limit|PerDay", re.IGNORECASE)


def classify(status: int, text: str, headers: Mapping[str, str], where: str,
             codes: Mapping[str, ErrorKind] | None = None, code: str | None = None) -> LLMError:
    """The error an HTTP status means, refined by the provider's own code and words.

    `text` is the provider's explanation (already one line), `code` its machine-readable error
    type where the format has one, looked up in `codes` first.
    """
    kind: ErrorKind
    retry_after = retry_after_seconds(headers.get("retry-after-ms"), milliseconds=True)
    if retry_after is None:
        retry_after = retry_after_seconds(headers.get("retry-after"))
    # Quota words with no wait named and no per-minute window: money or a day's allowance, not a rate.
    quota = _QUOTA.search(text) is not None and retry_after is None and not _PER_MINUTE.search(text)
    if code is not None and codes is not None and code in codes:
        kind = codes[code]
    elif status in (401, 403):
        kind = "auth"
    elif status == 402 or (400 <= status < 500 and quota and not _CONTEXT.search(text)):
        kind = "quota"
    elif status == 429:
        kind = "rate_limited"
    elif status in (408, 504):
        kind = "timeout"
    elif status == 413 or (400 <= status < 500 and _CONTEXT.search(text)):
        kind = "context_too_long"
    elif 400 <= status < 500:
        kind = "bad_request"
    else:
        kind = "server_error"
    if kind != "rate_limited":
        retry_after = None
    what = {
        "auth": "refused the key",
        "quota": "says the quota is used up",
        "rate_limited": "rate limited the request",
        "context_too_long": "says the prompt is too long for the model",
        "timeout": "timed out the request",
        "bad_request": "refused the request",
        "server_error": "failed",
        "content_filtered": "filtered the content",
        "cut_off": "cut the answer off",
    }[kind]
    after = "" if retry_after is None else f"; retry after {retry_after:g}s"
    return LLMError(kind, f"{where} {what} (HTTP {status}): {text}{after}", status=status, retry_after=retry_after)


def decode_json(content: bytes) -> Any:
    try:
        return msgspec.json.decode(content)
    except msgspec.DecodeError:
        return None


def provider_message(content: bytes, reason: str | None,
                     pick: Callable[[Any], str | None] | None = None) -> str:
    """The provider's own explanation, one line, at most MESSAGE_CHARS: what `pick` finds in the
    JSON body, else the usual places (`error.message`, `message`, `detail`), else the body as text."""
    body = decode_json(content)
    text: Any = None
    if pick is not None and body is not None:
        text = pick(body)
    if text is None and isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        text = error or body.get("message") or body.get("detail")
    if text is None:
        text = content.decode(errors="replace") if body is None else ""
    line = one_line(text if isinstance(text, str) else msgspec.json.encode(text).decode())
    line = line or reason or "no explanation given"
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 1] + "…"


def retry_after_seconds(value: str | None, *, milliseconds: bool = False, now: datetime | None = None,
                        ) -> float | None:
    """A `Retry-After` header as seconds from now: delay-seconds or an HTTP-date. None if absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value) / (1000 if milliseconds else 1)
    except ValueError:
        if milliseconds:
            return None
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def sse_data(body: bytes) -> list[bytes]:
    """The `data:` payloads of a Server-Sent Events body, one per event (multi-line data joined)."""
    events: list[bytes] = []
    lines: list[bytes] = []
    for raw in body.splitlines():
        if not raw.strip():
            if lines:
                events.append(b"\n".join(lines))
                lines = []
        elif raw.startswith(b"data:"):
            lines.append(raw[5:].removeprefix(b" "))
    if lines:
        events.append(b"\n".join(lines))
    return events


def one_line(text: str) -> str:
    return " ".join(text.split())
