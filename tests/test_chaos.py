"""Chaos: workflows across 3 executor processes while actors are SIGKILLed every 0.5 s for 22 s, the
nats-server is SIGKILLed once with workflows in flight, and two executors are paused with
SIGSTOP, one of them for longer than the stream's duplicate window. Everything still ends
exactly once, the log is the stream's first copies, and the monitor's report folded live
equals the one rebuilt from the log.

The test proves its chaos happened: each kill hit a live process, attempts were timed out
and retried, workflows were open when the server died and went on after it came back, and
the pauses overlapped running attempts. Nothing else crashed.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import msgspec

import bus
import events
import store
from actors import run_actor
from actors.distributor import DistributorState
from actors.monitor import Monitor
from store import Metrics, report

from .chaos import (
    ACTORS,
    IN_FLIGHT_AT_SERVER_KILL,
    LONG_PAUSED,
    SHORT_PAUSED,
    SUBMITTED_FIRST,
    TASKS,
    WINDOW,
    WORKFLOWS,
    Chaos,
    consumer_states,
    make_chaos,
    read_stream,
    stop_writer_last,
    tails,
    unexpected_crashes,
)
from .conftest import ymera
from .engine import Actors, assert_indexes_true, connected, engine_env, settings_of, wait_for_actors
from .support import wait_until


class _ProbeMonitor(Monitor):
    """The monitor's own fold, run in the test to read its live state (it raises no alerts)."""

    name = "monitor-probe"


def _submission(rng: random.Random, n: int) -> events.WorkflowSubmitted:
    tasks = []
    for i in range(TASKS):
        deps = sorted({f"t{j}" for j in rng.sample(range(i), min(i, rng.randint(0, 2)))})
        kind = rng.choice(["noop", "echo", "sleep"])
        # A sleep outlives its first heartbeat (0.5 s), so it sends TaskStarted: what a pause
        # is seen to catch, and what heartbeat loss times out.
        params = ({"seconds": round(rng.uniform(0.8, 1.6), 2)} if kind == "sleep"
                  else {"text": f"{n}-{i}"} if kind == "echo" else {})
        # Kills time attempts out again and again; no task may run out of attempts because of it.
        tasks.append(events.TaskSpec(id=f"t{i}", type=kind, dependencies=deps, parameters=params,
                                     retry=events.RetryPolicy(max_attempts=10),
                                     priority=rng.choice(["CRITICAL", "HIGH", "MEDIUM", "LOW"])))
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=f"chaos-{n:03d}",
                                    principal="chaos", tasks=tasks)


