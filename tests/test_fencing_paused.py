"""A paused executor comes back after its attempt was timed out, retried elsewhere, and the
workflow ended, and after the stream's duplicate window passed. It publishes nothing more
for that attempt, and the monitor's report folded from the stream equals the log's."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from pathlib import Path

import bus
import events
import store
from actors import Settings
from actors._runtime import rebuild
from actors.monitor import Monitor
from store import Metrics, report
from ymera import WorkflowClient
from ymera._client import store_caught_up

from .engine import Actors, connected, engine_env, wait_for_actors
from .support import next_msg, wait_until

ALL = ("store", "security", "validator", "distributor", "assessor", "monitor", "executor", "executor")
WINDOW = 2.0  # seconds; the stream's duplicate window, shortened for the test


async def test_a_paused_executor_resumed_after_its_attempt_was_timed_out_adds_nothing(
    nats_server: bus.EmbeddedServer, tmp_path: Path,
) -> None:
    actors = Actors(engine_env(tmp_path / "data", nats_server.url), tmp_path / "logs", ALL)
    task = events.TaskSpec(id="slow", type="sleep", parameters={"seconds": 2.0})
    submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-paused",
                                          principal="tests", tasks=[task])
    try:
        async with connected(nats_server.url) as connection:
            await wait_for_actors(connection)
            # Every process has connected (and set the window); shorten it under them.
            info = await connection.js.stream_info(bus.STREAM)
            await connection.js.update_stream(dataclasses.replace(info.config, duplicate_window=WINDOW))
            client = WorkflowClient(connection)
            seq = await client.submit(submission)
            started = await _first(connection, "ymera.task.wf-paused.slow.started")
            assert isinstance(started, events.TaskStarted)
            paused = next(i for i, p in enumerate(actors.procs)
                          if actors.names[i] == "executor" and started.executor.endswith(f"-{p.pid}"))
            actors.procs[paused].send_signal(signal.SIGSTOP)
            try:
                end, _ = await client.wait("wf-paused", seq, timeout=60)
                await asyncio.sleep(WINDOW + 1.0)  # past the window: a copy would now be kept
            finally:
                actors.procs[paused].send_signal(signal.SIGCONT)
            log = tmp_path / "logs" / f"{paused}-executor.log"
            with contextlib.suppress(AssertionError):  # asserted below, after what the stream shows
                await wait_until(lambda: "attempt abandoned" in log.read_text(), timeout=30)
            # A workflow after the resume: anything the resumed executor still had to say is in by then.
            after = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-after",
                                             principal="tests", tasks=[events.TaskSpec(id=f"t{i}", type="noop")
                                                                       for i in range(8)])
            end_after, _ = await client.wait("wf-after", await client.submit(after), timeout=60)
            await store_caught_up(connection)
            stream = await _raw(connection, "ymera.*.wf-paused.>")
            monitor = Monitor(Settings(enable_continuous_monitoring=False))
            await rebuild(monitor, connection)
    finally:
        codes = actors.stop()
    assert isinstance(end, events.WorkflowCompleted)
    assert isinstance(end_after, events.WorkflowCompleted)
    assert codes == [0] * len(ALL)

    timed_out = [e for e in stream if isinstance(e, events.TaskTimedOut)]
    assert [(e.attempt, e.reason) for e in timed_out] == [(1, "executor lost: no heartbeat for 1.5s")]
    after_timeout = stream[stream.index(timed_out[0]) + 1:]
    # Nothing of the timed-out attempt follows its timeout: no heartbeat, no result.
    assert [type(e).__name__ for e in after_timeout if getattr(e, "attempt", None) == 1] == []
    assert [e.attempt for e in stream if isinstance(e, events.TaskSucceeded)] == [2]
    assert end.results[0].attempts == 2
    assert "attempt abandoned" in log.read_text()

    async with store.SqliteEventLog(tmp_path / "data" / "events.db", readonly=True) as event_log:
        rebuilt, _ = await store.rebuild(Metrics(), event_log)
    assert report(monitor.state) == report(rebuilt)
    assert report(rebuilt)["tasks"]["succeeded"] == 9


async def _first(connection: bus.Bus, subject: str) -> events.Event:
    sub = await connection.follow(1, subject)
    try:
        msg = await next_msg(sub, 30)
        return events.decode(msg.data)
    finally:
        await sub.stop()


async def _raw(connection: bus.Bus, subject: str) -> list[events.Event]:
    """Every message on `subject` as the stream holds it, copies included."""
    sub = await connection.follow(1, subject)
    out: list[events.Event] = []
    try:
        while True:
            msg = await next_msg(sub, 2)
            out.append(events.decode(msg.data))
            if bus.pending_after(msg) == 0:
                return out
    finally:
        await sub.stop()
