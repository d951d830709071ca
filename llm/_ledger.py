"""What the LLM calls hold and have spent: a fold over reservations and call records that the
key pools and the budgets read.

A call is reserved before it is made (`reserve`): its key counts it from then (in flight, and
against the key's limits), and the most it can cost (`cost_usd`: the prompt's estimated tokens
at the input price, the answer's whole budget at the output price) is held against the day's
budget (UTC) and its run's. Its record (`settle`) turns the hold into what the call really
cost, spent, and lets the key go. A hold whose record never comes (its executor died
mid-call) lets the key go at `holds_until` and counts as spent at its estimate: the call may
have been paid. A call no budget covers is refused before it is reserved (`refusal`): for
good when what is spent leaves no room, for now when calls in flight hold it.

Everything here is a pure fold: each executor folds every executor's reservations and records
from the stream (actors/executor/_pools.py), and one without a stream folds its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from ._keys import CallOnKey, CallRecord, KeyPool

__all__ = ["Budgets", "CallIdentity", "Hold", "Ledger", "Refusal", "Reservation", "hold_id", "hold_of"]


class CallIdentity(Protocol):
    """What names one call: a reservation and the call's record (`events.LLMCalled`) both say it."""

    @property
    def run_id(self) -> str: ...
    @property
    def task_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def call(self) -> int: ...
    @property
    def executor(self) -> str: ...


class Reservation(CallOnKey, CallIdentity, Protocol):
    """What the ledger reads of a reservation: an `events.CallReserved`."""

    @property
    def holds_until(self) -> datetime: ...


def hold_id(run_id: str, task_id: str, attempt: int, call: int, executor: str) -> str:
    """One call's identity, the same in its reservation and its record. The executor is part of
    it: an attempt redelivered to another executor (its first one died mid-call) is another call."""
    return f"{run_id}/{task_id}/{attempt}/{call}/{executor}"


def hold_of(event: CallIdentity) -> str:
    """The hold id a reservation or a call's record (`events.LLMCalled`) names."""
    return hold_id(event.run_id, event.task_id, event.attempt, event.call, event.executor)


@dataclass(frozen=True)
class Budgets:
    """USD a run, and all runs in a UTC day, may spend on model calls; None: no limit."""

    per_run: float | None = None
    per_day: float | None = None


@dataclass
class Hold:
    provider: str
    key_id: str | None
    run_id: str
    day: str  # the UTC day the call was reserved in, YYYY-MM-DD
    cost: float
    holds_until: float  # epoch seconds
    key_held: bool = True
    lapsed: bool = False  # past its time with no record: its estimate counts as spent


@dataclass(frozen=True)
class Refusal:
    """Why a call may not be made: `final` when no wait helps (what is spent already leaves no
    room); otherwise calls in flight hold the room, and it may be made once they end."""

    reason: str
    final: bool


class Ledger:
    """Holds and spend, folded in stream order; the pools are the client's (`LLMClient.pools`)."""

    def __init__(self, pools: Mapping[str, KeyPool], clock: Callable[[], float] = time.time) -> None:
        self.pools = pools
        self._clock = clock
        self.holds: dict[str, Hold] = {}  # hold id -> a call reserved and not yet recorded
        # USD spent (recorded, or held by a call that never said what it cost) and held (by calls
        # in flight, at their estimate), by UTC day and by run.
        self.day_spent: dict[str, float] = {}
        self.run_spent: dict[str, float] = {}
        self.day_held: dict[str, float] = {}
        self.run_held: dict[str, float] = {}

    def reserve(self, event: Reservation) -> None:
        at = event.ts.timestamp()
        cost = event.cost_usd or 0.0
        pool = self.pools.get(event.provider)
        if pool is not None and event.key_id is not None:
            pool.reserve(event.key_id, event.model, at)
        hold = Hold(event.provider, event.key_id, event.run_id, _day(at), cost, event.holds_until.timestamp())
        self.holds[hold_of(event)] = hold
        _add(self.day_held, hold.day, cost)
        _add(self.run_held, hold.run_id, cost)

    def settle(self, hold: str | None, record: CallRecord | None, run_id: str) -> None:
        """A call's record: its cost in place of its hold's, its key let go, its outcome folded
        into its key's state (a 429 rests it). `hold` None: a call that was never reserved;
        `record` None: one abandoned before its answer, whose estimate counts as spent."""
        held = self.holds.pop(hold, None) if hold is not None else None
        if record is not None:
            pool = self.pools.get(record.provider)
            if pool is not None:
                pool.apply(record)
        if held is None:
            if record is not None:
                self._spent(_day(record.ts.timestamp()), run_id, record.cost_usd or 0.0)
            return
        if not held.lapsed:
            self._end(held)
        if record is not None:  # the real cost in place of the estimate the hold ended with
            self._spent(held.day, held.run_id, (record.cost_usd or 0.0) - held.cost)

    def expire(self) -> None:
        """Holds past their time with no record: their keys go, their estimates count as spent."""
        now = self._clock()
        for held in self.holds.values():
            if not held.lapsed and held.holds_until <= now:
                held.lapsed = True
                self._end(held)

    def refusal(self, run_id: str, cost: float | None, budgets: Budgets, model: str) -> Refusal | None:
        """Why a call that may cost `cost` may not be made now under `budgets`; None if it may."""
        if budgets.per_run is None and budgets.per_day is None:
            return None
        if cost is None:
            return Refusal(f"the model catalogue has no price for {model}, so a call to it cannot be held "
                           "against a budget (give it one in YMERA_MODELS_FILE)", final=True)
        day = _day(self._clock())
        scopes = [(limit, spent.get(key, 0.0), held.get(key, 0.0), what)
                  for limit, spent, held, key, what in (
                      (budgets.per_run, self.run_spent, self.run_held, run_id, "the workflow's budget"),
                      (budgets.per_day, self.day_spent, self.day_held, day, f"the budget for {day}"))
                  if limit is not None]
        for limit, spent, _, what in scopes:
            if spent + cost > limit + 1e-12:
                return Refusal(f"{what} of ${limit:g} cannot cover this call: ${spent:.6g} is spent, and the "
                               f"call may cost up to ${cost:.6g}", final=True)
        for limit, spent, held, what in scopes:
            if spent + held + cost > limit + 1e-12:
                return Refusal(f"{what} of ${limit:g} cannot cover this call while calls in flight hold "
                               f"${held:.6g} of it (${spent:.6g} spent; the call may cost up to ${cost:.6g})",
                               final=False)
        return None

    def _end(self, held: Hold) -> None:
        """A hold ends: its estimate moves from held to spent, its key goes."""
        _add(self.day_held, held.day, -held.cost)
        _add(self.run_held, held.run_id, -held.cost)
        self._spent(held.day, held.run_id, held.cost)
        if held.key_held:
            held.key_held = False
            pool = self.pools.get(held.provider)
            if pool is not None and held.key_id is not None:
                pool.release(held.key_id)

    def _spent(self, day: str, run_id: str, usd: float) -> None:
        _add(self.day_spent, day, usd)
        _add(self.run_spent, run_id, usd)


def _add(totals: dict[str, float], key: str, usd: float) -> None:
    if usd:
        totals[key] = totals.get(key, 0.0) + usd


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).date().isoformat()
