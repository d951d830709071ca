"""How a provider call fails, in one vocabulary for every provider.

Each wire format translates its own statuses and error bodies into an `LLMError` of one of
these kinds, once (`llm/wire/`); nothing above this package sees a provider's error shape.
"""

from __future__ import annotations

from typing import Literal

from events import YmeraError

__all__ = ["RETRYABLE", "ErrorKind", "LLMError"]

ErrorKind = Literal["auth", "rate_limited", "quota", "context_too_long", "content_filtered", "server_error",
                    "timeout", "cut_off", "bad_request", "budget"]

# "budget": no budget covers the call's estimate; refused before any request (llm/_ledger.py).
# Kinds a later attempt may get past as they are. Auth and quota belong to a key: another key may
# pass (the pool takes that key out of turn). Context too long, a filtered answer and a bad request
# fail the same way again unless the task or the model changes.
RETRYABLE: frozenset[str] = frozenset({"rate_limited", "server_error", "timeout", "cut_off", "auth", "quota"})


class LLMError(YmeraError):
    """A failed call: `kind`, a one-line message naming the provider's own explanation, and what
    the answer said about when to try again."""

    def __init__(self, kind: ErrorKind, message: str, *, status: int | None = None,
                 retry_after: float | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.retryable = kind in RETRYABLE if retryable is None else retryable
