"""`ymera report quality` and `ymera report monitoring`: what the log says of quality per hour
and per model, task type and agent; and the monitor's view (store.Metrics) folded from the log.

Both fold the same per-hour buckets the monitor keeps (store/_windows.py), so a report and the
live monitor count alike.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import store
from config import AlertRules
from events import AlertRaised, AlertResolved, TaskAssessed

from ._report_window import Window, check_hours, clock, indented, iso, period, rows

__all__ = ["monitoring_report", "monitoring_text", "quality_report", "quality_text"]

_QUALITY_DIMENSIONS = ("model", "provider", "task_type", "agent")
_QUALITY_ALERTS = ("quality_low", "quality_degradation")
TOP_KEYS = 10  # rows per dimension in the monitoring report's text


def _quality(stats: store.Stats) -> dict[str, Any]:
    return dict(store.summary(stats)["quality"])


async def quality_report(log: store.EventLog, hours: float, *, now: datetime | None = None) -> dict[str, Any]:
    """Scores in the `hours` up to `now` (default: now): overall, per model, provider, task type
    and agent, per hour; and the quality alerts raised and resolved."""
    window = Window.ending(check_hours(hours), now)
    tier = store.Tier(3600, math.ceil(hours) + 1)
    alerts: list[dict[str, Any]] = []
    async for ts, event in rows(log, ("TaskAssessed", "AlertRaised", "AlertResolved"), window):
        if isinstance(event, TaskAssessed):
            bucket = tier.at(ts)
            if bucket is not None:
                keys = store.dimension_keys(event.workflow_id, event.task_type, event.agent, event.model)
                for stats in bucket.keys(k for k in keys if k[0] != "workflow"):
                    store.add_scores(stats, event)
        elif isinstance(event, AlertRaised | AlertResolved) and event.alert in _QUALITY_ALERTS:
            alerts.append({"ts": iso(ts), "alert": event.alert, "subject": event.subject,
                           "state": "raised" if isinstance(event, AlertRaised) else "resolved",
                           "message": event.message})
    buckets = tier.between(window.since.timestamp() - 3600, window.until.timestamp() + 1)
    return {
        **window.header(),
        "overall": _quality(store.merged(buckets).get("all", store.Stats())),
        "by": {dim: {key: _quality(stats) for key, stats in sorted(store.merged(buckets, dim).items())}
               for dim in _QUALITY_DIMENSIONS},
        "per_hour": [{"hour": iso(i * tier.width), **_quality(b.all)} for i, b in sorted(tier.buckets.items())],
        "alerts": alerts,
    }


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _scores_row(label: list[str], quality: dict[str, Any]) -> list[str]:
    return [*label, str(quality["assessed"]), *(_score(quality[name]) for name in store.SCORES)]


_SCORE_HEADER = ["assessed", "accuracy", "complete", "consistent", "efficient", "maintainable", "overall"]


def quality_text(report: dict[str, Any]) -> str:
    """`quality_report`'s dict as a person reads it at a terminal."""
    when = period(report["hours"])
    overall = report["overall"]
    if not overall["assessed"] and not report["alerts"]:
        return f"no task was assessed in {when}"
    out = [f"quality in {when} ({clock(report['since'])} to {clock(report['until'])} UTC)", "",
           *indented(["", *_SCORE_HEADER], [_scores_row(["all"], overall)], right=range(1, 8))]
    for dim, keyed in report["by"].items():
        out += ["", f"by {dim.replace('_', ' ')}",
                *indented([dim, *_SCORE_HEADER], [_scores_row([k], q) for k, q in keyed.items()], right=range(1, 8))]
    out += ["", "per hour", *indented(["hour (UTC)", *_SCORE_HEADER],
                                      [_scores_row([clock(h["hour"])[:-3]], h) for h in report["per_hour"]],
                                      right=range(1, 8))]
    if report["alerts"]:
        out += ["", "quality alerts", *indented(["time", "alert", "state", "about", "message"],
                                                [[clock(a["ts"]), a["alert"], a["state"], a["subject"] or "-",
                                                  a["message"]] for a in report["alerts"]])]
    return "\n".join(out)


