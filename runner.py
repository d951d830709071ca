"""The `ymera` command: settings, the bus it talks to, and one function per subcommand.

Settings are read once, here, from the environment and a `.env` file, and handed down;
nothing else in Ymera reads the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog

import actors
import bus
import events
import store
from actors import Settings, load_settings
from web._export import add_metrics_command
from web._serve import add_serve_command, add_tokens_command
from ymera._audit import cmd_audit_verify
from ymera._cli import add_workflow_commands, stop_on_signals
from ymera._clients import add_clients_command
from ymera._feedback import add_feedback_command
from ymera._keys import add_keys_command
from ymera._models import add_models_command
from ymera._replay import add_fork_command, replay_arguments, replay_run
from ymera._report import add_report_command

__all__ = ["main"]


# ---- subcommands -------------------------------------------------------------------------


def cmd_schema(settings: Settings, args: argparse.Namespace) -> int:
    print(json.dumps(events.json_schema(), indent=2))
    return 0


async def cmd_actor(settings: Settings, args: argparse.Namespace) -> int:
    """Run one actor until SIGINT/SIGTERM, restarting it after a crash. Given NATS_URL, it waits
    for that server to come up (actors may start before NATS); other commands fail at once."""
    stop = stop_on_signals()
    name = f"ymera-{args.name}"
    actors.lower_priority(args.name, settings)
    access = actors.actor_access(settings, args.name)
    if settings.nats_url is None:
        async with bus.open_bus(settings, name, access) as connection:
            await actors.run_named(args.name, settings, connection, stop)
        return 0
    waited = await bus.connect_when_up(settings.nats_url, stop, name=name, stream=bus.stream_policy(settings),
                                       access=access)
    if waited is None:
        return 0  # stopped before the server came up
    try:
        await actors.run_named(args.name, settings, waited, stop)
    finally:
        await waited.close()
    return 0


# Every projection `ymera replay` folds, under the name it declares (docs/store.md lists them).
PROJECTIONS: dict[str, store.Projection[Any]] = {
    p.name: p for p in (store.WorkflowStatus(), store.WorkflowRuns(), store.EventCounts(), store.Metrics())}


async def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    """`ymera replay RUN`: the run again (ymera/_replay.py); `ymera replay`: the projections re-folded."""
    if args.run is not None:
        if args.projection or args.from_seq:
            raise events.YmeraError("--projection and --from-seq re-fold the log's projections: they do not go with "
                                    "a RUN (which replays that run)")
        return await replay_run(settings, args)
    if args.offline:
        raise events.YmeraError("--offline replays a run: name it (`ymera replay RUN --offline`)")
    names = args.projection or list(PROJECTIONS)
    unknown = [n for n in names if n not in PROJECTIONS]
    if unknown:
        raise events.YmeraError(f"no projection named {unknown[0]!r}; projections: {', '.join(sorted(PROJECTIONS))}")
    async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
        for name in names:
            state, last = await store.rebuild(PROJECTIONS[name], log, args.from_seq)
            if isinstance(state, store.MetricsState):
                state = {k: v for k, v in store.report(state).items() if k != "monitoring_status"}
            print(json.dumps({"projection": name, "through_seq": last, "state": msgspec.to_builtins(state)},
                             indent=2, default=str))
    return 0


async def cmd_tail(settings: Settings, args: argparse.Namespace) -> int:
    stop = stop_on_signals()
    async with bus.open_bus(settings, "ymera-tail", actors.client_access(settings)) as connection:
        start = 1 if args.from_start else (await connection.stream_state()).last_seq + 1
        subject = events.ALL_SUBJECTS
        sub = await connection.follow(start, subject)
        shown = 0
        try:
            while not stop.is_set() and (args.limit is None or shown < args.limit):
                msg = await sub.next(timeout=0.5)
                if msg is None:
                    continue
                line = _describe(connection, msg, args)
                if line is not None:
                    print(line, flush=True)
                    shown += 1
        finally:
            await sub.stop()
    return 0


def _describe(connection: bus.Bus, msg: bus.Delivery, args: argparse.Namespace) -> str | None:
    seq, subject = bus.stream_seq(msg), msg.subject
    # The subject names the workflow even of a message that is no valid event.
    if args.workflow and events.workflow_of(subject) != args.workflow:
        return None
    try:
        event = connection.decode_msg(msg)
    except events.MalformedEvent as exc:
        if args.type:
            return None  # not an event (or not its actor's), so of none of the types asked for
        label = "(untrusted)" if isinstance(exc, bus.UntrustedEvent) else "(malformed)"
        return f"{seq:>8}  {label:<20} {subject}  {exc.reason}"
    kind = type(event).__name__
    if args.type and kind not in args.type:
        return None
    fields = {k: v for k, v in msgspec.structs.asdict(event).items()
              if k not in ("id", "ts", "workflow_id", "run_id", "task_id", "causation_id", "actor", "blobs")}
    # A value held in a blob is named, not fetched: a line shows 60 characters of it at most.
    fields.update({name: f"<blob of {ref.size} bytes>" for name, ref in event.blobs.items()})
    detail = " ".join(f"{k}={_short(v)}" for k, v in fields.items())
    task = getattr(event, "task_id", "")
    clock = event.ts.strftime("%H:%M:%S.%f")[:-3]  # milliseconds
    run = events.run_of(event)
    if run:
        detail = f"run={run[:8]} {detail}"  # a prefix names it: `ymera status ID --run PREFIX`
    return f"{seq:>8}  {clock}  {kind:<18} {event.workflow_id} {task}  {detail}".rstrip()


def _short(value: object, limit: int = 60) -> str:
    text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- entry point -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ymera", description="Run AI-agent workflows and prove what happened.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("schema", help="print the JSON Schema of every event").set_defaults(fn=cmd_schema)

    actor = sub.add_parser("actor", help="run one actor until SIGTERM")
    actor.add_argument("name", choices=actors.ACTOR_NAMES, help="which actor")
    actor.set_defaults(fn=cmd_actor)

    add_workflow_commands(sub)
    add_feedback_command(sub)
    add_models_command(sub)
    add_keys_command(sub)
    add_clients_command(sub)
    add_report_command(sub)
    add_metrics_command(sub)
    add_serve_command(sub)
    add_tokens_command(sub)

    audit = sub.add_parser("audit", help="audit the event log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    verify = audit_sub.add_parser("verify", help="check the log's hash chain and blobs, the store writer's signed "
                                                 "checkpoints, and every row against the stream")
    verify.add_argument("--no-stream", action="store_true",
                        help="do not read the stream (the log's own checkpoints only)")
    verify.add_argument("--key", metavar="KEY", help="the store writer's public key or key id to trust (default: "
                                                     "<keys dir>/store.pub)")
    verify.set_defaults(fn=cmd_audit_verify)

    replay = sub.add_parser("replay", help="ymera replay RUN [--offline]: run an ended run again, its model calls "
                                           "answered from its recorded responses with --offline, and compare the "
                                           "outputs; ymera replay: re-fold projections from the log and print them")
    replay_arguments(replay)
    replay.add_argument("--projection", action="append", metavar="NAME",
                        help=f"only this projection (repeatable, without RUN): {', '.join(sorted(PROJECTIONS))}")
    replay.add_argument("--from-seq", type=int, default=0, help="re-fold from this seq (without RUN)")
    replay.set_defaults(fn=cmd_replay)
    add_fork_command(sub)

    evs = sub.add_parser("events", help="look at events")
    evs_sub = evs.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    tail = evs_sub.add_parser("tail", help="follow events live, one line each")
    tail.add_argument("--workflow", help="only this workflow's events")
    tail.add_argument("--type", action="append", choices=sorted(events.EVENT_TYPES), help="only these types")
    tail.add_argument("--from-start", action="store_true", help="begin at the first event in the stream")
    tail.add_argument("--limit", type=int, help="stop after this many lines")
    tail.set_defaults(fn=cmd_tail)
    return p


def _configure_logging(level: str, env: str) -> None:
    """Logs on stderr: structlog's console format for a person at a terminal, or one JSON object
    per line in production (YMERA_ENV), for a log collector."""
    production: dict[str, Any] = {"processors": [
        structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer()]} if env == "production" else {"processors": [
        # structlog's defaults, but a traceback without its frames' local variables: they hold
        # API keys and prompts, which no log line may show.
        structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
        structlog.processors.StackInfoRenderer(), structlog.dev.set_exc_info,
        structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty() and not os.environ.get("NO_COLOR"),
                                      exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False))]}
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        **production,
    )


# What a shell reports for a command ended by SIGPIPE (128 + 13), as `yes | head` ends.
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        _configure_logging(settings.log_level or ("info" if args.command in ("up", "actor", "serve") else "warning"),
                           settings.env)
        result = args.fn(settings, args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        sys.stdout.flush()  # a reader that has gone away shows here at the latest
        return int(result)
    except events.YmeraError as exc:
        print(f"ymera: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Whoever read our output (`ymera ... | head`) has stopped: end quietly. Python would
        # flush stdout again at exit and fail once more, so point it at /dev/null (the recipe of
        # the `signal` module's documentation).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
