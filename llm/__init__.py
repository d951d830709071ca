"""The AI layer: providers and their wire formats, the model catalogue and cost, key pools, and
the call itself. A library of its own (no NATS, no actors): the executor's LLM handlers use it,
and what must be durable leaves it as records the executor publishes (`events.LLMCalled`)."""

from ._catalogue import MIN_ANSWER_TOKENS, Catalogue, CatalogueError, ModelInfo, answer_budget, estimate_tokens
from ._client import (
    Call,
    Gate,
    Grant,
    LLMClient,
    Recorded,
    Recording,
    Replay,
    current_recording,
    recording,
    recording_again,
)
from ._errors import RETRYABLE, ErrorKind, LLMError
from ._keys import DEFAULT_COOLDOWN_SECONDS, CallRecord, KeyPool
from ._ledger import Budgets, Hold, Ledger, Refusal, Reservation, hold_id, hold_of
from ._models import NO_LLM, Models, Target
from ._providers import LOCAL, PROVIDERS, Endpoint, Provider, endpoints
from ._selector import CAPABILITY, PRIOR_QUALITY, Choice, Need, Selector
from ._tracker import KEY_ANSWERED, MODEL_FAILURES, Measure, Tracker, model_ref
from ._transport import http_client
from ._types import Finish, HttpRequest, Message, Reply, Request
from .wire import WIRES, Wire, retry_after_seconds

__all__ = [
    "CAPABILITY",
    "DEFAULT_COOLDOWN_SECONDS",
    "KEY_ANSWERED",
    "LOCAL",
    "MIN_ANSWER_TOKENS",
    "MODEL_FAILURES",
    "NO_LLM",
    "PRIOR_QUALITY",
    "PROVIDERS",
    "RETRYABLE",
    "WIRES",
    "Budgets",
    "Call",
    "CallRecord",
    "Catalogue",
    "CatalogueError",
    "Choice",
    "Endpoint",
    "ErrorKind",
    "Finish",
    "Gate",
    "Grant",
    "Hold",
    "HttpRequest",
    "KeyPool",
    "LLMClient",
    "LLMError",
    "Ledger",
    "Measure",
    "Message",
    "ModelInfo",
    "Models",
    "Need",
    "Provider",
    "Recorded",
    "Recording",
    "Refusal",
    "Replay",
    "Reply",
    "Request",
    "Reservation",
    "Selector",
    "Target",
    "Tracker",
    "Wire",
    "answer_budget",
    "current_recording",
    "endpoints",
    "estimate_tokens",
    "hold_id",
    "hold_of",
    "http_client",
    "model_ref",
    "recording",
    "recording_again",
    "retry_after_seconds",
]
