"""Fencing: copies the stream holds past its duplicate window are folded once, and a result of
an attempt that was timed out is never the task's result.

The paused-executor scenario (an executor SIGSTOPped mid-attempt, resumed after the retry
finished) is in tests/test_fencing_paused.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import msgspec
import pytest

import bus
import events
import store
from actors import Settings
from actors._runtime import rebuild, run_actor
from actors.distributor import Distributor
from actors.executor._actor import CONSUMER, POLICY, SUBJECT, Executor
from actors.monitor import Monitor
from bus import ConsumerPolicy, consumer_config
from store import Metrics, _once, report
from ymera import WorkflowClient
from ymera._client import history

from .support import running_writer, wait_until


def _common(workflow_id: str, cause: str | None = None, run: str = "") -> dict:
    return {"id": events.new_id(), "ts": events.now(), "workflow_id": workflow_id, "causation_id": cause,
            "run_id": run}


def _run(workflow_id: str) -> list[events.Event]:
    """One workflow: a task timed out, retried, and succeeded; the paused first attempt's result
    arrives after the timeout (a distinct id: results are per attempt)."""
    sub = events.WorkflowSubmitted(**_common(workflow_id), tasks=[events.TaskSpec(id="t", type="llm")])
    task = {"task_id": "t"}

    def of_run(cause: str | None = None) -> dict:
        return _common(workflow_id, cause, sub.id)

    return [
        sub,
        events.WorkflowAdmitted(**of_run(sub.id), principal="p"),
        events.WorkflowValidated(**of_run(), levels=[["t"]]),
        events.TaskReady(**of_run(), **task, attempt=1),
        events.TaskStarted(**of_run(), **task, attempt=1, executor="ex-paused"),
        events.TaskTimedOut(**of_run(), **task, attempt=1, reason="executor lost: no heartbeat for 15s"),
        events.TaskReady(**of_run(), **task, attempt=2),
        events.TaskStarted(**of_run(), **task, attempt=2, executor="ex-2"),
        events.TaskSucceeded(**of_run(), **task, attempt=1, output="late", duration_ms=95_000.0,
                             model="m", usage={"total_tokens": 900}),
        events.TaskSucceeded(**of_run(), **task, attempt=2, output="ok", duration_ms=800.0,
                             model="m", usage={"total_tokens": 9}),
        events.OutcomeChecked(**of_run(), **task, attempt=2, passed=True),
        events.WorkflowCompleted(**of_run(), overall_quality=0.9),
    ]


async def _copy(connection: bus.Bus, event: events.Event) -> None:
    """Publish `event` again without its Nats-Msg-Id: the stream keeps it, as past the window."""
    await connection.js.publish(events.subject_of(event), events.encode(event))


async def test_the_monitor_folds_each_event_once_whatever_the_stream_holds(
    nats_bus: bus.Bus, event_log: store.SqliteEventLog,
) -> None:
    first, second = _run("wf-copied"), _run("wf-other")
    monitor = Monitor(Settings(enable_continuous_monitoring=False))
    live = store.LiveProjection(Metrics(), nats_bus, 1)
    stop = asyncio.Event()
    async with running_writer(nats_bus, event_log) as writer:
        ready = asyncio.Event()
        tasks = [asyncio.create_task(run_actor(monitor, nats_bus, stop, ready)), asyncio.create_task(live.run(stop))]
        await ready.wait()
        await nats_bus.publish_many(first[:10])
        await _copy(nats_bus, first[9])  # a copy while the run is active
        await _copy(nats_bus, first[4])
        await nats_bus.publish_many(first[10:])
        await _copy(nats_bus, first[9])  # copies after the run ended
        await _copy(nats_bus, first[8])
        await nats_bus.publish_many(second)
        await _copy(nats_bus, first[0])  # the submission again, while another workflow runs
        await _copy(nats_bus, second[9])
        last = (await nats_bus.js.stream_info(bus.STREAM)).state.last_seq
        await wait_until(lambda: writer.position >= last, what="the log has every message")
        await live.wait_for(last)
        await _caught_up(nats_bus, "monitor")
        stop.set()
        await asyncio.gather(*tasks)
    rebuilt, _ = await store.rebuild(Metrics(), event_log)
    from_log = report(rebuilt)
    assert report(monitor.state) == from_log
    assert report(live.state) == from_log
    assert (from_log["tasks"]["succeeded"], from_log["tasks"]["late"], from_log["tasks"]["timed_out"]) == (2, 2, 2)
    assert from_log["models"]["m"]["tokens"] == 18
    assert from_log["models"]["m"]["mean_duration_ms"] == 800.0
    assert from_log["workflows"]["completed"] == 2
    # The monitor restarted on the same stream folds it to the same report.
    restarted = Monitor(Settings(enable_continuous_monitoring=False))
    await rebuild(restarted, nats_bus)
    assert report(restarted.state) == from_log
    # What the gates remember is bounded by the runs still active: none.
    assert (monitor.once.runs, live.once.runs, restarted.once.runs) == ({}, {}, {})


def test_recent_keeps_the_last_ids_and_evicts_alike_after_a_snapshot_round_trip() -> None:
    recent = store.Recent(100)
    for n in range(1_000):
        recent.add(f"id-{n}")
        assert min(n + 1, 100) <= len(recent) <= 125
        assert all(f"id-{k}" in recent for k in range(max(0, n - 99), n + 1))
        assert f"id-{n - 125}" not in recent
    restored = msgspec.msgpack.decode(msgspec.msgpack.encode(recent), type=store.Recent)
    for n in range(1_000, 1_050):
        recent.add(f"id-{n}")
        restored.add(f"id-{n}")
        assert list(restored.ids) == list(recent.ids)


async def _caught_up(connection: bus.Bus, consumer: str) -> None:
    for _ in range(400):
        info = await connection.js.consumer_info(connection.stream.name, consumer)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"consumer {consumer} did not catch up")


def test_the_gate_drops_copies_across_runs_of_one_workflow_id_and_forgets_within_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_once, "LOOSE_KEPT", 50)
    gate = store.Once()
    run1, run2 = _run("wf"), _run("wf")
    assert [gate.admit(e) for e in run1] == [True] * len(run1)
    assert gate.runs == {}
    # A second run of the same workflow id: its own events pass, the first run's copies do not.
    admitted = [gate.admit(e) for e in [run2[0], run1[9], run1[-1], *run2[1:]]]
    assert admitted == [True, False, False] + [True] * (len(run2) - 1)
    # Events of a workflow with no active run are not folded, and neither are their copies later.
    stray = events.TaskHeartbeat(**_common("wf-3"), task_id="t", attempt=1, executor="ex", beat=7)
    sub3 = events.WorkflowSubmitted(**_common("wf-3"), tasks=[events.TaskSpec(id="t", type="noop")])
    assert [gate.admit(stray), gate.admit(sub3), gate.admit(stray)] == [False, True, False]
    # Memory: the active run's ids, and the last LOOSE_KEPT forgotten ones (a quarter more at most).
    runs = [_run(f"wf-many-{n}") for n in range(20)]
    for run in runs:
        for e in run:
            gate.admit(e)
    assert [r.workflow_id for r in gate.runs.values()] == ["wf-3"]
    assert 50 <= len(gate.loose) <= 62
    assert all(e.id in gate.loose for e in runs[-1])
    assert not any(e.id in gate.loose for run in runs[:10] for e in run)
    # Each stream seq is rejected once.
    rejected = events.MessageRejected(**_common("wf-3"), subject="ymera.wf.wf-3.submitted", reason="not JSON",
                                      excerpt="{", size=1, stream_seq=41)
    assert [gate.admit(rejected), gate.admit(rejected)] == [True, False]


async def test_the_client_sees_each_event_of_a_workflow_once(nats_bus: bus.Bus) -> None:
    run = _run("wf-followed")
    client = WorkflowClient(nats_bus)
    seq = await client.submit(run[0])  # type: ignore[arg-type]
    await nats_bus.publish_many(run[1:10])
    await _copy(nats_bus, run[9])
    await _copy(nats_bus, run[3])
    await nats_bus.publish_many(run[10:])
    end, seen = await client.wait("wf-followed", seq, timeout=30)
    assert end == run[-1]
    assert [e.id for e in seen] == [e.id for e in run]
    await _copy(nats_bus, run[8])
    assert [e.id for e in await history(nats_bus, "wf-followed")] == [e.id for e in run]


async def test_a_distributor_behind_the_stream_does_not_take_its_lag_for_a_lost_executor(nats_bus: bus.Bus) -> None:
    settings = Settings(heartbeat_seconds=0.5)  # lost after 1.5 s of silence
    ten_s_ago = events.now() - timedelta(seconds=10)  # how far behind the distributor's reading is

    def common() -> dict:
        return {**_common("wf-busy"), "ts": ten_s_ago}

    read = [events.WorkflowSubmitted(**common(), tasks=[events.TaskSpec(id="t", type="sleep")]),
            events.WorkflowValidated(**common(), levels=[["t"]]),
            events.TaskReady(**common(), task_id="t", attempt=1),
            events.TaskStarted(**common(), task_id="t", attempt=1, executor="ex")]
    unread = events.TaskHeartbeat(**_common("wf-busy"), task_id="t", attempt=1, executor="ex", beat=19)
    await nats_bus.publish_many([*read, unread])
    await nats_bus.js.add_consumer(nats_bus.stream.name, consumer_config(
        Distributor.name, ConsumerPolicy(), subjects=Distributor.subjects))
    distributor = Distributor(settings)
    distributor.bus = nats_bus
    for event in read:
        distributor.apply(event)
    # The heartbeat is in the stream, not yet read: no timeout.
    assert await distributor.reconcile(events.now()) == []
    # Caught up (nothing pending), the silence is the executor's: timed out.
    await nats_bus.js.delete_consumer(nats_bus.stream.name, Distributor.name)
    await nats_bus.js.add_consumer(nats_bus.stream.name, consumer_config(
        Distributor.name, ConsumerPolicy(), subjects=Distributor.subjects, new_only=True))
    [timed_out] = await distributor.reconcile(events.now())
    assert isinstance(timed_out, events.TaskTimedOut)
    assert (timed_out.attempt, timed_out.reason) == (1, "executor lost: no heartbeat for 1.5s")


async def _redelivered_to_a_healthy_executor(connection: bus.Bus, workflow_id: str,
                                             *after: events.Event) -> list[tuple[str, str | None]]:
    """Publish a TaskReady and `after`; take the TaskReady once and give it back (its first
    executor froze or died), let a healthy executor have it; the attempt's starts and
    successes in the stream then, with their executors."""
    await connection.js.add_consumer(connection.stream.name, consumer_config(
        CONSUMER, POLICY, subjects=(SUBJECT,), new_only=True))
    spec = events.TaskSpec(id="t", type="echo", parameters={"text": "hi"})
    await connection.publish_many([events.TaskReady(**_common(workflow_id), task_id="t", attempt=1, spec=spec),
                                   *after])
    first = bus.PullBatches(connection.nc, connection.stream.name, CONSUMER, batch=1)
    await first.start()
    [held] = await first.next()
    await held.nak()  # given back at once: the second delivery goes to the healthy executor
    await first.stop()
    stop = asyncio.Event()
    running = asyncio.create_task(Executor(Settings(), "ex-healthy").run(connection, stop))
    await _caught_up(connection, CONSUMER)
    stop.set()
    await running
    return [(type(e).__name__, getattr(e, "executor", None)) for e in await history(connection, workflow_id)
            if isinstance(e, events.TaskStarted | events.TaskSucceeded)]


async def test_a_redelivered_attempt_that_was_timed_out_is_not_started_again(nats_bus: bus.Bus) -> None:
    # Its first executor published TaskStarted, then froze before acking the TaskReady.
    seen = await _redelivered_to_a_healthy_executor(
        nats_bus, "wf-frozen", events.TaskStarted(**_common("wf-frozen"), task_id="t", attempt=1, executor="ex-frozen"),
        events.TaskTimedOut(**_common("wf-frozen"), task_id="t", attempt=1, reason="executor lost"))
    assert seen == [("TaskStarted", "ex-frozen")]


async def test_a_redelivered_attempt_whose_result_is_in_the_stream_is_not_run_again(nats_bus: bus.Bus) -> None:
    # Its first executor published the result, then died before acking the TaskReady.
    seen = await _redelivered_to_a_healthy_executor(
        nats_bus, "wf-dead", events.TaskSucceeded(**_common("wf-dead"), task_id="t", attempt=1, output="hi",
                                                  executor="ex-dead"))
    assert seen == [("TaskSucceeded", "ex-dead")]
