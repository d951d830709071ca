"""The `ymera` command: settings, the bus it talks to, and one function per subcommand.

Settings are read once, here, from the environment and a `.env` file, and handed down;
nothing else in Ymera reads the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import msgspec
import structlog

import bus
import events
import store

__all__ = ["Settings", "load_settings", "main", "open_bus"]


class Settings(msgspec.Struct, frozen=True):
    env: str = "development"
    nats_url: str | None = None
    data_dir: Path = Path(".ymera")
    log_level: str = "info"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "events.db"


def load_settings(environ: dict[str, str] | None = None, dotenv: Path | None = Path(".env")) -> Settings:
    """Settings from `.env` (if present) overlaid by the real environment."""
    values: dict[str, str] = {}
    if dotenv is not None and dotenv.is_file():
        for line in dotenv.read_text().splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip().strip("'\"")
    values.update(os.environ if environ is None else environ)
    return Settings(
        env=values.get("YMERA_ENV", "development"),
        nats_url=values.get("NATS_URL") or None,
        data_dir=Path(values.get("YMERA_DATA_DIR") or ".ymera"),
        log_level=values.get("YMERA_LOG_LEVEL", "info").lower(),
    )


@contextlib.asynccontextmanager
async def open_bus(settings: Settings, name: str = "ymera") -> AsyncIterator[bus.Bus]:
    """Connect to NATS_URL; without it, join this data dir's embedded server or start one."""
    server = None
    url = settings.nats_url or bus.running_server(settings.data_dir)
    if url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        server = bus.EmbeddedServer(settings.data_dir / "nats", announce_in=settings.data_dir)
        server.start()
        url = server.url
    try:
        connection = await bus.connect(url, name=name)
        try:
            yield connection
        finally:
            await connection.close()
    finally:
        if server is not None:
            server.stop()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


# ---- subcommands -------------------------------------------------------------------------


def cmd_schema(settings: Settings, args: argparse.Namespace) -> int:
    print(json.dumps(events.json_schema(), indent=2))
    return 0


async def cmd_store(settings: Settings, args: argparse.Namespace) -> int:
    """Run the store writer until SIGINT/SIGTERM."""
    stop = _stop_on_signals()
    async with open_bus(settings, "ymera-store") as connection, \
            store.SqliteEventLog(settings.log_path) as log:
        await store.StoreWriter(connection, log).run(stop)
    return 0


async def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    """Publish a workflow file as WorkflowSubmitted and wait until the log has it."""
    submission = _read_workflow(Path(args.file))
    async with open_bus(settings, "ymera-submit") as connection:
        stop = asyncio.Event()
        writer_task = None
        log = None
        if args.with_store:
            log = store.SqliteEventLog(settings.log_path)
            await log.open()
            writer_task = asyncio.create_task(store.StoreWriter(connection, log).run(stop))
        try:
            ack = await connection.publish(submission)
            print(f"submitted {submission.workflow_id} ({len(submission.tasks)} tasks) "
                  f"as event {submission.id}, stream seq {ack.seq}")
            if log is not None:
                await _wait_stored(log, ack.seq)
                print(f"stored in {settings.log_path} at seq {ack.seq}, head hash {log.head_hash.hex()[:16]}…")
        finally:
            stop.set()
            if writer_task is not None:
                await writer_task
            if log is not None:
                await log.close()
    return 0


