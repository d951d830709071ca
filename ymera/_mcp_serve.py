"""`ymera mcp serve`: Ymera as an MCP server, over stdio (the default) or streamable HTTP.

The server connects once, as this host's client (`client_access`, as `ymera submit` does),
and holds that connection while it serves; like `ymera run`, it runs every actor in its own
process when it started the embedded NATS server (there is no other Ymera to run them),
or when told to (--actors). The tools are in ymera/_mcp_serve_tools.py. SIGINT and SIGTERM
stop it gracefully: the actors finish what they run, the log catches up, the server stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Coroutine
from typing import Any, NamedTuple

import uvicorn

from actors import Settings, client_access, run_all
from bus import open_local
from config import is_loopback
from events import YmeraError

from ._cli import ENGINE_STOP_SECONDS, stop_on_signals
from ._client import store_caught_up
from ._mcp_serve_tools import Deployment, build_server

__all__ = ["HttpAddress", "http_address", "serve"]

MCP_PATH = "/mcp"


class HttpAddress(NamedTuple):
    host: str
    port: int


def http_address(text: str) -> HttpAddress:
    """`--http [HOST:]PORT` (an IPv6 host in brackets); the host 127.0.0.1 when only a port is given."""
    host, colon, port = text.rpartition(":")
    host = host.strip("[]") if colon else "127.0.0.1"
    if not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not [HOST:]PORT, e.g. 8765 or 127.0.0.1:8765")
    return HttpAddress(host, int(port))


async def serve(settings: Settings, http: HttpAddress | None, actors: bool | None) -> int:
    sock = _listen(http) if http is not None else None  # an address in use fails before anything starts
    try:
        connection, nats = await open_local(settings, "ymera-mcp", client_access(settings))
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    stop = stop_on_signals()
    engine_stop = asyncio.Event()
    engine = None
    try:
        if actors if actors is not None else nats is not None:
            ready = asyncio.Event()
            engine = asyncio.create_task(run_all(settings, connection, engine_stop, ready))
            await asyncio.wait_for(ready.wait(), 60)
        # The SDK's log lines (a request it could not answer, a tool that crashed) on stderr, plain;
        # set before the server is made, they stand in for the SDK's own (boxed, narrow) handler.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            stream=sys.stderr)
        server = build_server(Deployment(settings, connection, runs_actors=engine is not None))
        if sock is None:
            await _until(stop, server.run_stdio_async())
        else:
            assert http is not None
            await _serve_http(server.streamable_http_app(host=http.host), http.host, sock, stop)
    finally:
        if sock is not None:
            sock.close()
        if engine is not None:
            with contextlib.suppress(YmeraError):
                await store_caught_up(connection)  # what ran here is in the log before the actors stop
        engine_stop.set()
        if engine is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(engine, ENGINE_STOP_SECONDS)
        await connection.close()
        if nats is not None:
            nats.stop()
    return 0


async def _until(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> None:
    """Run `work` until it ends (stdin closed) or `stop` is set (a signal), whichever comes first."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopped):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
    if not task.cancelled():
        task.result()


def _listen(at: HttpAddress) -> socket.socket:
    """A socket listening at `at` (port 0: a free one); connections wait in its backlog until served."""
    sock = None
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in at.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((at.host, at.port))
        sock.listen(128)
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise YmeraError(f"mcp serve: cannot listen on {at.host}:{at.port}: {exc.strerror or exc}") from None
    return sock


async def _serve_http(app: Any, host: str, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve `app` on `sock`, saying on stdout where."""
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if not is_loopback(host):
        print(f"ymera: warning: {host} is not a loopback address: whoever reaches it can submit workflows as "
              f"this host's client; the MCP endpoint has no authentication", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    print(f"ymera: MCP over streamable HTTP at http://{shown}:{port}{MCP_PATH}", flush=True)
    try:
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        server.should_exit = True  # uvicorn ends its connections and its app's lifespan, then returns
        await serving
    finally:
        if not serving.done():
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
