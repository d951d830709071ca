"""The workflow commands of `ymera`: up, run, submit, status, cancel, plan."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import msgspec

import events
import store
from actors import ACTOR_NAMES, Settings, run_all
from actors.validator import plan, validate_workflow
from bus import open_local

from ._client import WorkflowClient, describe_problem, history, result_of, store_caught_up
from ._progress import Progress

__all__ = ["add_workflow_commands", "read_workflow", "stop_on_signals"]


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
    run.add_argument("--timeout", type=float, help="give up waiting after this many seconds")
    _actors_flag(run)
    run.set_defaults(fn=cmd_run)

    submit = sub.add_parser("submit", help="publish a workflow file and return at once")
    submit.add_argument("file")
    submit.add_argument("--with-store", action="store_true",
                        help="also run a store writer in this process until the submission is stored")
    submit.set_defaults(fn=cmd_submit)

    status = sub.add_parser("status", help="where a workflow stands, task by task")
    status.add_argument("workflow_id")
    status.set_defaults(fn=cmd_status)

    cancel = sub.add_parser("cancel", help="cancel a workflow")
    cancel.add_argument("workflow_id")
    cancel.add_argument("--reason", default="cancelled from the command line")
    cancel.set_defaults(fn=cmd_cancel)

    plan_cmd = sub.add_parser("plan", help="validate a workflow file and show its parallel groups; runs nothing")
    plan_cmd.add_argument("file")
    plan_cmd.set_defaults(fn=cmd_plan)


def _actors_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actors", dest="actors", action="store_true", default=None,
                        help="run every actor in this process (default: when this command starts the server)")
    parser.add_argument("--no-actors", dest="actors", action="store_false", help="use actors running elsewhere")


class _WorkflowFile(msgspec.Struct, forbid_unknown_fields=True):
    workflow_id: events.Name
    tasks: list[events.TaskSpec]
    name: str = ""
    principal: str = "anonymous"
    metadata: dict[str, str] = {}
    max_parallel_tasks: int | None = None


def read_workflow(path: Path) -> events.WorkflowSubmitted:
    """A workflow file, {workflow_id, tasks, name?, principal?, metadata?, max_parallel_tasks?}, as a submission."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise events.YmeraError(f"cannot read {path}: {exc.strerror}") from None
    try:
        decode = msgspec.yaml.decode if path.suffix in (".yaml", ".yml") else msgspec.json.decode
        doc = decode(raw, type=_WorkflowFile)
    except msgspec.DecodeError as exc:
        # YAML parser errors span lines; a user reads one.
        parts = [line.strip().replace('in "<byte string>", ', "") for line in str(exc).splitlines()]
        raise events.YmeraError(f"{path}: {': '.join(p for p in parts if p)}") from None
    return events.WorkflowSubmitted(
        id=events.new_id(), ts=events.now(), workflow_id=doc.workflow_id, name=doc.name, principal=doc.principal,
        tasks=doc.tasks, metadata=doc.metadata, max_parallel_tasks=doc.max_parallel_tasks,
    )


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    submission = read_workflow(Path(args.file))
    connection, server = await open_local(settings.nats_url, settings.data_dir, "ymera-run", settings.stream)
    stop = asyncio.Event()
    engine = None
    try:
        if args.actors if args.actors is not None else server is not None:
            ready = asyncio.Event()
            engine = asyncio.create_task(run_all(settings, connection, stop, ready))
            await asyncio.wait_for(ready.wait(), 60)
        client = WorkflowClient(connection)
        seq = await client.submit(submission)
        progress = Progress(submission, tty=sys.stdout.isatty())
        end, seen = await client.wait(submission.workflow_id, seq, on_event=progress.update, timeout=args.timeout)
        progress.close()
        if engine is not None:
            await store_caught_up(connection)  # every event of the run is in the log before we stop
        result = result_of(end, seen)
        _print_result(result)
        return 0 if result["status"] == "completed" else 1
    finally:
        stop.set()
        if engine is not None:
            await engine
        await connection.close()
        if server is not None:
            server.stop()


