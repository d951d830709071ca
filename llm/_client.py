"""One call to a model: a key from its pool, the request in its wire format, the answer read,
normalised and priced, and a record of it all (`Call`) whatever the outcome.

Records collect where the caller asks for them (`recording`): the executor wraps each attempt
in one and publishes every record as an `LLMCalled` before the attempt's result. What lets a
call be made (its key, and the most it may cost held against the budgets) is a `Gate`: the
client's own, over its ledger, or the one the caller names in `recording` (the executor's
reserves every call in the stream first, actors/executor/_pools.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Protocol

import aiohttp
import msgspec

from events import now

from ._catalogue import answer_budget, estimate_tokens
from ._errors import LLMError
from ._keys import KeyPool
from ._ledger import Ledger, hold_id
from ._models import Models, Target
from ._providers import LOCAL
from ._selector import Choice, Selector
from ._tracker import Tracker
from ._transport import send
from ._types import Message, Reply, Request
from .wire import WIRES

__all__ = ["Call", "Gate", "Grant", "LLMClient", "Recorded", "Recording", "Replay", "current_recording", "recording"]


class Call(msgspec.Struct, frozen=True, kw_only=True):
    """What one call did: `LLMCalled`'s fields, less the attempt's."""

    ts: datetime
    provider: str
    model: str
    key_id: str | None = None
    outcome: str = "ok"
    error: str | None = None
    status: int | None = None
    retry_after_seconds: float | None = None
    finish_reason: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cost_usd: float | None = None
    request_digest: str = ""
    response: str | None = None
    purpose: str = "task"  # or "judge": grading a task's answer (`events.LLMCalled.purpose`)


class Grant(msgspec.Struct, frozen=True):
    """A call let through: the key it uses (None: the provider takes none), and its hold."""

    key_id: str | None
    hold: str | None = None


class Gate(Protocol):
    """What lets a call be made, and learns what came of it."""

    async def admit(self, target: Target, tokens: int, cost: float | None) -> Grant:
        """The key a call of about `tokens` (prompt and answer budget) that may cost `cost` uses,
        held; an `LLMError` when it may not be made (no key free now, no budget left)."""
        ...

    def done(self, grant: Grant, call: Call | None) -> None:
        """The call's record (what it cost, how it ended), and its key let go; None for a call
        abandoned before its answer (its hold stays spent: it may have been paid)."""
        ...


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    """A call as an earlier run recorded it: what answers the same call in a replay."""

    provider: str
    model: str
    outcome: str = "ok"
    error: str | None = None
    status: int | None = None
    retry_after_seconds: float | None = None
    request_digest: str = ""
    response: str | None = None


class Replay(Protocol):
    """Where a replayed attempt's answers come from: an earlier run's records."""

    def model(self, call: int) -> str | None:
        """The model ("<provider>/<name>") call `call` of this attempt ran on in the recorded run."""
        ...

    def answer(self, call: int, digest: str) -> Recorded:
        """The recorded answer to call `call`, whose request body has sha256 `digest`; an
        `LLMError` (bad_request) when the recorded run made no such request."""
        ...


class Recording(msgspec.Struct):
    """What the calls made inside `recording` did, and the choices of model behind them."""

    gate: Gate | None = None
    replay: Replay | None = None
    tried: tuple[str, ...] = ()  # the models the task's earlier attempts ran on (`llm.Need.tried`)
    upgrade: str | None = None  # why this attempt must run on a stronger model (`llm.Need.upgrade`)
    calls: list[Call] = msgspec.field(default_factory=list)
    choices: list[tuple[int, Choice]] = msgspec.field(default_factory=list)  # (the call it was for, the choice)
    purpose: str = "task"  # what the calls recorded now are for (`Call.purpose`)

    def chose(self, choice: Choice) -> None:
        self.choices.append((len(self.calls) + 1, choice))


_recording: contextvars.ContextVar[Recording | None] = contextvars.ContextVar("llm_calls", default=None)


@contextlib.contextmanager
def recording(gate: Gate | None = None, replay: Replay | None = None, *, tried: tuple[str, ...] = (),
              upgrade: str | None = None) -> Iterator[Recording]:
    """Collect the records of the calls made inside (in this task and the tasks it starts),
    each let through by `gate` (the client's own when None), or answered by `replay` (no
    provider called, no gate asked); `tried` and `upgrade` are what the selector is told of
    the task's earlier attempts."""
    current = Recording(gate, replay, tried, upgrade)
    token = _recording.set(current)
    try:
        yield current
    finally:
        _recording.reset(token)


