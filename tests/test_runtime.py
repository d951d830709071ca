"""One runtime for every actor: the supervisor's table, a connection per actor, a worker's life.

Real nats-server (with its monitoring endpoint, to see who is connected), real SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

import bus
import events
from actors import ACTOR_NAMES, BACKGROUND, load_settings, run_all, run_named
from actors import _supervisor as supervisor

from .engine import Actors, engine_env
from .support import started, wait_until


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[tuple[bus.EmbeddedServer, int]]:
    port = bus.free_port()
    server = bus.EmbeddedServer(tmp_path / "nats", options=("-m", str(port)))
    server.start()
    try:
        yield server, port
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def connected(url: str, name: str) -> AsyncIterator[bus.Bus]:
    connection = await bus.connect(url, name=name)
    try:
        yield connection
    finally:
        await connection.close()


def connection_names(port: int) -> list[str]:
    """Who the server says is connected (its /connz monitoring endpoint)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/connz?limit=1000", timeout=5) as response:
        connz = json.load(response)
    return sorted(c.get("name", "") for c in connz["connections"] or [])


async def test_every_actor_runs_on_a_connection_of_its_own_named_for_it(
        monitored: tuple[bus.EmbeddedServer, int], tmp_path: Path) -> None:
    server, port = monitored
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data")}, dotenv=None)
    stop, ready = asyncio.Event(), asyncio.Event()
    async with connected(server.url, "ymera-test") as connection:
        engine = asyncio.create_task(run_all(settings, connection, stop, ready))
        await asyncio.wait_for(ready.wait(), 30)
        names = connection_names(port)
        stop.set()
        await engine
        # The server drops a closed connection from /connz a moment after the client closes it.
        await wait_until(lambda: connection_names(port) == ["ymera-test"], 10,
                         "each actor's connection to be closed when it stops")
    assert [n for n in names if n != "ymera-test"] == sorted(f"ymera-{name}" for name in ACTOR_NAMES)


async def test_an_actor_given_its_own_connection_opens_no_other(monitored: tuple[bus.EmbeddedServer, int],
                                                               tmp_path: Path) -> None:
    """`ymera actor NAME` connects as the actor; the supervisor runs it on that connection."""
    server, port = monitored
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data")}, dotenv=None)
    stop, ready = asyncio.Event(), asyncio.Event()
    async with connected(server.url, "ymera-validator") as connection:
        task = asyncio.create_task(run_named("validator", settings, connection, stop, ready))
        await asyncio.wait_for(ready.wait(), 30)
        assert connection_names(port) == ["ymera-validator"]
        stop.set()
        await task


class Counting:
    """A worker of the smallest kind: it reads TaskStarted events and counts them; it crashes on
    the first batch it is told to."""

    name = "counting"

    def __init__(self, log: list[str], crash_on_first: bool) -> None:
        self.log = log
        self.crash = crash_on_first
        self.seen = 0

    async def start(self, connection: bus.Bus) -> bus.PullBatches:
        self.log.append("start")
        policy = bus.fit_consumer(bus.ConsumerPolicy(ack_wait=5.0, max_deliver=3), connection.stream)
        return await connection.reader(self.name, policy, subjects=(events.subject_filter(events.TaskStarted),),
                                       start_seq=1, ack_all=True, batch=10, poll=0.05)

    def room(self) -> int | None:
        return None

    async def handle(self, msgs: Sequence[bus.Delivery]) -> None:
        if self.crash:
            self.crash = False
            self.log.append("crash")
            raise RuntimeError("a bug in the worker")
        self.seen += len(msgs)
        self.log.append(f"handled {len(msgs)}")
        await bus.ack(msgs[-1])

    async def between(self) -> None:
        pass

    async def finish(self, graceful: bool) -> None:
        self.log.append(f"finish graceful={graceful}")


async def test_an_actor_added_as_one_table_entry_runs_is_restarted_after_a_crash_and_stops_gracefully(
        nats_bus: bus.Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[str] = []
    workers: list[Counting] = []

    @contextlib.asynccontextmanager
    async def open_counting(settings: object, connection: bus.Bus) -> AsyncIterator[Counting]:
        workers.append(Counting(log, crash_on_first=not workers))
        yield workers[-1]

    monkeypatch.setitem(supervisor.ACTORS, "counting", open_counting)
    monkeypatch.setattr(supervisor, "ACTOR_NAMES", (*supervisor.ACTOR_NAMES, "counting"))
    await nats_bus.publish_many([started(task_id=f"t{i}") for i in range(5)])
    settings = load_settings({"YMERA_DATA_DIR": str(tmp_path / "data")}, dotenv=None)
    stop = asyncio.Event()
    task = asyncio.create_task(run_named("counting", settings, nats_bus, stop))
    await wait_until(lambda: sum(w.seen for w in workers) == 5, 15, "the restarted worker to read every event")
    stop.set()
    await task
    assert log[:3] == ["start", "crash", "finish graceful=False"], log
    assert log[3] == "start", log
    assert log[-1] == "finish graceful=True", log


def niceness(pid: int) -> int:
    """A process's nice value: field 19 of /proc/PID/stat (the 17th after the command's name)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


async def test_background_actors_in_processes_of_their_own_yield_the_cpu_to_the_critical_path(
        nats_server: bus.EmbeddedServer, tmp_path: Path) -> None:
    names = ("monitor", "assessor", "security", "validator", "distributor", "executor", "store")
    actors = Actors(engine_env(tmp_path / "data", nats_server.url, YMERA_BACKGROUND_NICE="7"), tmp_path / "logs",
                    names)
    base = os.nice(0)
    expected = [min(base + 7, 19) if name in BACKGROUND else base for name in names]
    try:
        await wait_until(lambda: [niceness(p.pid) for p in actors.procs] == expected, 30,
                         f"nice values {expected} for {names}")
    finally:
        actors.stop()
    assert {"monitor", "assessor", "security", "validator"} == BACKGROUND  # never the store writer
