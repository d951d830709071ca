"""The wire formats: how each provider family shapes a request and its answers, errors included.

A format is three pure functions over bytes (`request`, `reply`, `error`), so each is tested
against a local server that speaks it and a recorded answer parses again the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .._errors import LLMError
from .._types import HttpRequest, Reply, Request
from ._common import retry_after_seconds, sse_data
from .anthropic import AnthropicMessages
from .cohere import CohereChat
from .gemini import GeminiGenerate
from .openai import OpenAIChat

__all__ = ["WIRES", "Wire", "retry_after_seconds", "sse_data"]


class Wire(Protocol):
    name: str

    def request(self, base_url: str, key: str | None, req: Request) -> HttpRequest:
        """The HTTP request for `req`, with `key` where the format puts it."""
        ...

    def reply(self, content: bytes, where: str, stream: bool) -> Reply:
        """A 200's body as a reply; an `LLMError` when it is no answer (malformed, blocked, cut short)."""
        ...

    def error(self, status: int, reason: str | None, headers: Mapping[str, str], content: bytes,
              where: str) -> LLMError:
        """What an answer other than 200 means; `headers` with lower-case names."""
        ...


WIRES: dict[str, Wire] = {w.name: w for w in (OpenAIChat(), AnthropicMessages(), GeminiGenerate(), CohereChat())}