@contextlib.contextmanager
def recording_again(current: Recording, purpose: str) -> Iterator[Recording]:
    """Record into `current` again, after its `recording` block, the calls made inside marked
    `purpose` (the judge's, grading the answer the first calls gave)."""
    before = current.purpose
    current.purpose = purpose
    token = _recording.set(current)
    try:
        yield current
    finally:
        _recording.reset(token)
        current.purpose = before


def current_recording() -> Recording | None:
    return _recording.get()


class LLMClient:
    """Calls for one executor: its HTTP client, the targets it resolves, a key pool per provider."""

    def __init__(self, http: aiohttp.ClientSession, models: Models) -> None:
        self.http = http
        self.models = models
        self.pools = {name: KeyPool(endpoint) for name, endpoint in models.endpoints.items() if endpoint.keys}
        self.ledger = Ledger(self.pools)
        self.tracker = Tracker()  # what the caller folds in of calls, scores and ratings
        self.selector = Selector(models, self.tracker, self.pools)
        self._held = 0

    # ---- the client's own gate: holds in its own ledger, no budget ---------------------------

    async def admit(self, target: Target, tokens: int, cost: float | None) -> Grant:
        pool = self.pools.get(target.endpoint.name)
        if pool is None:
            return Grant(None)
        self.ledger.expire()
        key_id = pool.choose(target.info, target.model)
        self._held += 1
        hold = f"local/{self._held}"
        at = now()
        self.ledger.reserve(_Local(ts=at, run_id="", task_id=hold, attempt=1, call=1, provider=target.endpoint.name,
                                   model=target.model, key_id=key_id, cost_usd=cost,
                                   holds_until=at + timedelta(days=1)))
        return Grant(key_id, hold_id("", hold, 1, 1, ""))

    def done(self, grant: Grant, call: Call | None) -> None:
        self.ledger.settle(grant.hold, call, "")

    async def complete(self, target: Target, messages: tuple[Message, ...], *, max_tokens: int | None = None,
                       temperature: float | None = None, stream: bool = False) -> tuple[Reply, Call]:
        """The model's answer and the call's record; an `LLMError` when there is no answer (its
        record is kept in `recording` all the same)."""
        endpoint = target.endpoint
        budget = answer_budget(target.info, sum(len(m.content) for m in messages), max_tokens)
        request = Request(model=target.model, messages=messages, max_tokens=budget, temperature=temperature,
                          stream=stream)
        wire = WIRES[endpoint.provider.wire]
        pool = self.pools.get(endpoint.name)
        current = _recording.get()
        if current is not None and current.replay is not None:
            return self._replayed(current.replay, target, request, stream)
        gate: Gate = current.gate if current is not None and current.gate is not None else self
        prompt = estimate_tokens(sum(len(m.content) for m in messages))
        grant = await gate.admit(target, prompt + (budget or 0), _most(target, prompt, budget))
        key_id = grant.key_id
        at = now()
        started = time.perf_counter()
        status = None
        body: bytes | None = None
        reply: Reply | None = None
        http = wire.request(endpoint.base_url, pool.secret(key_id) if pool and key_id else None, request)
        where = http.url
        record: Call | None = None
        try:
            answer = await send(self.http, http, where)
            status, body = answer.status, answer.body
            if answer.status != 200:
                raise wire.error(answer.status, answer.reason, answer.headers, answer.body, where)
            reply = wire.reply(answer.body, where, stream)
            assert reply is not None
            if not reply.tokens_in and not reply.tokens_out:
                # No usage reported (llama.cpp's server leaves it out of a stream): counted high, as a
                # prompt is, so spend and token limits are never under-counted.
                reply = msgspec.structs.replace(reply, tokens_in=prompt, tokens_out=estimate_tokens(len(reply.text)))
            if reply.finish == "length":
                # An answer cut off at the token limit is not the answer: a failed attempt of its own
                # kind, which a larger max_tokens or another model may get right.
                limit = f" (max_tokens {budget})" if budget is not None else ""
                raise LLMError("cut_off", f"{where}: the model stopped at its token limit after "
                               f"{reply.tokens_out} tokens{limit}: the answer is incomplete")
            if reply.finish == "content_filter":
                raise LLMError("content_filtered", f"{where}: the provider filtered the answer "
                               f"(finish reason content_filter) after {reply.tokens_out} tokens")
            record = self._record(target, key_id, at, started, http.body, status, body, reply, None)
            return reply, record
        except LLMError as exc:
            if exc.kind in ("auth", "quota"):  # the key's failing, not the request's: another key may pass
                exc.retryable = pool is not None and key_id is not None and pool.others(key_id)
            # A cut-off or filtered answer used tokens all the same: its record says how many.
            used = reply if exc.kind in ("cut_off", "content_filtered") else None
            record = self._record(target, key_id, at, started, http.body, status, body, used, exc)
            raise
        finally:
            # No record: abandoned mid-call (cancelled by a timeout); the key goes back, the hold stays spent.
            gate.done(grant, record)
    def estimate(self, target: Target, messages: tuple[Message, ...], max_tokens: int | None = None) -> float | None:
        """The most a call of `messages` to `target` may cost: the prompt's estimated tokens and
        its whole answer budget (None: the catalogue has no price for the model)."""
        chars = sum(len(m.content) for m in messages)
        return _most(target, estimate_tokens(chars), answer_budget(target.info, chars, max_tokens))

    def _replayed(self, replay: Replay, target: Target, request: Request, stream: bool) -> tuple[Reply, Call]:
        """The recorded answer to this call, read as the provider's own would be: a recorded
        failure fails the same way. Nothing is paid (cost 0)."""
        wire = WIRES[target.endpoint.provider.wire]
        http = wire.request(target.endpoint.base_url, None, request)
        where = f"replay of {target.ref}"
        current = _recording.get()
        call = len(current.calls) + 1 if current is not None else 1
        started = time.perf_counter()
        at = now()
        recorded = replay.answer(call, hashlib.sha256(http.body).hexdigest())
        body = recorded.response.encode() if recorded.response is not None else None
        reply: Reply | None = None
        error: LLMError | None = None
        if recorded.outcome != "ok":
            error = LLMError(recorded.outcome, recorded.error or recorded.outcome,  # type: ignore[arg-type]
                             status=recorded.status, retry_after=recorded.retry_after_seconds)
        else:
            reply = wire.reply(body or b"", where, stream)
            if not reply.tokens_in and not reply.tokens_out:
                reply = msgspec.structs.replace(reply, tokens_in=estimate_tokens(sum(len(m.content)
                                                                                     for m in request.messages)),
                                                tokens_out=estimate_tokens(len(reply.text)))
        record = self._record(target, None, at, started, http.body, recorded.status, body, reply, error)
        record = msgspec.structs.replace(record, cost_usd=0.0)
        if current is not None:
            current.calls[-1] = record
        if error is not None:
            raise error
        assert reply is not None
        return reply, record

    def _record(self, target: Target, key_id: str | None, at: datetime, started: float, request: bytes,
                status: int | None, body: bytes | None, reply: Reply | None, error: LLMError | None) -> Call:
        tokens_in = reply.tokens_in if reply is not None else 0
        tokens_out = reply.tokens_out if reply is not None else 0
        if target.info is not None:
            cost = target.info.cost(tokens_in, tokens_out)
        else:
            cost = 0.0 if target.endpoint.name == LOCAL else None  # one's own server costs no tokens
        call = Call(
            ts=at, provider=target.endpoint.name, model=target.model, key_id=key_id,
            outcome="ok" if error is None else error.kind, error=None if error is None else error.message,
            status=status, retry_after_seconds=None if error is None else error.retry_after,
            finish_reason=reply.finish if reply is not None else None, tokens_in=tokens_in, tokens_out=tokens_out,
            latency_ms=(time.perf_counter() - started) * 1000, cost_usd=cost,
            request_digest=hashlib.sha256(request).hexdigest(),
            response=None if body is None else body.decode(errors="replace"))
        current = _recording.get()
        if current is not None:
            if current.purpose != "task":
                call = msgspec.structs.replace(call, purpose=current.purpose)
            current.calls.append(call)
        return call


def _most(target: Target, prompt: int, budget: int | None) -> float | None:
    """The most a call of `prompt` tokens with an answer budget of `budget` may cost `target`."""
    if target.info is not None:
        return target.info.cost(prompt, budget or 0)
    return 0.0 if target.endpoint.name == LOCAL else None


class _Local(msgspec.Struct, frozen=True, kw_only=True):
    """A reservation the client's own gate holds (no stream: nothing to publish)."""

    ts: datetime
    run_id: str
    task_id: str
    attempt: int
    call: int
    provider: str
    model: str
    key_id: str | None
    cost_usd: float | None
    holds_until: datetime
    executor: str = ""
