"""Attested events (bus/_attest.py): where the server enforces who publishes what, an actor
sends each event at once under a short seal and signs what it sent every few milliseconds in
an `Attested` event; the audit checks every event against the attestation covering it.

The server is nats-server with the authorization Ymera makes for its embedded server."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import msgspec
import pytest

import bus
import events
import guard
import store
from ymera import WorkflowClient
from ymera._audit import audit

from .conftest import Secured
from .engine import in_process
from .test_nats_auth import end_of, submission

SEAL = re.compile(r"@[0-9a-f]{16}\.[0-9a-f]{12}\.[0-9]+")


async def stream_messages(connection: bus.Bus) -> list[bus.Delivery]:
    return [msg async for msg in connection.read_through()]


def succeeded(workflow_id: str, output: str = "done") -> events.TaskSucceeded:
    return events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id=workflow_id, task_id="t", attempt=1,
                                output=output, actor="executor")


async def test_an_enforced_run_is_sealed_short_attested_and_audits_clean(secured: Secured, alice: bus.Bus) -> None:
    async with in_process(secured.settings, alice):
        client = WorkflowClient(alice)
        sub = submission("attested", "alice")
        await client.submit(sub)
        assert isinstance(await end_of(client, "attested"), events.WorkflowCompleted)
    messages = await stream_messages(alice)
    by_actor = {}
    for msg in messages:
        event = events.decode(msg.data)
        sealed = bus.seal_of(msg.headers)
        if isinstance(event, events.Attested):
            assert sealed is None  # it proves itself
            by_actor[event.actor] = event
        elif events.EMITTED_BY[type(event).__name__] not in (events.CLIENT, events.ANY_ACTOR):
            assert sealed is not None
            assert SEAL.fullmatch(sealed), (type(event).__name__, sealed)
    # Every actor that sent something attested it (the assessor sent nothing: an echo's
    # output is scored in its attempt).
    assert {"security", "validator", "distributor", "executor"} <= set(by_actor)
    async with store.SqliteEventLog(secured.settings.log_path, readonly=True) as log:
        result = await audit(log, alice, secured.settings.keys_dir)
    assert result.findings == []
    assert result.compared > 0
    assert list((secured.settings.data_dir / "attest").glob("*")) == []  # each journal gone, all attested


async def test_each_attested_event_is_checked_against_its_attestation(secured: Secured, alice: bus.Bus) -> None:
    keys = secured.settings.keys_dir
    executor = guard.Identity.load_or_create(keys, "executor")
    connection = await bus.connect(secured.server.url, credentials=executor, signer=executor)
    try:
        await connection.publish_many([succeeded("wf-a", "one"), succeeded("wf-a", "two")])
    finally:
        await connection.close()  # attests what it sent
    messages = await stream_messages(alice)
    [one, two, attested] = messages
    attestation = events.decode(attested.data)
    assert isinstance(attestation, events.Attested)
    assert len(attestation.leaves) == 32

    seals = bus.SealCheck(guard.Keyring(keys), attestations=True)
    with pytest.raises(bus.Unattested, match=r"TaskSucceeded is message 0 of the executor's run [0-9a-f]{12}, and no "
                                             r"attestation of its key covers it: the executor stopped before "
                                             r"attesting it \(killed\), or it was made up"):
        seals.check("TaskSucceeded", one.subject, one.data, bus.seal_of(one.headers))
    assert seals.attest(attestation) == "executor"
    for msg in (one, two):
        assert seals.check("TaskSucceeded", msg.subject, msg.data, bus.seal_of(msg.headers)) == "executor"
    altered = one.data.replace(b'"one"', b'"won"')
    with pytest.raises(bus.UntrustedEvent, match=r"TaskSucceeded differs from what the executor attested \(message 0 "
                                                 r"of run [0-9a-f]{12}\): altered, or forged"):
        seals.check("TaskSucceeded", one.subject, altered, bus.seal_of(one.headers))
    swapped = bus.seal_of(two.headers)
    with pytest.raises(bus.UntrustedEvent, match="differs from what the executor attested"):
        seals.check("TaskSucceeded", one.subject, one.data, swapped)
    distributor = guard.Identity.load_or_create(keys, "distributor")
    as_distributor = f"@{distributor.key_id}." + str(bus.seal_of(one.headers)).split(".", 1)[1]
    with pytest.raises(bus.UntrustedEvent, match="TaskSucceeded is the executor's to emit, and this one is sealed with "
                                                 "the distributor's key"):
        seals.check("TaskSucceeded", one.subject, one.data, as_distributor)


async def test_an_attestation_must_be_signed_by_the_key_of_the_actor_it_names(secured: Secured) -> None:
    keys = secured.settings.keys_dir
    executor = guard.Identity.load_or_create(keys, "executor")
    distributor = guard.Identity.load_or_create(keys, "distributor")
    leaves = bus.leaf("ymera.task.wf.t.succeeded", b"{}")
    seals = bus.SealCheck(guard.Keyring(keys), attestations=True)

    def attestation(signer: guard.Identity, actor: str, first: int = 0) -> events.Attested:
        signature = signer.sign(events.attested_bytes(signer.key_id, "0123456789ab", first, leaves))
        return events.Attested(id=events.new_id(), ts=events.now(), workflow_id="_", actor=actor,
                               key_id=signer.key_id, epoch="0123456789ab", first=first, leaves=leaves,
                               signature=signature)

    with pytest.raises(bus.UntrustedEvent, match=f"Attested names the executor and is signed by key "
                                                 f"'{distributor.key_id}', the distributor's"):
        seals.attest(attestation(distributor, "executor"))
    impostor = guard.Identity.generate("executor")
    with pytest.raises(bus.UntrustedEvent, match=f"Attested names the executor and is signed by key "
                                                 f"'{impostor.key_id}', no actor's key this deployment knows"):
        seals.attest(attestation(impostor, "executor"))
    moved = msgspec.structs.replace(attestation(executor, "executor"), first=5)
    with pytest.raises(bus.UntrustedEvent, match="Attested's signature does not verify: the attestation was altered, "
                                                 "or forged"):
        seals.attest(moved)
    # In real time, without attestations to check against, such a seal is taken from an enforcing server only.
    live = bus.SealCheck(guard.Keyring(keys))
    with pytest.raises(bus.UntrustedEvent, match="is sealed to be attested later, which this reader takes only from a "
                                                 "server that enforces who publishes what"):
        live.check("TaskSucceeded", "ymera.task.wf.t.succeeded", b"{}", f"@{executor.key_id}.0123456789ab.0")


async def test_a_killed_actors_last_events_are_named_unattested(secured: Secured, alice: bus.Bus) -> None:
    keys = secured.settings.keys_dir
    executor = guard.Identity.load_or_create(keys, "executor")
    connection = await bus.connect(secured.server.url, credentials=executor, signer=executor)
    sealer = connection._sealer
    assert isinstance(sealer, bus.Attester)
    sealer.every = 3600.0  # it never gets round to attesting
    await connection.publish(succeeded("wf-k"))
    await connection.nc.close()  # as a SIGKILL would: no attestation sent
    [msg] = await stream_messages(alice)
    async with store.SqliteEventLog(secured.settings.log_path) as log:  # an empty log: the stream is what counts
        result = await audit(log, alice, keys)
    unattested = [f for f in result.findings if f.kind == "unattested"]
    assert [str(f) for f in unattested] == [
        f"unattested: seq {bus.stream_seq(msg)}: the stream holds a message on {msg.subject}: TaskSucceeded is message "
        f"0 of the executor's run {sealer.epoch}, and no attestation of its key covers it: the executor stopped "
        f"before attesting it (killed), or it was made up"]
    assert not result.ok


async def test_attesting_waits_for_no_signature_before_sending(secured: Secured, alice: bus.Bus) -> None:
    """The event is in the stream before its attestation: nothing waits for the signature."""
    executor = guard.Identity.load_or_create(secured.settings.keys_dir, "executor")
    connection = await bus.connect(secured.server.url, credentials=executor, signer=executor)
    try:
        sealer = connection._sealer
        assert isinstance(sealer, bus.Attester)
        sealer.every = 3600.0
        ack = await connection.publish(succeeded("wf-w"))
        kinds = [type(events.decode(m.data)).__name__ for m in await stream_messages(alice)]
        assert kinds == ["TaskSucceeded"]
        assert ack.seq == 1
    finally:
        await connection.close()
    await asyncio.sleep(0.1)
    kinds = [type(events.decode(m.data)).__name__ for m in await stream_messages(alice)]
    assert kinds == ["TaskSucceeded", "Attested"]


KILLED = """
import asyncio, os, signal, sys
from pathlib import Path
import bus, events, guard

