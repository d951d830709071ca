"""A request to a model and its reply, as every wire format sees them."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["Finish", "HttpRequest", "Message", "Reply", "Request"]

Finish = Literal["stop", "length", "content_filter", "tool_calls", "other"]


class Message(msgspec.Struct, frozen=True):
    role: Literal["system", "user", "assistant"]
    content: str


class Request(msgspec.Struct, frozen=True):
    """One chat turn for `model` (the provider's own name for it)."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    stream: bool = False

    @property
    def system(self) -> str | None:
        """The system messages joined, for formats that take the system prompt apart."""
        parts = [m.content for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None

    @property
    def turns(self) -> tuple[Message, ...]:
        return tuple(m for m in self.messages if m.role != "system")


class Reply(msgspec.Struct, frozen=True):
    """What the model answered, with the usage the provider reported."""

    text: str
    finish: Finish
    tokens_in: int = 0
    tokens_out: int = 0
    model: str | None = None  # the model the provider says answered, when it says


class HttpRequest(msgspec.Struct, frozen=True):
    url: str
    headers: dict[str, str]
    body: bytes
