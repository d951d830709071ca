"""Helpers shared by tests: building events, waiting on a log, running the writer, installing and
serving what the MCP tests need."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import http.server
import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import bus
import events
import store
from actors import Settings
from actors.executor import Outcome, context, run_task
from actors.registry import Context


def started(workflow_id: str = "wf", task_id: str = "t", n: int = 0) -> events.TaskStarted:
    return events.TaskStarted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id,
                              task_id=task_id, attempt=1, executor=f"ex-{n}")


async def attempt(spec: events.TaskSpec, inputs: dict[str, object], settings: Settings, *, timeout: float = 10.0,
                  ctx: Context | None = None) -> Outcome:
    """One attempt of `spec`, as an executor with `settings` runs it: in a context of its own, or
    in `ctx` (an executor's, kept across attempts: its key pools remember)."""
    if ctx is not None:
        return await run_task(spec, dict(inputs), ctx, timeout=timeout)
    async with context(settings, 8) as own:
        return await run_task(spec, dict(inputs), own, timeout=timeout)


async def next_msg(follower: bus.Follower, timeout: float) -> bus.Delivery:
    """The follower's next message; TimeoutError if none comes within `timeout` seconds."""
    msg = await follower.next(timeout)
    if msg is None:
        raise TimeoutError(f"no message within {timeout:g}s")
    return msg


def stored_count(path: Path) -> int:
    """Rows in the log, read through a separate plain sqlite3 connection."""
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


async def wait_until(predicate, timeout: float = 30.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_writer(connection: bus.Bus, log: store.SqliteEventLog) -> AsyncIterator[store.StoreWriter]:
    """A store writer running in this process for the duration of the block."""
    writer = store.StoreWriter(connection, log)
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    try:
        yield writer
    finally:
        stop.set()
        await task


async def stored_events(log: store.SqliteEventLog) -> list[events.Event]:
    return [events.decode(r.data) async for r in log.read()]


def coding_workflow(workflow_id: str) -> str:
    """A workflow file of two model tasks, the second reviewing the first's code."""
    return f"""workflow_id: {workflow_id}
tasks:
  - id: generate
    type: code_generation
    agent: coding_agent
    description: Write a Python function that adds two numbers.
    retry: {{max_attempts: 3, initial_delay_seconds: 0.1}}
  - id: review
    type: code_review
    agent: coding_agent
    description: "Review this code: {{{{ tasks.generate.output }}}}"
    dependencies: [generate]
"""


# ---- what the MCP tests install and serve ---------------------------------------------------------

TEST_CACHE = Path(os.environ.get("YMERA_TEST_CACHE", Path.home() / ".cache" / "ymera-test"))


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[Path]:
    """A directory of the test cache, held alone while it is filled (other test runs share it)."""
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    with open(TEST_CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield TEST_CACHE / name


def npm_package(spec: str, cache: str) -> Path:
    """`name@version` from npm, installed once into the test cache's `cache` dir (Node.js's npm);
    the prefix it is installed under."""
    name, _, version = spec.rpartition("@")
    with cache_lock(cache) as prefix:
        package = prefix / "node_modules" / name
        installed = json.loads((package / "package.json").read_text())["version"] if package.exists() else None
        if installed != version:
            npm = shutil.which("npm")
            assert npm is not None, f"npm (Node.js) is needed to run {name}"
            subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--silent", spec],
                           check=True, timeout=600)
        return prefix


@contextlib.contextmanager
def serving(root: Path) -> Iterator[str]:
    """`root`'s files served on 127.0.0.1 by the standard library's HTTP server, in a thread: its host:port."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join()
        httpd.server_close()