async def main(url, keys, journal):
    executor = guard.Identity.load_or_create(Path(keys), "executor")
    connection = await bus.connect(url, credentials=executor, signer=executor)
    await connection.keep_journal(Path(journal))
    connection._sealer.every = 3600.0  # it never gets round to attesting
    await connection.publish_many([events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="wf-k",
                                                        task_id=f"t{i}", attempt=1, output=i, actor="executor")
                                   for i in range(3)])
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_what_a_killed_actor_left_unattested_its_next_start_attests(secured: Secured, alice: bus.Bus) -> None:
    keys, journal = secured.settings.keys_dir, secured.settings.data_dir / "attest"
    killed = await asyncio.create_subprocess_exec(sys.executable, "-c", KILLED, secured.server.url, str(keys),
                                                  str(journal))
    assert await killed.wait() == -signal.SIGKILL
    [left] = list(journal.glob("executor.*.leaves"))
    async with store.SqliteEventLog(secured.settings.log_path) as log:
        before = await audit(log, alice, keys)
    assert [f.kind for f in before.findings if f.kind != "missing"] == ["unattested"] * 3

    executor = guard.Identity.load_or_create(keys, "executor")
    connection = await bus.connect(secured.server.url, credentials=executor, signer=executor)
    try:
        assert await connection.keep_journal(journal) == 3
        assert await connection.keep_journal(journal) == 0  # nothing left: its own journal is held, not an orphan's
    finally:
        await connection.close()
    assert not left.exists()
    assert list(journal.glob("*.leaves")) == []  # the new run attested everything it sent (nothing)
    async with store.SqliteEventLog(secured.settings.log_path) as log:
        after = await audit(log, alice, keys)
    assert [f.kind for f in after.findings if f.kind != "missing"] == []


