"""JetStream publishes, pipelined, each answered on one reply subscription.

nats-py's `publish_async` takes a semaphore, draws a random token (`os.urandom`) and parses
the stream's answer with the stdlib's JSON for every message: ~43 µs of client CPU per
publish, measured on these machines, against ~27 µs here, where one wildcard inbox takes
every answer, a counter names each publish and msgspec reads the answer (BENCHMARKS.md,
"Throughput"). Every event an actor emits goes through here.
"""

from __future__ import annotations

import asyncio

import msgspec
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ._client import Client
from ._errors import BusError, Fenced
from ._seal import SEAL_HEADER

__all__ = ["MSG_ID", "NoAnswer", "PubAck", "Publisher", "abandon"]

MSG_ID = "Nats-Msg-Id"
# Store the message only if the last one on the filter is still this seq (nats-server 2.11+).
_EXPECTED_SEQ = "Nats-Expected-Last-Subject-Sequence"
_EXPECTED_OVER = "Nats-Expected-Last-Subject-Sequence-Subject"
_WRONG_LAST_SEQUENCE = 10071
_STATUS = "Status"
_PRUNE_AT = 100_000  # publishes waiting for an answer before the abandoned ones are dropped


class PubAck(msgspec.Struct, frozen=True):
    """The stream's answer to a publish: where it keeps the event (an earlier copy's seq when
    `duplicate`: it had that id within its duplicate window)."""

    stream: str
    seq: int
    duplicate: bool = False


class NoAnswer(BusError):
    """The stream did not answer a publish within the publisher's `timeout`."""


class _Refusal(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _Answer(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _Refusal | None = None


_ANSWER = msgspec.json.Decoder(_Answer)


class Publisher:
    """Publishes on `nc` whose futures resolve to the stream's `PubAck`, or fail with a
    `BusError` saying why the stream refused the message, or, with a `timeout`, with `NoAnswer`
    when it has not answered that many seconds after the publish. One watchdog times every
    publish waiting for its answer (a timer for each would cost more than the publish)."""

    def __init__(self, nc: Client, timeout: float | None = None) -> None:
        self.nc = nc
        self.timeout = timeout
        self._prefix = f"{nc.new_inbox()}."
        # token -> (its answer, when to give up on it); oldest first, and only those not answered yet
        self._waiting: dict[str, tuple[asyncio.Future[PubAck], float]] = {}
        self._fences: dict[str, tuple[str, int]] = {}  # token -> the fence of a fenced publish
        self._count = 0
        self._sub: Subscription | None = None
        self._watchdog: asyncio.Task[None] | None = None

    async def publish(self, subject: str, data: bytes, msg_id: str, fence: tuple[str, int] | None = None,
                      sealed: str | None = None) -> asyncio.Future[PubAck]:
        """Send one message (deduplicated by the stream on `msg_id`); the future is its answer.
        With a `fence` (filter, seq), the stream stores it only if its last message on the
        filter is that seq (0: none yet), and the answer is otherwise a `Fenced`. `sealed`: its
        signature header (`_seal.py`)."""
        if self._sub is None:
            self._sub = await self.nc.subscribe_direct(f"{self._prefix}*", self._on_answer)
        self._count += 1
        token = str(self._count)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PubAck] = loop.create_future()
        if self.timeout is None:
            self._waiting[token] = (future, 0.0)
            if len(self._waiting) > _PRUNE_AT:
                self._prune()
        else:
            self._waiting[token] = (future, loop.time() + self.timeout)
            if self._watchdog is None:
                self._watchdog = asyncio.create_task(self._watch(self.timeout))
        headers = {MSG_ID: msg_id}
        if sealed is not None:
            headers[SEAL_HEADER] = sealed
        if fence is not None:
            headers[_EXPECTED_OVER], headers[_EXPECTED_SEQ] = fence[0], str(fence[1])
            self._fences[token] = fence
        try:
            await self.nc.publish(subject, data, reply=self._prefix + token, headers=headers)
        except BaseException:
            future.cancel()
            raise
        return future

    def _prune(self) -> None:
        """Forget publishes abandoned without an answer (their caller gave up; the server died)."""
        self._waiting = {token: entry for token, entry in self._waiting.items() if not entry[0].done()}
        self._fences = {token: fence for token, fence in self._fences.items() if token in self._waiting}

    async def _watch(self, timeout: float) -> None:
        """While publishes wait for their answers, fail each one past its time with `NoAnswer`,
        oldest first: they were sent in order, each given the same time."""
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                await asyncio.sleep(min(max(timeout / 4, 0.01), 1.0))
                now = loop.time()
                expired = []
                for token, (_, deadline) in self._waiting.items():
                    if deadline > now:
                        break
                    expired.append(token)
                for token in expired:
                    future, _ = self._waiting.pop(token)
                    self._fences.pop(token, None)
                    if not future.done():
                        future.set_exception(NoAnswer(f"no answer from the stream within {timeout:g}s"))
                        future.exception()  # raised to whoever awaits it; not logged if no one does
        finally:
            self._watchdog = None

    def close(self) -> None:
        """The connection closed: what still waits for an answer will get none."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        waiting, self._waiting, self._fences = self._waiting, {}, {}
        for future, _ in waiting.values():
            if not future.done():
                future.set_exception(BusError("publish failed: the connection closed before the stream answered"))
                future.exception()

    def _on_answer(self, msg: Msg) -> None:
        token = msg.subject[len(self._prefix):]
        entry = self._waiting.pop(token, None)
        fence = self._fences.pop(token, None) if self._fences else None
        if entry is None or entry[0].done():
            return
        future = entry[0]
        if not msg.data:  # a status, not an answer: 503, no stream listens on the subject
            status = (msg.headers or {}).get(_STATUS, "no status")
            future.set_exception(BusError(f"publish failed: no stream takes the subject (status {status})"))
            return
        try:
            answer = _ANSWER.decode(msg.data)
        except msgspec.DecodeError as exc:
            future.set_exception(BusError(f"publish failed: the stream's answer is not JSON ({exc})"))
            return
        if answer.error is not None:
            refusal = answer.error
            if fence is not None and refusal.err_code == _WRONG_LAST_SEQUENCE:
                last = refusal.description.rpartition(" ")[2]  # "wrong last sequence: 42"
                future.set_exception(Fenced(fence[0], fence[1], int(last) if last.isdigit() else None))
                return
            future.set_exception(BusError(f"publish failed: the stream refused it: {refusal.description} "
                                          f"(JetStream error {refusal.err_code}, code {refusal.code})"))
            return
        future.set_result(PubAck(answer.stream, answer.seq, answer.duplicate))


def abandon(futures: list[asyncio.Future[PubAck]]) -> None:
    """Cancel what is still waiting and mark every failure as seen, so none is reported as lost."""
    for f in futures:
        if f.done():
            if not f.cancelled():
                f.exception()
        else:
            f.cancel()
