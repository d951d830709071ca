"""Reports over the last hours of the log: the window they share (`check_hours`, `Window`,
`rows`), and the quality and monitoring reports; the security report is in
store/_reports_security.py. Each is a fold of some event types into one JSON-able dict, here
below every reader of it (`ymera report KIND`, the Python API, `ymera mcp serve`, a web API) so
they all show the same numbers; how a dict reads at a terminal is theirs (ymera/_report*.py).

The quality report folds the same per-hour buckets the monitor keeps (store/_windows.py), and
the monitoring report is the monitor's own (store/_metrics_report.py), so a report and the live
monitor count alike.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import events
from config import AlertRules
from events import AlertRaised, AlertResolved, TaskTimedOut, YmeraError

from ._log import EventLog
from ._metrics import Metrics
from ._metrics_report import iso, report, summary
from ._projection import rebuild
from ._windows import Stats, Tier, add_scores, dimension_keys, merged

__all__ = ["HOURS_RULE", "InvalidHours", "Window", "check_hours", "monitoring_report", "quality_report", "rows"]

HOURS_RULE = "a positive number of hours"
_QUALITY_DIMENSIONS = ("model", "provider", "task_type", "agent")
_QUALITY_ALERTS = ("quality_low", "quality_degradation")


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


@dataclass(frozen=True)
class Window:
    """The `hours` up to `until`: what a report covers, and the header of its dict."""

    hours: float
    since: datetime
    until: datetime

    @classmethod
    def ending(cls, hours: float, now: datetime | None) -> Window:
        until = events.now() if now is None else now
        return cls(hours, until - timedelta(hours=hours), until)

    def header(self) -> dict[str, Any]:
        return {"hours": self.hours, "since": self.since.isoformat(), "until": self.until.isoformat()}


async def rows(log: EventLog, types: Collection[str], window: Window,
               earlier: Collection[str] = ()) -> AsyncIterator[tuple[float, events.Event]]:
    """(ts, event) of the rows of `types` in the window, in log order; and of the `earlier` types
    before it too (what a report needs to know of what led up to the window)."""
    since, until = window.since.timestamp(), window.until.timestamp()
    async for chunk in log.scan("ts, type, data", types=types):
        for ts, kind, data in chunk:
            if ts <= until and (ts >= since or kind in earlier):
                yield ts, events.decode(data)


def _quality(stats: Stats) -> dict[str, Any]:
    return dict(summary(stats)["quality"])


async def quality_report(log: EventLog, hours: float, *, now: datetime | None = None) -> dict[str, Any]:
    """Scores in the `hours` up to `now` (default: now): overall, per model, provider, task type
    and agent, per hour; and the quality alerts raised and resolved."""
    window = Window.ending(check_hours(hours), now)
    tier = Tier(3600, math.ceil(hours) + 1)
    alerts: list[dict[str, Any]] = []
    timed_out: set[tuple[str, str, int]] = set()  # a success after its attempt's timeout is late: not scored
    async for ts, event in rows(log, ("TaskAssessed", "TaskSucceeded", "TaskTimedOut", "AlertRaised",
                                      "AlertResolved"), window):
        if isinstance(event, TaskTimedOut):
            timed_out.add((events.run_of(event), event.task_id, event.attempt))
            continue
        scored = events.assessment_of(event)  # a TaskAssessed, or a success scored in its attempt
        if scored is not None:
            bucket = tier.at(ts)
            if bucket is not None and (events.run_of(scored), scored.task_id, scored.attempt) not in timed_out:
                keys = dimension_keys(scored.workflow_id, scored.task_type, scored.agent, scored.model)
                for stats in bucket.keys(k for k in keys if k[0] != "workflow"):
                    add_scores(stats, scored)
        elif isinstance(event, AlertRaised | AlertResolved) and event.alert in _QUALITY_ALERTS:
            alerts.append({"ts": iso(ts), "alert": event.alert, "subject": event.subject,
                           "state": "raised" if isinstance(event, AlertRaised) else "resolved",
                           "message": event.message})
    buckets = tier.between(window.since.timestamp() - 3600, window.until.timestamp() + 1)
    return {
        **window.header(),
        "overall": _quality(merged(buckets).get("all", Stats())),
        "by": {dim: {key: _quality(stats) for key, stats in sorted(merged(buckets, dim).items())}
               for dim in _QUALITY_DIMENSIONS},
        "per_hour": [{"hour": iso(i * tier.width), **_quality(b.all)} for i, b in sorted(tier.buckets.items())],
        "alerts": alerts,
    }


async def monitoring_report(log: EventLog, hours: float, rules: AlertRules, *,
                            active: bool = True) -> dict[str, Any]:
    """The monitor's report folded from the whole log: as of its last event, with the hours of
    the last `hours` (at most the 24 the monitor keeps, and the one under way)."""
    check_hours(hours)
    state, _ = await rebuild(Metrics(), log)
    folded = report(state, active=active, window_seconds=rules.performance.window_seconds)
    first = state.clock - hours * 3600
    folded["per_hour"] = [h for h in folded["per_hour"]
                          if datetime.fromisoformat(h["hour"]).timestamp() + 3600 > first]
    return {"hours": hours, **folded}
