"""The store writer: every event once, in stream order, chained; bad input recorded, never fatal."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
from pathlib import Path

import pytest

import bus
import events
import guard
import store

from .conftest import spawn_ymera, ymera, ymera_env
from .support import next_msg, running_writer, started, stored_count, stored_events, wait_until


def _valid_started() -> dict[str, object]:
    return {"type": "TaskStarted", "id": "e1", "ts": "2026-01-02T03:04:05Z", "workflow_id": "wf",
            "task_id": "t", "attempt": 1, "executor": "ex"}


BAD_MESSAGES = [
    ("ymera.task.wf.t.started", b"{not json",
     "not valid JSON: JSON is malformed: object keys must be strings (byte 1)"),
    ("ymera.task.wf.t.started", json.dumps({**_valid_started(), "type": "TaskVanished"}).encode(),
     "unknown event type 'TaskVanished' (`ymera schema` lists them)"),
    ("ymera.task.wf.t.started", json.dumps({**_valid_started(), "attempt": "first"}).encode(),
     "not a valid event: Expected `int`, got `str` - at `$.attempt`"),
    ("ymera.task.wf.t.started", json.dumps({k: v for k, v in _valid_started().items() if k != "executor"}).encode(),
     "not a valid event: Object missing required field `executor`"),
    ("ymera.task.wf.t.started", b'{"pad":"' + b"x" * (events.MAX_EVENT_BYTES + 10) + b'"}',
     f"message is {events.MAX_EVENT_BYTES + 20} bytes, over the {events.MAX_EVENT_BYTES}-byte event limit "
     "(large values must travel as blobs)"),
    ("ymera.task.elsewhere.t.started", json.dumps(_valid_started()).encode(),
     "TaskStarted e1 was published on ymera.task.elsewhere.t.started but belongs on ymera.task.wf.t.started"),
]


@pytest.mark.parametrize(("subject", "data", "reason"), BAD_MESSAGES,
                         ids=["not-json", "unknown-tag", "wrong-type", "missing-field", "oversized", "wrong-subject"])
async def test_a_bad_message_is_recorded_as_message_rejected_and_the_writer_goes_on(
    nats_bus: bus.Bus, event_log: store.SqliteEventLog, subject: str, data: bytes, reason: str,
) -> None:
    async with running_writer(nats_bus, event_log) as writer:
        bad = await nats_bus.js.publish(subject, data)
        good = started()
        await nats_bus.publish(good)
        await wait_until(lambda: event_log.head_seq >= bad.seq + 2, what="rejection and next event stored")
    stored = await stored_events(event_log)
    assert [type(e).__name__ for e in stored] == ["TaskStarted", "MessageRejected"]
    assert stored[0] == good
    rejection = stored[1]
    assert isinstance(rejection, events.MessageRejected)
    assert rejection.reason == reason
    assert (rejection.subject, rejection.stream_seq, rejection.size) == (subject, bad.seq, len(data))
    assert rejection.workflow_id == subject.split(".")[2]  # followers of that workflow see it
    assert rejection.excerpt == events.excerpt(data)
    assert len(rejection.excerpt) <= 201
    assert writer.rejected == 1
    assert (await store.verify(event_log)).ok


async def test_a_copy_that_slips_past_the_duplicate_window_is_stored_once(
    nats_bus: bus.Bus, event_log: store.SqliteEventLog,
) -> None:
    event = started()
    async with running_writer(nats_bus, event_log) as writer:
        await nats_bus.publish(event)
        # Without Nats-Msg-Id the stream keeps the copy, as it would after the window passed.
        copy = await nats_bus.js.publish(events.subject_of(event), events.encode(event))
        marker = await nats_bus.publish(started())
        await wait_until(lambda: event_log.head_seq >= marker.seq, what="marker stored")
    assert copy.seq == 2
    assert [r.seq async for r in event_log.read()] == [1, 3]
    assert writer.duplicates == 1


async def test_large_values_are_copied_into_the_log_and_audited(
    nats_bus: bus.Bus, event_log: store.SqliteEventLog, tmp_path: Path,
) -> None:
    output = "generated code\n" * 20_000
    event = events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="wf", task_id="t",
                                 attempt=1, output=output)
    async with running_writer(nats_bus, event_log):
        ack = await nats_bus.publish(event)
        await wait_until(lambda: event_log.head_seq >= ack.seq, what="event stored")
    (row,) = [r async for r in event_log.read()]
    assert len(row.data) < 1024
    stored = events.decode(row.data)
    assert await events.resolve(stored, nats_bus.get_blob) == event
    ref = stored.blobs["output"]

    async def from_log(r: events.BlobRef) -> bytes:
        return await event_log.blob(r.digest) or b""

    assert await events.resolve(stored, from_log) == event
    report = await store.verify(event_log)
    assert (report.ok, report.rows, report.blobs) == (True, 1, 1)

    await event_log.db.execute("UPDATE blobs SET data = ? WHERE digest = ?", (b'"swapped"', ref.digest))
    await event_log.db.commit()
    report = await store.verify(event_log)
    assert str(report.broken) == (
        f"seq 1 (event {event.id}): blob {ref.digest} (field output) does not match its digest"
    )


async def test_a_consumer_that_could_redeliver_after_the_duplicate_window_is_refused(
    nats_bus: bus.Bus, event_log: store.SqliteEventLog,
) -> None:
    policy = bus.ConsumerPolicy(ack_wait=30, max_deliver=6)
    with pytest.raises(bus.ConsumerConfigError) as info:
        store.StoreWriter(nats_bus, event_log, policy=policy)
    assert str(info.value) == (
        "consumer 'store' may redeliver a message up to 150s after its first delivery, past the stream's 120s "
        "duplicate window, so a redelivered input could publish its outputs twice; shorten ack_wait/backoff, "
        "lower max_deliver, or widen the duplicate window"
    )
    assert bus.redelivery_span(bus.ConsumerPolicy(backoff=(1, 5, 30), max_deliver=6)) == 1 + 5 + 30 + 30 + 30
    assert bus.redelivery_span(bus.ConsumerPolicy(max_deliver=-1)) == float("inf")


async def test_ten_thousand_events_from_four_publishers_survive_a_killed_writer(
    nats_server: bus.EmbeddedServer, nats_bus: bus.Bus, tmp_path: Path,
) -> None:
    """10,000 events, 4 concurrent publishers, 5% published twice, the writer SIGKILLed mid-way."""
    data_dir = tmp_path / "data"
    log_path = data_dir / "events.db"
    # Checkpoints (signed heads of the chain, tests/test_checkpoints.py) only once it stops: this
    # test counts the rows the stream's events leave.
    env = {**ymera_env(data_dir, nats_server.url), "YMERA_CHECKPOINT_EVERY_ROWS": "1000000",
           "YMERA_CHECKPOINT_EVERY_SECONDS": "3600"}
    rng = random.Random(7)
    batches = [[started(f"wf{p}", f"t{i % 50}", i) for i in range(2_500)] for p in range(4)]
    published = {e.id for batch in batches for e in batch}
    twice = rng.sample([e for batch in batches for e in batch], 500)
    writer = spawn_ymera("actor", "store", env=env, output=tmp_path / "writer.log")
    # The test plays the executor: what it publishes is signed as the executor's is.
    executor = guard.Identity.load_or_create(data_dir / "keys", "executor")
    signed = await bus.connect(nats_server.url, signer=executor)

    async def publisher(batch: list[events.TaskStarted]) -> None:
        for i in range(0, len(batch), 100):
            await signed.publish_many(batch[i : i + 100])
            await asyncio.sleep(0.005)

    async def duplicator() -> None:
        for n, event in enumerate(twice):
            if n % 2:  # a copy inside the duplicate window: JetStream drops it
                ack = await signed.publish(event)
                assert ack.duplicate
            else:  # a copy outside it (no Nats-Msg-Id): the log must drop it
                subject, data = events.subject_of(event), events.encode(event)
                [sealed] = bus.seal(executor, [(subject, data)])
                await nats_bus.js.publish(subject, data, headers={bus.SEAL_HEADER: sealed})

    try:
        publishing = asyncio.gather(*(publisher(b) for b in batches))
        await wait_until(lambda: stored_count(log_path) >= 3_000, what="3,000 events stored")
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        killed_at = stored_count(log_path)
        await publishing
        await duplicator()
        writer = spawn_ymera("actor", "store", env=env, output=tmp_path / "writer.log")
        last = (await nats_bus.js.stream_info(bus.STREAM)).state.last_seq
        async with store.SqliteEventLog(log_path, readonly=True) as reader:
            await wait_until(lambda: stored_count(log_path) >= 10_000, timeout=60, what="10,000 events stored")
            await asyncio.sleep(0.5)  # anything past 10,000 would be a duplicate; give it time to show
            rows = [(r.seq, r.id) async for r in reader.read()]
    finally:
        await signed.close()
        writer.send_signal(signal.SIGTERM)
        assert writer.wait(10) == 0, (tmp_path / "writer.log").read_text()

    expected = await _first_copies_in_stream_order(nats_bus, last)
    assert 3_000 <= killed_at < 10_000, "the writer must die mid-way"
    assert len(rows) == 10_000
    assert {i for _, i in rows} == published
    assert rows == expected

    audit = ymera("audit", "verify", env=env)
    assert audit.returncode == 0, audit.stderr
    assert audit.stdout.startswith("audit: ok, 10000 events and 0 blobs verified")

    seq, event_id = rng.choice(rows)
    with sqlite3.connect(log_path) as db:
        (data,) = db.execute("SELECT data FROM events WHERE seq = ?", (seq,)).fetchone()
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0x01
        db.execute("UPDATE events SET data = ? WHERE seq = ?", (bytes(flipped), seq))
    audit = ymera("audit", "verify", env=env)
    assert audit.returncode == 1
    position = [s for s, _ in rows].index(seq)
    assert audit.stderr == (
        f"audit: chain broken at seq {seq} (event {event_id}): hash does not match the row's content "
        f"({position} rows before it verified)\n"
        f"audit: altered: seq {seq}: event {event_id}: its bytes differ from the stream's\n"
        f"audit: forged: seq {seq}: event {event_id}: TaskStarted's signature does not verify: the message was "
        "altered, or the signature forged\n"
    )


async def _first_copies_in_stream_order(connection: bus.Bus, last_seq: int) -> list[tuple[int, str]]:
    """(seq, id) of each event's first copy, reading the stream itself."""
    sub = await connection.follow(1)
    seen: set[str] = set()
    out = []
    seq = 0
    while seq < last_seq:
        msg = await next_msg(sub, 5)
        seq = bus.stream_seq(msg)
        event = events.decode(msg.data)
        if event.id not in seen:
            seen.add(event.id)
            out.append((seq, event.id))
    await sub.stop()
    return out
