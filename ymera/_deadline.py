"""Waiting for a workflow's end with a deadline, and what becomes of the workflow when it passes.

`ymera run --timeout` and `WorkflowOrchestrator.execute_workflow(timeout=)` stop waiting on
time, whatever an executor in this process is doing, and say what became of the workflow:
actors elsewhere run it on; actors in this process stop with the caller, so the workflow is
cancelled (the executor cancels its running attempts at once) rather than left open in the
stream with nobody to run it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from events import Event, WorkflowCancelled, YmeraError

from ._client import END_STATUS, WorkflowClient, store_caught_up

__all__ = ["CANCEL_WAIT_SECONDS", "GaveUpWaiting", "wait_or_give_up"]

# How long to wait, after giving up on a workflow, for its cancellation to be decided and stored.
CANCEL_WAIT_SECONDS = 10.0


class GaveUpWaiting(YmeraError):
    """The deadline passed before the workflow ended; `fate` says what became of it."""

    def __init__(self, workflow_id: str, seconds: float, fate: str) -> None:
        super().__init__(f"gave up waiting for workflow {workflow_id} after {seconds:g}s; {fate}")
        self.workflow_id = workflow_id
        self.seconds = seconds
        self.fate = fate


async def wait_or_give_up(client: WorkflowClient, workflow_id: str, seq: int, timeout: float | None, *,
                          in_process: bool, on_event: Callable[[Event], None] | None = None,
                          run_id: str | None = None) -> tuple[Event, list[Event]]:
    """The run's end and every event of it seen, or GaveUpWaiting once `timeout` seconds have passed.
    The run is `run_id`, or else the first one submitted at or after `seq`."""
    try:
        async with asyncio.timeout(timeout) as waiting:
            return await client.wait(workflow_id, seq, on_event=on_event, run_id=run_id)
    except TimeoutError:
        if not waiting.expired():
            raise
    assert timeout is not None
    raise GaveUpWaiting(workflow_id, timeout, await _fate(client, workflow_id, seq, timeout, in_process, run_id))


async def _fate(client: WorkflowClient, workflow_id: str, seq: int, timeout: float, in_process: bool,
                run_id: str | None) -> str:
    if not in_process:
        return f"it goes on (ymera status {workflow_id} to follow it, ymera cancel {workflow_id} to stop it)"
    # Its own submission, so its own to cancel: the end is waited for below, from the run's start.
    await client.cancel(workflow_id, f"gave up waiting after {timeout:g}s", run_id or "", wait=None)
    try:
        end, _ = await client.wait(workflow_id, seq, timeout=CANCEL_WAIT_SECONDS, run_id=run_id)
    except YmeraError:
        return f"asked to cancel it, and it had not ended {CANCEL_WAIT_SECONDS:g}s later"
    with contextlib.suppress(YmeraError):
        await store_caught_up(client.bus)  # the cancellation is in the log before the actors stop
    if isinstance(end, WorkflowCancelled):
        return "cancelled it (its actors ran in this process)"
    return f"it ended meanwhile: {END_STATUS[type(end)]}"