async def test_workflows_end_exactly_once_through_kills_pauses_and_a_killed_server(
    nats_server: bus.EmbeddedServer, tmp_path: Path,
) -> None:
    env = engine_env(tmp_path / "data", nats_server.url, TASK_TIMEOUT_SECONDS="20",
                     YMERA_DUPLICATE_WINDOW_SECONDS=str(WINDOW), YMERA_LOG_LEVEL="info")
    settings = settings_of(env)
    rng = random.Random(2026)
    submissions = [_submission(rng, n) for n in range(WORKFLOWS)]
    chaos = Chaos()
    stop_probes = asyncio.Event()
    actors: Actors | None = None
    async with connected(nats_server.url, bus.stream_policy(settings)) as connection:
        probe = _ProbeMonitor(msgspec.structs.replace(settings, enable_continuous_monitoring=False))
        probe_ready = asyncio.Event()
        probe_task = asyncio.create_task(run_actor(probe, connection, stop_probes, probe_ready))
        live = store.LiveProjection(Metrics(), connection, 1)
        live_task = asyncio.create_task(live.run(stop_probes))
        try:
            await asyncio.wait_for(probe_ready.wait(), 30)
            actors = Actors(env, tmp_path / "logs", ACTORS)
            await wait_for_actors(connection, timeout=120)
            await connection.publish_many(submissions[:SUBMITTED_FIRST])
            # The chaos begins once work runs: attempts are in flight on every executor.
            await wait_until(lambda: live.state.tasks["started"] >= 100, timeout=120,
                             what="attempts to start")
            await make_chaos(actors, nats_server, connection, live, rng, chaos, submissions[SUBMITTED_FIRST:])
            try:
                await wait_until(lambda: not live.state.active, timeout=240, what="every workflow to end")
            except AssertionError as exc:  # say whether it is stuck (and where) or only slow
                raise AssertionError(f"{exc}; {len(live.state.active)} open\n"
                                     f"{await consumer_states(connection)}\n{tails(tmp_path / 'logs')}") from None
            codes = await stop_writer_last(actors, connection)
            last_seq = (await connection.js.stream_info(bus.STREAM)).state.last_seq
            window = (await connection.js.stream_info(bus.STREAM)).config.duplicate_window
            await live.wait_for(last_seq, timeout=60)
            await wait_until(lambda: probe.state.workflows["completed"] >= WORKFLOWS, timeout=60,
                             what="the probe monitor to fold every end")
            stream = await read_stream(connection, last_seq)
        finally:
            stop_probes.set()
            await asyncio.gather(probe_task, live_task, return_exceptions=True)
            if actors is not None:
                for i in chaos.paused:
                    actors.resume(i)
                actors.stop()
    logs = tmp_path / "logs"
    await probe_task  # it survived the chaos without crashing
    await live_task

    # Each kill hit a live process; kills went on while workflows were open.
    assert len(actors.kill_codes) == sum(actors.kills.values()) >= 25
    assert set(actors.kill_codes) == {-9}, (actors.kill_codes, tails(logs))
    assert chaos.kills_while_open >= 25, chaos.kills_while_open
    assert chaos.open_after > 0, "every workflow ended before the chaos did"
    assert set(actors.kills) == set(ACTORS), actors.kills  # every kind of actor was killed
    assert codes == [0] * len(ACTORS), tails(logs)
    assert window == WINDOW

    # The log is the stream's first copies, row by row: nothing missing, nothing extra.
    async with store.SqliteEventLog(tmp_path / "data" / "events.db", readonly=True) as log:
        rows = [(r.seq, r.id, r.type, r.subject, r.workflow_id, r.data) async for r in log.read()]
        rebuilt, _ = await store.rebuild(Metrics(), log)
        audit = await store.verify(log)
    assert audit.ok, str(audit.broken)
    in_log = {row[0] for row in rows}
    # The store writer's last checkpoint, published as it stopped, is past the log's head.
    first_copies = [c for c in _first_copies(stream) if not (c[2] == "ChainCheckpoint" and c[0] > max(in_log))]
    assert [(seq, kind, subject) for seq, _, kind, subject, *_ in first_copies if seq not in in_log] == []
    assert rows == first_copies
    stored = [events.decode(data) for *_, data in rows]
    seq_of = {event.id: seq for (seq, *_), event in zip(rows, stored, strict=True)}

    # Everything ended exactly once.
    ends = Counter((type(e).__name__, e.workflow_id) for e in stored
                   if isinstance(e, (events.WorkflowCompleted, events.WorkflowFailed, events.WorkflowCancelled)))
    assert ends == Counter({("WorkflowCompleted", s.workflow_id): 1 for s in submissions}), tails(logs)
    # Each task has one result, the one the distributor took, scored by its own success (no
    # model writes these kinds: each is scored in its attempt, and no TaskAssessed follows);
    # every other success in the log is a late result of an attempt that had already ended
    # (docs/engine.md, "Fencing").
    taken = {(e.workflow_id, r.task_id, r.attempts): r.quality for e in stored
             if isinstance(e, events.WorkflowCompleted) for r in e.results}
    assert sorted((wf, task) for wf, task, _ in taken) == sorted((s.workflow_id, t.id) for s in submissions
                                                                  for t in s.tasks)
    carried = {(e.workflow_id, e.task_id, e.attempt): e.quality.overall for e in stored
               if isinstance(e, events.TaskSucceeded) and e.quality is not None}
    assert {attempt: carried.get(attempt) for attempt in taken} == taken
    assert [e for e in stored if isinstance(e, events.TaskAssessed)] == []
    successes = {(e.workflow_id, e.task_id) for e in stored if isinstance(e, events.TaskSucceeded)}
    assert _uncounted_successes_not_late(stored, set(taken)) == []
    state = DistributorState()
    for event in stored:  # (its indexes over the tasks stay true through retries, timeouts and late results)
        state.apply(event)
        assert_indexes_true(state)
    assert state.workflows == {}, "a workflow is still active after all ended"
    assert state.active_slots == 0
    started = {(e.workflow_id, e.task_id, e.attempt) for e in stored if isinstance(e, events.TaskStarted)}
    finished = {(e.workflow_id, e.task_id, e.attempt) for e in stored
                if isinstance(e, (events.TaskSucceeded, events.TaskFailed, events.TaskTimedOut))}
    dangling = {s for s in started - finished if (s[0], s[1]) not in successes}
    assert dangling == set(), "attempts left running"

    # Attempts were timed out and retried.
    retried = {(e.workflow_id, e.task_id, e.attempt) for e in stored if isinstance(e, events.TaskRetryScheduled)}
    released = {(e.workflow_id, e.task_id, e.attempt) for e in stored if isinstance(e, events.TaskReady)}
    effective = _effective_timeouts(stored)
    assert effective, "no attempt was timed out"
    assert {(e.workflow_id, e.task_id, e.attempt + 1) for e in effective} <= retried
    retries_that_succeeded = {(e.workflow_id, e.task_id, e.attempt + 1) for e in effective} & released & set(taken)
    assert retries_that_succeeded, "no timed-out attempt was retried to success"

    # Workflows were open when the server was SIGKILLed, and went on after it came back.
    assert chaos.server_kill_code == -9
    assert [seq for seq, _, _ in stream] == list(range(1, last_seq + 1))  # no seq lost, none reused
    assert last_seq > chaos.seq_after_restart >= chaos.seq_before_kill
    # (open at the kill: submitted before it and not ended; going on after: tasks released or
    # done after the restart)
    submitted = {e.workflow_id for e in stored if seq_of[e.id] <= chaos.seq_before_kill
                 and isinstance(e, events.WorkflowSubmitted)}
    ended = {e.workflow_id for e in stored if seq_of[e.id] <= chaos.seq_before_kill
             and isinstance(e, (events.WorkflowCompleted, events.WorkflowFailed, events.WorkflowCancelled))}
    after = {e.workflow_id for e in stored if seq_of[e.id] > chaos.seq_after_restart
             and isinstance(e, (events.TaskReady, events.TaskSucceeded))}
    in_flight = (submitted - ended) & after
    assert len(in_flight) >= IN_FLIGHT_AT_SERVER_KILL, f"only {len(in_flight)} workflows were in flight"

    # Each pause caught its executor with attempts in flight: started before the SIGSTOP, and
    # with no result from before it.
    assert set(chaos.paused) == {LONG_PAUSED, SHORT_PAUSED}
    for i, (stopped, resumed) in chaos.paused.items():
        assert resumed is not None
        at = stopped.astimezone()
        held = {(e.workflow_id, e.task_id, e.attempt) for e in stored if isinstance(e, events.TaskStarted)
                and e.executor.endswith(f"-{chaos.paused_pids[i]}") and e.ts < at}
        held -= {(e.workflow_id, e.task_id, e.attempt) for e in stored
                 if isinstance(e, (events.TaskSucceeded, events.TaskFailed)) and e.ts < at}
        assert held, f"the executor paused at {stopped:%H:%M:%S} had no attempt in flight"

    # No timed-out attempt's result is a task's result: nothing is taken or scored for an
    # attempt after the distributor gave up on it.
    gave_up: set[tuple[str, str, int]] = set()
    reported: set[tuple[str, str, int]] = set()  # a timeout after its attempt's result changes nothing
    for event in stored:
        if isinstance(event, (events.TaskSucceeded, events.TaskFailed)):
            reported.add((event.workflow_id, event.task_id, event.attempt))
        elif isinstance(event, events.TaskTimedOut) and (
                event.workflow_id, event.task_id, event.attempt) not in reported:
            gave_up.add((event.workflow_id, event.task_id, event.attempt))
    assert sorted(set(taken) & gave_up) == []

    # The monitor's report, folded live (by the monitor's own fold and by a live projection),
    # equals the one rebuilt from the log.
    assert report(probe.state) == report(rebuilt)
    assert report(live.state) == report(rebuilt)

    # No actor crashed and was restarted by its supervisor, but for the server's outage.
    assert unexpected_crashes(logs, chaos) == []

    result = ymera("audit", "verify", env=env)
    assert result.returncode == 0, result.stderr


