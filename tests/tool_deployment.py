"""A deployment the built-in tools' task kinds run in (tests/test_tool_tasks*.py): a workspace
with a symlink out of it, a file outside it, a SQLite database, a local HTTP server that must
never be reached, an allowlist of programs; and running submissions through the engine."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bus
import events
from actors import Settings, load_settings
from ymera import WorkflowClient
from ymera._client import store_caught_up

from .engine import in_process

NOBODY = 65534
SECRET = "the contents of a file outside the workspace\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"internal data")

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Deployment:
    root: Path
    workspace: Path
    outside: Path
    database: Path
    server: http.server.ThreadingHTTPServer

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def requests(self) -> list[str]:
        return self.server.requests  # type: ignore[attr-defined, no-any-return]

    def settings(self) -> Settings:
        return load_settings({
            "YMERA_DATA_DIR": str(self.root / "data"), "YMERA_WORKSPACE": str(self.workspace),
            # Allowed by name, yet each is a loopback or metadata address: the address rule refuses them.
            "YMERA_HTTP_ALLOW_HOSTS": "127.0.0.1, localhost, 169.254.169.254",
            "YMERA_COMMANDS": "ls -l, wc -l, echo",
            "YMERA_DATABASES": f"shop=sqlite:{self.database}",
        }, dotenv=None)

    def rows(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.database) as conn:
            return conn.execute("SELECT name, price FROM items ORDER BY name").fetchall()

    def state(self) -> dict[str, Any]:
        """What an escape must leave unchanged: every file in and out of the workspace, the rows,
        the requests the server saw, the sandbox's work dirs and processes."""
        files = {str(p.relative_to(self.root)): (p.readlink() if p.is_symlink() else p.read_bytes() if p.is_file()
                                                 else "dir")
                 for base in (self.workspace, self.outside) for p in sorted(base.rglob("*"))}
        return {"files": files, "rows": self.rows(), "requests": list(self.requests),
                "work dirs": sorted(p.name for p in Path(tempfile.gettempdir()).glob("ymera-code-*")),
                "sandbox processes": sandbox_processes()}


def sandbox_processes() -> list[int]:
    """Live processes of the sandbox's uid (nobody); killed ones are reaped by init in its own time."""
    deadline = time.monotonic() + 5
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and entry.stat().st_uid == NOBODY:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                pass
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@contextlib.contextmanager
def deployed(tmp_path: Path) -> Iterator[Deployment]:
    """A real deployment under `tmp_path`, its HTTP server running."""
    workspace, outside = tmp_path / "workspace", tmp_path / "outside"
    workspace.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (workspace / "notes.txt").write_text("tea\ncoffee\n")
    (workspace / "passwd").symlink_to(outside / "secret.txt")  # made before the grant, or by another tool
    (workspace / "shared").symlink_to(outside, target_is_directory=True)
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE items (name TEXT, price REAL)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [("green", 4.5), ("black", 3.0), ("oolong", 6.25)])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Deployment(tmp_path, workspace, outside, database, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def spec(type: str, params: dict[str, Any], tools: list[str] | None = None, **fields: Any) -> events.TaskSpec:
    return events.TaskSpec(id="t", type=type, parameters=params, tools=[type] if tools is None else tools, **fields)


def submission(workflow_id: str, *tasks: events.TaskSpec) -> events.WorkflowSubmitted:
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, tasks=list(tasks))


async def run_all(settings: Settings, connection: bus.Bus, subs: list[events.WorkflowSubmitted],
                  ) -> dict[str, tuple[events.Event, list[events.Event]]]:
    """Each submission run to its end on one engine, side by side: workflow id -> (end, events seen)."""
    async with in_process(settings, connection):
        client = WorkflowClient(connection)

        async def one(sub: events.WorkflowSubmitted) -> tuple[events.Event, list[events.Event]]:
            return await client.wait(sub.workflow_id, await client.submit(sub), timeout=60, run_id=sub.id)

        ends = await asyncio.gather(*(one(sub) for sub in subs))
        # The log holds every event before the engine stops: the tests read reports from it.
        await store_caught_up(connection)
    return {sub.workflow_id: end for sub, end in zip(subs, ends, strict=True)}


def of(kind: type[Any], seen: list[events.Event]) -> list[Any]:
    return [e for e in seen if isinstance(e, kind)]



PLANNED = "{{ tasks.plan.output }}"
