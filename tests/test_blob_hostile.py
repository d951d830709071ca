"""A hostile client on the blob bucket (bus/_blobs.py): it may publish anything on a blob's
subjects (clients write blobs: their submissions' large values), before the real copy is stored
or after. What a blob says cannot change (its digest is checked), and a blob once stored whole
stays readable: the reader takes the first copy that matches, the writer stores its own where
none does, and the bucket takes no rollup, purge or delete that would wipe a copy.

On a server that enforces who publishes what (YMERA_NATS_AUTH): the executor stores and reads,
alice is the attacker, with a client's permissions (bus/_access.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator

import nats.js.errors
import pytest
from structlog.testing import capture_logs

import actors
import bus
import events
from bus._blobs import CHUNK_BYTES

from .conftest import Secured

STREAM = f"OBJ_{bus.BLOB_BUCKET}"
CHUNKS = f"$O.{bus.BLOB_BUCKET}.C"


@pytest.fixture
async def executor(secured: Secured) -> AsyncIterator[bus.Bus]:
    connection, _ = await bus.open_local(secured.settings, "executor",
                                         actors.actor_access(secured.settings, "executor"))
    try:
        await connection.blobs.open()  # the bucket exists before the attacker publishes on it
        yield connection
    finally:
        await connection.close()


def value(size: int, salt: str = "") -> tuple[events.BlobRef, bytes]:
    data = (f"{salt} the real value {size}\n".encode() * (size // 20 + 1))[:size]
    return events.blob_ref(data), data


def meta_subject(ref: events.BlobRef) -> str:
    return f"$O.{bus.BLOB_BUCKET}.M.{base64.urlsafe_b64encode(ref.digest.encode()).decode()}"


async def describe(attacker: bus.Bus, ref: events.BlobRef, nuid: str, *, size: int | None = None,
                   deleted: bool = False) -> None:
    """A description of `ref` naming the copy at `nuid`, as nats's object store writes one."""
    info = {"name": ref.digest, "bucket": bus.BLOB_BUCKET, "nuid": nuid, "size": ref.size if size is None else size,
            "chunks": 1, "digest": "SHA-256=garbage", "deleted": deleted}
    await attacker.js.publish(meta_subject(ref), json.dumps(info).encode())


async def garbage_copy(attacker: bus.Bus, ref: events.BlobRef) -> str:
    """A copy of as many bytes as `ref` names, of other bytes, described as `ref`'s."""
    nuid = uuid.uuid4().hex
    await attacker.js.publish(f"{CHUNKS}.{nuid}", b"\x00" * ref.size)
    await describe(attacker, ref, nuid)
    return nuid


async def real_nuid(connection: bus.Bus, ref: events.BlobRef) -> str:
    msg = await connection.js.get_msg(STREAM, seq=1, subject=meta_subject(ref), next=True)
    return str(json.loads(msg.data or b"")["nuid"])


async def test_garbage_published_after_the_real_copy_does_not_make_it_unreadable(
        secured: Secured, alice: bus.Bus, executor: bus.Bus) -> None:
    ref, data = value(3 * CHUNK_BYTES + 1000)  # four chunks
    await executor.put_blob(ref, data)
    nuid = await real_nuid(executor, ref)
    await alice.js.publish(f"{CHUNKS}.{nuid}", b"appended to the real chunks")
    await garbage_copy(alice, ref)  # the latest description now names other bytes
    await describe(alice, ref, "nowhere")  # ... a copy with no chunk at all
    await describe(alice, ref, nuid, size=ref.size + 5)  # ... the real one, with another size
    await describe(alice, ref, nuid, deleted=True)  # ... a delete marker
    with capture_logs() as logs:
        assert await executor.get_blob(ref) == data
        assert await alice.get_blob(ref) == data  # and for any reader
    [warning] = [entry for entry in logs if entry["event"].startswith("blob: its latest")][:1]
    assert warning["digest"] == ref.digest[:12]


