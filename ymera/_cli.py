"""The workflow commands of `ymera`: up, run, submit, status, runs, cancel, plan, and mcp serve."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import events
import store
from actors import ACTOR_NAMES, Settings, client_access, run_all, run_named
from actors.validator import plan, validate_workflow
from bus import Bus, open_local

from ._client import CANCEL_ANSWER_SECONDS, WorkflowClient, describe_problem, history, run_view, store_caught_up
from ._deadline import wait_or_give_up
from ._file import read_workflow
from ._progress import Progress, runs_table, summary

__all__ = ["actors_flag", "add_workflow_commands", "read_workflow", "run_to_end", "stop_on_signals"]


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM: a long-running command's cue to shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def add_workflow_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    up = sub.add_parser("up", help="run every actor until SIGINT/SIGTERM")
    up.add_argument("--processes", action="store_true", help="each actor in its own OS process")
    up.add_argument("--executors", type=int, default=1, help="executor processes with --processes (default 1)")
    up.set_defaults(fn=cmd_up)

    run = sub.add_parser("run", help="run a workflow file (YAML or JSON), show progress, print the result")
    run.add_argument("file")
    run.add_argument("--timeout", type=float,
                     help="give up waiting after this many seconds and exit 1: a workflow this command's own "
                          "actors run is cancelled, one run by actors elsewhere goes on")
    actors_flag(run)
    run.set_defaults(fn=cmd_run)

    submit = sub.add_parser("submit", help="publish a workflow file and return at once")
    submit.add_argument("file")
    submit.add_argument("--with-store", action="store_true",
                        help="also run a store writer in this process until the submission is stored")
    submit.set_defaults(fn=cmd_submit)

    status = sub.add_parser("status", help="where a workflow's latest run stands, task by task, with every reason")
    status.add_argument("workflow_id")
    status.add_argument("--run", metavar="RUN", help="this run (its id, or a prefix of it) instead of the latest")
    status.set_defaults(fn=cmd_status)

    runs = sub.add_parser("runs", help="every run of a workflow: run id, started, state, duration")
    runs.add_argument("workflow_id")
    runs.set_defaults(fn=cmd_runs)

    cancel = sub.add_parser("cancel", help="cancel a workflow's active run")
    cancel.add_argument("workflow_id")
    cancel.add_argument("--reason", default="cancelled from the command line")
    cancel.set_defaults(fn=cmd_cancel)

    plan_cmd = sub.add_parser("plan", help="validate a workflow file and show its parallel groups; runs nothing")
    plan_cmd.add_argument("file")
    plan_cmd.set_defaults(fn=cmd_plan)

    mcp = sub.add_parser("mcp", help="Ymera as an MCP server: MCP clients submit and follow workflows (docs/mcp.md)")
    mcp_sub = mcp.add_subparsers(dest="mcp_command", required=True, metavar="COMMAND")
    serve_help = ("serve MCP tools that submit a workflow, follow its status, read its result, quality and security "
                  "report, cancel it and verify the audit log; over stdio until stdin closes, or over streamable "
                  "HTTP with --http")
    serve = mcp_sub.add_parser("serve", help=serve_help, description=serve_help[0].upper() + serve_help[1:] + ".")
    serve.add_argument("--http", metavar="[HOST:]PORT", type=_http_address,
                       help="serve streamable HTTP at http://HOST:PORT/mcp instead (HOST default 127.0.0.1; "
                            "PORT 0: a free one, printed on stdout); no authentication: keep it on loopback")
    actors_flag(serve)
    serve.set_defaults(fn=cmd_mcp_serve)


def _http_address(text: str) -> object:
    from ._mcp_serve import http_address  # the MCP SDK loads for `ymera mcp` only

    return http_address(text)


async def cmd_mcp_serve(settings: Settings, args: argparse.Namespace) -> int:
    from ._mcp_serve import serve

    return await serve(settings, args.http, args.actors)


def actors_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actors", dest="actors", action="store_true", default=None,
                        help="run every actor in this process (default: when this command starts the server)")
    parser.add_argument("--no-actors", dest="actors", action="store_false", help="use actors running elsewhere")


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    check_timeout(args.timeout)
    submission = read_workflow(Path(args.file), settings.quality_threshold)

    async def make(_: Bus) -> events.WorkflowSubmitted:
        return submission

    run, _ = await run_to_end(settings, make, args.timeout, args.actors)
    print(summary(run))
    return 0 if run.state == "completed" else 1


async def run_to_end(settings: Settings, make: Callable[[Bus], Awaitable[events.WorkflowSubmitted]],
                     timeout: float | None, actors: bool | None, *,
                     name: str = "ymera-run") -> tuple[store.Run, list[events.Event]]:
    """Submit what `make` returns (it may read the stream first) and wait for the run's end,
    showing progress; with every actor in this process when `actors` says so (None: when this
    command starts the server). The run and every event of it seen."""
    check_timeout(timeout)
    connection, server = await open_local(settings, name, client_access(settings))
    stop = asyncio.Event()
    engine = None
    try:
        submission = await make(connection)
        if actors if actors is not None else server is not None:
            ready = asyncio.Event()
            engine = asyncio.create_task(run_all(settings, connection, stop, ready))
            await asyncio.wait_for(ready.wait(), 60)
        client = WorkflowClient(connection)
        seq = await client.submit(submission)
        progress = Progress(submission, tty=sys.stdout.isatty())
        try:
            _, seen = await wait_or_give_up(client, submission.workflow_id, seq, timeout,
                                            in_process=engine is not None, on_event=progress.update,
                                            run_id=submission.id)
        finally:
            progress.close()
        if engine is not None:
            await store_caught_up(connection)  # every event of the run is in the log before we stop
        if progress.reader_gone:
            raise BrokenPipeError  # the run has ended: now end quietly, as `yes | head` does
        return run_view(seen, submission.id), seen
    finally:
        stop.set()
        if engine is not None:
            try:
                # Graceful: the executor finishes the attempts it runs. Bounded: a command that
                # gave up waiting must not then wait for them; past the bound the actors are
                # cancelled, which for crash-only actors is a kill.
                await asyncio.wait_for(engine, ENGINE_STOP_SECONDS)
            except TimeoutError:
                pass
        await connection.close()
        if server is not None:
            server.stop()


def check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout > 0:
        raise events.YmeraError(f"--timeout must be a number of seconds greater than 0, got {timeout:g}")


# How long `ymera run` lets the actors it runs stop gracefully before it cancels them.
ENGINE_STOP_SECONDS = 10.0


async def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    """Publish a workflow file; with --with-store, wait until the log has it (the store writer
    running in this process meanwhile, as itself: `run_named`)."""
    submission = read_workflow(Path(args.file), settings.quality_threshold)
    connection, server = await open_local(settings, "ymera-submit", client_access(settings))
    stop = asyncio.Event()
    writer = None
    try:
        if args.with_store:
            ready = asyncio.Event()
            writer = asyncio.create_task(run_named("store", settings, connection, stop, ready))
            await asyncio.wait_for(ready.wait(), 60)
        seq = await WorkflowClient(connection).submit(submission)
        print(f"submitted {submission.workflow_id} ({len(submission.tasks)} tasks) "
              f"as event {submission.id}, stream seq {seq}")
        if args.with_store:
            deadline = asyncio.get_running_loop().time() + 10
            while (stored := await _head(settings.log_path)) is None or stored[0] < seq:
                if asyncio.get_running_loop().time() > deadline:
                    raise store.StoreError(f"event at seq {seq} not stored within 10s")
                await asyncio.sleep(0.02)
            print(f"stored in {settings.log_path} at seq {seq}, head hash {stored[1].hex()[:16]}…")
    finally:
        stop.set()
        if writer is not None:
            await writer
        await connection.close()
        if server is not None:
            server.stop()
    return 0


async def _head(path: Path) -> tuple[int, bytes] | None:
    """The log's head (seq, hash), read as another process reads it; None before it exists."""
    if not await asyncio.to_thread(path.exists):
        return None
    async with store.SqliteEventLog(path, readonly=True) as log:
        return log.head_seq, log.head_hash


