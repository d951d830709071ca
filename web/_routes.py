"""The workflow and event routes: `/api/workflows[/{id}[/runs/{run}]]` and `/api/events`.

Workflows and runs are the view's runs projection (`store.WorkflowRuns`) with each run's DAG (from
its submission); events are rows of the log, by seq. Lists are paginated with `limit` (1 to
`MAX_LIMIT`, default `DEFAULT_LIMIT`) and a cursor: `offset` for workflows (newest first), and
`after_seq` for events (the `next_after_seq` of the page before).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import get
from litestar.params import PathParameter, QueryParameter

import events
import store
from events import EVENT_TYPES, YmeraError, decode, run_of

from ._dashboard import run_summary

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

    from ._view import View

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "NotFound", "run_detail", "workflow_routes"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
RUN_STATES = ("submitted", "admitted", "validated", "running", "completed", "failed", "cancelled", "invalid",
              "refused")


Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description=f"how many items, 1 to {MAX_LIMIT}")]

WorkflowId = Annotated[str, PathParameter(description="a workflow's id")]
RunId = Annotated[str, PathParameter(description="a run's id, or a prefix of it that names one run")]


class NotFound(YmeraError):
    """What a route looked for is not there (404); the text names it."""


class BadRequest(YmeraError):
    """A request the route cannot answer as asked (400); the text names the parameter and what it takes."""


def run_detail(view: View, run: store.Run) -> dict[str, Any]:
    """A run with each task's state, attempts, reasons and checks, its DAG and its plan."""
    dag = view.dags.get(run.run_id, {})
    tasks = {task_id: {**msgspec.to_builtins(task), "dependencies": dag.get(task_id, [])}
             for task_id, task in run.tasks.items()}
    return {**run_summary(run), "tasks": tasks, "dag": dag, "levels": run.levels, "critical_path": run.critical_path,
            "estimated_parallel_speedup": run.estimated_parallel_speedup,
            "problems": msgspec.to_builtins(run.problems), "cancel_requested": run.cancel_requested}


def _workflow(view: View, workflow_id: str) -> list[store.Run]:
    try:
        events.check_workflow_id(workflow_id)
    except YmeraError as exc:
        raise BadRequest(f"path parameter workflow_id: {exc}") from None
    runs = view.runs.of(workflow_id)
    if not runs:
        raise NotFound(f"no workflow {workflow_id!r}")
    return runs


def workflow_routes(view: View) -> list[HTTPRouteHandler]:
    @get("/api/workflows", summary="Workflows, newest first, each with its latest run",
         description="Paginated by `offset` (the `next_offset` of the page before); `state` keeps the workflows "
                     "whose latest run is in that state.")
    async def list_workflows(
        limit: Limit = DEFAULT_LIMIT,
        offset: Annotated[int, QueryParameter(ge=0, le=10**9, description="how many workflows to pass over")] = 0,
        run_state: Annotated[str | None, QueryParameter(name="state", description=f"one of: {', '.join(RUN_STATES)}")
                             ] = None,
    ) -> dict[str, Any]:
        if run_state is not None and run_state not in RUN_STATES:
            raise BadRequest(f"query parameter state must be one of {', '.join(RUN_STATES)}; got {run_state!r}")
        runs = view.runs
        latest = [r for r in (runs.latest(w) for w in runs.by_workflow) if r is not None]
        if run_state is not None:
            latest = [r for r in latest if r.state == run_state]
        latest.sort(key=lambda r: (r.submitted_at, r.workflow_id), reverse=True)
        page = latest[offset:offset + limit]
        return {"workflows": [{"workflow_id": r.workflow_id, "runs": len(runs.by_workflow[r.workflow_id]),
                               "latest": run_summary(r)} for r in page],
                "total": len(latest), "offset": offset, "limit": limit,
                "next_offset": offset + limit if offset + limit < len(latest) else None, "as_of_seq": view.last_seq}

    @get("/api/workflows/{workflow_id:str}", summary="One workflow: its runs, and its latest run in full",
         description="The latest run as `ymera status` shows it (the latest not refused), with every task's state, "
                     "attempts, reasons and checks, the DAG and the plan.")
    async def get_workflow(workflow_id: WorkflowId) -> dict[str, Any]:
        runs = _workflow(view, workflow_id)
        latest = view.runs.latest(workflow_id)
        assert latest is not None
        return {"workflow_id": workflow_id, "runs": [run_summary(r) for r in runs], "latest": run_detail(view, latest),
                "as_of_seq": view.last_seq}

    @get("/api/workflows/{workflow_id:str}/runs/{run_id:str}", summary="One run of a workflow, in full",
         description="`run_id` is a run's id or a prefix of it that names one run only.")
    async def get_run(workflow_id: WorkflowId, run_id: RunId) -> dict[str, Any]:
        runs = _workflow(view, workflow_id)
        matches = [r for r in runs if r.run_id.startswith(run_id)] if run_id else []
        if not matches:
            raise NotFound(f"workflow {workflow_id!r} has no run {run_id!r}")
        if len(matches) > 1:
            raise BadRequest(f"run {run_id!r} is ambiguous: {len(matches)} runs of workflow {workflow_id!r} "
                             "begin with it")
        return {**run_detail(view, matches[0]), "as_of_seq": view.last_seq}

    @get("/api/events", summary="Events of the log by seq, oldest first",
         description="Paginated by `after_seq` (the `next_after_seq` of the page before; null on the last page). "
                     "Filters: `type` (repeatable), `workflow_id`, `run_id`. A blob-held field (a long output) is "
                     "shown by reference, in `blobs`.")
    async def list_events(
        limit: Limit = DEFAULT_LIMIT,
        after_seq: Annotated[int, QueryParameter(ge=0, le=2**62, description="the events after this seq")] = 0,
        type: Annotated[list[str] | None, QueryParameter(description="only events of these types")] = None,
        workflow_id: Annotated[str | None, QueryParameter(description="only this workflow's events")] = None,
        run_id: Annotated[str | None, QueryParameter(description="only this run's events (a run's full id)")] = None,
    ) -> dict[str, Any]:
        types = sorted(set(type or ()))
        unknown = [t for t in types if t not in EVENT_TYPES]
        if unknown:
            raise BadRequest(f"query parameter type: no event type {unknown[0]!r} (`ymera schema` lists them: "
                             f"{', '.join(sorted(EVENT_TYPES))})")
        if workflow_id is not None:
            try:
                events.check_workflow_id(workflow_id)
            except YmeraError as exc:
                raise BadRequest(f"query parameter workflow_id: {exc}") from None
        if run_id is not None and workflow_id is None:
            run = view.runs.runs.get(run_id)
            workflow_id = run.workflow_id if run is not None else None
            if workflow_id is None:
                return {"events": [], "next_after_seq": None, "limit": limit}
        found: list[dict[str, Any]] = []
        more = False
        scan = view.log.scan("seq, data", after_seq + 1, workflow_id=workflow_id, types=types,
                             batch=min(limit + 1, 1000))
        async with contextlib.aclosing(scan) as rows:
            async for chunk in rows:
                for seq, data in chunk:
                    if run_id is not None and run_of(decode(data)) != run_id:
                        continue
                    if len(found) == limit:
                        more = True
                        break
                    # The row's JSON is the event's (the store writer encoded it): sent as it is,
                    # not decoded and encoded again.
                    found.append({"seq": seq, "event": msgspec.Raw(data)})
                if more:
                    break
        return {"events": found, "next_after_seq": found[-1]["seq"] if more else None, "limit": limit}

    return [list_workflows, get_workflow, get_run, list_events]