async def test_a_description_published_before_the_real_write_does_not_stop_it(
        secured: Secured, alice: bus.Bus, executor: bus.Bus) -> None:
    ref, data = value(CHUNK_BYTES // 2)
    await garbage_copy(alice, ref)  # the digest is described first, by the attacker
    await executor.put_blob(ref, data)  # finds no copy that matches: stores its own
    assert await executor.get_blob(ref) == data
    await executor.put_blob(ref, data)  # a copy matches now: nothing more is stored
    descriptions = await executor.js.stream_info(STREAM, subjects_filter=meta_subject(ref))
    assert descriptions.state.subjects == {meta_subject(ref): 2}


async def test_a_blob_with_no_copy_that_matches_says_so(secured: Secured, alice: bus.Bus, executor: bus.Bus) -> None:
    ref, _ = value(1000)
    with pytest.raises(events.BlobError) as missing:
        await executor.get_blob(ref)
    assert str(missing.value) == f"blob {ref.digest[:12]}…: not in bucket YMERA_BLOBS"
    await garbage_copy(alice, ref)
    with pytest.raises(events.BlobError) as one:
        await executor.get_blob(ref)
    assert str(one.value) == (f"blob {ref.digest[:12]}…: no copy in bucket YMERA_BLOBS matches its digest: its one "
                              "description tried (the latest: content does not match its digest (1000 bytes read))")
    await describe(alice, ref, "nowhere")
    with pytest.raises(events.BlobError) as two:
        await executor.get_blob(ref)
    assert str(two.value) == (f"blob {ref.digest[:12]}…: no copy in bucket YMERA_BLOBS matches its digest: 2 "
                              "descriptions of it tried (the latest: no chunk at 'nowhere')")


async def test_no_client_can_wipe_the_bucket(secured: Secured, alice: bus.Bus, executor: bus.Bus) -> None:
    ref, data = value(1000)
    await executor.put_blob(ref, data)
    with pytest.raises(nats.js.errors.Error, match="rollup not permitted"):
        await alice.js.publish(meta_subject(ref), b"{}", headers={"Nats-Rollup": "all"})
    with pytest.raises(nats.js.errors.Error, match="rollup not permitted"):
        await alice.js.publish(meta_subject(ref), b"{}", headers={"Nats-Rollup": "sub"})
    with pytest.raises(nats.js.errors.Error, match="stream purge not permitted"):
        await alice.js.purge_stream(STREAM)
    assert await alice.get_blob(ref) == data


async def test_a_bucket_made_by_nats_object_store_is_fitted_by_the_first_to_open_it(nats_bus: bus.Bus) -> None:
    await nats_bus.js.create_object_store(bus.BLOB_BUCKET)  # as Ymera made it before: rollups and purges taken
    ref, data = value(1000)
    await nats_bus.put_blob(ref, data)
    config = (await nats_bus.js.stream_info(STREAM)).config
    assert (config.allow_rollup_hdrs, config.deny_purge, config.deny_delete) == (False, True, True)
    assert await nats_bus.get_blob(ref) == data


@pytest.fixture
def predictable_nuids(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The nuids the blob store's next writes will take, known in advance (as an attacker
    watching `$O.YMERA_BLOBS.C.>` knows a write's nuid from its first chunk on)."""
    nuids = [uuid.uuid4().hex for _ in range(4)]
    queue = list(nuids)
    monkeypatch.setattr("bus._blobs._fresh_nuid", lambda: queue.pop(0))
    return nuids


async def test_a_write_someone_publishes_into_starts_over_on_a_fresh_subject(
        secured: Secured, alice: bus.Bus, executor: bus.Bus, predictable_nuids: list[str]) -> None:
    ref, data = value(2 * CHUNK_BYTES)
    await alice.js.publish(f"{CHUNKS}.{predictable_nuids[0]}", b"in the way")
    await executor.put_blob(ref, data)
    assert await real_nuid(executor, ref) == predictable_nuids[1]
    assert await executor.get_blob(ref) == data
    assert hashlib.sha256(await alice.get_blob(ref)).hexdigest() == ref.digest
