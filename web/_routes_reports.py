"""The guide's routes and the alerts: `/dashboard`, `/quality/metrics`, `/security/events`, `/api/alerts`.

`/dashboard` is `dashboard(view, hours)` (web/_dashboard.py); `/quality/metrics` and
`/security/events` are the quality and security reports of `ymera report` over the last `hours`
up to now (`store.quality_report`, `store.security_report`: one code path for the command, the
Python API and this API); `/api/alerts` is the monitor's open and recent alerts. The three that
read the log are computed at most once a second while events arrive (web/_fresh.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from litestar import get
from litestar.params import QueryParameter

import store

from ._dashboard import dashboard
from ._fresh import REFRESH_SECONDS, Fresh

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

    from ._view import View

__all__ = ["MAX_HOURS", "report_routes"]

MAX_HOURS = 24 * 366 * 10  # ten years: a window longer than any log
Hours = Annotated[float, QueryParameter(gt=0, le=MAX_HOURS,
                                   description=f"the last N hours, more than 0, at most {MAX_HOURS}")]


def report_routes(view: View, refresh: float = REFRESH_SECONDS) -> list[HTTPRouteHandler]:
    """The routes; the dashboard and the reports recomputed at most every `refresh` seconds (web/_fresh.py)."""
    fresh = Fresh(lambda: view.last_seq, refresh)

    @get("/dashboard", summary="The dashboard: system status, workflows, tasks, quality, cost, models, alerts, "
                               "security",
         description="One dict with the guide's sections, as of the latest event the view folded (`system_status."
                     "as_of`); the windowed parts cover the last `hours` up to then.")
    async def get_dashboard(hours: Hours = 24.0) -> dict[str, Any]:
        return await fresh.get(("dashboard", hours), lambda: dashboard(view, hours), same_seq_same_answer=True)

    @get("/quality/metrics", summary="Quality scores over the last hours (`ymera report quality --json`)")
    async def quality_metrics(hours: Hours = 24.0) -> dict[str, Any]:
        return await fresh.get(("quality", hours), lambda: _quality(view, hours), same_seq_same_answer=False)

    @get("/security/events", summary="Security events over the last hours (`ymera report security --json`)")
    async def security_events(hours: Hours = 24.0) -> dict[str, Any]:
        return await fresh.get(("security", hours), lambda: _security(view, hours), same_seq_same_answer=False)

    @get("/api/alerts", summary="The monitor's open alerts and the latest raised",
         description="`open`: raised and not resolved, by alert; `recent`: the latest raised (resolved ones say "
                     "when).")
    async def alerts() -> dict[str, Any]:
        report = store.report(view.metrics, active=view.settings.enable_continuous_monitoring)
        return {"open": report["open_alerts"], "recent": report["alerts"], "as_of_seq": view.last_seq}

    return [get_dashboard, quality_metrics, security_events, alerts]


async def _quality(view: View, hours: float) -> dict[str, Any]:
    return await store.quality_report(await view.settled_log(), hours)


async def _security(view: View, hours: float) -> dict[str, Any]:
    return await store.security_report(await view.settled_log(), hours)
