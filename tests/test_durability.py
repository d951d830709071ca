"""The failures users of Celery, Prefect and LangGraph report most, each provoked on purpose.

Lost tasks on worker death, runs stuck after a crash, leaked concurrency slots, nodes
re-executed on resume, a rate limit reset by a restart, in-flight work dropped on shutdown.
Every actor is its own process here, killed with SIGKILL or stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import bus
import events
from ymera import WorkflowClient

from .engine import Actors, all_events, connected, engine_env, wait_for_actors
from .support import next_msg

ALL = ("store", "security", "validator", "distributor", "assessor", "monitor", "executor", "executor")


def submission(workflow_id: str, *tasks: events.TaskSpec, principal: str = "tests") -> events.WorkflowSubmitted:
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id,
                                    principal=principal, tasks=list(tasks))


def sleep(task_id: str, seconds: float, *deps: str) -> events.TaskSpec:
    return events.TaskSpec(id=task_id, type="sleep", parameters={"seconds": seconds}, dependencies=list(deps))


async def run_to_end(connection: bus.Bus, sub: events.WorkflowSubmitted, timeout: float = 60) -> events.Event:
    client = WorkflowClient(connection)
    seq = await client.submit(sub)
    end, _ = await client.wait(sub.workflow_id, seq, timeout=timeout)
    return end


async def wait_for(connection: bus.Bus, subject: str, timeout: float = 30) -> events.Event:
    sub = await connection.follow(1, subject)
    try:
        msg = await next_msg(sub, timeout)
        return events.decode(msg.data)
    finally:
        await sub.stop()


async def test_a_task_whose_executor_dies_is_retried_on_another(nats_server: bus.EmbeddedServer,
                                                                tmp_path: Path) -> None:
    actors = Actors(engine_env(tmp_path / "data", nats_server.url), tmp_path / "logs", ALL)
    try:
        async with connected(nats_server.url) as connection:
            await wait_for_actors(connection)
            client = WorkflowClient(connection)
            seq = await client.submit(submission("wf-lost", sleep("long", 3.0)))
            started = await wait_for(connection, "ymera.task.wf-lost.long.started")
            assert isinstance(started, events.TaskStarted)
            victim = next(i for i, p in enumerate(actors.procs)
                          if actors.names[i] == "executor" and started.executor.endswith(f"-{p.pid}"))
            actors.kill(victim)
            end, seen = await client.wait("wf-lost", seq, timeout=60)
    finally:
        actors.stop()
    assert isinstance(end, events.WorkflowCompleted)
    timed_out = [e for e in seen if isinstance(e, events.TaskTimedOut)]
    assert [(e.attempt, e.reason) for e in timed_out] == [(1, "executor lost: no heartbeat for 1.5s")]
    starts = [e for e in seen if isinstance(e, events.TaskStarted)]
    assert [s.attempt for s in starts] == [1, 2]
    assert starts[1].executor != starts[0].executor
    assert end.results[0].attempts == 2


async def test_a_killed_distributor_resumes_without_rerunning_finished_tasks(nats_server: bus.EmbeddedServer,
                                                                             tmp_path: Path) -> None:
    actors = Actors(engine_env(tmp_path / "data", nats_server.url), tmp_path / "logs", ALL)
    chain = [sleep("a", 0.2), sleep("b", 0.2, "a"), sleep("c", 1.0, "b"), sleep("d", 0.2, "c")]
    try:
        async with connected(nats_server.url) as connection:
            await wait_for_actors(connection)
            client = WorkflowClient(connection)
            seq = await client.submit(submission("wf-resume", *chain))
            await wait_for(connection, "ymera.task.wf-resume.c.started")
            distributor = actors.index("distributor")
            actors.kill(distributor)
            await asyncio.sleep(1.5)  # c ends while no distributor runs
            actors.restart(distributor)
            end, _ = await client.wait("wf-resume", seq, timeout=60)
            seen = await all_events(connection, "ymera.*.wf-resume.>")
    finally:
        actors.stop()
    assert isinstance(end, events.WorkflowCompleted)
    # One attempt per task: its one release and its one result (short attempts send no TaskStarted).
    assert Counter(e.task_id for e in seen if isinstance(e, events.TaskReady)) == {"a": 1, "b": 1, "c": 1, "d": 1}
    results = Counter(e.task_id for e in seen if isinstance(e, (events.TaskSucceeded, events.TaskFailed)))
    assert results == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert sum(isinstance(e, events.WorkflowCompleted) for e in seen) == 1


async def test_workflow_slots_come_from_events_and_never_leak(nats_server: bus.EmbeddedServer,
                                                               tmp_path: Path) -> None:
    env = engine_env(tmp_path / "data", nats_server.url, MAX_CONCURRENT_WORKFLOWS="1")
    actors = Actors(env, tmp_path / "logs", ALL)
    subs = [submission(f"wf-slot-{i}", sleep("x", 0.4), sleep("y", 0.2, "x")) for i in range(4)]
    try:
        async with connected(nats_server.url) as connection:
            await wait_for_actors(connection)
            client = WorkflowClient(connection)
            for s in subs:
                await client.submit(s)
            await wait_for(connection, "ymera.task.wf-slot-1.x.ready", timeout=30)
            actors.kill_and_restart(actors.index("distributor"))
            for s in subs:
                end, _ = await client.wait(s.workflow_id, timeout=60)
                assert isinstance(end, events.WorkflowCompleted)
            seen = await all_events(connection, "ymera.>")
    finally:
        actors.stop()
    active, most = 0, 0
    first_release: set[str] = set()
    for e in seen:
        if isinstance(e, events.TaskReady) and e.workflow_id not in first_release:
            first_release.add(e.workflow_id)
            active += 1
        elif isinstance(e, events.WorkflowCompleted):
            active -= 1
        most = max(most, active)
    assert (most, active) == (1, 0)
    order = [e.workflow_id for e in seen if isinstance(e, events.WorkflowCompleted)]
    assert order == [s.workflow_id for s in subs]


async def test_the_rate_limit_survives_a_restart_of_security(nats_server: bus.EmbeddedServer,
                                                             tmp_path: Path) -> None:
    env = engine_env(tmp_path / "data", nats_server.url, RATE_LIMIT_PER_HOUR="2")
    actors = Actors(env, tmp_path / "logs", ALL)
    try:
        async with connected(nats_server.url) as connection:
            await wait_for_actors(connection)
            for i in range(2):
                end = await run_to_end(connection, submission(f"wf-rate-{i}", sleep("s", 0), principal="alice"))
                assert isinstance(end, events.WorkflowCompleted)
            actors.kill_and_restart(actors.index("security"))
            await asyncio.sleep(0.5)
            refused = await run_to_end(connection, submission("wf-rate-2", sleep("s", 0), principal="alice"))
            other = await run_to_end(connection, submission("wf-rate-3", sleep("s", 0), principal="bob"))
    finally:
        actors.stop()
    assert isinstance(refused, events.WorkflowRefused)
    assert refused.reason == "principal alice is over its rate limit of 2 workflows per hour"
    assert isinstance(other, events.WorkflowCompleted)


async def test_a_workflow_id_runs_again_once_its_run_ended_and_never_twice_at_once(
        nats_server: bus.EmbeddedServer, tmp_path: Path) -> None:
    actors = Actors(engine_env(tmp_path / "data", nats_server.url), tmp_path / "logs", ALL)
    try:
        async with connected(nats_server.url) as connection:
            await wait_for_actors(connection)
            client = WorkflowClient(connection)
            first = submission("wf-again", sleep("s", 60))
            first_seq = await client.submit(first)
            await wait_for(connection, "ymera.task.wf-again.s.started")
            # Security folds which run is active from events: a restart does not forget it.
            actors.kill_and_restart(actors.index("security"))
            while_active = await run_to_end(connection, submission("wf-again", sleep("s", 0)))
            await client.cancel("wf-again", "make way", run_id=first.id)
            first_end, _ = await client.wait("wf-again", first_seq, timeout=60, run_id=first.id)
            actors.kill_and_restart(actors.index("security"))  # ... nor that it ended
            after = submission("wf-again", sleep("s", 0))
            after_end = await run_to_end(connection, after)
            seen = await all_events(connection, "ymera.*.wf-again.>")
    finally:
        actors.stop()
    assert isinstance(while_active, events.WorkflowRefused)
    assert while_active.reason == (f"workflow wf-again already has an active run {first.id}; "
                                   "wait for it to end or cancel it")
    assert isinstance(first_end, events.WorkflowCancelled)
    assert isinstance(after_end, events.WorkflowCompleted)
    assert after_end.run_id == after.id
    # Each run's events are its own: none was dropped as a copy of the other run's.
    releases = [(e.run_id, e.task_id, e.attempt) for e in seen if isinstance(e, events.TaskReady)]
    assert releases == [(first.id, "s", 1), (after.id, "s", 1)]
    assert [(e.run_id, e.task_id) for e in seen if isinstance(e, events.TaskSucceeded)] == [(after.id, "s")]
    assert all(e.run_id in (first.id, after.id, while_active.run_id) for e in seen
               if not isinstance(e, events.WorkflowSubmitted))


async def test_sigterm_lets_an_executor_finish_its_attempt(nats_server: bus.EmbeddedServer, tmp_path: Path) -> None:
    names = ("store", "security", "validator", "distributor", "assessor", "monitor", "executor")
    actors = Actors(engine_env(tmp_path / "data", nats_server.url), tmp_path / "logs", names)
    try:
        async with connected(nats_server.url) as connection:
            await wait_for_actors(connection)
            client = WorkflowClient(connection)
            # TaskStarted goes out at the first heartbeat (0.5 s in): 2.5 s of the attempt are left.
            seq = await client.submit(submission("wf-drain", sleep("s", 3.0)))
            await wait_for(connection, "ymera.task.wf-drain.s.started")
            executor = actors.procs[actors.index("executor")]
            t0 = time.monotonic()
            executor.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(executor.wait, 30)
            assert (code, time.monotonic() - t0 > 1.0) == (0, True)  # it waited for the attempt
            succeeded = await wait_for(connection, "ymera.task.wf-drain.s.succeeded", timeout=5)
            actors.restart(actors.index("executor"))
            end, _ = await client.wait("wf-drain", seq, timeout=30)
    finally:
        actors.stop()
    assert isinstance(succeeded, events.TaskSucceeded)
    assert succeeded.attempt == 1
    assert isinstance(end, events.WorkflowCompleted)


async def test_a_cancelled_workflow_ends_cancelled(nats_server: bus.EmbeddedServer, tmp_path: Path) -> None:
    actors = Actors(engine_env(tmp_path / "data", nats_server.url), tmp_path / "logs", ALL)
    try:
        async with connected(nats_server.url) as connection:
            await wait_for_actors(connection)
            client = WorkflowClient(connection)
            seq = await client.submit(submission("wf-cancel", sleep("long", 30), sleep("after", 0, "long")))
            await wait_for(connection, "ymera.task.wf-cancel.long.started")
            await client.cancel("wf-cancel", "changed my mind")
            end, seen = await client.wait("wf-cancel", seq, timeout=30)
    finally:
        actors.stop()
    assert isinstance(end, events.WorkflowCancelled)
    assert end.reason == "changed my mind"
    assert not any(isinstance(e, events.TaskReady) and e.task_id == "after" for e in seen)
