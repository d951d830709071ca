"""Sliding-window rate limits shared by every process and kept across restarts:
`check_rate_limit(bus, principal, limit, window)`.

A principal may make `limit` calls in any `window` seconds. Its admitted calls' times live in
the bus's rate bucket (`bus.RateWindows`, JetStream KV), so every process that checks the same
principal counts the same calls, and a restart of a process or of the server forgets none.
A check reads the window, decides (`decide`, pure), and an admitted call is written back with
compare-and-set on the revision read; a check that loses the race reads and decides again.
A refused call is not recorded. Times are the wall clock (`time.time()`): processes on several
hosts share a window only as well as their clocks agree.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import random
import time
from collections.abc import Sequence

import msgspec

from bus import Bus, BusError, RateWindows
from events import YmeraError

__all__ = ["MAX_ATTEMPTS", "InvalidRateLimit", "RateDecision", "RateLimiter", "check_rate_limit", "decide"]

MAX_ATTEMPTS = 100  # compare-and-sets a check may lose in a row before it gives up
_BACKOFF_CAP = 0.05  # seconds: the longest pause before reading a contended window again


class InvalidRateLimit(YmeraError, ValueError):
    """A check asked with a limit, window or principal that cannot define a rate limit."""

    def __init__(self, field: str, value: object, rule: str) -> None:
        super().__init__(f"{field} {value!r} {rule}")
        self.field = field
        self.value = value
        self.rule = rule


class RateDecision(msgspec.Struct, frozen=True):
    """Whether a call is admitted, how many more the window admits after it, and in how many
    seconds the oldest admitted call leaves the window (0: the window holds none)."""

    allowed: bool
    remaining: int
    reset_in_seconds: float

    def as_dict(self) -> dict[str, bool | int | float]:
        return {"allowed": self.allowed, "remaining": self.remaining, "reset_in_seconds": self.reset_in_seconds}


def decide(times: Sequence[float], limit: int, window: float, now: float) -> tuple[RateDecision, list[float] | None]:
    """The decision on a call at `now` given the admitted `times`, and the times to store: with
    `now` among them if admitted, None if refused (nothing to write). A time at or before
    `now - window` has left the window; what is stored is what is in it, so never more than
    `limit` times."""
    kept = sorted(t for t in times if t > now - window)
    if len(kept) >= limit:
        return RateDecision(False, 0, _reset_in(kept, window, now)), None
    bisect.insort(kept, now)  # in order even if another host's clock ran ahead of ours
    return RateDecision(True, limit - len(kept), _reset_in(kept, window, now)), kept


def _reset_in(kept: Sequence[float], window: float, now: float) -> float:
    return max(0.0, kept[0] + window - now) if kept else 0.0


class RateLimiter:
    """`check(principal, limit, window)`: admit a call or refuse it, on `connection`'s server.
    Keep one per process: it opens the rate bucket once."""

    def __init__(self, connection: Bus, *, attempts: int = MAX_ATTEMPTS) -> None:
        self.windows = RateWindows(connection)
        self.attempts = attempts

    async def check(self, principal: str, limit: int, window: float, *, now: float | None = None) -> RateDecision:
        """Admit a call by `principal` if fewer than `limit` were admitted in the last `window`
        seconds, recording it; refuse it otherwise, recording nothing. `now` (seconds since the
        epoch) is the call's time, the wall clock if None.

        `InvalidRateLimit` for a limit below 1, a window that is not a positive number of
        seconds or an empty principal; `BusError` if the bucket cannot be read or written, or
        if `attempts` writes in a row lost to concurrent checks of the same principal."""
        _check_args(principal, limit, window)
        for attempt in range(self.attempts):
            at = time.time() if now is None else now
            current = await self.windows.read(principal)
            decision, times = decide(current.times, limit, window, at)
            if times is None or await self.windows.write(principal, times, current.revision):
                return decision
            # Lost the race: back off a random while, so contenders stop colliding in step.
            await asyncio.sleep(random.uniform(0, min(_BACKOFF_CAP, 0.001 * 2**attempt)))
        raise BusError(f"rate limit of principal {principal!r}: {self.attempts} writes in a row lost to "
                       "concurrent checks of the same principal; try again")


async def check_rate_limit(bus: Bus, principal: str, limit: int, window: float) -> dict[str, bool | int | float]:
    """`RateLimiter.check` once, as a dict: `{"allowed": bool, "remaining": int,
    "reset_in_seconds": float}`. For many checks, keep a `RateLimiter` instead."""
    return (await RateLimiter(bus).check(principal, limit, window)).as_dict()


def _check_args(principal: str, limit: int, window: float) -> None:
    if not principal:
        raise InvalidRateLimit("principal", principal, "is empty: a rate limit counts the calls of a named principal")
    if limit < 1:
        raise InvalidRateLimit("limit", limit, "is less than 1: a window must admit at least one call")
    if not (math.isfinite(window) and window > 0):
        raise InvalidRateLimit("window", window, "is not a positive, finite number of seconds")
