"""Answers worth reusing: the dashboard and the reports, which read the log, kept for a moment.

While events keep arriving, `/dashboard`, `/quality/metrics` and `/security/events` are computed
at most once every `REFRESH_SECONDS` for each set of parameters; every request in between gets
the last answer, whose `as_of_seq` (the dashboard) or `until` (a report) says what it covers, and
requests that find a computation under way wait for that one instead of starting their own. An
answer over the same folded events as the last one is that answer, whenever it is asked (the
dashboard's windows end at its latest event, not at the clock). Under 500 requests a second the
log is read a few times a second, not hundreds (bench/web_load.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

__all__ = ["REFRESH_SECONDS", "Fresh"]

REFRESH_SECONDS = 1.0

T = TypeVar("T")


class _Entry:
    def __init__(self, seq: int, at: float, body: Any) -> None:
        self.seq, self.at, self.body = seq, at, body


class Fresh:
    """Answers by key, recomputed when the view moved on and the last is older than `refresh` seconds."""

    def __init__(self, seq: Callable[[], int], refresh: float = REFRESH_SECONDS) -> None:
        self._seq = seq
        self.refresh = refresh
        self._entries: dict[Hashable, _Entry] = {}
        self._pending: dict[Hashable, asyncio.Future[Any]] = {}
        self.computed = 0  # how many answers were computed (for tests and the bench)

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]], *, same_seq_same_answer: bool) -> T:
        """The answer for `key`: the last one if it is fresh enough, else `compute()`'s (one at a time per key).
        `same_seq_same_answer`: an answer over the same folded events stays right however old it is
        (the dashboard's); a report's window ends at the clock, so only `refresh` keeps it."""
        entry = self._entries.get(key)
        if entry is not None and (time.monotonic() - entry.at < self.refresh
                                  or (same_seq_same_answer and entry.seq == self._seq())):
            return cast(T, entry.body)
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._compute(key, compute))
            self._pending[key] = pending
        return cast(T, await asyncio.shield(pending))

    async def _compute(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        try:
            seq = self._seq()
            body = await compute()
            self._entries[key] = _Entry(seq, time.monotonic(), body)
            self.computed += 1
            return body
        finally:
            del self._pending[key]
