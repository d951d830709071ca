"""The bus a process should use: NATS_URL if given, else this data dir's embedded server.

Without NATS_URL, a process joins the embedded server another Ymera process runs for the
same data dir, or starts its own (and then owns it: it stops with the process). An actor
started before NATS waits for it (`connect_when_up`). How a process connects (who it
authenticates as, what it signs with and checks, the authorization a server it starts gets)
is its `Access`, which the layers above make from the deployment's keys.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import NamedTuple

import structlog

from config import Settings

from ._access import Credentials
from ._connect import connect
from ._connection import Bus
from ._errors import BusUnavailable
from ._seal import Keyring, Signer
from ._server import EmbeddedServer, running_server
from ._stream import StreamPolicy, stream_policy

__all__ = ["Access", "connect_when_up", "open_bus", "open_local"]

_log = structlog.get_logger("ymera.bus")


class Access(NamedTuple):
    """How a process connects: who it authenticates as (`credentials`), what signs what it
    publishes (`signer`), whose signatures it checks (`keyring`), and `authorization`, which
    makes the authorization block an embedded server this process starts is given (None: a
    server anyone may use, as without YMERA_NATS_AUTH)."""

    credentials: Credentials | None = None
    signer: Signer | None = None
    keyring: Keyring | None = None
    authorization: Callable[[], str] | None = None


OPEN = Access()  # no credentials, no signatures: a server anyone may use


async def open_local(settings: Settings, name: str = "ymera",
                     access: Access = OPEN) -> tuple[Bus, EmbeddedServer | None]:
    """Connect as `name` (the stream set up as the settings say) with `access`; return the bus
    and the embedded server this call started, if it started one."""
    server = None
    url = settings.nats_url or running_server(settings.data_dir)
    if url is None:
        authorization = access.authorization() if access.authorization is not None else None
        server = _start_embedded(settings.data_dir, authorization)
        url = server.url
    try:
        return await connect(url, name=name, stream=stream_policy(settings), signer=access.signer,
                             keyring=access.keyring, credentials=access.credentials,
                             require_auth=access.authorization is not None), server
    except BaseException:
        if server is not None:
            server.stop()
        raise


@contextlib.asynccontextmanager
async def open_bus(settings: Settings, name: str = "ymera", access: Access = OPEN) -> AsyncIterator[Bus]:
    """`open_local` for the duration of the block: closed after, and the server stopped if it started one."""
    connection, server = await open_local(settings, name, access)
    try:
        yield connection
    finally:
        await connection.close()
        if server is not None:
            server.stop()


def _start_embedded(data_dir: Path, authorization: str | None) -> EmbeddedServer:
    # Blocking (a subprocess and a readiness wait of well under a second), once per process.
    data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedServer(data_dir / "nats", announce_in=data_dir, authorization=authorization)
    server.start()
    return server


async def connect_when_up(url: str, stop: asyncio.Event, *, name: str = "ymera", first_wait: float = 0.5,
                          max_wait: float = 10.0, stream: StreamPolicy | None = None,
                          access: Access = OPEN) -> Bus | None:
    """Connect, waiting with backoff while no server answers at `url` (an actor started before
    NATS); None if `stop` is set first. Each wait is logged, so an operator sees why nothing runs."""
    wait, attempt = first_wait, 1
    while True:
        try:
            return await connect(url, name=name, stream=stream, signer=access.signer, keyring=access.keyring,
                                 credentials=access.credentials, require_auth=access.authorization is not None)
        except BusUnavailable as exc:
            _log.warning(f"waiting for NATS at {url} (attempt {attempt}, next in {wait:g}s)", reason=exc.reason)
        try:
            await asyncio.wait_for(stop.wait(), wait)
            return None
        except TimeoutError:
            pass
        attempt += 1
        wait = min(wait * 2, max_wait)