async def _wait_stored(log: store.SqliteEventLog, seq: int, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while log.head_seq < seq:
        if asyncio.get_running_loop().time() > deadline:
            raise store.StoreError(f"event at seq {seq} not stored within {timeout:g}s")
        await asyncio.sleep(0.02)


def _read_workflow(path: Path) -> events.WorkflowSubmitted:
    """A workflow file: {"workflow_id", "name"?, "tasks": [...]} in JSON or YAML."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise events.YmeraError(f"cannot read {path}: {exc.strerror}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            doc = msgspec.yaml.decode(raw, type=_WorkflowFile)
        else:
            doc = msgspec.json.decode(raw, type=_WorkflowFile)
    except msgspec.DecodeError as exc:
        # YAML parser errors span lines; a user reads one.
        parts = [line.strip().replace('in "<byte string>", ', "") for line in str(exc).splitlines()]
        raise events.YmeraError(f"{path}: {': '.join(p for p in parts if p)}") from None
    return events.WorkflowSubmitted(
        id=events.new_id(), ts=events.now(), workflow_id=doc.workflow_id, name=doc.name,
        principal=doc.principal, tasks=doc.tasks, metadata=doc.metadata,
    )


class _WorkflowFile(msgspec.Struct, forbid_unknown_fields=True):
    workflow_id: events.Name
    tasks: list[events.TaskSpec]
    name: str = ""
    principal: str = "anonymous"
    metadata: dict[str, str] = {}


async def cmd_audit_verify(settings: Settings, args: argparse.Namespace) -> int:
    async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
        report = await store.verify(log)
    if report.broken is not None:
        print(f"audit: chain broken at {report.broken} ({report.rows} rows before it verified)",
              file=sys.stderr)
        return 1
    print(f"audit: ok, {report.rows} events and {report.blobs} blobs verified, "
          f"head seq {report.head_seq}, head hash {report.head_hash}")
    return 0


PROJECTIONS: dict[str, store.Projection] = {  # type: ignore[type-arg]
    "workflow_status": store.WorkflowStatus(),
    "event_counts": store.EventCounts(),
}


async def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    names = args.projection or list(PROJECTIONS)
    async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
        for name in names:
            state, last = await store.rebuild(PROJECTIONS[name], log, args.from_seq)
            print(json.dumps({"projection": name, "through_seq": last, "state": state}, indent=2, default=str))
    return 0


async def cmd_tail(settings: Settings, args: argparse.Namespace) -> int:
    stop = _stop_on_signals()
    async with open_bus(settings, "ymera-tail") as connection:
        start = 1 if args.from_start else (await connection.js.stream_info(connection.stream.name)).state.last_seq + 1
        subject = events.ALL_SUBJECTS
        sub = await connection.follow(start, subject)
        shown = 0
        try:
            while not stop.is_set() and (args.limit is None or shown < args.limit):
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except TimeoutError:
                    continue
                line = _describe(msg.metadata.sequence.stream, msg.subject, msg.data, args)
                if line is not None:
                    print(line, flush=True)
                    shown += 1
        finally:
            await sub.unsubscribe()
    return 0


def _describe(seq: int, subject: str, data: bytes, args: argparse.Namespace) -> str | None:
    try:
        event = events.decode_message(subject, data)
    except events.MalformedEvent as exc:
        return f"{seq:>8}  {'(malformed)':<20} {subject}  {exc.reason}"
    kind = type(event).__name__
    if args.workflow and event.workflow_id != args.workflow:
        return None
    if args.type and kind not in args.type:
        return None
    fields = {k: v for k, v in msgspec.structs.asdict(event).items()
              if k not in ("id", "ts", "workflow_id", "task_id", "causation_id", "actor", "blobs")}
    detail = " ".join(f"{k}={_short(v)}" for k, v in fields.items())
    task = getattr(event, "task_id", "")
    clock = event.ts.strftime("%H:%M:%S.%f")[:-3]  # milliseconds
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
    actor.add_argument("name", choices=["store"], help="which actor")
    actor.set_defaults(fn=cmd_store)

    submit = sub.add_parser("submit", help="publish a workflow file (JSON or YAML)")
    submit.add_argument("file")
    submit.add_argument("--with-store", action="store_true",
                        help="also run a store writer in this process until the submission is stored")
    submit.set_defaults(fn=cmd_submit)

    audit = sub.add_parser("audit", help="audit the event log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    audit_sub.add_parser("verify", help="recompute the hash chain and check every blob").set_defaults(
        fn=cmd_audit_verify)

    replay = sub.add_parser("replay", help="re-fold projections from the log and print them")
    replay.add_argument("--projection", action="append", choices=sorted(PROJECTIONS))
    replay.add_argument("--from-seq", type=int, default=0)
    replay.set_defaults(fn=cmd_replay)

    evs = sub.add_parser("events", help="look at events")
    evs_sub = evs.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    tail = evs_sub.add_parser("tail", help="follow events live, one line each")
    tail.add_argument("--workflow", help="only this workflow's events")
    tail.add_argument("--type", action="append", choices=sorted(events.EVENT_TYPES), help="only these types")
    tail.add_argument("--from-start", action="store_true", help="begin at the first event in the stream")
    tail.add_argument("--limit", type=int, help="stop after this many lines")
    tail.set_defaults(fn=cmd_tail)
    return p


def _configure_logging(level: str) -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    _configure_logging(settings.log_level)
    try:
        result = args.fn(settings, args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result)
    except events.YmeraError as exc:
        print(f"ymera: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
