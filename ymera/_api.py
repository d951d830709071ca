"""The Python API, shaped like the original guide's: `WorkflowOrchestrator`, `Task`, `TaskPriority`.

`WorkflowOrchestrator` is a client: it publishes a submission and follows the workflow's
events. With nothing configured (no NATS_URL, no Ymera running for the data dir) it starts
the embedded nats-server and every actor in this process, and stops them on `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from actors import Settings, client_access, load_settings
from actors._supervisor import run_all
from bus import Bus, EmbeddedServer, open_local
from events import FeedbackGiven, TaskSpec, WorkflowSubmitted, YmeraError, check_task_id, check_workflow_id, new_id, now
from store import (
    LiveProjection,
    Metrics,
    MetricsState,
    SqliteEventLog,
    check_hours,
    quality_report,
    report,
    security_report,
)

from ._client import WorkflowClient, result_of, store_caught_up
from ._deadline import wait_or_give_up
from ._feedback import check_rating, feedback_given, find_result
from ._file import rerun_threshold

__all__ = ["Task", "TaskPriority", "WorkflowMonitor", "WorkflowOrchestrator"]


class TaskPriority(enum.StrEnum):
    CRITICAL = "CRITICAL"
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


@dataclass
class Task:
    task_id: str
    workflow_id: str = ""
    agent_name: str | None = None
    task_type: str = "noop"
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    priority: TaskPriority | str = TaskPriority.MEDIUM
    timeout_seconds: float | None = None
    tools: list[str] = field(default_factory=list)  # the tools it may use (`TaskSpec.tools`): ["python"]
    untrusted: bool | None = None  # it brings in untrusted content (`TaskSpec.untrusted`); None: its kind's default

    def __post_init__(self) -> None:
        check_task_id(self.task_id)

    def spec(self) -> TaskSpec:
        priority = self.priority.value if isinstance(self.priority, TaskPriority) else str(self.priority).upper()
        return TaskSpec(id=self.task_id, type=self.task_type, agent=self.agent_name, description=self.description,
                        parameters=self.parameters, dependencies=list(self.dependencies),
                        priority=priority, timeout_seconds=self.timeout_seconds,  # type: ignore[arg-type]
                        tools=list(self.tools), untrusted=self.untrusted)


class WorkflowMonitor:
    """Live metrics folded from the stream; `get_monitoring_report()` as in the guide: its
    `monitoring_status`, totals, the last window per workflow, agent, task type, model and
    provider, each hour, open and recent alerts (store/_metrics_report.py)."""

    def __init__(self, window_seconds: float = 300.0, *, monitoring: bool = True) -> None:
        self._live: LiveProjection[MetricsState] | None = None
        self._window_seconds = window_seconds
        self._monitoring = monitoring

    def get_monitoring_report(self) -> dict[str, Any]:
        if self._live is None:
            return report(Metrics().initial(), active=False, window_seconds=self._window_seconds)
        return report(self._live.state, active=self._monitoring, window_seconds=self._window_seconds)


class WorkflowOrchestrator:
    def __init__(self, settings: Settings | None = None, *, run_actors: bool | None = None) -> None:
        """`run_actors`: start every actor in this process (default: only when nothing else runs them)."""
        self.settings = settings or load_settings()
        self.run_actors = run_actors
        self.monitor = WorkflowMonitor(self.settings.alerts.performance.window_seconds,
                                       monitoring=self.settings.enable_continuous_monitoring)
        self._bus: Bus | None = None
        self._server: EmbeddedServer | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._runs_actors = False

    async def __aenter__(self) -> WorkflowOrchestrator:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        if self._closed:
            raise YmeraError("this WorkflowOrchestrator is closed; create a new one")
        if self._bus is not None:
            return
        self._bus, self._server = await open_local(self.settings, "ymera-api", client_access(self.settings))
        run_actors = self.run_actors if self.run_actors is not None else self._server is not None
        self._runs_actors = run_actors
        if run_actors:
            ready = asyncio.Event()
            self._tasks.append(asyncio.create_task(run_all(self.settings, self._bus, self._stop, ready)))
            await asyncio.wait_for(ready.wait(), 60)
        start = (await self._bus.stream_state()).last_seq + 1
        live = LiveProjection(Metrics(), self._bus, start)
        self.monitor._live = live
        self._tasks.append(asyncio.create_task(live.run(self._stop)))

    async def execute_workflow(self, workflow_id: str, tasks: list[Task], enable_monitoring: bool = True,
                               timeout: float | None = None, principal: str = "api",
                               max_parallel_tasks: int | None = None,
                               budget_usd: float | None = None,
                               rerun_below_quality: bool | float | None = None) -> dict[str, Any]:
        """Run the workflow and wait for the run's end; the result dict has status, run_id, overall_quality
        and per-task results. The same id may run again once its previous run has ended.

        Ids are checked before anything starts or is published: InvalidId names the id and the rule.
        After `timeout` seconds, GaveUpWaiting says what became of the run: cancelled if this
        orchestrator runs the actors (they stop on close), going on if actors elsewhere run it.
        `budget_usd` caps what the run's model calls may spend: each is held against it before
        it is made, and one it cannot cover fails with kind "budget".
        `rerun_below_quality` (True: this orchestrator's QUALITY_THRESHOLD, or a quality in 0..1)
        re-runs a model task scored below it once on a stronger model; the better result stands.
        """
        check_workflow_id(workflow_id)
        for task in tasks:
            check_task_id(task.task_id)
        await self.start()
        assert self._bus is not None
        submission = WorkflowSubmitted(id=new_id(), ts=now(), workflow_id=workflow_id, principal=principal,
                                       tasks=[t.spec() for t in tasks], max_parallel_tasks=max_parallel_tasks,
                                       budget_usd=budget_usd, rerun_below_quality=rerun_threshold(
                                           rerun_below_quality, self.settings.quality_threshold))
        client = WorkflowClient(self._bus)
        seq = await client.submit(submission)
        end, seen = await wait_or_give_up(client, workflow_id, seq, timeout, in_process=self._runs_actors,
                                          run_id=submission.id)
        result = result_of(end, seen)
        if self.monitor._live is not None:
            # The report folds the stream on its own; let it reach this run's end first (bounded).
            last = (await self._bus.stream_state()).last_seq
            with contextlib.suppress(TimeoutError):
                await self.monitor._live.wait_for(last)
        if enable_monitoring:
            result["monitoring"] = self.monitor.get_monitoring_report()
        return result

    async def record_feedback(self, task_id: str, rating: float, comments: str = "", *, run_id: str | None = None,
                              workflow_id: str | None = None, principal: str = "api") -> FeedbackGiven:
        """Rate a task's result from 0 (useless) to 1 (exactly right), as `ymera feedback` does: the
        result of the latest run in which the task ended (or of run `run_id`, an id or a prefix of
        one), found in the event log; `workflow_id` when several workflows have the task. Returns
        the `FeedbackGiven` published, which names the model, task type and agent rated.

        A rating outside 0..1 is an `InvalidRating` (a ValueError); a task with no result to
        rate, a `YmeraError` saying why.
        """
        value = check_rating(rating)
        await self.start()
        assert self._bus is not None
        if self._runs_actors:
            await store_caught_up(self._bus)  # the runs this orchestrator ran are in the log
        async with SqliteEventLog(self.settings.log_path, readonly=True) as log:
            result = await find_result(log, task_id, workflow_id=workflow_id, run=run_id)
        event = feedback_given(result, value, comments, self._bus.principal or principal)
        await self._bus.publish(event)
        return event

    async def get_security_report(self, hours: float = 24) -> dict[str, Any]:
        """What the event log says about security in the last `hours`, as `ymera report security
        --json` prints it: findings in submissions and outputs, rejected messages, refusals,
        security alerts, signed checkpoints (store/_reports_security.py). Reads the log only; when this
        orchestrator runs the actors, after the store writer has caught up with the stream.
        Hours that are not a positive number are an `InvalidHours` (a ValueError)."""
        check_hours(hours)
        if self._bus is not None and self._runs_actors and not self._closed:
            await store_caught_up(self._bus)
        async with SqliteEventLog(self.settings.log_path, readonly=True) as log:
            return await security_report(log, hours)

    async def get_quality_report(self, hours: float = 24) -> dict[str, Any]:
        """Quality scores in the last `hours`, as `ymera report quality --json` prints them: overall,
        per model, provider, task type and agent, per hour, and the quality alerts
        (store/_reports.py). Read from the log as `get_security_report` reads it."""
        check_hours(hours)
        if self._bus is not None and self._runs_actors and not self._closed:
            await store_caught_up(self._bus)
        async with SqliteEventLog(self.settings.log_path, readonly=True) as log:
            return await quality_report(log, hours)

    async def close(self) -> None:
        """Stop the actors this orchestrator started, then the server. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._bus is not None and self._runs_actors:
            await store_caught_up(self._bus)  # nothing this orchestrator ran is left out of the log
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._bus is not None:
            await self._bus.close()
        if self._server is not None:
            self._server.stop()
