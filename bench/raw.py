"""The raw libraries Ymera is compared against: nats-py publishing, stdlib sqlite3 writing and reading.

Each function does what Ymera's own path does, with nothing of Ymera's in between, so a
benchmark can report Ymera as a fraction of what the libraries allow on the same machine.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import nats

import bus
import events

MSG_ID = "Nats-Msg-Id"
RAW_TXN_ROWS = 1000

# Mirrors store/_sqlite.py's events table (the blobs table is irrelevant here).
RAW_SCHEMA = """
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    type        TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    workflow_id TEXT    NOT NULL,
    ts          REAL    NOT NULL,
    data        BLOB    NOT NULL,
    prev_hash   BLOB    NOT NULL,
    hash        BLOB    NOT NULL
);
CREATE INDEX events_by_workflow ON events (workflow_id, seq);
"""


async def raw_publish(url: str, wire: Sequence[tuple[str, str, bytes]]) -> float:
    """Seconds for nats-py to publish every payload pipelined and receive every ack."""
    nc = await nats.connect(url, pending_size=8 * 1024 * 1024)
    try:
        js = nc.jetstream()
        await bus.ensure_stream(js, bus.StreamPolicy())  # the same stream config Ymera uses
        t0 = time.perf_counter()
        futures = [await js.publish_async(subject, data, headers={MSG_ID: event_id})
                   for subject, event_id, data in wire]
        acks = await asyncio.gather(*futures)
        elapsed = time.perf_counter() - t0
        assert acks[-1].seq == len(wire), f"stream seq {acks[-1].seq} != {len(wire)} events"
        assert not any(a.duplicate for a in acks), "events were dropped as duplicates"
        return elapsed
    finally:
        await nc.close()


def raw_insert(path: Path, rows: Sequence[tuple[object, ...]]) -> float:
    """Seconds for stdlib sqlite3 to insert the rows in 1000-row transactions."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(RAW_SCHEMA)
        sql = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)"
        t0 = time.perf_counter()
        for i in range(0, len(rows), RAW_TXN_ROWS):
            with con:
                con.executemany(sql, rows[i : i + RAW_TXN_ROWS])
        elapsed = time.perf_counter() - t0
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == len(rows)
        return elapsed
    finally:
        con.close()


def raw_scan_decode(path: Path) -> int:
    """Reference: stdlib sqlite3 scan of the same rows + msgspec decode, no asyncio, no thread."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        n = 0
        for (data,) in con.execute("SELECT data FROM events ORDER BY seq"):
            events.decode(data)
            n += 1
        return n
    finally:
        con.close()
