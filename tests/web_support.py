"""The web API for a test: the engine, a view and `ymera serve`'s app on real uvicorn, in the test's loop.

    async with serving(tmp_path, nats_bus) as web:          # engine + view + server, tokens on
        async with web.client("admin") as http:            # httpx, base URL and bearer token set
            r = await http.get("/api/workflows")
        web.url, web.tokens["read"], web.view, web.settings, web.bus, web.env() (for `ymera ...`)

Or the fixture `web` (the same with its defaults), given a test that names `nats_bus` and `tmp_path`.
The engine runs every actor in this process (tests/engine.in_process) on the test's NATS server;
the view connects as `ymera serve` does (`bus.open_local` with the client's access) and the app is
served on a free loopback port. Nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import pytest

import bus
import events
import store
from actors import Settings, client_access, load_settings
from web._app import create_app
from web._auth import Tokens
from web._serve import running
from web._view import View
from ymera import WorkflowClient

from .conftest import ymera_env
from .engine import in_process

__all__ = ["Served", "echo_workflow", "serving", "web", "web_settings"]


@dataclass
class Served:
    url: str  # http://127.0.0.1:PORT, no trailing slash
    settings: Settings
    bus: bus.Bus  # the test's connection (the engine's, when it runs)
    view: View
    # Token text by role ("read", "admin"), each also named so in the token file; empty without auth.
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str | None = "read") -> dict[str, str]:
        """`Authorization: Bearer` with the token of `role` (none for None, or without auth)."""
        token = self.tokens.get(role) if role is not None else None
        return {"Authorization": f"Bearer {token}"} if token else {}

    def client(self, role: str | None = "read", **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers(role), timeout=30.0,
                                 **kwargs)  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        """The environment of a `ymera` command (tests/conftest.ymera) of this deployment."""
        return ymera_env(self.settings.data_dir, self.bus.url)

    async def submit(self, submission: events.WorkflowSubmitted, timeout: float = 60) -> events.Event:
        """Submit a workflow, wait for its end, and until the view has folded it; returns the end."""
        client = WorkflowClient(self.bus)
        seq = await client.submit(submission)
        end, _ = await client.wait(submission.workflow_id, seq, timeout=timeout)
        await self.caught_up()
        return end

    async def caught_up(self, timeout: float = 30) -> None:
        """Until the view has folded everything the stream holds now."""
        await self.view.wait_for((await self.bus.stream_state()).last_seq, timeout)


def web_settings(tmp_path: Path, nats_url: str, **env: str) -> Settings:
    """Settings of a deployment in `tmp_path / "data"` on the test's NATS server."""
    return load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "NATS_URL": nats_url,
                          "YMERA_HEARTBEAT_SECONDS": "0.5", **env}, dotenv=None)


def echo_workflow(workflow_id: str = "wf-web", tasks: int = 3) -> events.WorkflowSubmitted:
    """A chain of `echo` tasks (t1 <- t2 <- ...), which needs no model."""
    specs = [events.TaskSpec(id=f"t{i}", type="echo", parameters={"text": f"step {i}"},
                             dependencies=[f"t{i - 1}"] if i > 1 else [])
             for i in range(1, tasks + 1)]
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, tasks=specs)


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, nats_bus: bus.Bus, *, auth: bool = True, engine: bool = True,
                  settings: Settings | None = None, env: dict[str, str] | None = None) -> AsyncIterator[Served]:
    """Engine (unless `engine=False`: then over the log in the data dir, made empty if there is none),
    view and server for the block. With `auth`, the token file holds
    a `read` token named "reader" and an `admin` token named "admin" (`Served.tokens` by role)."""
    settings = settings or web_settings(tmp_path, nats_bus.url, **(env or {}))
    tokens = Tokens.of(settings.data_dir)
    texts = {"read": tokens.add("reader", "read"), "admin": tokens.add("admin", "admin")} if auth else {}
    async with contextlib.AsyncExitStack() as stack:
        if engine:
            await stack.enter_async_context(in_process(settings, nats_bus))
        elif not settings.log_path.exists():
            async with store.SqliteEventLog(settings.log_path):
                pass  # an empty log, as a store writer that has stored nothing leaves it
        view_bus, server = await bus.open_local(settings, "ymera-web-test", client_access(settings))
        assert server is None
        stack.push_async_callback(view_bus.close)
        view = View(settings, view_bus)
        await _started(view)
        stack.push_async_callback(view.stop)
        url = await stack.enter_async_context(running(create_app(view, tokens, refresh=0), "127.0.0.1", 0))
        served = Served(url, settings, nats_bus, view, texts)
        yield served


async def _started(view: View) -> None:
    """Start the view once the store writer has made the log (it makes it as it starts)."""
    for _ in range(600):
        if view.settings.log_path.exists():
            break
        await asyncio.sleep(0.05)
    await view.start()


@pytest.fixture
async def web(tmp_path: Path, nats_bus: bus.Bus) -> AsyncIterator[Served]:
    """`serving(tmp_path, nats_bus)`: engine, view and server with a read and an admin token."""
    async with serving(tmp_path, nats_bus) as served:
        yield served


async def run_echo(web: Served, workflow_id: str = "wf-web", tasks: int = 3,
                   budget_usd: float | None = None) -> events.WorkflowSubmitted:
    """Run a chain of `tasks` echo tasks to its end (it must complete); the submission."""
    submission = msgspec.structs.replace(echo_workflow(workflow_id, tasks), budget_usd=budget_usd)
    end = await web.submit(submission)
    assert isinstance(end, events.WorkflowCompleted), end
    return submission
