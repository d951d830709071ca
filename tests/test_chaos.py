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
import re
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import nats.errors

import bus
import events
import store
from actors import run_actor
from actors.distributor import DistributorState
from actors.monitor import Monitor
from store import Metrics, MetricsState, report

from .conftest import ymera
from .engine import Actors, connected, engine_env, settings_of, wait_for_actors
from .support import next_msg, wait_until

WORKFLOWS, TASKS = 225, 20
# 150 workflows are submitted before the chaos (every executor holds attempts when the pauses
# begin), the rest one by one through it, so workflows are open for the whole chaos however
# fast this machine runs them.
SUBMITTED_FIRST = 150
# At least this many workflows were open (submitted, not ended) when nats-server was SIGKILLed
# and went on after it came back: twice as many are submitted in a burst just before the kill.
IN_FLIGHT_AT_SERVER_KILL = 10
ACTORS = ("store", "security", "validator", "distributor", "assessor", "monitor",
          "executor", "executor", "executor")
LONG_PAUSED, SHORT_PAUSED = 8, 7  # the executors paused (indexes into ACTORS)
WINDOW = 8.0  # the stream's duplicate window in this test, seconds (120 by default)
LONG_PAUSE = WINDOW + 6.0  # its attempts' retries succeed within ~4 s: its late copies come past the window
SHORT_PAUSE = 3.0  # past 3 missed heartbeats of 0.5 s: its attempts are timed out, not yet retried
KILL_EVERY = 0.5
CHAOS_SECONDS = 22.0
# Seconds into the chaos: after both pauses, once the long-paused executor has had its say
# (killed while it is paused, the server would take its late publishes down with its socket).
SERVER_KILL_AT = 1.0 + LONG_PAUSE + 2.0
# After the server restarts, a publish sent just before it died waits out its ack (10 s) and
# its actor may crash-restart: the only crashes allowed, and only for this long.
OUTAGE_GRACE = 15.0


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


class _Chaos:
    """What the test did, and when, for the assertions."""

    def __init__(self) -> None:
        self.server_kill_code: int | None = None
        self.seq_before_kill = 0  # the stream's last seq just before the server was killed
        self.seq_after_restart = 0  # ... and just after it came back: >= its last seq at the kill
        self.server_down_at: datetime | None = None
        self.server_up_at: datetime | None = None
        self.paused: dict[int, tuple[datetime, datetime | None]] = {}  # actor index -> (SIGSTOP, SIGCONT)
        self.paused_pids: dict[int, int] = {}
        self.kills_while_open = 0
        self.open_after = 0  # workflows still open when the chaos stopped