async def _runs(settings: Settings, workflow_id: str, cancel_reason: str | None = None,
                ) -> tuple[store.Runs, str, events.Event | None]:
    """Every run of one workflow, folded from the stream (an error if it has none); with
    `cancel_reason`, also ask to cancel its active run (an error if it has none, `CancelDenied`
    if the distributor refuses) and return its id and the run's end (None: no answer yet)."""
    events.check_workflow_id(workflow_id)
    connection, server = await open_local(settings, "ymera-status", client_access(settings))
    try:
        projection = store.WorkflowRuns()
        runs = projection.initial()
        for event in await history(connection, workflow_id):
            runs = projection.apply(runs, event)
        if not runs.of(workflow_id):
            raise events.YmeraError(f"no workflow {workflow_id} in the stream")
        if cancel_reason is None:
            return runs, "", None
        active = runs.active(workflow_id)
        if active is None:
            latest = runs.latest(workflow_id)
            assert latest is not None
            raise events.YmeraError(f"workflow {workflow_id} has no active run to cancel "
                                    f"(its latest run {latest.run_id} ended {latest.state})")
        end = await WorkflowClient(connection).cancel(workflow_id, cancel_reason, active.run_id)
        return runs, active.run_id, end
    finally:
        await connection.close()
        if server is not None:
            server.stop()


