"""Running actors: by name, each restarted after a crash, all in one process or one process each.

Crash-only: an actor that loses its footing (NATS gone mid-publish, a bug) exits; starting
it again rebuilds its state from the stream and reconciles, which is the same path as a
start after SIGKILL. Nothing is repaired in place.
"""

from __future__ import annotations

import asyncio
import os
import socket

import nats.errors
import structlog

from bus import Bus, BusError, ConsumerConfigError, set_retention
from events import YmeraError
from store import SqliteEventLog, StoreLocked, StoreWriter

from ._archive import HistoryDropped
from ._runtime import Actor, run_actor
from ._settings import Settings

__all__ = ["ACTOR_NAMES", "run_all", "run_named"]

_log = structlog.get_logger("ymera.supervisor")
ACTOR_NAMES = ("store", "security", "validator", "distributor", "executor", "assessor", "monitor")
RESTART_DELAY = 0.5


def _actor(name: str, settings: Settings) -> Actor:
    from .assessor._actor import Assessor
    from .distributor import Distributor
    from .monitor._actor import Monitor
    from .security import Security
    from .validator._actor import Validator

    kinds: dict[str, type[Actor]] = {"security": Security, "validator": Validator, "distributor": Distributor,
                                     "assessor": Assessor, "monitor": Monitor}
    return kinds[name](settings)


async def run_named(name: str, settings: Settings, bus: Bus, stop: asyncio.Event,
                    ready: asyncio.Event | None = None) -> None:
    """Run one actor until `stop`, starting it again whenever it crashes."""
    if name not in ACTOR_NAMES:
        raise YmeraError(f"no actor named {name!r}; actors: {', '.join(ACTOR_NAMES)}")
    while not stop.is_set():
        try:
            await _run_once(name, settings, bus, stop, ready)
            return
        except (ConsumerConfigError, StoreLocked, HistoryDropped):
            raise  # a configuration no restart can fix
        except (BusError, OSError, TimeoutError, nats.errors.Error) as exc:
            _log.warning("actor crashed; restarting", actor=name, error=str(exc) or type(exc).__name__)
        except Exception:
            _log.exception("actor crashed; restarting", actor=name)
        try:
            await asyncio.wait_for(stop.wait(), RESTART_DELAY)
        except TimeoutError:
            pass


async def _run_once(name: str, settings: Settings, bus: Bus, stop: asyncio.Event,
                    ready: asyncio.Event | None) -> None:
    if name == "store":
        async with SqliteEventLog(settings.log_path) as log:
            # The log is the archive, so its writer is who sets how long the stream keeps events.
            if await set_retention(bus.js, bus.stream.name, max_age=settings.stream_max_age_seconds,
                                   max_bytes=settings.stream_max_bytes):
                _log.info("stream retention set", stream=bus.stream.name,
                          max_age_seconds=settings.stream_max_age_seconds, max_bytes=settings.stream_max_bytes)
            writer = StoreWriter(bus, log)
            if ready is not None:
                ready.set()
            await writer.run(stop)
    elif name == "executor":
        from .executor._actor import Executor

        await Executor(settings, f"{socket.gethostname()}-{os.getpid()}").run(bus, stop, ready)
    else:
        await run_actor(_actor(name, settings), bus, stop, ready)


async def run_all(settings: Settings, bus: Bus, stop: asyncio.Event, ready: asyncio.Event | None = None,
                  names: tuple[str, ...] = ACTOR_NAMES) -> None:
    """Every actor in this process, supervised together; `ready` is set once all have started."""
    events = {name: asyncio.Event() for name in names}
    async with asyncio.TaskGroup() as group:
        for name in names:
            group.create_task(run_named(name, settings, bus, stop, events[name]), name=f"actor-{name}")
        if ready is not None:
            await asyncio.gather(*(e.wait() for e in events.values()))
            ready.set()
