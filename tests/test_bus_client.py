"""The bus's direct path (bus/_client.py): a consumer's deliveries and the publisher's answers
reach a plain function as they are read, in order; a status keeps its headers, an event's
headers are not parsed; a forgotten subscription hands nothing more over."""

from __future__ import annotations

import asyncio

import msgspec
from nats.aio.msg import Msg

import bus
import events

from .support import started


class Collected(list[Msg]):
    """What a direct subscription handed over; `wait(n)` until it holds n."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def append(self, msg: Msg) -> None:
        super().append(msg)
        self.changed.set()

    async def wait(self, n: int) -> None:
        async with asyncio.timeout(5):
            while len(self) < n:
                self.changed.clear()
                await self.changed.wait()


async def test_a_direct_subscription_gets_each_message_in_order_without_parsing_its_headers(nats_bus: bus.Bus) -> None:
    got = Collected()
    sub = await nats_bus.nc.subscribe_direct("probe.>", got.append)
    for n in range(3):
        await nats_bus.nc.publish(f"probe.{n}", f"body {n}".encode(), reply=f"back.{n}",
                                  headers={"Nats-Msg-Id": str(n)})
    await got.wait(3)
    assert [(m.subject, m.reply, m.data, m.headers) for m in got] == [
        (f"probe.{n}", f"back.{n}", f"body {n}".encode(), None) for n in range(3)]

    nats_bus.nc.forget_direct(sub)
    await sub.unsubscribe()
    await nats_bus.nc.publish("probe.3", b"after")
    await nats_bus.nc.flush()
    await asyncio.sleep(0.05)
    assert len(got) == 3


async def test_a_status_reaches_a_direct_subscription_with_its_headers(nats_bus: bus.Bus) -> None:
    batches = await nats_bus.reader("probe", bus.ConsumerPolicy(ack_wait=30.0, max_deliver=3))
    await batches.stop()
    got = Collected()
    inbox = nats_bus.nc.new_inbox()
    await nats_bus.nc.subscribe_direct(inbox, got.append)
    # A pull request that must not wait, on a consumer with nothing to deliver: "404 No Messages".
    request = msgspec.json.encode({"batch": 1, "no_wait": True})
    await nats_bus.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{nats_bus.stream.name}.probe", request, reply=inbox)
    await got.wait(1)
    assert (got[0].data, got[0].headers) == (b"", {"Status": "404", "Description": "No Messages"})


async def test_a_delivery_on_the_direct_path_acks_as_a_message_does(nats_bus: bus.Bus) -> None:
    await nats_bus.publish(started(task_id="a"))
    batches = await nats_bus.reader("acker", bus.ConsumerPolicy(ack_wait=30.0, max_deliver=3), ack_all=True)
    try:
        msgs = await batches.next()
        assert [bus.stream_seq(m) for m in msgs] == [1]
        await bus.ack(msgs[-1])
        state = None
        for _ in range(50):
            state = await nats_bus.consumer_state("acker")
            if state is not None and state.ack_floor_seq == 1:
                break
            await asyncio.sleep(0.02)
        assert state is not None
        assert (state.ack_floor_seq, state.num_ack_pending) == (1, 0)
    finally:
        await batches.stop()


async def test_read_through_gives_what_the_subject_holds_when_the_read_begins_and_ends(nats_bus: bus.Bus) -> None:
    alerts_only = events.domain_filter(events.AlertRaised)
    assert [m async for m in nats_bus.read_through(alerts_only)] == []  # nothing stored: ends at once
    alerts = [events.AlertRaised(id=f"a{n}", ts=events.now(), workflow_id="_", alert="x", severity="info",
                                 message=str(n)) for n in range(5)]
    await nats_bus.publish_many(alerts)
    await nats_bus.publish(events.WorkflowSubmitted(id="w", ts=events.now(), workflow_id="w"))  # another subject
    read = [nats_bus.decode_msg(m).id async for m in nats_bus.read_through(alerts_only)]
    assert read == [a.id for a in alerts]
    later = [nats_bus.decode_msg(m).id async for m in nats_bus.read_through(alerts_only, 3)]
    assert later == ["a2", "a3", "a4"]  # seqs 3-5


async def test_a_small_batch_lingers_for_what_follows_it(nats_bus: bus.Bus) -> None:
    await nats_bus.publish(started(task_id="a"))
    batches = await nats_bus.reader("lingerer", bus.ConsumerPolicy(ack_wait=30.0, max_deliver=3), ack_all=True,
                                    poll=5.0, linger=0.5)
    try:
        taking = asyncio.create_task(batches.next())
        for _ in range(500):  # until the first is on its way to the reader, before the others are sent
            state = await nats_bus.consumer_state("lingerer")
            if state is not None and state.delivered_seq >= 1:
                break
            await asyncio.sleep(0.01)
        await nats_bus.publish_many([started(task_id=t) for t in ("b", "c", "d")])
        msgs = await taking
        assert [bus.stream_seq(m) for m in msgs] == [1, 2, 3, 4]
    finally:
        await batches.stop()

