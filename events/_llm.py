"""What the AI layer did: one event per provider call, with what it cost and what came back.

Every call an attempt makes is recorded, whatever its outcome, before the attempt's result:
which provider, model and key (its id, never the key), the tokens each way, the latency, the
cost from the model catalogue, the normalised finish reason, and the provider's response as
it arrived (a blob when large), so a run can be replayed without calling anyone. Key pools,
the performance tracker and spend are folds over these events (issue "AI layer").
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from ._envelope import EventBase, Name
from ._task import Attempt

__all__ = ["CALL_OUTCOMES", "FINISH_REASONS", "CallReserved", "LLMCalled", "ModelChosen"]

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
    executor: str = ""  # the executor process that made the call (its pools counted it when made)
    task_type: str = ""  # the task's type: the performance tracker measures per model and task type
    # The run whose recorded response this is (an offline replay or a fork's replayed part): no
    # provider was called, nothing was paid, and `cost_usd` is 0.
    replay_of: str | None = None
    # "task": a call the task made; "judge": the judge grading the task's answer (docs/quality.md,
    # "LLM judge"), paid from the same budget and not counted as the model serving the task type.
    purpose: str = "task"


class CallReserved(EventBase, frozen=True, kw_only=True):
    """A call's key and the most it can cost, held before the call is made.

    Published only if nothing else reached the LLM subjects since the executor read them
    (a fenced publish, `Bus.publish_after`), so every reservation was decided on every call
    and reservation before it: no two executors take a key's last free slot, or a budget's
    last dollar, together. The call's `LLMCalled` (same task, attempt and call) commits what
    it really cost and lets the key go; one that never comes (the executor died mid-call)
    keeps the hold counted at `cost_usd`, as the call may have been paid, and frees the key
    at `holds_until`.
    """

    domain: ClassVar[str] = "llm"
    verb: ClassVar[str] = "reserved"

    task_id: Name
    attempt: Attempt
    call: int = 1
    provider: str
    model: str
    key_id: str | None = None
    tokens: int = 0  # the prompt's estimated tokens plus the answer's budget
    cost_usd: float | None = None  # the most the call can cost (None: no price in the catalogue)
    holds_until: datetime  # the key is free again by then, record or not
    executor: str = ""


class ModelChosen(EventBase, frozen=True, kw_only=True):
    """Which model an attempt's call went to, among which candidates, and why (the selector's
    choice, `llm.Selector`): measured quality, failures and latency, the earlier attempts'
    models it falls back from, a budget it downgrades under, a quality it re-runs above.

    Published with the attempt's calls, before its result; `call` is the call it chose for
    (a call the budget refused is followed by another choice for the next call).
    """

    domain: ClassVar[str] = "llm"
    verb: ClassVar[str] = "chosen"

    task_id: Name
    attempt: Attempt
    call: int = 1
    task_type: str = ""
    agent: str | None = None
    model: str  # "<provider>/<name>"
    candidates: list[str] = []  # ranked, best first, the chosen one among them
    reason: str = ""
    executor: str = ""
