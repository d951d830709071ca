"""A provider's keys, taken in turn: least loaded first, none during its cooldown or over its limits.

The pool's state is a fold over reservations and call records: a reservation (`reserve`)
counts the call in flight and against the key's per-minute and per-day limits for its model
(the catalogue's free-tier figures) from its own time; a record (`apply`, an `LLMCalled`)
rests the key on a 429 until the time its Retry-After names (counted from the event's own
time, so every process that folds the same events agrees), takes a refused key out until
restart, rests a used-up quota until the next UTC day, and counts its tokens. The executors
fold every executor's reservations and records from the stream, the last day of them
replayed on start (llm/_ledger.py, actors/executor/_pools.py): so the pools are shared, and
a restarted executor rests and counts what was done before.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from ._catalogue import ModelInfo
from ._errors import LLMError
from ._providers import Endpoint

__all__ = ["DEFAULT_COOLDOWN_SECONDS", "CallOnKey", "CallRecord", "KeyPool"]

# How long a key rests after a 429 that does not say how long.
DEFAULT_COOLDOWN_SECONDS = 10.0
_MINUTE = 60.0
_DAY = 86_400.0


class CallOnKey(Protocol):
    """What a reservation and a record of a call both say: when, to which model, on which key,
    and what it may cost or cost."""

    @property
    def ts(self) -> datetime: ...
    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def cost_usd(self) -> float | None: ...


class CallRecord(CallOnKey, Protocol):
    """What the pool reads of a call: an `events.LLMCalled`, or the `llm.Call` it is made from."""

    @property
    def outcome(self) -> str: ...
    @property
    def error(self) -> str | None: ...
    @property
    def retry_after_seconds(self) -> float | None: ...
    @property
    def tokens_in(self) -> int: ...
    @property
    def tokens_out(self) -> int: ...


class _Key:
    __slots__ = ("calls", "cooldown_until", "disabled", "id", "in_flight", "secret", "token_total", "tokens")

    def __init__(self, key_id: str, secret: str) -> None:
        self.id = key_id
        self.secret = secret
        self.cooldown_until = 0.0  # epoch seconds
        self.disabled: str | None = None  # why, when the provider refused the key
        self.in_flight = 0
        self.calls: dict[str, deque[float]] = {}  # model -> call times within the last day
        self.tokens: dict[str, deque[tuple[float, int]]] = {}  # model -> (time, tokens) within the last minute
        self.token_total: dict[str, int] = {}  # model -> the sum of `tokens`


class KeyPool:
    """The keys of one endpoint. `take` hands one out (and counts it in flight until `release`)."""

    def __init__(self, endpoint: Endpoint, clock: Callable[[], float] = time.time) -> None:
        self.endpoint = endpoint
        self._keys = {key_id: _Key(key_id, secret) for key_id, secret in endpoint.keys}
        self._clock = clock
        self._turn = 0
        # A key refused before this pool existed gets another chance: the keys may have been set
        # anew since, and a restart is how a user says so.
        self.since = clock()

    def __len__(self) -> int:
        return len(self._keys)

    def take(self, model: ModelInfo | None, name: str) -> tuple[str, str]:
        """(key id, key) for a call to model `name`, counted now (`choose`, then `reserve`)."""
        key_id = self.choose(model, name)
        self.reserve(key_id, name, self._clock())
        return key_id, self.secret(key_id)

    def choose(self, model: ModelInfo | None, name: str) -> str:
        """The key for a call to model `name`, counting nothing: among the keys not refused, not
        cooling down and under the model's limits, the one with the fewest calls in flight, then
        in the last minute, in turn. An `LLMError` (rate_limited, with the wait) when none may
        be called now."""
        now = self._clock()
        keys = list(self._keys.values())
        count = len(keys)
        best: tuple[int, int, int] | None = None
        chosen: _Key | None = None
        soonest: float | None = None
        for i in range(count):
            key = keys[(self._turn + i) % count]
            wait = self._wait(key, model, name, now)
            if wait is None:
                continue
            if wait > 0:
                soonest = wait if soonest is None else min(soonest, wait)
                continue
            rank = (key.in_flight, _count_since(key.calls.get(name), now - _MINUTE), i)
            if best is None or rank < best:
                best, chosen = rank, key
        if chosen is None:
            provider = self.endpoint.name
            if soonest is None:
                raise LLMError("auth", f"{provider}: every key was refused by the provider "
                               f"({'; '.join(f'{k.id}: {k.disabled}' for k in keys)}); set working keys",
                               retryable=False)
            raise LLMError("rate_limited", f"{provider}: every key is cooling down or at its limit for {name}; "
                           f"the first is free in {soonest:.3g}s", retry_after=soonest)
        return chosen.id

    def reserve(self, key_id: str, name: str, at: float) -> None:
        """Count a call to model `name` on `key_id`, begun at `at` (epoch seconds): in flight
        until `release`, and against the key's limits for the minute and the day. A limit holds
        for calls in flight too."""
        key = self._keys.get(key_id)
        if key is None:
            return
        key.in_flight += 1
        _insert(key.calls.setdefault(name, deque()), at)
        keys = list(self._keys)
        self._turn = (keys.index(key_id) + 1) % len(keys)

    def secret(self, key_id: str) -> str:
        return self._keys[key_id].secret

    def others(self, key_id: str) -> bool:
        """Whether a key other than `key_id` is still in the pool (not refused, quota not used up today)."""
        now = self._clock()
        return any(k.id != key_id and k.disabled is None and k.cooldown_until - now < 3600
                   for k in self._keys.values())

    def release(self, key_id: str) -> None:
        key = self._keys.get(key_id)
        if key is not None and key.in_flight > 0:
            key.in_flight -= 1

    def apply(self, event: CallRecord) -> None:
        """Fold one call's record into the keys' state (the call itself was counted when its key
        was reserved: `reserve`)."""
        key = self._keys.get(event.key_id or "")
        if key is None:
            return
        at = event.ts.timestamp()
        if event.outcome == "rate_limited":
            wait = DEFAULT_COOLDOWN_SECONDS if event.retry_after_seconds is None else event.retry_after_seconds
            key.cooldown_until = max(key.cooldown_until, at + wait)
        elif event.outcome == "quota":
            day = datetime.fromtimestamp(at, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            key.cooldown_until = max(key.cooldown_until, (day + timedelta(days=1)).timestamp())
        elif event.outcome == "auth" and at >= self.since:
            key.disabled = event.error or "refused"
        if event.tokens_in or event.tokens_out:
            used = event.tokens_in + event.tokens_out
            _insert(key.tokens.setdefault(event.model, deque()), (at, used))
            key.token_total[event.model] = key.token_total.get(event.model, 0) + used

    def state(self) -> list[dict[str, object]]:
        """Each key's state, as `ymera models` shows it (never the key)."""
        now = self._clock()
        return [{"key": k.id, "disabled": k.disabled, "cooling_for": max(0.0, k.cooldown_until - now),
                 "in_flight": k.in_flight,
                 "calls_last_minute": sum(_count_since(c, now - _MINUTE) for c in k.calls.values())}
                for k in self._keys.values()]

    def _wait(self, key: _Key, model: ModelInfo | None, name: str, now: float) -> float | None:
        """How long until `key` may be called for `name`: 0 now, None never (refused)."""
        if key.disabled is not None:
            return None
        wait = max(0.0, key.cooldown_until - now)
        if model is None:
            return wait
        calls = key.calls.get(name)
        if calls is not None:
            while calls and calls[0] <= now - _DAY:  # a day is the longest window
                calls.popleft()
            if model.rpm is not None and _count_since(calls, now - _MINUTE) >= model.rpm:
                wait = max(wait, calls[len(calls) - model.rpm] + _MINUTE - now)
            if model.rpd is not None and len(calls) >= model.rpd:
                wait = max(wait, calls[-model.rpd] + _DAY - now)
        tokens = key.tokens.get(name)
        if model.tpm is not None and tokens is not None:
            while tokens and tokens[0][0] <= now - _MINUTE:
                key.token_total[name] -= tokens.popleft()[1]
            if key.token_total.get(name, 0) >= model.tpm:
                wait = max(wait, tokens[0][0] + _MINUTE - now)
        return wait


_Item = TypeVar("_Item", float, tuple[float, int])


def _insert(window: deque[_Item], item: _Item) -> None:
    """Add `item` to a window kept oldest first: at the end, but for another process's call
    that began before one already counted here."""
    if window and item < window[-1]:
        bisect.insort(window, item)
    else:
        window.append(item)


def _count_since(times: deque[float] | None, since: float) -> int:
    """How many of the times (oldest first) are after `since`."""
    return len(times) - bisect.bisect_right(times, since) if times else 0
