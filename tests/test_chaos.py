"""Chaos: 200 workflows of 20 tasks across 3 executor processes while actors are SIGKILLed
every 0.5 s for 20 s and the nats-server restarts once. Everything still ends exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path

import bus
import events
import store
from actors.distributor import DistributorState

from .conftest import ymera
from .engine import Actors, connected, engine_env, wait_for_actors
from .support import wait_until

WORKFLOWS, TASKS = 200, 20
ACTORS = ("store", "security", "validator", "distributor", "assessor", "monitor",
          "executor", "executor", "executor")


def _submission(rng: random.Random, n: int) -> events.WorkflowSubmitted:
    tasks = []
    for i in range(TASKS):
        deps = sorted({f"t{j}" for j in rng.sample(range(i), min(i, rng.randint(0, 2)))})
        kind = rng.choice(["noop", "echo", "sleep"])
        params = {"seconds": 0.05} if kind == "sleep" else {"text": f"{n}-{i}"} if kind == "echo" else {}
        tasks.append(events.TaskSpec(id=f"t{i}", type=kind, dependencies=deps, parameters=params,
                                     priority=rng.choice(["CRITICAL", "HIGH", "MEDIUM", "LOW"])))
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=f"chaos-{n:03d}",
                                    principal="chaos", tasks=tasks)


async def test_workflows_end_exactly_once_through_kills_and_a_server_restart(
    nats_server: bus.EmbeddedServer, tmp_path: Path,
) -> None:
    env = engine_env(tmp_path / "data", nats_server.url, TASK_TIMEOUT_SECONDS="20")
    rng = random.Random(2026)
    submissions = [_submission(rng, n) for n in range(WORKFLOWS)]
    actors = Actors(env, tmp_path / "logs", ACTORS)
    try:
        async with connected(nats_server.url) as connection:
            await wait_for_actors(connection, timeout=120)
            await connection.publish_many(submissions)
        chaos_until = time.monotonic() + 20
        restarted_server = False
        while time.monotonic() < chaos_until:
            await asyncio.sleep(0.5)
            actors.kill_and_restart(rng.randrange(len(ACTORS)))
            if not restarted_server and time.monotonic() > chaos_until - 10:
                nats_server.stop()
                nats_server.start()
                restarted_server = True
        async with connected(nats_server.url) as connection:
            ended = await _wait_for_ends(connection, timeout=240)
            last_seq = (await connection.js.stream_info(bus.STREAM)).state.last_seq
        await _wait_stored(tmp_path / "data" / "events.db", last_seq)
    finally:
        await asyncio.sleep(2)  # the last restarted actor has its SIGTERM handler in place
        codes = actors.stop()
    assert ended == {s.workflow_id for s in submissions}, _tails(tmp_path / "logs")
    assert restarted_server
    assert sum(actors.kills.values()) >= 35
    assert codes == [0] * len(ACTORS), _tails(tmp_path / "logs")

    async with store.SqliteEventLog(tmp_path / "data" / "events.db", readonly=True) as log:
        stored = [events.decode(r.data) async for r in log.read()]
        report = await store.verify(log)
    assert report.ok, str(report.broken)
    ends = Counter((type(e).__name__, e.workflow_id) for e in stored
                   if isinstance(e, (events.WorkflowCompleted, events.WorkflowFailed, events.WorkflowCancelled)))
    assert ends == Counter({("WorkflowCompleted", s.workflow_id): 1 for s in submissions})
    successes = Counter((e.workflow_id, e.task_id) for e in stored if isinstance(e, events.TaskSucceeded))
    assert successes == Counter({(s.workflow_id, t.id): 1 for s in submissions for t in s.tasks})

    state = DistributorState()
    for event in stored:
        state.apply(event)
    assert state.workflows == {}, "a workflow is still active after all ended"
    assert state.active_slots == 0
    started = {(e.workflow_id, e.task_id, e.attempt) for e in stored if isinstance(e, events.TaskStarted)}
    finished = {(e.workflow_id, e.task_id, e.attempt) for e in stored
                if isinstance(e, (events.TaskSucceeded, events.TaskFailed, events.TaskTimedOut))}
    successes_by_task = {(wf, t) for wf, t in successes}
    dangling = {s for s in started - finished if (s[0], s[1]) not in successes_by_task}
    assert dangling == set(), "attempts left running"

    audit = ymera("audit", "verify", env=env)
    assert audit.returncode == 0, audit.stderr


async def _wait_for_ends(connection: bus.Bus, timeout: float) -> set[str]:
    """Workflow ids that ended, once all have (or the timeout passes)."""
    ended: set[str] = set()
    sub = await connection.follow(1, "ymera.wf.*.completed")
    deadline = time.monotonic() + timeout
    try:
        while len(ended) < WORKFLOWS and time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except TimeoutError:
                continue
            ended.add(events.decode(msg.data).workflow_id)
    finally:
        await sub.unsubscribe()
    return ended


async def _wait_stored(path: Path, seq: int) -> None:
    """Until the store writer has handled the stream up to `seq` (the last few may be copies, leaving no row)."""
    def head() -> int:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])

    await wait_until(lambda: head() >= seq - 5, timeout=60, what=f"the log to reach seq {seq}")


def _tails(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-1500:] for p in sorted(logs.iterdir()))