def _pick_run(runs: store.Runs, workflow_id: str, prefix: str) -> store.Run:
    matches = [r for r in runs.of(workflow_id) if r.run_id.startswith(prefix)]
    if not matches:
        raise events.YmeraError(f"workflow {workflow_id} has no run {prefix} (`ymera runs {workflow_id}` lists them)")
    if len(matches) > 1:
        raise events.YmeraError(
            f"run {prefix} is ambiguous: {len(matches)} runs of workflow {workflow_id} begin with it")
    return matches[0]


async def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    runs, _, _ = await _runs(settings, args.workflow_id)
    run = _pick_run(runs, args.workflow_id, args.run) if args.run else runs.latest(args.workflow_id)
    assert run is not None
    print(summary(run))
    return 0


async def cmd_runs(settings: Settings, args: argparse.Namespace) -> int:
    runs, _, _ = await _runs(settings, args.workflow_id)
    print(runs_table(runs.of(args.workflow_id)))
    return 0


async def cmd_cancel(settings: Settings, args: argparse.Namespace) -> int:
    _, run_id, end = await _runs(settings, args.workflow_id, cancel_reason=args.reason)
    late = "" if end is not None else f" (no answer within {CANCEL_ANSWER_SECONDS:g}s: is the distributor running?)"
    print(f"cancellation of {args.workflow_id} run {run_id} requested{late}")
    return 0


def cmd_plan(settings: Settings, args: argparse.Namespace) -> int:
    submission = read_workflow(Path(args.file), settings.quality_threshold)
    problems = validate_workflow(submission, settings)
    if problems:
        for p in problems:
            print(f"ymera: {describe_problem(p.task_id, p.field, p.message)}", file=sys.stderr)
        return 1
    planned = plan(submission.tasks)
    print(f"workflow {submission.workflow_id}: {len(submission.tasks)} tasks in {len(planned.levels)} parallel "
          f"groups, estimated parallel speedup {planned.estimated_parallel_speedup:.2f}x")
    for i, level in enumerate(planned.levels, 1):
        print(f"  group {i}: {', '.join(level)}")
    print(f"  critical path: {' -> '.join(planned.critical_path)}")
    return 0


async def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    stop = stop_on_signals()
    connection, server = await open_local(settings, "ymera-up", client_access(settings))
    try:
        if args.processes:
            await _supervise_processes(settings, connection, args.executors, stop)
        else:
            await run_all(settings, connection, stop)
    finally:
        await connection.close()
        if server is not None:
            server.stop()
    return 0


async def _supervise_processes(settings: Settings, connection: Bus, executors: int, stop: asyncio.Event) -> None:
    """One OS process per actor (and `executors` executors), each started again if it dies. The
    executors first: the others wait until the executors' consumer exists (it takes new TaskReady
    only, so one released before it would wait for its time limit)."""
    # The children connect to the server as this process does: as their actors, where it authenticates.
    env = {**os.environ, "NATS_URL": connection.url, "YMERA_DATA_DIR": str(settings.data_dir),
           "YMERA_KEYS_DIR": str(settings.keys_dir), "YMERA_NATS_AUTH": "true" if settings.nats_auth else "false"}
    names = ["executor"] * executors + [n for n in ACTOR_NAMES if n != "executor"]
    procs: list[asyncio.subprocess.Process | None] = [None] * len(names)
    executing = False
    try:
        while not stop.is_set():
            for i, name in enumerate(names):
                proc = procs[i]
                if name != "executor" and not executing:
                    executing = await connection.consumer_state("executor") is not None
                    if not executing:
                        break
                if proc is None or proc.returncode is not None:
                    procs[i] = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "runner", "actor", name, env=env)
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass
    finally:
        running = [p for p in procs if p is not None and p.returncode is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
