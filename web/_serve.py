"""`ymera serve [--host H] [--port P]` and `ymera tokens add|list|revoke`: the commands of web/.

`ymera serve` connects to NATS as a client (`bus.open_local`), starts the view (web/_view.py:
the log folded, then the stream followed) and serves the app (web/_app.py) on uvicorn until
SIGINT or SIGTERM, then stops cleanly: the server stops taking requests and finishes those in
hand, the view stops following, the connection closes. `--port 0` picks a free port; the
address is printed on stdout either way, once the server listens. Without a token in the token
file (web/_auth.py) it binds to loopback only.

`running` serves an app in the caller's event loop, for the command and for the tests alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from actors import Settings, client_access
from bus import open_local
from config import is_loopback
from events import YmeraError

from ._auth import ROLES, TokenError, Tokens

if TYPE_CHECKING:
    import uvicorn
    from litestar import Litestar

__all__ = ["add_serve_command", "add_tokens_command", "cmd_serve", "running"]

DEFAULT_PORT = 8080


def _server(app: Litestar, host: str, port: int) -> uvicorn.Server:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the caller decides when to stop (`should_exit`), not uvicorn's own handlers

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=5)
    return Server(config)


@contextlib.asynccontextmanager
async def running(app: Litestar, host: str, port: int) -> AsyncIterator[str]:
    """Serve `app` on `host:port` (0: a free port) for the block; yields its base URL, `http://host:port`."""
    server = _server(app, host, port)
    task = asyncio.create_task(server.serve(), name="ymera-web-server")
    while not server.started:
        if task.done():
            await task  # its error, if it failed to start
            raise YmeraError(f"the web server could not listen on {host}:{port}")
        await asyncio.sleep(0.01)
    sockets = [s for srv in server.servers for s in (srv.sockets or ())]
    bound = sockets[0].getsockname()[1] if sockets else port
    shown = f"[{host}]" if ":" in host else host
    try:
        yield f"http://{shown}:{bound}"
    finally:
        view = app.state.get("view")
        if view is not None:
            view.hub.close()  # the live streams end, or they would hold the shutdown until it times out
        server.should_exit = True
        await task


# ---- the commands ---------------------------------------------------------------------------


def add_serve_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.add_parser("serve", help="serve the read-only HTTP API, the live dashboard and /metrics until "
                                         "SIGINT/SIGTERM (docs/web.md)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1); another than loopback needs a token "
                            "(`ymera tokens add`)")
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT,
                       help=f"the port (default {DEFAULT_PORT}; 0: a free one, printed on stdout)")
    serve.set_defaults(fn=cmd_serve)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be a number from 0 to 65535, got {text!r}")
    return port


def add_tokens_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tokens = sub.add_parser("tokens", help="the API tokens of `ymera serve`: add, list, revoke (stored hashed)")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True, metavar="COMMAND")
    add = tokens_sub.add_parser("add", help="make a token and print it once (it is stored hashed)")
    add.add_argument("name", help="what the token is called (letters, digits, '.', '_', '-')")
    add.add_argument("--role", choices=ROLES, default="read",
                     help="read: every GET route; admin: also the routes that act and the key pools (default read)")
    add.set_defaults(fn=cmd_tokens_add)
    tokens_sub.add_parser("list", help="every token: name, role, created (never a token)").set_defaults(
        fn=cmd_tokens_list)
    revoke = tokens_sub.add_parser("revoke", help="remove a token; a running server refuses it at once")
    revoke.add_argument("name")
    revoke.set_defaults(fn=cmd_tokens_revoke)


def cmd_tokens_add(settings: Settings, args: argparse.Namespace) -> int:
    text = Tokens.of(settings.data_dir).add(args.name, args.role)
    print(text)
    print(f"token {args.name!r} ({args.role}) added; it is shown this once: keep it", file=sys.stderr)
    return 0


def cmd_tokens_list(settings: Settings, args: argparse.Namespace) -> int:
    entries = Tokens.of(settings.data_dir).entries
    if not entries:
        print("no tokens: `ymera serve` answers anyone, on loopback only (`ymera tokens add NAME --role admin`)")
        return 0
    width = max(len("name"), *(len(t.name) for t in entries))
    print(f"{'name':<{width}}  role   created")
    for t in entries:
        print(f"{t.name:<{width}}  {t.role:<5}  {t.created}")
    return 0


def cmd_tokens_revoke(settings: Settings, args: argparse.Namespace) -> int:
    Tokens.of(settings.data_dir).revoke(args.name)
    print(f"token {args.name!r} revoked")
    return 0


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from ._app import create_app
    from ._view import View

    tokens = Tokens.of(settings.data_dir)
    if not tokens.required and not is_loopback(args.host):
        raise TokenError(f"refusing to serve on {args.host} with no API token: anyone who reaches it could read "
                         f"every workflow. Add one (`ymera tokens add NAME --role admin`) or serve on 127.0.0.1")
    if not settings.log_path.exists():
        raise YmeraError(f"no event log at {settings.log_path}: start the engine first (`ymera up`), or set "
                         f"YMERA_DATA_DIR to the deployment's data dir")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    connection, embedded = await open_local(settings, "ymera-serve", client_access(settings))
    try:
        async with View(settings, connection) as view, running(create_app(view, tokens), args.host,
                                                                  args.port) as url:
            print(f"serving {url} (the dashboard at {url}/, the API document at {url}/openapi.json)", flush=True)
            await stop.wait()
    finally:
        await connection.close()
        if embedded is not None:
            embedded.stop()
    print("stopped", flush=True)
    return 0
