"""The monitoring report: the metrics projection (`MetricsState`) as one plain dict, for JSON
and for `ymera report monitoring`; and `summary`, one window's `Stats` as the rules and the
reports read them (rates, percentiles, mean scores)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ._metrics import MetricsState, RecentAlert, percentile
from ._windows import DIMENSIONS, SCORES, Stats, merged, percentile_ms

__all__ = ["WINDOW_SECONDS", "iso", "report", "summary"]

WINDOW_SECONDS = 300.0  # the report's window when no rules say (config.PerformanceRules.window_seconds)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def summary(stats: Stats) -> dict[str, Any]:
    """Rates, latency percentiles (within 5%: store/_windows.py), mean scores, cost and security
    events of one key over a window. A rate with nothing to count is None."""
    ended, runs = stats.ended, stats.completed + stats.run_failed
    p50, p95 = percentile_ms(stats.latency, 0.5), percentile_ms(stats.latency, 0.95)
    return {
        "attempts": ended,
        "success_rate": _ratio(stats.succeeded, ended),
        "error_rate": _ratio(stats.failed, ended),
        "timeout_rate": _ratio(stats.timed_out, ended),
        "latency_ms": {"p50": p50, "p95": p95},
        "runs": {"completed": stats.completed, "failed": stats.run_failed,
                 "success_rate": _ratio(stats.completed, runs)},
        "quality": {"assessed": stats.assessed,
                    **{name: round(total / stats.assessed, 4) if stats.assessed else None
                       for name, total in zip(SCORES, stats.scores or [0.0] * len(SCORES), strict=True)}},
        "cost_usd": round(stats.cost_usd, 6),
        "security_events": stats.security,
    }


def _alert(a: RecentAlert) -> dict[str, Any]:
    return {"alert": a.alert, "severity": a.severity, "subject": a.subject, "message": a.message,
            "ts": iso(a.ts), "resolved": iso(a.resolved) if a.resolved is not None else None}


def report(state: MetricsState, *, active: bool = True, window_seconds: float = WINDOW_SECONDS) -> dict[str, Any]:
    """The monitoring report: totals, current gauges, quality, latency, models, alerts, the last
    `window_seconds` (of event time, up to the latest event) per dimension, and each hour.

    Workflow counts are totals of each event, except `running` and `active`, which are how
    many workflows are in that state now.
    """
    running = sum(status == "running" for status in state.active.values())
    recent = state.recent_quality_mean
    p50, p95 = percentile(state.latencies, 0.5), percentile(state.latencies, 0.95)
    until = state.clock
    since = until - window_seconds
    recent_buckets = state.windows.minutes.between(since, until + 1)
    return {
        "monitoring_status": "active" if active else "inactive",
        "workflows": {**state.workflows, "running": running, "active": len(state.active)},
        "tasks": dict(state.tasks),
        "quality": {
            "assessed": state.assessed,
            "mean_overall": round(state.overall_sum / state.assessed, 4) if state.assessed else None,
            "recent_mean": round(recent, 4) if recent is not None else None,
        },
        "latency_ms": {
            "p50": round(p50, 3) if p50 is not None else None,
            "p95": round(p95, 3) if p95 is not None else None,
        },
        "failure_rate": round(state.failure_rate, 4),
        "models": {
            name: {
                "calls": stats.calls,
                "total_duration_ms": round(stats.total_duration_ms, 3),
                "mean_duration_ms": round(stats.total_duration_ms / stats.calls, 3) if stats.calls else None,
                "cost_usd": round(stats.total_cost_usd, 6),
                "tokens": stats.total_tokens,
            }
            for name, stats in sorted(state.models.items())
        },
        "open_alerts": [_alert(a) for _, a in sorted(state.open_alerts.items())],
        "alerts": [_alert(a) for a in state.alerts],
        "security_events": dict(sorted(state.security.items())),
        "window": {
            "seconds": window_seconds,
            "since": iso(since) if until else None,
            "until": iso(until) if until else None,
            "all": summary(merged(recent_buckets).get("all", Stats())),
            "by": {dim: {key: summary(stats) for key, stats in sorted(merged(recent_buckets, dim).items())}
                   for dim in DIMENSIONS},
        },
        "per_hour": [{"hour": iso(index * state.windows.hours.width), **summary(bucket.all)}
                     for index, bucket in sorted(state.windows.hour_buckets().items())],
    }
