"""What the AI layer did: one event per provider call, with what it cost and what came back.

Every call an attempt makes is recorded, whatever its outcome, before the attempt's result:
which provider, model and key (its id, never the key), the tokens each way, the latency, the
cost from the model catalogue, the normalised finish reason, and the provider's response as
it arrived (a blob when large), so a run can be replayed without calling anyone. Key pools,
the performance tracker and spend are folds over these events (issue "AI layer").
"""

from __future__ import annotations

from typing import ClassVar

from ._envelope import EventBase, Name
from ._task import Attempt

__all__ = ["CALL_OUTCOMES", "FINISH_REASONS", "LLMCalled"]

# A call's outcome: "ok", or how it failed (the AI layer's normalised error kinds).
CALL_OUTCOMES = ("ok", "auth", "rate_limited", "quota", "context_too_long", "content_filtered", "server_error",
                 "timeout", "cut_off", "bad_request")
# Why the model stopped, in one vocabulary for every provider.
FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls", "other")


class LLMCalled(EventBase, frozen=True, kw_only=True):
    domain: ClassVar[str] = "llm"
    verb: ClassVar[str] = "called"
    blob_fields: ClassVar[tuple[str, ...]] = ("response",)

    task_id: Name
    attempt: Attempt
    call: int = 1  # the attempt's first call is 1
    provider: str
    model: str
    key_id: str | None = None  # "<provider>:<n>" for <PROVIDER>_API_KEY_<n> (0 for <PROVIDER>_API_KEY)
    outcome: str = "ok"  # one of CALL_OUTCOMES
    error: str | None = None
    status: int | None = None  # the HTTP status, when an answer came
    retry_after_seconds: float | None = None
    finish_reason: str | None = None  # one of FINISH_REASONS, when the model finished
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = None  # from the model catalogue; None when the model has no price there
    request_digest: str = ""  # sha256 of the request body as sent (no key in it): what a replay matches
    response: str | None = None  # the body as it arrived (a stream: its data lines, one per line)
