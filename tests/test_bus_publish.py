"""Publishing through the bus: a publish cancelled while it waits for its acks leaves nothing behind."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import bus

from .support import started


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