async def test_a_journal_that_overlaps_an_attestation_the_dead_run_sent_is_attested_whole(
        secured: Secured, alice: bus.Bus) -> None:
    """The dead run sent an attestation of its first two messages but was killed before the ack
    reached its journal, and a third message after it: the next start attests all three, and the
    stream does not drop that as a copy of the first."""
    keys, journal = secured.settings.keys_dir, secured.settings.data_dir / "attest"
    executor = guard.Identity.load_or_create(keys, "executor")
    dead = await bus.connect(secured.server.url, credentials=executor, signer=executor)
    sealer = dead._sealer
    assert isinstance(sealer, bus.Attester)
    await dead.keep_journal(journal)
    sealer.every = 3600.0
    assert sealer._journal is not None
    sealer._journal.attested = lambda through: None  # type: ignore[method-assign]  # the ack never reaches it
    await dead.publish_many([succeeded("wf-o", "one"), succeeded("wf-o", "two")])
    sealer._attest()
    await asyncio.gather(*sealer._sending)
    await dead.publish(succeeded("wf-o", "three"))
    sealer._journal.close(done=False)  # as a SIGKILL leaves it: unlocked, in place
    await dead.nc.close()

    again = await bus.connect(secured.server.url, credentials=executor, signer=executor)
    try:
        assert await again.keep_journal(journal) == 3
    finally:
        await again.close()
    async with store.SqliteEventLog(secured.settings.log_path) as log:
        result = await audit(log, alice, keys)
    assert [f for f in result.findings if f.kind in ("unattested", "forged")] == []
    attestations = [e for e in [events.decode(m.data) async for m in alice.read_through()]
                    if isinstance(e, events.Attested)]
    assert sorted((a.first, len(a.leaves) // 16) for a in attestations) == [(0, 2), (0, 3)]
