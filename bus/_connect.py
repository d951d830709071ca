"""Opening a connection: who it authenticates as, what the server says to that, the stream
set up; nats-py's connection errors made into one line a user reads (`BusUnavailable`)."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import nats.js.errors
import structlog

from ._access import Credentials
from ._client import Client
from ._connection import Bus
from ._errors import BusUnavailable
from ._seal import Keyring, MacKeys, Signer
from ._stream import StreamPolicy, ensure_stream

__all__ = ["connect"]

_log = structlog.get_logger("ymera.bus")


async def connect(url: str, *, name: str = "ymera", stream: StreamPolicy | None = None,
                  connect_timeout: float = 2.0, publish_timeout: float = 10.0, signer: Signer | None = None,
                  keyring: Keyring | None = None, mac_keys: MacKeys | None = None,
                  credentials: Credentials | None = None, require_auth: bool = False) -> Bus:
    """Connect, make sure the stream exists, and keep reconnecting for as long as we live.
    `signer` signs what this connection publishes; `keyring` checks what it reads (`Bus`);
    `credentials` is who it authenticates as. With `require_auth`, a server that lets anyone
    in is refused: the permissions the deployment counts on would not be there."""
    last_error: list[BaseException] = []
    client: list[Client] = []
    denied: list[str] = []

    async def on_error(exc: Exception) -> None:
        text = str(exc).removeprefix("nats: ")
        if "permissions violation" in text.lower():
            denied.append(text.strip("'"))
            del denied[:-16]
            _log.warning("nats refused", connection=name, reason=denied[-1])
            return
        last_error.append(exc)
        _log.debug("nats error", error=str(exc) or type(exc).__name__)

    async def on_disconnect() -> None:
        if client and (client[0].is_closed or client[0].is_draining):
            return  # our own close
        _log.warning("nats disconnected", url=url)

    async def on_reconnect() -> None:
        _log.info("nats reconnected", url=url)

    nc = Client()
    # nats-py types its timeouts as int; it takes seconds as float.
    options: dict[str, Any] = dict(
        name=name, connect_timeout=connect_timeout, max_reconnect_attempts=2, reconnect_time_wait=0.25,
        error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect, pending_size=8 * 1024 * 1024)
    if credentials is not None:
        nc.present(credentials.nkey)
        options["signature_cb"] = credentials.sign_nonce
    try:
        await nc.connect(url, **options)
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        refusals = [e for e in last_error if "authorization violation" in str(e).lower()]
        cause = refusals[-1] if refusals else last_error[-1] if last_error else exc
        raise BusUnavailable(url, _describe(cause, credentials)) from None
    client.append(nc)
    if require_auth and not nc.auth_required:
        await nc.close()
        raise BusUnavailable(url, "the server lets anyone connect and publish, and this deployment counts on NATS "
                                  "permissions (YMERA_NATS_AUTH): start it with the authorization `ymera nats "
                                  "authorization` prints, or set YMERA_NATS_AUTH=false")
    # Having reached the server once, a later outage (a restart, a failover) is waited out
    # rather than fatal: from here on, reconnect forever.
    nc.options["max_reconnect_attempts"] = -1
    policy = stream or StreamPolicy()
    js = nc.jetstream(timeout=publish_timeout)
    try:
        await ensure_stream(js, policy)
    except nats.js.errors.ServiceUnavailableError:
        await nc.close()
        raise BusUnavailable(url, "the server has JetStream disabled (start it with -js)") from None
    except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
        await nc.close()
        refused = f"; the server refused: {denied[-1]}" if denied else ""
        raise BusUnavailable(url, f"could not set up stream {policy.name}: {_describe(exc)}{refused}") from None
    bus = Bus(nc, js, url, policy, publish_timeout, name, signer=signer, keyring=keyring, mac_keys=mac_keys,
              credentials=credentials)
    bus.denied = denied
    return bus


def _describe(exc: BaseException, credentials: Credentials | None = None) -> str:
    if "authorization violation" in str(exc).lower():
        who = (f"its key {credentials.name} ({credentials.nkey[:12]}...) is not one the server knows"
               if credentials is not None else "it has no credentials")
        return (f"the server refused the connection (authorization violation): {who}; `ymera nats authorization` "
                "prints the users a Ymera deployment's server must know")
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is nats-server running?)"
    if isinstance(exc, (asyncio.TimeoutError, nats.errors.TimeoutError)):
        return "timed out"
    text = str(exc).removeprefix("nats: ")
    return text or type(exc).__name__
