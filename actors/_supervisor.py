"""Running actors: by name, each restarted after a crash, all in one process or one process each.

Crash-only: an actor that loses its footing (NATS gone mid-publish, a bug) exits; starting
it again rebuilds its state from the stream and reconciles, which is the same path as a
start after SIGKILL. Nothing is repaired in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import msgspec
import structlog

import guard
from bus import Access, Bus, BusError, ConsumerConfigError, MacKeys, Worker, run_worker, stream_policy
from config import Settings
from events import YmeraError
from store import SqliteEventLog, StoreLocked, StoreWriter

from ._archive import HistoryDropped
from ._runtime import Actor, ActorWorker
from .assessor import Assessor
from .distributor import Distributor
from .executor import Executor
from .monitor import Monitor
from .security import Security
from .validator import Validator

__all__ = [
    "ACTORS",
    "ACTOR_NAMES",
    "BACKGROUND",
    "actor_access",
    "client_access",
    "keyring_of",
    "lower_priority",
    "run_all",
    "run_named",
    "signing",
]

_log = structlog.get_logger("ymera.supervisor")
RESTART_DELAY = 0.5


class Opener(Protocol):
    """How an actor is made ready to run: the worker, and what it holds open while it runs."""

    def __call__(self, settings: Settings, bus: Bus) -> contextlib.AbstractAsyncContextManager[Worker]: ...


@contextlib.asynccontextmanager
async def _store_writer(settings: Settings, bus: Bus) -> AsyncIterator[Worker]:
    async with SqliteEventLog(settings.log_path) as log:
        # The log is the archive, so its writer is who sets how long the stream keeps events.
        if await bus.set_retention(max_age=settings.stream_max_age_seconds, max_bytes=settings.stream_max_bytes):
            _log.info("stream retention set", stream=bus.stream.name,
                      max_age_seconds=settings.stream_max_age_seconds, max_bytes=settings.stream_max_bytes)
        # It vouches for the log's head with signed checkpoints (store.verify checks them).
        signer = guard.Identity.load_or_create(settings.keys_dir, "store")
        yield StoreWriter(bus, log, signer=signer, checkpoint_rows=settings.checkpoint_every_rows,
                          checkpoint_seconds=settings.checkpoint_every_seconds)


@contextlib.asynccontextmanager
async def _executor(settings: Settings, bus: Bus) -> AsyncIterator[Worker]:
    yield Executor(settings, f"{socket.gethostname()}-{os.getpid()}")


def _single(kind: type[Actor]) -> Opener:
    """A single-instance actor: its decisions on the actor runtime (actors/_runtime.py)."""
    @contextlib.asynccontextmanager
    async def open_actor(settings: Settings, bus: Bus) -> AsyncIterator[Worker]:
        yield ActorWorker(kind(settings))
    return open_actor


# Every actor, by the name `ymera actor NAME` takes, in the order `ymera up` starts them; each
# runs on the one runtime (`bus.run_worker`). Adding an actor is one entry.
ACTORS: dict[str, Opener] = {
    "store": _store_writer,
    "security": _single(Security),
    "validator": _single(Validator),
    "distributor": _single(Distributor),
    "executor": _executor,
    "assessor": _single(Assessor),
    "monitor": _single(Monitor),
}
ACTOR_NAMES = tuple(ACTORS)
# Off a step's critical path (TaskReady -> run -> TaskSucceeded -> next TaskReady, which is the
# distributor's and the executor's): with each actor in its own process they run at a lower CPU
# priority (`YMERA_BACKGROUND_NICE`), so on a busy machine a step does not wait behind them. The
# store writer is not among them: the log must keep up with the stream.
BACKGROUND = frozenset({"monitor", "assessor", "security", "validator"})


def lower_priority(name: str, settings: Settings) -> None:
    """In the process of actor `name` alone (`ymera actor NAME`): a background actor yields the
    CPU to the critical path by `settings.background_nice`."""
    if name in BACKGROUND and settings.background_nice:
        os.nice(settings.background_nice)


async def run_named(name: str, settings: Settings, bus: Bus, stop: asyncio.Event,
                    ready: asyncio.Event | None = None) -> None:
    """Run one actor until `stop`, starting it again whenever it crashes, on a connection of its
    own to `bus`'s server (`Bus.as_actor`)."""
    if name not in ACTOR_NAMES:
        raise YmeraError(f"no actor named {name!r}; actors: {', '.join(ACTOR_NAMES)}")
    if settings.id_key is None:  # the deployment's key for derived ids, shared by all its actors
        settings = msgspec.structs.replace(settings, id_key=guard.id_key(settings.keys_dir))
    signer, keyring, macs = signing(settings, name)
    credentials = guard.Identity.load_or_create(settings.keys_dir, name) if settings.nats_auth else None
    async with bus.as_actor(name, signer, keyring, macs, credentials) as own:
        await own.keep_journal(settings.data_dir / "attest")  # what a killed run of it left unattested, attested
        while not stop.is_set():
            try:
                async with ACTORS[name](settings, own) as worker:
                    await run_worker(worker, own, stop, ready)
                return
            except (ConsumerConfigError, StoreLocked, HistoryDropped):
                raise  # a configuration no restart can fix
            except (BusError, OSError, TimeoutError) as exc:
                _log.warning("actor crashed; restarting", actor=name, error=str(exc) or type(exc).__name__)
            except Exception:
                _log.exception("actor crashed; restarting", actor=name)
            try:
                await asyncio.wait_for(stop.wait(), RESTART_DELAY)
            except TimeoutError:
                pass


