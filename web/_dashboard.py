"""The body of `GET /dashboard` (and of `ymera metrics export`): one dict with the guide's sections.

`system_status`, `workflows`, `tasks`, `quality`, `cost`, `models`, `alerts` and `security`, each
from the view's projections (the monitor's metrics, the runs) and, for the windowed quality and
security sections, from the log over the last `hours`. The dashboard is as of the latest event the
view folded (`as_of`): its windows end there, as the monitor's do, so two views that folded the
same events return the same dashboard, whenever they are asked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import store

if TYPE_CHECKING:
    from ._view import View

__all__ = ["RECENT_RUNS", "dashboard", "run_summary"]

RECENT_RUNS = 20  # runs the dashboard lists, newest first
_SEVERITY_ORDER = ("info", "warning", "critical")  # AlertRaised.severity


def run_summary(run: store.Run) -> dict[str, Any]:
    """One run in a line: what the lists of runs show."""
    counts: dict[str, int] = {}
    for task in run.tasks.values():
        counts[task.state] = counts.get(task.state, 0) + 1
    return {"workflow_id": run.workflow_id, "run_id": run.run_id, "state": run.state, "principal": run.principal,
            "submitted_at": run.submitted_at.isoformat(),
            "ended_at": run.ended_at.isoformat() if run.ended_at is not None else None,
            "duration_ms": run.duration_ms, "overall_quality": run.overall_quality, "reason": run.reason,
            "tasks": len(run.tasks), "tasks_by_state": dict(sorted(counts.items())),
            "cost_usd": round(sum(t.cost_usd or 0.0 for t in run.tasks.values()), 6), "budget_usd": run.budget_usd}


def _status(open_alerts: list[dict[str, Any]]) -> str:
    worst = max((_SEVERITY_ORDER.index(a["severity"]) for a in open_alerts if a["severity"] in _SEVERITY_ORDER),
                default=-1)
    return "critical" if worst >= 2 else "degraded" if worst == 1 else "healthy"


async def dashboard(view: View, hours: float = 24) -> dict[str, Any]:
    """The dashboard over the last `hours` (a positive number, `store.check_hours`) up to `as_of`."""
    hours = store.check_hours(hours)
    metrics = view.metrics
    monitoring = store.report(metrics, active=view.settings.enable_continuous_monitoring,
                              window_seconds=view.settings.alerts.performance.window_seconds)
    as_of = datetime.fromtimestamp(metrics.clock, UTC) if metrics.clock else None
    log = await view.settled_log()
    quality = await store.quality_report(log, hours, now=as_of)
    security = await store.security_report(log, hours, now=as_of)
    runs = sorted(view.runs.runs.values(), key=lambda r: (r.submitted_at, r.run_id), reverse=True)
    per_hour = monitoring["per_hour"]
    since = metrics.clock - hours * 3600
    day = as_of.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() if as_of is not None else 0.0
    budget = view.settings.daily_budget_usd
    spent_today = round(sum(h["cost_usd"] for h in per_hour if datetime.fromisoformat(h["hour"]).timestamp() >= day),
                        6)
    return {
        "system_status": {
            "status": _status(monitoring["open_alerts"]),
            "monitoring": monitoring["monitoring_status"],
            "as_of": as_of.isoformat() if as_of is not None else None,
            "as_of_seq": view.last_seq,
            "open_alerts": len(monitoring["open_alerts"]),
            "hours": hours,
        },
        "workflows": {
            **monitoring["workflows"],
            "recent": [run_summary(r) for r in runs[:RECENT_RUNS]],
        },
        "tasks": {
            **monitoring["tasks"],
            "latency_ms": monitoring["latency_ms"],
            "failure_rate": monitoring["failure_rate"],
            "window": monitoring["window"]["all"],
        },
        "quality": {
            **monitoring["quality"],
            "threshold": view.settings.quality_threshold,
            "overall": quality["overall"],
            "by": quality["by"],
            "per_hour": quality["per_hour"],
        },
        "cost": {
            "total_usd": round(sum(m["cost_usd"] for m in monitoring["models"].values()), 6),
            "window_usd": round(sum(h["cost_usd"] for h in per_hour
                                    if datetime.fromisoformat(h["hour"]).timestamp() + 3600 > since), 6),
            "today_usd": spent_today,
            "daily_budget_usd": budget,
            "budget_used": round(spent_today / budget, 4) if budget else None,
            "by_model": {name: m["cost_usd"] for name, m in monitoring["models"].items()},
            "per_hour": [{"hour": h["hour"], "cost_usd": h["cost_usd"]} for h in per_hour],
        },
        "models": monitoring["models"],
        "alerts": {"open": monitoring["open_alerts"], "recent": monitoring["alerts"],
                   "quality": quality["alerts"]},
        "security": {"events": monitoring["security_events"], **security},
    }
