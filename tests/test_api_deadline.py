"""`execute_workflow(timeout=)` gives up on time while an attempt runs in this process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import events
import store
from actors import Settings
from ymera import GaveUpWaiting, Task, WorkflowOrchestrator


async def test_the_api_gives_up_on_time_cancels_the_workflow_it_runs_and_closes(tmp_path: Path) -> None:
    orch = WorkflowOrchestrator(Settings(data_dir=tmp_path / "data"))
    try:
        with pytest.raises(GaveUpWaiting) as info:
            await orch.execute_workflow("slow", [Task("nap", task_type="sleep", parameters={"seconds": 600})],
                                        timeout=1)
    finally:
        # Before, close() waited for the in-process executor to finish the 600 s attempt; the
        # bound only makes that failure end.
        await asyncio.wait_for(orch.close(), 60)
    assert str(info.value) == ("gave up waiting for workflow slow after 1s; "
                               "cancelled it (its actors ran in this process)")
    assert (info.value.workflow_id, info.value.seconds) == ("slow", 1)

    async with store.SqliteEventLog(tmp_path / "data" / "events.db", readonly=True) as log:
        stored = [events.decode(r.data) async for r in log.read()]
    assert [(e.workflow_id, e.reason) for e in stored if isinstance(e, events.WorkflowCancelled)] == [
        ("slow", "gave up waiting after 1s")]
    nap = [e for e in stored if isinstance(e, events.TaskFailed)]
    assert [(e.task_id, e.kind) for e in nap] == [("nap", "cancelled")]