async def test_workflows_end_exactly_once_through_kills_pauses_and_a_killed_server(
    nats_server: bus.EmbeddedServer, tmp_path: Path,
) -> None:
    env = engine_env(tmp_path / "data", nats_server.url, TASK_TIMEOUT_SECONDS="20",
                     YMERA_DUPLICATE_WINDOW_SECONDS=str(WINDOW), YMERA_LOG_LEVEL="info")
    settings = settings_of(env)
    rng = random.Random(2026)
    submissions = [_submission(rng, n) for n in range(WORKFLOWS)]
    chaos = _Chaos()
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
            await _make_chaos(actors, nats_server, connection, live, rng, chaos, submissions[SUBMITTED_FIRST:])
            await wait_until(lambda: not live.state.active, timeout=240, what="every workflow to end")
            codes = await _stop_writer_last(actors, connection)
            last_seq = (await connection.js.stream_info(bus.STREAM)).state.last_seq
            window = (await connection.js.stream_info(bus.STREAM)).config.duplicate_window
            await live.wait_for(last_seq, timeout=60)
            await wait_until(lambda: probe.state.workflows["completed"] >= WORKFLOWS, timeout=60,
                             what="the probe monitor to fold every end")
            stream = await _read_stream(connection, last_seq)
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
    assert set(actors.kill_codes) == {-9}, (actors.kill_codes, _tails(logs))
    assert chaos.kills_while_open >= 25, chaos.kills_while_open
    assert chaos.open_after > 0, "every workflow ended before the chaos did"
    assert set(actors.kills) == set(ACTORS), actors.kills  # every kind of actor was killed
    assert codes == [0] * len(ACTORS), _tails(logs)
    assert window == WINDOW

    # The log is the stream's first copies, row by row: nothing missing, nothing extra.
    async with store.SqliteEventLog(tmp_path / "data" / "events.db", readonly=True) as log:
        rows = [(r.seq, r.id, r.type, r.subject, r.workflow_id, r.data) async for r in log.read()]
        rebuilt, _ = await store.rebuild(Metrics(), log)
        audit = await store.verify(log)
    assert audit.ok, str(audit.broken)
    first_copies = _first_copies(stream)
    in_log = {row[0] for row in rows}
    assert [(seq, kind, subject) for seq, _, kind, subject, *_ in first_copies if seq not in in_log] == []
    assert rows == first_copies
    stored = [events.decode(data) for *_, data in rows]
    seq_of = {event.id: seq for (seq, *_), event in zip(rows, stored, strict=True)}

    # Everything ended exactly once.
    ends = Counter((type(e).__name__, e.workflow_id) for e in stored
                   if isinstance(e, (events.WorkflowCompleted, events.WorkflowFailed, events.WorkflowCancelled)))
    assert ends == Counter({("WorkflowCompleted", s.workflow_id): 1 for s in submissions}), _tails(logs)
    # Each task has one result, the one the assessor scored; every other success in the log
    # is a late result of an attempt that had already ended (docs/engine.md, "Fencing").
    scored = Counter((e.workflow_id, e.task_id) for e in stored if isinstance(e, events.TaskAssessed))
    assert scored == Counter({(s.workflow_id, t.id): 1 for s in submissions for t in s.tasks})
    successes = {(e.workflow_id, e.task_id) for e in stored if isinstance(e, events.TaskSucceeded)}
    assert _uncounted_successes_not_late(stored) == []
    state = DistributorState()
    for event in stored:
        state.apply(event)
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
    taken = {(e.workflow_id, e.task_id, e.attempt) for e in stored if isinstance(e, events.TaskAssessed)}
    retries_that_succeeded = {(e.workflow_id, e.task_id, e.attempt + 1) for e in effective} & released & taken
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

    # No timed-out attempt's result is a task's result: nothing is checked or scored for an
    # attempt after the distributor gave up on it.
    gave_up: set[tuple[str, str, int]] = set()
    reported: set[tuple[str, str, int]] = set()  # a timeout after its attempt's result changes nothing
    counted_late = []
    for event in stored:
        if isinstance(event, (events.TaskSucceeded, events.TaskFailed)):
            reported.add((event.workflow_id, event.task_id, event.attempt))
        elif isinstance(event, events.TaskTimedOut) and (
                event.workflow_id, event.task_id, event.attempt) not in reported:
            gave_up.add((event.workflow_id, event.task_id, event.attempt))
        elif isinstance(event, events.TaskAssessed) and (
                event.workflow_id, event.task_id, event.attempt) in gave_up:
            counted_late.append(f"{type(event).__name__} {event.workflow_id}/{event.task_id} attempt {event.attempt}")
    assert counted_late == []

    # The monitor's report, folded live (by the monitor's own fold and by a live projection),
    # equals the one rebuilt from the log.
    assert report(probe.state) == report(rebuilt)
    assert report(live.state) == report(rebuilt)

    # No actor crashed and was restarted by its supervisor, but for the server's outage.
    assert _unexpected_crashes(logs, chaos) == []

    result = ymera("audit", "verify", env=env)
    assert result.returncode == 0, result.stderr


