"""The tools `ymera mcp serve` offers an MCP client: submit a workflow, follow it, read its result,
quality and security report, cancel it, verify the audit log.

Each tool is a command of the CLI said over MCP: the same reads (ymera/_mcp_serve_reads.py,
the Python API), the same texts. A result carries the JSON a program reads (`structuredContent`)
and the lines a person would read at a terminal (one text block). A `YmeraError` is a tool
error (`isError`) whose text is the line the CLI prints after `ymera: `; anything else is the
SDK's "Error executing tool", its traceback logged on stderr and never sent.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ParamSpec

import msgspec
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

import store
from actors import Settings
from bus import Bus
from events import YmeraError
from store import check_hours
from store import security_report as read_security_report

from ._audit import audit, audit_lines
from ._client import WorkflowClient, run_result, store_caught_up
from ._file import read_workflow
from ._mcp_serve_reads import audit_dict, outputs, quality, read_run, workflow_text
from ._progress import summary
from ._report import security_text

__all__ = ["Deployment", "build_server"]

P = ParamSpec("P")
# Tool results as the SDK publishes them: structured JSON (an object) beside the text.
Result = Annotated[CallToolResult, dict[str, Any]]
WorkflowId = Annotated[str, Field(description="the workflow's id (workflow_id in its file)")]
RunPrefix = Annotated[str | None, Field(description="a run of it (its id, or a prefix of it) instead of the latest")]
# How much of each output a result's text shows; the structured result holds all of it.
OUTPUT_CHARS = 200

INSTRUCTIONS = """Ymera runs workflows: DAGs of tasks (LLM calls, tools) recorded in an audited event log.
submit_workflow publishes one and returns at once; workflow_status (with wait_seconds) follows it to its end;
workflow_result reads its task outputs, workflow_quality its scores; security_report and audit_verify
look at the whole log."""


@dataclass(frozen=True)
class Deployment:
    """What the tools talk to: the settings, this server's connection as this host's client, and
    whether the actors run in this process (then the log is brought up to date before it is read)."""

    settings: Settings
    bus: Bus
    runs_actors: bool

    async def log_caught_up(self) -> None:
        if self.runs_actors:
            await store_caught_up(self.bus)


def _errors_as_results(tool: Callable[P, Awaitable[CallToolResult]]) -> Callable[P, Awaitable[CallToolResult]]:
    """A `YmeraError` as a tool error whose text is the error's own (raising the SDK's `ToolError`
    would prefix it with "Error executing tool NAME: ")."""

    @functools.wraps(tool)
    async def call(*args: P.args, **kwargs: P.kwargs) -> CallToolResult:
        try:
            return await tool(*args, **kwargs)
        except YmeraError as exc:
            return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)

    return call


def _result(data: dict[str, Any], text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content=msgspec.to_builtins(data, str_keys=True))


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return text if len(text) <= OUTPUT_CHARS else text[: OUTPUT_CHARS - 1] + "…"


def build_server(deployment: Deployment) -> MCPServer:
    """An MCP server whose tools drive `deployment`."""
    server = MCPServer("ymera", version=importlib.metadata.version("ymera"), instructions=INSTRUCTIONS,
                       log_level="WARNING")
    settings, bus = deployment.settings, deployment.bus
    reads = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=False, open_world_hint=True))
    @_errors_as_results
    async def submit_workflow(
        workflow: Annotated[str | dict[str, Any] | None, Field(
            description="the workflow as YAML or JSON text, or as an object: {workflow_id, tasks: [{id, type, ...}], "
                        "...}, as in a workflow file")] = None,
        path: Annotated[str | None, Field(description="or the path of a workflow file (.yaml, .yml or .json) on "
                                                      "the server's host")] = None,
    ) -> Result:
        """Submit a workflow to run and return at once with its run id, as `ymera submit` does; follow it with
        workflow_status. Give the workflow as text or as a file path, not both."""
        if (workflow is None) == (path is None):
            raise YmeraError("submit_workflow: give the workflow as text (workflow) or as a file (path), "
                             "one of them")
        if workflow is None:
            submission = read_workflow(Path(path or ""), settings.quality_threshold)
        else:  # an object (or JSON text the SDK parsed into one) is read as its JSON text
            text = workflow if isinstance(workflow, str) else msgspec.json.encode(workflow).decode()
            submission = workflow_text(text, settings.quality_threshold)
        seq = await WorkflowClient(bus).submit(submission)
        data = {"workflow_id": submission.workflow_id, "run_id": submission.id, "tasks": len(submission.tasks),
                "stream_seq": seq}
        return _result(data, f"submitted {submission.workflow_id} ({len(submission.tasks)} tasks) as event "
                             f"{submission.id}, stream seq {seq}")

    @server.tool(annotations=reads)
    @_errors_as_results
    async def workflow_status(
        workflow_id: WorkflowId, run: RunPrefix = None,
        wait_seconds: Annotated[float, Field(description="wait up to this many seconds for the run to end "
                                                         "first (0: answer at once)")] = 0,
    ) -> Result:
        """Where a workflow's latest run (or the run named) stands, task by task, with every reason, as
        `ymera status` says it; waits for its end first when wait_seconds is given."""
        if not (math.isfinite(wait_seconds) and wait_seconds >= 0):
            raise YmeraError(f"wait_seconds must be a number of seconds, 0 or more, got {wait_seconds!r}")
        read = await read_run(bus, workflow_id, run)
        if not read.run.ended and wait_seconds > 0:
            with contextlib.suppress(YmeraError):  # not ended in time: say where it stands
                await WorkflowClient(bus).wait(workflow_id, run_id=read.run.run_id, timeout=wait_seconds)
            read = await read_run(bus, workflow_id, read.run.run_id)
        return _result(run_result(read.run), summary(read.run))

    @server.tool(annotations=reads)
    @_errors_as_results
    async def workflow_result(workflow_id: WorkflowId, run: RunPrefix = None) -> Result:
        """A run's result: its status, quality, per-task results and each succeeded task's output (the result
        the Python API's execute_workflow returns, with the outputs)."""
        read = await read_run(bus, workflow_id, run, with_outputs=True)
        data = run_result(read.run)
        data["outputs"] = outputs(read)
        lines = [summary(read.run)] + [f"  {task_id} output: {_short(out)}" for task_id, out in data["outputs"].items()]
        return _result(data, "\n".join(lines))

    @server.tool(annotations=reads)
    @_errors_as_results
    async def workflow_quality(workflow_id: WorkflowId, run: RunPrefix = None) -> Result:
        """A run's quality: its overall quality against QUALITY_THRESHOLD, and each scored task's accuracy,
        completeness, consistency, efficiency, maintainability and overall score (docs/quality.md)."""
        read = await read_run(bus, workflow_id, run)
        data = quality(read, settings.quality_threshold)
        overall = data["overall_quality"]
        head = (f"workflow {workflow_id} run {read.run.run_id}: {read.run.state}, overall quality "
                + (f"{overall:.2f}" if overall is not None else "not scored"))
        head += f" ({'below' if data['below_threshold'] else 'threshold'} {data['quality_threshold']:.2f})"
        lines = [head] + [f"  {task_id}: {scores['overall']:.2f} (" + ", ".join(
            f"{name} {scores[name]:.2f}" for name in ("accuracy", "completeness", "consistency", "efficiency",
                                                        "maintainability")) + ")"
                          for task_id, scores in data["tasks"].items()]
        lines += [f"  {task_id}: not scored" for task_id in data["unscored"]]
        return _result(data, "\n".join(lines))

    @server.tool(annotations=reads)
    @_errors_as_results
    async def security_report(
        hours: Annotated[float, Field(description="the last N hours of the event log")] = 24.0,
    ) -> Result:
        """What the event log says about security in the last hours, as `ymera report security` says it:
        findings in submissions and outputs, rejected (forged or malformed) messages, refusals, security
        alerts and signed checkpoints."""
        check_hours(hours)
        await deployment.log_caught_up()
        async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
            report = await read_security_report(log, hours)
        return _result(report, security_text(report))

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=False))
    @_errors_as_results
    async def cancel_workflow(
        workflow_id: WorkflowId,
        reason: Annotated[str, Field(description="why, recorded with the cancellation")] = "cancelled over MCP",
    ) -> Result:
        """Ask to cancel a workflow's active run, as `ymera cancel` does."""
        read = await read_run(bus, workflow_id)
        active = read.runs.active(workflow_id)
        if active is None:  # as `ymera cancel` says it
            raise YmeraError(f"workflow {workflow_id} has no active run to cancel "
                             f"(its latest run {read.run.run_id} ended {read.run.state})")
        await WorkflowClient(bus).cancel(workflow_id, reason, active.run_id)
        return _result({"workflow_id": workflow_id, "run_id": active.run_id, "reason": reason},
                       f"cancellation of {workflow_id} run {active.run_id} requested")

    @server.tool(annotations=reads)
    @_errors_as_results
    async def audit_verify(
        read_stream: Annotated[bool, Field(description="also compare every row with the stream (false: the log's "
                                                       "own checkpoints only, as --no-stream)")] = True,
        key: Annotated[str | None, Field(description="the store writer's public key or key id to trust (default: "
                                                     "<keys dir>/store.pub)")] = None,
    ) -> Result:
        """Verify the event log as `ymera audit verify` does: its hash chain and blobs, the store writer's
        signed checkpoints, every row against the stream, every signature. A failed audit is a result
        (ok: false) naming each finding, not a tool error."""
        await deployment.log_caught_up()
        async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
            result = await audit(log, bus if read_stream else None, settings.keys_dir, key)
        lines, findings = audit_lines(result, read_stream)
        return _result(audit_dict(result), "\n".join(lines + findings))

    return server
