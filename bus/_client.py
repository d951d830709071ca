"""nats-py's client with a direct path for the bus's own busiest subscriptions.

Every message nats-py receives goes through `_process_msg`: its headers parsed into a dict,
a `Msg` built, put on the subscription's queue, taken off by the subscription's task and
handed to an awaited callback. On the two subscriptions every actor reads all the time (a
pull consumer's inbox, `_pull.py`, and the publisher's answers, `_publish.py`) none of that
is needed: the bus reads two headers only, a status line (a pull request that ended, a
publish no stream took) and an event's signature (`_seal.py`; the event id travels in its
body). Here such a subscription's messages reach a plain function as `Msg`s, their headers
parsed only when they carry a status, else only the signature picked out of them. Measured
with py-spy on the monitor in a wide run (bench/throughput.py), the header parse alone was
8.7 % of its samples and the whole path ~18 %.

Everything else (ordered consumers, requests, JetStream's API) goes through nats-py as it is.
"""

from __future__ import annotations

from collections.abc import Callable

from nats.aio.client import Client as _NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ._seal import SEAL_HEADER, seal_of

__all__ = ["Client", "Direct"]

Direct = Callable[[Msg], None]

_HEADER_LINE = b"NATS/1.0"
_STATUS_MARK = ord(" ")  # "NATS/1.0 404 No Messages": a status follows the version


class Client(_NatsClient):
    def __init__(self) -> None:
        super().__init__()
        self._direct: dict[int, Direct] = {}

    def present(self, nkey: str) -> None:
        """Authenticate as the NATS user `nkey`, answering the server's challenge with the
        `signature_cb` given to `connect`: nats-py's nkey path without a seed file, since the
        key is the identity's own (guard.Identity) and never leaves it."""
        self._public_nkey = nkey
        self._auth_configured = True

    @property
    def auth_required(self) -> bool:
        """Whether the server said (in its INFO) that every connection must authenticate."""
        return bool(self._server_info.get("auth_required"))

    async def subscribe_direct(self, subject: str, handler: Direct) -> Subscription:
        """Subscribe `subject`; each message goes to `handler` as it is read, in order, on the
        reading task (so `handler` must not block). A status message keeps its headers; any
        other message arrives with its signature header alone."""
        sub = await self.subscribe(subject)
        self._direct[sub._id] = handler
        return sub

    def forget_direct(self, sub: Subscription) -> None:
        self._direct.pop(sub._id, None)

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes,
                           headers: bytes | None) -> None:
        handler = self._direct.get(sid)
        if handler is None or sid not in self._subs:
            await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            return
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        parsed = None
        if headers and len(headers) > len(_HEADER_LINE) and headers[len(_HEADER_LINE)] == _STATUS_MARK:
            parsed = await self._process_headers(headers)
        elif headers and (sealed := seal_of(headers)) is not None:
            parsed = {SEAL_HEADER: sealed}
        handler(Msg(_client=self, subject=subject.decode(), reply=reply.decode(), data=data, headers=parsed,
                    _sid=sid))