async def _make_chaos(actors: Actors, server: bus.EmbeddedServer, connection: bus.Bus,
                      live: store.LiveProjection[MetricsState], rng: random.Random, chaos: _Chaos,
                      to_submit: list[events.WorkflowSubmitted]) -> None:
    """For CHAOS_SECONDS: kill an actor every 0.5 s, pause two executors, kill the server once,
    and submit `to_submit` one by one, evenly spread over the chaos."""
    began = time.monotonic()
    to_submit = list(to_submit)
    submit_every = CHAOS_SECONDS / (len(to_submit) + 1)
    next_submit = submit_every
    schedule = [  # (seconds into the chaos, what happens); kills fill the time between
        (1.0, lambda: _pause(actors, LONG_PAUSED, chaos)),
        (3.0, lambda: _pause(actors, SHORT_PAUSED, chaos)),
        (3.0 + SHORT_PAUSE, lambda: _resume(actors, SHORT_PAUSED, chaos)),
        (1.0 + LONG_PAUSE, lambda: _resume(actors, LONG_PAUSED, chaos)),
    ]
    distributor = actors.index("distributor")
    next_kill = KILL_EVERY
    while (elapsed := time.monotonic() - began) < CHAOS_SECONDS:
        while schedule and schedule[0][0] <= elapsed:
            schedule.pop(0)[1]()
        if chaos.server_kill_code is None and elapsed >= SERVER_KILL_AT:
            # A burst just before the kill: these are open when the server dies.
            burst, to_submit[:] = to_submit[:IN_FLIGHT_AT_SERVER_KILL * 2], to_submit[IN_FLIGHT_AT_SERVER_KILL * 2:]
            await connection.publish_many(burst)
            await asyncio.sleep(0.3)  # their first tasks are released
            await _kill_server(server, connection, chaos)
        if to_submit and elapsed >= next_submit:
            await connection.publish(to_submit.pop(0))
            next_submit += submit_every
        if elapsed < min(next_kill, next_submit):
            await asyncio.sleep(min(next_kill, next_submit, CHAOS_SECONDS) - elapsed)
            continue
        if elapsed < next_kill:
            continue
        next_kill = max(next_kill + KILL_EVERY, elapsed - KILL_EVERY)  # catch up, but not in a burst
        # Never an executor to be paused (it must be holding attempts), paused, or just resumed
        # (its late results are the point), nor the distributor while the pauses begin (it
        # must be there to time their attempts out).
        spared = {i for i in (LONG_PAUSED, SHORT_PAUSED) if i not in chaos.paused or chaos.paused[i][1] is None
                  or datetime.now() - chaos.paused[i][1] < timedelta(seconds=3)}
        if 1.0 <= elapsed <= 3.0 + SHORT_PAUSE:
            spared.add(distributor)
        actors.kill_and_restart(rng.choice([i for i in range(len(ACTORS)) if i not in spared]))
        if live.state.active:
            chaos.kills_while_open += 1
    for _, step in schedule:  # a slow server restart may have pushed the last resumes past the end
        step()
    await connection.publish_many(to_submit)  # any the loop had no time for
    chaos.open_after = len(live.state.active)


def _pause(actors: Actors, i: int, chaos: _Chaos) -> None:
    actors.pause(i)
    chaos.paused[i] = (datetime.now(), None)
    chaos.paused_pids[i] = actors.procs[i].pid


def _resume(actors: Actors, i: int, chaos: _Chaos) -> None:
    actors.resume(i)
    chaos.paused[i] = (chaos.paused[i][0], datetime.now())


