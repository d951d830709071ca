"""Publishing through the bus: each publish answered with its seq, a copy as a duplicate, every refusal
as a BusError saying why; a publish cancelled while it waits for its acks leaves nothing behind."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from typing import Any

import pytest

import bus
import events
from bus._publish import Publisher

from .support import started, wait_until


async def test_a_publish_cancelled_while_waiting_for_its_ack_leaves_no_unretrieved_exception(
    nats_bus: bus.Bus,
) -> None:
    # An executor cancels its heartbeat when the attempt ends, often in the middle of a publish.
    loop = asyncio.get_running_loop()
    reported: list[str] = []

    def handler(_: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reported.append(str(context.get("message")))

    loop.set_exception_handler(handler)
    try:
        for spins in range(12):
            task = asyncio.create_task(nats_bus.publish_many([started(n=spins), started(n=spins)]))
            for _ in range(spins):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            del task
        await asyncio.sleep(0.2)  # every ack in flight has arrived
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert reported == []


async def test_the_stream_answers_each_publish_with_its_seq_and_a_copy_as_a_duplicate(nats_bus: bus.Bus) -> None:
    first, second = started(task_id="a"), started(task_id="b")
    acks = await nats_bus.publish_many([first, second])
    again = await nats_bus.publish(first)
    assert [(a.stream, a.seq, a.duplicate) for a in acks] == [(bus.STREAM, 1, False), (bus.STREAM, 2, False)]
    assert (again.seq, again.duplicate) == (1, True)


async def test_a_message_the_stream_refuses_fails_with_the_streams_reason(nats_server: bus.EmbeddedServer) -> None:
    connection = await bus.connect(nats_server.url, stream=bus.StreamPolicy(max_msg_size=600))
    try:
        with pytest.raises(bus.BusError, match=r"^publish failed: the stream refused it: message size exceeds "
                                               r"maximum allowed \(JetStream error 10054, code 400\)$"):
            await connection.publish_many([started(task_id="t" * 700), started()])
        # Pipelined: the event sent with the refused one is stored (seq 1), and the connection goes on.
        assert (await connection.publish(started(task_id="small"))).seq == 2
    finally:
        await connection.close()


async def test_a_subject_no_stream_takes_fails_with_no_responders(nats_bus: bus.Bus) -> None:
    publisher = Publisher(nats_bus.nc)
    answer = await publisher.publish("elsewhere.x", b"{}", "an-id")
    with pytest.raises(bus.BusError, match=r"^publish failed: no stream takes the subject \(status 503\)$"):
        await asyncio.wait_for(answer, 5)


async def test_a_stream_that_does_not_answer_in_time_fails_the_publish(nats_server: bus.EmbeddedServer) -> None:
    connection = await bus.connect(nats_server.url, publish_timeout=0.5)
    assert nats_server.pid is not None
    try:
        os.kill(nats_server.pid, signal.SIGSTOP)
        # A stop lands when the kernel next schedules the server: until then it may still answer
        # (seen: an ack 0.7 ms after kill() returned, the process still running).
        await wait_until(lambda: _state(nats_server.pid) in ("T", "t"), 5, "the server to stop")
        try:
            with pytest.raises(bus.BusError, match=r"^nats: no ack from stream YMERA within 0.5s$"):
                await connection.publish(started())
        finally:
            os.kill(nats_server.pid, signal.SIGCONT)
        assert (await connection.publish(started(task_id="after"))).seq >= 1
    finally:
        await connection.close()


async def test_one_watchdog_times_every_publish_and_stops_when_none_waits(
        nats_server: bus.EmbeddedServer) -> None:
    connection = await bus.connect(nats_server.url)
    publisher = Publisher(connection.nc, timeout=0.3)
    assert nats_server.pid is not None
    try:
        answered = await publisher.publish("ymera.task.w.a.started", events.encode(started()), "id-1")
        assert (await asyncio.wait_for(answered, 5)).seq == 1
        await wait_until(lambda: publisher._watchdog is None, 5, "the watchdog to stop once nothing waits")
        os.kill(nats_server.pid, signal.SIGSTOP)
        await wait_until(lambda: _state(nats_server.pid) in ("T", "t"), 5, "the server to stop")
        try:
            unanswered = [await publisher.publish("ymera.task.w.a.started", events.encode(started(task_id=f"t{i}")),
                                                  f"id-t{i}") for i in range(3)]
            for future in unanswered:
                with pytest.raises(bus.BusError, match=r"^no answer from the stream within 0.3s$"):
                    await asyncio.wait_for(future, 5)
            assert publisher._waiting == {}
            # Closed with a publish waiting: it fails at once, saying why.
            waiting = await publisher.publish("ymera.task.w.a.started", events.encode(started(task_id="last")), "x")
            publisher.close()
            with pytest.raises(bus.BusError, match=r"^publish failed: the connection closed before the stream "
                                                   r"answered$"):
                await waiting
        finally:
            os.kill(nats_server.pid, signal.SIGCONT)
    finally:
        await connection.close()


def _state(pid: int | None) -> str:
    """A process's state letter from /proc (R running, S sleeping, T stopped, ...)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


async def test_a_fenced_publish_is_stored_only_while_its_filter_ends_where_the_writer_read_it(
        nats_bus: bus.Bus) -> None:
    over = events.subject_filter(events.TaskStarted)
    assert (await nats_bus.publish_after(started(task_id="a"), over, 0)).seq == 1  # nothing there yet
    with pytest.raises(bus.Fenced, match=r"^publish refused: the last message on ymera\.task\.\*\.\*\.started is "
                                         r"seq 1, not seq 0$") as caught:
        await nats_bus.publish_after(started(task_id="b"), over, 0)  # decided before "a" was there
    assert (caught.value.after, caught.value.last) == (0, 1)
    # A message outside the filter moves no fence: "b", decided on everything through seq 1, goes in.
    admitted = events.WorkflowAdmitted(id=events.new_id(), ts=events.now(), workflow_id="wf", principal="p")
    await nats_bus.publish(admitted)
    assert (await nats_bus.publish_after(started(task_id="b"), over, 1)).seq == 3
    assert (await nats_bus.stream_state()).last_seq == 3  # the refused one was never stored
