"""Running the whole engine for a test: `ymera up --processes` against the test's nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats.js.errors

import bus
import events
import guard
from actors import Settings, load_settings, run_all
from actors.distributor import DistributorState
from ymera._client import stored

from .conftest import ymera_env

SINGLETONS = ("security", "validator", "distributor", "assessor", "monitor", "store")


def engine_env(data_dir: Path, url: str, **extra: str) -> dict[str, str]:
    env = ymera_env(data_dir, url)
    env.update({"YMERA_HEARTBEAT_SECONDS": "0.5", "YMERA_LOG_LEVEL": "warning"})
    env.update(extra)
    return env


def settings_of(env: dict[str, str]) -> Settings:
    return load_settings(env, dotenv=None)


@contextlib.contextmanager
def engine_processes(env: dict[str, str], log: Path, executors: int = 1) -> Iterator[subprocess.Popen[bytes]]:
    """Every actor in its own OS process (supervised by `ymera up --processes`)."""
    with open(log, "ab") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "runner", "up", "--processes", "--executors", str(executors)],
                                env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_for_actors(connection: bus.Bus, names: tuple[str, ...] = (*SINGLETONS[:-1], "executor"),
                          timeout: float = 60) -> None:
    """Until every actor's durable consumer exists: they create it once rebuilt."""
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            try:
                await connection.js.consumer_info(connection.stream.name, name)
                break
            except nats.js.errors.NotFoundError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"actor {name} did not start within {timeout:g}s") from None
                await asyncio.sleep(0.05)


async def all_events(connection: bus.Bus, subject: str = "ymera.>") -> list[events.Event]:
    """Every valid event in the stream on `subject`, in stream order."""
    return await stored(connection, subject)


class Actors:
    """Each actor as its own `ymera actor NAME` process, which the test kills and restarts."""

    def __init__(self, env: dict[str, str], logs: Path, names: tuple[str, ...]) -> None:
        self.env, self.logs, self.names = env, logs, names
        logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = [self._spawn(i) for i in range(len(names))]
        self.kills: Counter[str] = Counter()
        # The exit status `wait` reported for each kill: -9 when the kill hit a live process.
        self.kill_codes: list[int] = []

    def _spawn(self, i: int) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{i}-{self.names[i]}.log", "ab") as sink:
            return subprocess.Popen([sys.executable, "-m", "runner", "actor", self.names[i]], env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def kill(self, i: int) -> int:
        """SIGKILL actor `i` and reap it; returns the exit status `wait` saw."""
        self.procs[i].send_signal(signal.SIGKILL)
        code = self.procs[i].wait()
        self.kills[self.names[i]] += 1
        self.kill_codes.append(code)
        return code

    def pause(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGSTOP)

    def resume(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGCONT)

    def restart(self, i: int) -> None:
        self.procs[i] = self._spawn(i)

    def kill_and_restart(self, i: int) -> None:
        self.kill(i)
        self.restart(i)

    def stop(self) -> list[int | None]:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for p in self.procs:
            try:
                codes.append(p.wait(30))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
        return codes


@contextlib.asynccontextmanager
async def connected(url: str, stream: bus.StreamPolicy | None = None, *,
                    signing_as: tuple[Path, str] | None = None) -> AsyncIterator[bus.Bus]:
    """A connection to `url`; with `signing_as` (keys dir, actor), one that signs what it
    publishes as that actor would (its key made there if it has none): a test playing its part."""
    signer = guard.Identity.load_or_create(*signing_as) if signing_as is not None else None
    connection = await bus.connect(url, stream=stream, signer=signer)
    try:
        yield connection
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def in_process(settings: Settings, connection: bus.Bus) -> AsyncIterator[Settings]:
    """Every actor running in this process on `connection` for the duration of the block."""
    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(run_all(settings, connection, stop, ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        yield settings
    finally:
        stop.set()
        await running


def assert_indexes_true(state: DistributorState) -> None:
    """The distributor's indexes over each workflow's tasks say what a scan of the tasks says."""
    for run, wf in state.workflows.items():
        by_status: dict[str, set[str]] = {}
        for task_id, task in wf.tasks.items():
            by_status.setdefault(task.status, set()).add(task_id)
        assert {status: ids for status, ids in wf.by_status.items() if ids} == by_status, run
        assert wf.ready == {i for i, t in wf.tasks.items() if t.status == "waiting" and t.remaining_deps == 0}, run
        assert wf.unscored == {i for i, t in wf.tasks.items() if t.status == "succeeded" and t.quality is None}, run
