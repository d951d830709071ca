"""`ymera audit verify` against a log tampered with as an attacker of the file would: each
change is found and named, even where the attacker re-hashed the chain after it. The run is
real (the embedded defaults); each tamper works on a copy of its data dir, the stream's
files included."""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import bus
import events
import guard
from actors import load_settings
from store._chain import GENESIS, link

from .conftest import ymera, ymera_env

EXAMPLES = Path(__file__).parent.parent / "examples"
ATTESTED = re.compile(r"TaskSucceeded differs from what the executor attested \(message [0-9]+ of run [0-9a-f]{12}\): "
                      r"altered, or forged")


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("audited") / "data"
    run = ymera("run", str(EXAMPLES / "pipeline.yaml"), env=ymera_env(data))
    assert run.returncode == 0, run.stdout + run.stderr
    return data


@pytest.fixture
def data(original: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(original, copy)
    return copy


@pytest.fixture
def head(data: Path) -> int:
    """The log's last seq: examples/pipeline.yaml's 16 events (4 a run, 3 a task) and each
    actor's attestations of them (bus/_attest.py), as many as the run's timing made."""
    db = sqlite3.connect(data / "events.db")
    try:
        (seq,) = db.execute("SELECT max(seq) FROM events").fetchone()
    finally:
        db.close()  # a connection left open keeps the next run's rows in the WAL, out of a copy of the file
    return int(seq)


def verify(data: Path, *args: str) -> tuple[int, list[str]]:
    done = ymera("audit", "verify", *args, env=ymera_env(data))
    return done.returncode, done.stderr.splitlines()


def rows(db: sqlite3.Connection) -> list[tuple[int, str, bytes]]:
    return db.execute("SELECT seq, id, data FROM events ORDER BY seq").fetchall()


def rehash(db: sqlite3.Connection) -> None:
    """What an attacker does after a change: the chain recomputed from the first row on."""
    prev = GENESIS
    for seq, event_id, data in rows(db):
        row_hash = link(prev, seq, event_id, data)
        db.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, row_hash, seq))
        prev = row_hash


def insert(db: sqlite3.Connection, seq: int, event: events.Event, seal: str | None = None) -> None:
    """A row of the attacker's own (its hashes made by `rehash`)."""
    db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (seq, event.id, type(event).__name__, events.subject_of(event), event.workflow_id, event.ts.timestamp(),
                events.encode(event), b"", b"", seal))


def tamper(data: Path, change: Callable[[sqlite3.Connection], None]) -> None:
    with sqlite3.connect(data / "events.db") as db:
        change(db)


def succeeded_seq(db: sqlite3.Connection) -> tuple[int, str, bytes]:
    return db.execute("SELECT seq, id, data FROM events WHERE type = 'TaskSucceeded' ORDER BY seq").fetchone()


def test_the_untouched_log_verifies_against_its_checkpoint_and_the_stream(data: Path, head: int) -> None:
    done = ymera("audit", "verify", env=ymera_env(data))
    assert done.returncode == 0, done.stderr
    # Past the log's head: the writer's last checkpoint, and attestations sent as the actors stopped.
    assert done.stdout.splitlines()[1] == f"audit: 1 signed checkpoint verified, the latest at seq {head}"
    past = re.fullmatch(rf"audit: {head} rows compared with the stream \(it holds seqs 1-([0-9]+)\); ([0-9]+) past "
                        r"the log's head, not stored yet", done.stdout.splitlines()[2])
    assert past is not None, done.stdout
    assert int(past[1]) == head + int(past[2]) >= head + 1


