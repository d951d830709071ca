"""What `ymera mcp serve`'s tools read of a deployment, through the reads the commands use.

A run is folded from the stream by the one projection of runs (`store.WorkflowRuns`), as
`ymera status` folds it, so a tool and the command cannot disagree; outputs and scores are
the run's final attempts' (`TaskSucceeded`; `TaskAssessed`, or the success's own score), late
results passed over as `ymera run`'s progress passes them over. Nothing here knows MCP:
`_mcp_serve_tools.py` shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import events
import store
from actors._audit import audit_dict
from bus import Bus
from events import Event, TaskSucceeded, YmeraError, run_of, workflow_filter

from ._cli import _pick_run
from ._client import UNSHOWN, stored
from ._file import parse_workflow

__all__ = ["QUALITY_SCORES", "RunRead", "audit_dict", "outputs", "quality", "read_run",
           "workflow_text"]

QUALITY_SCORES = ("accuracy", "completeness", "consistency", "efficiency", "maintainability", "overall")
# A result reads the outputs; the other reads leave them in their blobs, as every client does.
_WITH_OUTPUTS = UNSHOWN - {"TaskSucceeded.output"}
T = TypeVar("T")


def workflow_text(text: str, quality_threshold: float) -> events.WorkflowSubmitted:
    """A workflow (YAML, or JSON) given as text, as a submission; each problem as a file's would read."""
    return parse_workflow(text.encode(), "workflow text", not text.lstrip().startswith("{"), quality_threshold)


class RunRead:
    """One run of a workflow, the events of it in the stream, and every run of the workflow."""

    def __init__(self, run: store.Run, seen: list[Event], runs: store.Runs) -> None:
        self.run = run
        self.events = seen
        self.runs = runs


async def read_run(bus: Bus, workflow_id: str, run: str | None = None, *, with_outputs: bool = False) -> RunRead:
    """The run `run` (an id or a prefix of one) of the workflow, or its latest, as `ymera status` finds
    it; with its outputs read from their blobs when `with_outputs`."""
    events.check_workflow_id(workflow_id)
    everything = await stored(bus, workflow_filter(workflow_id), _WITH_OUTPUTS if with_outputs else UNSHOWN)
    projection = store.WorkflowRuns()
    runs = projection.initial()
    for event in everything:
        runs = projection.apply(runs, event)
    if not runs.of(workflow_id):
        raise YmeraError(f"no workflow {workflow_id} in the stream")
    picked = _pick_run(runs, workflow_id, run) if run else runs.latest(workflow_id)
    assert picked is not None
    return RunRead(picked, [e for e in everything if run_of(e) == picked.run_id], runs)


def _final(read: RunRead, pick: Callable[[Event], T | None]) -> dict[str, T]:
    """Per task, what `pick` reads off its final attempt's events (a late attempt's is not the task's)."""
    out: dict[str, T] = {}
    for event in read.events:
        picked = pick(event)
        task_id, attempt = getattr(event, "task_id", ""), getattr(event, "attempt", 0)
        task = read.run.tasks.get(task_id)
        if picked is not None and task is not None and task.state == "succeeded" and attempt == task.attempts:
            out[task_id] = picked
    return out


def _success(event: Event) -> TaskSucceeded | None:
    return event if isinstance(event, TaskSucceeded) else None


def outputs(read: RunRead) -> dict[str, Any]:
    """The output of each task that succeeded, by task id."""
    return {task_id: event.output for task_id, event in _final(read, _success).items()}


def quality(read: RunRead, threshold: float) -> dict[str, Any]:
    """The run's overall quality against QUALITY_THRESHOLD, and each scored task's scores (a
    `TaskAssessed`'s, or, for what no model wrote, its success's: `events.assessment_of`)."""
    run = read.run
    scored = _final(read, events.assessment_of)
    tasks = {task_id: {"model": event.model, **{s: getattr(event, s) for s in QUALITY_SCORES}}
             for task_id, event in scored.items()}
    return {"workflow_id": run.workflow_id, "run_id": run.run_id, "status": run.state,
            "overall_quality": run.overall_quality, "quality_threshold": threshold,
            "below_threshold": run.overall_quality is not None and run.overall_quality < threshold,
            "tasks": tasks, "unscored": [t for t in run.tasks if t not in scored]}