def _print_result(result: dict[str, Any]) -> None:
    quality = result.get("overall_quality")
    line = f"workflow {result['workflow_id']}: {result['status']}"
    if quality is not None:
        line += f", overall quality {quality:.2f}"
    if result.get("duration_ms") is not None:
        line += f", {result['duration_ms'] / 1000:.2f}s"
    print(line)
    for error in result.get("errors", []):
        print(f"  {error}")
    if "error" in result and "errors" not in result:
        print(f"  {result['error']}")
    for task_id, r in result.get("results", {}).items():
        detail = f"quality {r['quality']:.2f}" if r.get("quality") is not None else r.get("error") or ""
        print(f"  {task_id}: {r['status']} (attempts {r['attempts']}) {detail}".rstrip())


async def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    """Publish a workflow file; with --with-store, wait until the log has it."""
    submission = read_workflow(Path(args.file))
    connection, server = await open_local(settings.nats_url, settings.data_dir, "ymera-submit", settings.stream)
    stop = asyncio.Event()
    log = store.SqliteEventLog(settings.log_path) if args.with_store else None
    writer = None
    try:
        if log is not None:
            await log.open()
            writer = asyncio.create_task(store.StoreWriter(connection, log).run(stop))
        seq = await WorkflowClient(connection).submit(submission)
        print(f"submitted {submission.workflow_id} ({len(submission.tasks)} tasks) "
              f"as event {submission.id}, stream seq {seq}")
        if log is not None:
            deadline = asyncio.get_running_loop().time() + 10
            while log.head_seq < seq:
                if asyncio.get_running_loop().time() > deadline:
                    raise store.StoreError(f"event at seq {seq} not stored within 10s")
                await asyncio.sleep(0.02)
            print(f"stored in {settings.log_path} at seq {seq}, head hash {log.head_hash.hex()[:16]}…")
    finally:
        stop.set()
        if writer is not None:
            await writer
        if log is not None:
            await log.close()
        await connection.close()
        if server is not None:
            server.stop()
    return 0


async def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    connection, server = await open_local(settings.nats_url, settings.data_dir, "ymera-status", settings.stream)
    try:
        seen = await history(connection, args.workflow_id)
    finally:
        await connection.close()
        if server is not None:
            server.stop()
    if not seen:
        raise events.YmeraError(f"no workflow {args.workflow_id} in the stream")
    progress = Progress(None, tty=False, quiet=True)
    for event in seen:
        progress.update(event)
    print(progress.summary(args.workflow_id))
    return 0


async def cmd_cancel(settings: Settings, args: argparse.Namespace) -> int:
    connection, server = await open_local(settings.nats_url, settings.data_dir, "ymera-cancel", settings.stream)
    try:
        await WorkflowClient(connection).cancel(args.workflow_id, args.reason)
    finally:
        await connection.close()
        if server is not None:
            server.stop()
    print(f"cancellation of {args.workflow_id} requested")
    return 0


def cmd_plan(settings: Settings, args: argparse.Namespace) -> int:
    submission = read_workflow(Path(args.file))
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
    connection, server = await open_local(settings.nats_url, settings.data_dir, "ymera-up", settings.stream)
    try:
        if args.processes:
            await _supervise_processes(settings, connection.url, args.executors, stop)
        else:
            await run_all(settings, connection, stop)
    finally:
        await connection.close()
        if server is not None:
            server.stop()
    return 0


async def _supervise_processes(settings: Settings, url: str, executors: int, stop: asyncio.Event) -> None:
    """One OS process per actor (and `executors` executors), each started again if it dies."""
    env = {**os.environ, "NATS_URL": url, "YMERA_DATA_DIR": str(settings.data_dir)}
    names = [n for n in ACTOR_NAMES if n != "executor"] + ["executor"] * executors
    procs: list[asyncio.subprocess.Process | None] = [None] * len(names)
    try:
        while not stop.is_set():
            for i, name in enumerate(names):
                proc = procs[i]
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
