"""The bus a process should use: NATS_URL if given, else this data dir's embedded server.

Without NATS_URL, a process joins the embedded server another Ymera process runs for the
same data dir, or starts its own (and then owns it: it stops with the process).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from ._connection import Bus, connect
from ._server import EmbeddedServer, running_server
from ._stream import StreamPolicy

__all__ = ["open_bus", "open_local"]


async def open_local(nats_url: str | None, data_dir: Path, name: str = "ymera",
                     stream: StreamPolicy | None = None) -> tuple[Bus, EmbeddedServer | None]:
    """Connect (the stream set up as `stream` says); return the bus and the embedded server
    this call started, if it started one."""
    server = None
    url = nats_url or running_server(data_dir)
    if url is None:
        server = _start_embedded(data_dir)
        url = server.url
    try:
        return await connect(url, name=name, stream=stream), server
    except BaseException:
        if server is not None:
            server.stop()
        raise


@contextlib.asynccontextmanager
async def open_bus(nats_url: str | None, data_dir: Path, name: str = "ymera",
                   stream: StreamPolicy | None = None) -> AsyncIterator[Bus]:
    connection, server = await open_local(nats_url, data_dir, name, stream)
    try:
        yield connection
    finally:
        await connection.close()
        if server is not None:
            server.stop()


def _start_embedded(data_dir: Path) -> EmbeddedServer:
    # Blocking (a subprocess and a readiness wait of well under a second), once per process.
    data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedServer(data_dir / "nats", announce_in=data_dir)
    server.start()
    return server