def test_a_row_changed_and_the_rest_re_hashed_is_named_by_the_stream_and_the_checkpoint(data: Path, head: int) -> None:
    def change(db: sqlite3.Connection) -> None:
        seq, _, body = succeeded_seq(db)
        db.execute("UPDATE events SET data = ? WHERE seq = ?", (body.replace(b'"output":', b'"output":"forged",'
                                                                             b'"x":'), seq))
        rehash(db)
    with sqlite3.connect(data / "events.db") as db:
        seq, event_id, _ = succeeded_seq(db)
    tamper(data, change)
    code, errors = verify(data)
    assert code == 1
    assert errors[0] == f"audit: altered: seq {seq}: event {event_id}: its bytes differ from the stream's"
    assert errors[1].startswith(f"audit: forged: seq {seq}: event {event_id}: ")
    assert ATTESTED.fullmatch(errors[1].split(": ", 4)[4]), errors[1]
    assert re.fullmatch(rf"audit: checkpoint: seq {head}: the log's hash there is [0-9a-f]{{16}}…, the signed "
                        rf"checkpoint says [0-9a-f]{{16}}…: rewritten", errors[2]), errors


def test_a_log_cut_at_the_end_is_named(data: Path, head: int) -> None:
    tamper(data, lambda db: db.execute("DELETE FROM events WHERE seq > 12"))
    code, errors = verify(data)
    assert code == 1
    assert errors == [f"audit: missing: seqs 13-{head}: {head - 12} events of the stream have no row: cut at the end",
                      f"audit: checkpoint: seq {head}: vouches for the chain's head at seq {head}, and the log ends "
                      "at seq 12"]


def test_a_log_whose_first_rows_were_deleted_and_the_rest_re_hashed_is_named(data: Path, head: int) -> None:
    def change(db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM events WHERE seq <= 3")
        rehash(db)
    tamper(data, change)
    code, errors = verify(data)
    assert code == 1
    assert errors[0] == "audit: missing: seqs 1-3: 3 events of the stream have no row: deleted from the start"
    assert errors[1].startswith(f"audit: checkpoint: seq {head}: the log's hash there is ")


def test_an_emptied_log_is_named(data: Path, head: int) -> None:
    tamper(data, lambda db: db.execute("DELETE FROM events"))
    code, errors = verify(data)
    assert code == 1
    assert errors == [f"audit: missing: seqs 1-{head}: {head} events of the stream have no row: the log has no rows",
                      f"audit: checkpoint: seq {head}: vouches for the chain's head at seq {head}, and the log has "
                      "no rows"]


def test_an_inserted_row_is_named(data: Path) -> None:
    forged = events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="pipeline-1", task_id="report",
                                  attempt=1, output="all good")

    def change(db: sqlite3.Connection) -> None:
        insert(db, 500, forged)
        rehash(db)
    tamper(data, change)
    code, errors = verify(data)
    assert code == 1
    assert f"audit: inserted: seq 500: event {forged.id}: the stream has no such event at this seq" in errors
    assert (f"audit: forged: seq 500: event {forged.id}: TaskSucceeded is the executor's to emit, and this one is "
            "not signed") in errors


def test_two_rows_swapped_and_re_hashed_are_named_as_reordered(data: Path) -> None:
    columns = "id, type, subject, workflow_id, ts, data, seal"

    def change(db: sqlite3.Connection) -> None:  # every column swapped: the rows agree with their bytes
        (a, *row_a), (b, *row_b) = db.execute(f"SELECT seq, {columns} FROM events WHERE seq IN (5, 6) ORDER BY seq")
        assign = ", ".join(f"{c} = ?" for c in columns.split(", "))
        db.execute("UPDATE events SET id = ? WHERE seq = ?", ("moving", a))
        db.execute(f"UPDATE events SET {assign} WHERE seq = ?", (*row_a, b))
        db.execute(f"UPDATE events SET {assign} WHERE seq = ?", (*row_b, a))
        rehash(db)
    with sqlite3.connect(data / "events.db") as db:
        (a, id_a, _), (b, id_b, _) = rows(db)[4:6]
    assert (a, b) == (5, 6)
    tamper(data, change)
    code, errors = verify(data)
    assert code == 1
    assert errors[:2] == [f"audit: reordered: seq {a}: holds event {id_b}, which the stream has at seq {b}",
                          f"audit: reordered: seq {b}: holds event {id_a}, which the stream has at seq {a}"]