async def monitoring_report(log: store.EventLog, hours: float, rules: AlertRules, *,
                            active: bool = True) -> dict[str, Any]:
    """The monitor's report folded from the whole log: as of its last event, with the hours of
    the last `hours` (at most the 24 the monitor keeps, and the one under way)."""
    check_hours(hours)
    state, _ = await store.rebuild(store.Metrics(), log)
    report = store.report(state, active=active, window_seconds=rules.performance.window_seconds)
    first = state.clock - hours * 3600
    report["per_hour"] = [h for h in report["per_hour"]
                          if datetime.fromisoformat(h["hour"]).timestamp() + 3600 > first]
    return {"hours": hours, **report}


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _load_row(label: list[str], s: dict[str, Any]) -> list[str]:
    return [*label, str(s["attempts"]), _rate(s["success_rate"]), _rate(s["error_rate"]), _ms(s["latency_ms"]["p50"]),
            _ms(s["latency_ms"]["p95"]), _score(s["quality"]["overall"]), f"{s['cost_usd']:.4f}",
            str(s["security_events"])]


_LOAD_HEADER = ["attempts", "success", "errors", "p50 ms", "p95 ms", "quality", "cost $", "security"]


def monitoring_text(report: dict[str, Any]) -> str:
    """`monitoring_report`'s dict as a person reads it at a terminal."""
    window = report["window"]
    if window["until"] is None:
        return "the log holds no event yet"
    wf, tasks = report["workflows"], report["tasks"]
    out = [f"monitoring {report['monitoring_status']}, from the log up to {clock(window['until'])} UTC", "",
           f"workflows  {wf['submitted']} submitted, {wf['completed']} completed, {wf['failed']} failed, "
           f"{wf['cancelled']} cancelled, {wf['active']} active",
           f"tasks      {tasks['succeeded']} succeeded, {tasks['failed']} failed, {tasks['timed_out']} timed out, "
           f"{tasks['retried']} retried"]
    if report["open_alerts"]:
        out += ["", "open alerts", *indented(["since", "alert", "severity", "about", "message"],
                                             [[clock(a["ts"]), a["alert"], a["severity"], a["subject"] or "-",
                                               a["message"]] for a in report["open_alerts"]])]
    else:
        out += ["", "open alerts: none"]
    right = range(2, 10)
    table = [_load_row(["all", ""], window["all"])]
    more = []
    for dim, keyed in window["by"].items():
        shown = sorted(keyed.items(), key=lambda kv: (-kv[1]["attempts"], kv[0]))[:TOP_KEYS]
        table += [_load_row([dim.replace("_", " "), key], s) for key, s in sorted(shown)]
        if len(keyed) > TOP_KEYS:
            more.append(f"{len(keyed) - TOP_KEYS} more {dim.replace('_', ' ')}s")
    out += ["", f"the last {window['seconds']:g} s" + (f" (busiest {TOP_KEYS} of each; {', '.join(more)} in --json)"
                                                        if more else ""),
            *indented(["", "", *_LOAD_HEADER], table, right=right)]
    out += ["", f"per hour, {period(report['hours'])}",
            *indented(["hour (UTC)", *_LOAD_HEADER], [_load_row([clock(h["hour"])[:-3]], h)
                                                      for h in report["per_hour"]], right=range(1, 9))]
    if report["alerts"]:
        out += ["", "recent alerts", *indented(["time", "alert", "severity", "about", "resolved", "message"],
                                               [[clock(a["ts"]), a["alert"], a["severity"], a["subject"] or "-",
                                                 clock(a["resolved"]) if a["resolved"] else "-", a["message"]]
                                                for a in report["alerts"]])]
    return "\n".join(out)
