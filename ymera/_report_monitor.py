"""The text of `ymera report quality` and `ymera report monitoring`: the dicts of
store.quality_report (scores per hour and per model, provider, task type and agent) and
store.monitoring_report (the monitor's view, folded from the log) as a person reads them.
"""

from __future__ import annotations

from typing import Any

import store

from ._report_text import clock, indented, period

__all__ = ["monitoring_text", "quality_text"]

TOP_KEYS = 10  # rows per dimension in the monitoring report's text


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _scores_row(label: list[str], quality: dict[str, Any]) -> list[str]:
    return [*label, str(quality["assessed"]), *(_score(quality[name]) for name in store.SCORES)]


_SCORE_HEADER = ["assessed", "accuracy", "complete", "consistent", "efficient", "maintainable", "overall"]


def quality_text(report: dict[str, Any]) -> str:
    """`store.quality_report`'s dict as a person reads it at a terminal."""
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
    """`store.monitoring_report`'s dict as a person reads it at a terminal."""
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