def signing(settings: Settings, name: str
            ) -> tuple[guard.Identity | None, guard.Keyring | None, MacKeys | None]:
    """Actor `name`'s identity, which signs what it emits, the keyring it checks what it reads
    with, and the actors' MAC keys, from the deployment's secret (bus/_seal.py); none with
    YMERA_SIGN_EVENTS=false."""
    if not settings.sign_events:
        return None, None, None
    macs = guard.mac_keys(settings.id_key) if settings.id_key is not None else None
    return guard.Identity.load_or_create(settings.keys_dir, name), keyring_of(settings), macs


def keyring_of(settings: Settings) -> guard.Keyring | None:
    """What a reader of the stream checks signatures with: the actors' and clients' public keys
    in the keys directory (None with YMERA_SIGN_EVENTS=false: nothing is signed)."""
    return guard.Keyring(settings.keys_dir) if settings.sign_events else None


def client_access(settings: Settings) -> Access:
    """How a client process (a command, the Python API) connects: as its client key
    (`YMERA_CLIENT_KEY`, else this host's `client.local`), which also signs what it submits,
    where NATS authenticates (YMERA_NATS_AUTH); checking signatures with `keyring_of`."""
    if not settings.nats_auth:
        return Access(keyring=keyring_of(settings))
    me = guard.client_identity(settings.keys_dir, settings.client_key)
    return Access(me, me if settings.sign_events else None, keyring_of(settings), _authorization(settings))


def actor_access(settings: Settings, name: str) -> Access:
    """How the process of actor `name` alone (`ymera actor NAME`) connects: as that actor."""
    if not settings.nats_auth:
        return Access(keyring=keyring_of(settings))
    me = guard.Identity.load_or_create(settings.keys_dir, name)
    return Access(me, None, keyring_of(settings), _authorization(settings))


def _authorization(settings: Settings) -> Callable[[], str]:
    """The authorization an embedded server started by this process gets: every key of the
    deployment (made first where missing), each with its role's permissions."""
    return lambda: guard.authorization(settings.keys_dir, stream_policy(settings).name)


async def run_all(settings: Settings, bus: Bus, stop: asyncio.Event, ready: asyncio.Event | None = None,
                  names: tuple[str, ...] = ACTOR_NAMES) -> None:
    """Every actor in this process, each on its own connection, supervised together; `ready` is
    set once all have started."""
    events = {name: asyncio.Event() for name in names}
    if settings.sign_events:  # every key made before any actor publishes: none meets a key it cannot know yet
        for name in names:
            guard.Identity.load_or_create(settings.keys_dir, name)
    async with asyncio.TaskGroup() as group:
        # The executor first: it reads new TaskReady only (its consumer is made "new only" on a
        # fresh stream), so one released before its consumer exists would wait for its time limit.
        first = [name for name in names if name == "executor"]
        for name in (*first, *(n for n in names if n not in first)):
            group.create_task(run_named(name, settings, bus, stop, events[name]), name=f"actor-{name}")
            if name in first:
                await events[name].wait()
        if ready is not None:
            await asyncio.gather(*(e.wait() for e in events.values()))
            ready.set()
