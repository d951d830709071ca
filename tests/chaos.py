"""The chaos tests/test_chaos.py makes: actors SIGKILLed every 0.5 s, two executors paused
with SIGSTOP, nats-server SIGKILLed once with workflows in flight, and what the test needs to
tell afterwards that it all happened (`Chaos`) and what the actors' logs say."""

from __future__ import annotations

import asyncio
import random
import re
import time
from datetime import datetime, timedelta
from pathlib import Path

import nats.errors

import bus
import events
import store
from store import MetricsState

from .engine import Actors
from .support import next_msg

__all__ = ["ACTORS", "IN_FLIGHT_AT_SERVER_KILL", "LONG_PAUSED", "SHORT_PAUSED", "SUBMITTED_FIRST", "TASKS",
           "WINDOW", "WORKFLOWS", "Chaos", "consumer_states", "make_chaos", "read_stream", "stop_writer_last", "tails",
           "unexpected_crashes"]

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


class Chaos:
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


async def make_chaos(actors: Actors, server: bus.EmbeddedServer, connection: bus.Bus,
                      live: store.LiveProjection[MetricsState], rng: random.Random, chaos: Chaos,
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


def _pause(actors: Actors, i: int, chaos: Chaos) -> None:
    actors.pause(i)
    chaos.paused[i] = (datetime.now(), None)
    chaos.paused_pids[i] = actors.procs[i].pid


def _resume(actors: Actors, i: int, chaos: Chaos) -> None:
    actors.resume(i)
    chaos.paused[i] = (chaos.paused[i][0], datetime.now())


async def _kill_server(server: bus.EmbeddedServer, connection: bus.Bus, chaos: Chaos) -> None:
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


async def stop_writer_last(actors: Actors, connection: bus.Bus) -> list[int | None]:
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


async def read_stream(connection: bus.Bus, last_seq: int) -> list[tuple[int, str, bytes]]:
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


_CRASH = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \[(\w+)\s*\] actor crashed; restarting\s+(.*)$")


def unexpected_crashes(logs: Path, chaos: Chaos) -> list[str]:
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


async def consumer_states(connection: bus.Bus) -> str:
    """Each consumer's progress through the stream: tells a wedge (all caught up, nothing
    pending, workflows open) from a slow machine."""
    stream = await connection.js.stream_info(bus.STREAM)
    lines = [f"stream: last seq {stream.state.last_seq}"]
    for info in await connection.js.consumers_info(bus.STREAM):
        lines.append(f"{info.name}: delivered {info.delivered.stream_seq}, acked {info.ack_floor.stream_seq}, "
                     f"{info.num_pending} pending, {info.num_ack_pending} unacked, "
                     f"{info.num_waiting} pull requests waiting")
    return "\n".join(lines)


def tails(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-1500:] for p in sorted(logs.iterdir()))