async def _kill_server(server: bus.EmbeddedServer, connection: bus.Bus, chaos: _Chaos) -> None:
    chaos.seq_before_kill = (await connection.js.stream_info(bus.STREAM)).state.last_seq
    chaos.server_down_at = datetime.now()
    chaos.server_kill_code = server.kill()
    await asyncio.sleep(0.5)  # down long enough for every client to notice
    server.start(timeout=30)
    chaos.server_up_at = datetime.now()
    deadline = time.monotonic() + 30
    while True:  # our own connection comes back too
        try:
            info = await asyncio.wait_for(connection.js.stream_info(bus.STREAM), 1.0)
            chaos.seq_after_restart = info.state.last_seq
            return
        except (nats.errors.Error, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _stop_writer_last(actors: Actors, connection: bus.Bus) -> list[int | None]:
    """Stop every actor but the store writer, let the writer take in the whole stream, stop it."""
    writer = actors.index("store")
    codes: list[int | None] = [None] * len(actors.procs)
    for i, proc in enumerate(actors.procs):
        if i != writer:
            proc.terminate()
    for i, proc in enumerate(actors.procs):
        if i != writer:
            codes[i] = proc.wait(60)
    last = (await connection.js.stream_info(bus.STREAM)).state.last_seq
    deadline = time.monotonic() + 60
    while (info := await connection.js.consumer_info(bus.STREAM, "store")).ack_floor.stream_seq < last:
        if time.monotonic() > deadline:
            raise AssertionError(f"the store writer did not take in the stream up to seq {last}: delivered "
                                 f"{info.delivered.stream_seq}, acked {info.ack_floor.stream_seq}, "
                                 f"{info.num_pending} pending, {info.num_ack_pending} unacked")
        await asyncio.sleep(0.1)
    actors.procs[writer].terminate()
    codes[writer] = actors.procs[writer].wait(60)
    return codes


async def _read_stream(connection: bus.Bus, last_seq: int) -> list[tuple[int, str, bytes]]:
    """Every message of the stream up to `last_seq`: (seq, subject, data)."""
    out: list[tuple[int, str, bytes]] = []
    sub = await connection.follow(1)
    try:
        while not out or out[-1][0] < last_seq:
            msg = await next_msg(sub, 10)
            out.append((bus.stream_seq(msg), msg.subject, msg.data))
    finally:
        await sub.stop()
    return out


def _uncounted_successes_not_late(stored: list[events.Event]) -> list[str]:
    """Successes that are not their task's scored result and yet came while their attempt
    was still the task's running one (neither timed out, failed, nor superseded before)."""
    ended: set[tuple[str, str, int]] = set()
    latest: dict[tuple[str, str], int] = {}
    scored = {(e.workflow_id, e.task_id, e.attempt) for e in stored if isinstance(e, events.TaskAssessed)}
    out = []
    for event in stored:
        if isinstance(event, events.TaskReady):
            latest[(event.workflow_id, event.task_id)] = event.attempt
        elif isinstance(event, (events.TaskTimedOut, events.TaskFailed)):
            ended.add((event.workflow_id, event.task_id, event.attempt))
        elif isinstance(event, events.TaskSucceeded):
            attempt = (event.workflow_id, event.task_id, event.attempt)
            superseded = latest.get((event.workflow_id, event.task_id), 0) > event.attempt
            if attempt not in scored and attempt not in ended and not superseded:
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


_CRASH = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \[(\w+)\s*\] actor crashed; restarting\s+(.*)$")


def _unexpected_crashes(logs: Path, chaos: _Chaos) -> list[str]:
    """Supervisor restarts that the server's outage does not explain, as log lines."""
    assert chaos.server_down_at is not None
    assert chaos.server_up_at is not None
    allowed_from = chaos.server_down_at - timedelta(seconds=1)
    allowed_to = chaos.server_up_at + timedelta(seconds=OUTAGE_GRACE)
    out = []
    for path in sorted(logs.iterdir()):
        text = path.read_text(errors="replace")
        assert " started " in text, f"{path.name} holds no output of its actor"  # the check can see
        for line in text.splitlines():
            if "actor crashed" not in line:
                continue
            found = _CRASH.match(line)
            at = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S") if found else None
            if found is None or found.group(2) != "warning" or at is None or not allowed_from <= at <= allowed_to:
                out.append(f"{path.name}: {line}")
    return out


def _tails(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-1500:] for p in sorted(logs.iterdir()))