def _uncounted_successes_not_late(stored: list[events.Event], taken: set[tuple[str, str, int]]) -> list[str]:
    """Successes that are not their task's result (`taken`: the attempts the distributor took)
    and yet came while their attempt was still the task's running one (neither timed out,
    failed, nor superseded before)."""
    ended: set[tuple[str, str, int]] = set()
    latest: dict[tuple[str, str], int] = {}
    out = []
    for event in stored:
        if isinstance(event, events.TaskReady):
            latest[(event.workflow_id, event.task_id)] = event.attempt
        elif isinstance(event, (events.TaskTimedOut, events.TaskFailed)):
            ended.add((event.workflow_id, event.task_id, event.attempt))
        elif isinstance(event, events.TaskSucceeded):
            attempt = (event.workflow_id, event.task_id, event.attempt)
            superseded = latest.get((event.workflow_id, event.task_id), 0) > event.attempt
            if attempt not in taken and attempt not in ended and not superseded:
                out.append(f"{event.workflow_id}/{event.task_id} attempt {event.attempt}")
    return out


def _effective_timeouts(stored: list[events.Event]) -> list[events.TaskTimedOut]:
    """Timeouts of attempts whose task had not succeeded yet, in log order (a distributor whose
    fold lags can time out an attempt whose success is already in the stream)."""
    succeeded: set[tuple[str, str]] = set()
    out = []
    for event in stored:
        if isinstance(event, events.TaskSucceeded):
            succeeded.add((event.workflow_id, event.task_id))
        elif isinstance(event, events.TaskTimedOut) and (event.workflow_id, event.task_id) not in succeeded:
            out.append(event)
    return out


def _first_copies(stream: list[tuple[int, str, bytes]]) -> list[tuple[int, str, str, str, str, bytes]]:
    """The rows a faithful log holds: each valid event's first copy in the stream, in stream order."""
    rows, seen = [], set()
    for seq, subject, data in stream:
        try:
            event = events.decode_message(subject, data)
        except events.MalformedEvent:
            continue
        if event.id not in seen:
            seen.add(event.id)
            rows.append((seq, event.id, type(event).__name__, subject, event.workflow_id, data))
    return rows