def test_without_the_stream_a_checkpoint_not_signed_by_the_writers_key_is_named(data: Path, head: int) -> None:
    impostor = guard.Identity.generate("store")
    with sqlite3.connect(data / "events.db") as db:
        (head_hash,) = db.execute("SELECT hash FROM events WHERE seq = ?", (head,)).fetchone()
    forged = events.ChainCheckpoint(
        id=events.new_id(), ts=events.now(), workflow_id="_", stream="YMERA", head_seq=head,
        head_hash=head_hash.hex(), key_id=impostor.key_id, public_key=impostor.public_key,
        signature=impostor.sign(events.checkpoint_bytes("YMERA", head, head_hash.hex())))

    def change(db: sqlite3.Connection) -> None:
        insert(db, head + 1, forged)
        rehash(db)
    tamper(data, change)
    trusted = (data / "keys" / "store.pub").read_text().strip()
    code, errors = verify(data, "--no-stream")
    assert code == 1
    assert errors == [f"audit: checkpoint: seq {head}: signed by key {impostor.key_id}, not the store writer's "
                      f"({guard.key_id(trusted)})",
                      f"audit: forged: seq {head + 1}: event {forged.id}: ChainCheckpoint is the store's to emit, and "
                      "this one is not signed"]


def test_a_log_copied_away_from_its_stream_is_checked_against_its_own_checkpoints(data: Path, tmp_path: Path,
                                                                                  head: int) -> None:
    """A second run stores the first run's checkpoint in the log; copied alone, the log still has it."""
    run = ymera("run", str(EXAMPLES / "pipeline.yaml"), env=ymera_env(data))
    assert run.returncode == 0, run.stdout + run.stderr
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(data / "events.db", alone / "events.db")
    shutil.copytree(data / "keys", alone / "keys")
    done = ymera("audit", "verify", env=ymera_env(alone))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        f"audit: 1 signed checkpoint verified, the latest at seq {head}",
        "audit: the stream holds no events: checked against the checkpoints the log holds only"]


def test_a_row_signed_with_another_actors_key_is_named_as_forged(data: Path) -> None:
    """An attacker holding the executor's key writes a TaskReady (the distributor's) into the file,
    sealed as the executor would seal it."""
    executor = guard.Identity.load_or_create(data / "keys", "executor")
    spec = events.TaskSpec(id="evil", type="noop")
    forged = events.TaskReady(id=events.new_id(), ts=events.now(), workflow_id="pipeline-1", run_id="r",
                              task_id="evil", attempt=1, spec=spec, actor="distributor")
    [sealed] = bus.seal(executor, [(events.subject_of(forged), events.encode(forged))])

    def change(db: sqlite3.Connection) -> None:
        insert(db, 500, forged, sealed)
        rehash(db)
    tamper(data, change)
    code, errors = verify(data)
    assert code == 1
    assert (f"audit: forged: seq 500: event {forged.id}: TaskReady is the distributor's to emit, and this one is "
            "signed by the executor") in errors


async def test_a_message_published_with_another_actors_key_is_named_as_forged(data: Path) -> None:
    """The same forgery published on the stream: the store writer rejected it; the audit names it."""
    settings = load_settings(ymera_env(data), dotenv=None)
    executor = guard.Identity.load_or_create(settings.keys_dir, "executor")
    connection, server = await bus.open_local(settings, "attacker")
    try:
        impostor = await bus.connect(connection.url, signer=executor)
        spec = events.TaskSpec(id="evil", type="noop")
        forged = events.TaskReady(id=events.new_id(), ts=events.now(), workflow_id="pipeline-1", run_id="r",
                                  task_id="evil", attempt=1, spec=spec, actor="distributor")
        ack = await impostor.publish(forged)
        await impostor.close()
    finally:
        await connection.close()
        if server is not None:
            server.stop()
    code, errors = await asyncio.to_thread(verify, data)
    assert code == 1
    assert errors == [f"audit: forged: seq {ack.seq}: the stream holds a message on {events.subject_of(forged)}: "
                      "TaskReady is the distributor's to emit, and this one is signed by the executor; the store "
                      "writer rejected it"]
