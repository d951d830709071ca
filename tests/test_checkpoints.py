"""Signed checkpoints of the log's head: the signer's identity (guard/) and when the store
writer publishes them."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

import bus
import events
import guard
import store

from .engine import all_events
from .support import wait_until


def test_an_identity_is_made_once_readable_by_its_owner_only_and_loaded_again(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    made = guard.Identity.load_or_create(keys, "store")
    assert stat.S_IMODE((keys / "store.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert (keys / "store.pub").read_text().strip() == made.public_key
    again = guard.Identity.load_or_create(keys, "store")
    assert (again.key_id, again.public_key) == (made.key_id, made.public_key)
    signature = again.sign(b"head")
    assert guard.verify(made.public_key, b"head", signature)
    assert not guard.verify(made.public_key, b"head!", signature)
    assert not guard.verify(guard.Identity.generate("x").public_key, b"head", signature)
    assert not guard.verify(made.public_key, b"head", "not base64!")


def test_a_key_file_others_can_read_or_that_is_no_key_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    guard.Identity.load_or_create(keys, "store")
    path = keys / "store.key"
    os.chmod(path, 0o644)
    with pytest.raises(guard.KeyFileError) as loose:
        guard.Identity.load_or_create(keys, "store")
    assert str(loose.value) == f"key file {path}: readable by others (mode 0644): chmod 600 {path}"
    os.chmod(path, 0o600)
    path.write_text("hello\n")
    with pytest.raises(guard.KeyFileError) as garbled:
        guard.Identity.load_or_create(keys, "store")
    assert str(garbled.value) == f"key file {path}: not an Ed25519 private key (32 bytes, base64)"


async def test_the_writer_vouches_after_n_rows_or_a_while_after_a_row_but_not_for_its_own_checkpoints(
        nats_bus: bus.Bus, event_log: store.SqliteEventLog, tmp_path: Path) -> None:
    signer = guard.Identity.generate("store")
    writer = store.StoreWriter(nats_bus, event_log, signer=signer, checkpoint_rows=10, checkpoint_seconds=0.3)
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    def submissions(n: int) -> list[events.Event]:
        return [events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=f"w{i}") for i in range(n)]

    try:
        await nats_bus.publish_many(submissions(12))  # a batch of 12 rows: over 10, vouched for at once
        await wait_until(lambda: writer.checkpoints == 1, timeout=15, what="a checkpoint")
        await nats_bus.publish_many(submissions(5))  # 5 rows: vouched for once 0.3 s have passed
        await wait_until(lambda: writer.checkpoints == 2, timeout=15, what="a second checkpoint")
        await asyncio.sleep(1.0)  # idle: its own checkpoints, once stored, call for no other
        assert writer.checkpoints == 2
    finally:
        stop.set()
        await task
    found = [e for e in await all_events(nats_bus, events.subject_filter(events.ChainCheckpoint))
             if isinstance(e, events.ChainCheckpoint)]
    assert [c.head_seq for c in found] == [12, 18]  # seq 13 is the first checkpoint
    for checkpoint in found:
        assert checkpoint.key_id == signer.key_id
        assert guard.verify(signer.public_key, events.checkpoint_bytes("YMERA", checkpoint.head_seq,
                                                                       checkpoint.head_hash), checkpoint.signature)
