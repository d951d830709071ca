"""The window of a report over the log (`ymera report KIND --hours N`), and what every report's
text shares: times, periods, indented tables."""

from __future__ import annotations

import argparse
import math
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import events
import store
from events import YmeraError

from ._models import _table

__all__ = ["HOURS_RULE", "InvalidHours", "Window", "check_hours", "clock", "hours_argument", "indented", "iso",
           "period", "rows"]

HOURS_RULE = "a positive number of hours"


class InvalidHours(YmeraError, ValueError):
    """A window that is not a positive, finite number of hours (a ValueError too, for Python callers)."""

    def __init__(self, value: object) -> None:
        super().__init__(f"hours {value!r} is not {HOURS_RULE}")
        self.value = value


def check_hours(value: object) -> float:
    """`value` as a window's length in hours, or `InvalidHours`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidHours(value)
    hours = float(value)
    if not math.isfinite(hours) or hours <= 0:
        raise InvalidHours(value)
    return hours


def hours_argument(text: str) -> float:
    try:
        return check_hours(float(text))
    except ValueError:  # not a number, or InvalidHours
        raise argparse.ArgumentTypeError(f"{text!r} is not {HOURS_RULE}") from None




@dataclass(frozen=True)
class Window:
    hours: float
    since: datetime
    until: datetime

    @classmethod
    def ending(cls, hours: float, now: datetime | None) -> Window:
        until = events.now() if now is None else now
        return cls(hours, until - timedelta(hours=hours), until)

    def header(self) -> dict[str, Any]:
        return {"hours": self.hours, "since": self.since.isoformat(), "until": self.until.isoformat()}


async def rows(log: store.EventLog, types: Collection[str], window: Window,
                earlier: Collection[str] = ()) -> AsyncIterator[tuple[float, events.Event]]:
    """(ts, event) of the rows of `types` in the window, in log order; and of the `earlier` types
    before it too (what a report needs to know of what led up to the window)."""
    since, until = window.since.timestamp(), window.until.timestamp()
    async for chunk in log.scan("ts, type, data", types=types):
        for ts, kind, data in chunk:
            if ts <= until and (ts >= since or kind in earlier):
                yield ts, events.decode(data)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def period(hours: float) -> str:
    return "the last hour" if hours == 1 else f"the last {hours:g} hours"


def clock(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def indented(header: list[str], rows: list[list[str]], right: Collection[int] = ()) -> list[str]:
    return ["  " + line for line in _table(header, rows, right=list(right))]
