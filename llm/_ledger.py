"""What the LLM calls hold and have spent: a fold over reservations and call records that the
key pools and the budgets read.

A call is reserved before it is made (`reserve`): its key counts it from then (in flight, and
against the key's limits), and the most it can cost (`cost_usd`: the prompt's estimated tokens
at the input price, the answer's whole budget at the output price) counts against the day's
spend (UTC) and its run's. Its record (`settle`) puts what it really cost in place of the
estimate and lets the key go. A hold whose record never comes (its executor died mid-call)
lets the key go at `holds_until` but stays counted at its estimate: the call may have been
paid. A call that no budget covers is refused before it is reserved (`refusal`).

Everything here is a pure fold: each executor folds every executor's reservations and records
from the stream (actors/executor/_pools.py), and one without a stream folds its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from ._keys import CallRecord, KeyPool

__all__ = ["Budgets", "Hold", "Ledger", "Reservation", "hold_id"]


class Reservation(Protocol):
    """What the ledger reads of a reservation: an `events.CallReserved`."""

    @property
    def ts(self) -> datetime: ...
    @property
    def run_id(self) -> str: ...
    @property
    def task_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def call(self) -> int: ...
    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def cost_usd(self) -> float | None: ...
    @property
    def holds_until(self) -> datetime: ...


def hold_id(run_id: str, task_id: str, attempt: int, call: int) -> str:
    """One call's identity, the same in its reservation and its record."""
    return f"{run_id}/{task_id}/{attempt}/{call}"


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


class Ledger:
    """Holds and spend, folded in stream order; the pools are the client's (`LLMClient.pools`)."""

    def __init__(self, pools: Mapping[str, KeyPool], clock: Callable[[], float] = time.time) -> None:
        self.pools = pools
        self._clock = clock
        self.holds: dict[str, Hold] = {}  # hold id -> a call reserved and not yet recorded
        self.day_spend: dict[str, float] = {}  # UTC day -> USD spent and held
        self.run_spend: dict[str, float] = {}  # run id -> USD spent and held

    def reserve(self, event: Reservation) -> None:
        at = event.ts.timestamp()
        day = _day(at)
        cost = event.cost_usd or 0.0
        pool = self.pools.get(event.provider)
        if pool is not None and event.key_id is not None:
            pool.reserve(event.key_id, event.model, at)
        self.holds[hold_id(event.run_id, event.task_id, event.attempt, event.call)] = Hold(
            event.provider, event.key_id, event.run_id, day, cost, event.holds_until.timestamp())
        self._spend(day, event.run_id, cost)

    def settle(self, hold: str | None, record: CallRecord | None, run_id: str) -> None:
        """A call's record: its cost in place of its hold's, its key let go, its outcome folded
        into its key's state (a 429 rests it). `hold` None: a call that was never reserved;
        `record` None: one abandoned before its answer, whose hold stays spent."""
        held = self.holds.pop(hold, None) if hold is not None else None
        if record is None:
            if held is not None:
                self._let_go(held)
            return
        pool = self.pools.get(record.provider)
        if pool is not None:
            pool.apply(record)
        cost = record.cost_usd or 0.0
        if held is None:
            self._spend(_day(record.ts.timestamp()), run_id, cost)
            return
        self._spend(held.day, held.run_id, cost - held.cost)
        self._let_go(held)

    def expire(self) -> None:
        """Let the keys of holds past their time go; their estimates stay spent."""
        now = self._clock()
        for held in self.holds.values():
            if held.key_held and held.holds_until <= now:
                self._let_go(held)

    def refusal(self, run_id: str, cost: float | None, budgets: Budgets, model: str) -> str | None:
        """Why a call that may cost `cost` may not be made now under `budgets`; None if it may."""
        if budgets.per_run is None and budgets.per_day is None:
            return None
        if cost is None:
            return (f"the model catalogue has no price for {model}, so a call to it cannot be held "
                    "against a budget (give it one in YMERA_MODELS_FILE)")
        day = _day(self._clock())
        for limit, spent, what in ((budgets.per_run, self.run_spend.get(run_id, 0.0), "the workflow's budget"),
                                   (budgets.per_day, self.day_spend.get(day, 0.0), f"the budget for {day}")):
            if limit is not None and spent + cost > limit + 1e-12:
                return (f"{what} of ${limit:g} cannot cover this call: ${spent:.6g} is spent or held, "
                        f"and the call may cost up to ${cost:.6g}")
        return None

    def _spend(self, day: str, run_id: str, usd: float) -> None:
        if usd:
            self.day_spend[day] = self.day_spend.get(day, 0.0) + usd
            self.run_spend[run_id] = self.run_spend.get(run_id, 0.0) + usd

    def _let_go(self, held: Hold) -> None:
        if held.key_held:
            held.key_held = False
            pool = self.pools.get(held.provider)
            if pool is not None and held.key_id is not None:
                pool.release(held.key_id)


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).date().isoformat()
