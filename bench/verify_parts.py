"""Where `store.verify`'s time goes, per row, against the stdlib scan + decode reference.

Builds a log of `--events` events (bench/event_path.py's workload), then measures in CPU
time (process_time: steadier than wall time on a shared machine), median of `--repeat`:
the reference (scan of `data` + `events.decode`), `store.verify`, and the parts of a row's
check one by one; and the same checks as one synchronous stdlib loop, decoding only the
event's header (type, id, workflow_id, task_id, ts: what `store.verify` reads since issue 7)
and decoding the whole event (what it did before).

    .venv/bin/python bench/verify_parts.py [--events 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import msgspec
from event_path import log_rows, make_events, wire_form
from raw import raw_scan_decode

import events
import store

COLUMNS = "seq, id, type, subject, workflow_id, ts, data, prev_hash, hash"


class Envelope(msgspec.Struct):
    type: str
    id: str
    ts: datetime
    workflow_id: str
    task_id: str | None = None


def checks(path: Path, envelope_only: bool) -> None:
    """`store.verify`'s row checks as one synchronous stdlib loop."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    lean = msgspec.json.Decoder(Envelope)
    prev = store.GENESIS
    for seq, event_id, kind, subject, workflow_id, ts, data, prev_hash, row_hash in con.execute(
            f"SELECT {COLUMNS} FROM events ORDER BY seq"):
        h = hashlib.sha256(prev)
        h.update(seq.to_bytes(8, "big"))
        h.update(event_id.encode())
        h.update(data)
        assert prev_hash == prev
        assert h.digest() == row_hash
        if envelope_only:
            e = lean.decode(data)
            cls = events.EVENT_TYPES[e.type]
            middle = f"{e.workflow_id}.{e.task_id}" if e.task_id is not None else e.workflow_id
            want = (e.id, e.type, f"{events.PREFIX}.{cls.domain}.{middle}.{cls.verb}", e.workflow_id, e.ts.timestamp())
        else:
            event = events.decode(data)
            want = (event.id, type(event).__name__, events.subject_of(event), event.workflow_id, event.ts.timestamp())
        assert want == (event_id, kind, subject, workflow_id, ts)
        prev = row_hash
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.events
    with tempfile.TemporaryDirectory(prefix="ymera-verify-") as tmp:
        path = Path(tmp) / "events.db"
        evs = make_events(n)
        rows = log_rows(evs, wire_form(evs))

        async def fill() -> None:
            async with store.SqliteEventLog(path) as log:
                for i in range(0, n, 1000):
                    await log.append([store.NewEvent(*r[:7]) for r in rows[i:i + 1000]])  # type: ignore[arg-type]

        asyncio.run(fill())
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        table = con.execute(f"SELECT {COLUMNS} FROM events ORDER BY seq").fetchall()
        decoded = [events.decode(r[6]) for r in table]

        async def audit() -> None:
            async with store.SqliteEventLog(path, readonly=True) as log:
                assert (await store.verify(log)).ok

        def link_all() -> None:
            for r in table:
                store.link(r[7], r[0], r[1], r[6])

        def fetch(columns: str) -> Callable[[], None]:
            def run() -> None:
                for _ in con.execute(f"SELECT {columns} FROM events ORDER BY seq"):
                    pass
            return run

        parts: list[tuple[str, Callable[[], object]]] = [
            ("reference: stdlib scan of data + events.decode", lambda: raw_scan_decode(path)),
            ("store.verify", lambda: asyncio.run(audit())),
            ("the same checks as one stdlib loop, header-only decode", lambda: checks(path, True)),
            ("the same checks as one stdlib loop, full decode", lambda: checks(path, False)),
            ("part: fetch data", fetch("data")),
            ("part: fetch all 9 columns", fetch(COLUMNS)),
            ("part: events.decode", lambda: [events.decode(r[6]) for r in table]),
            ("part: SHA-256 link", link_all),
            ("part: subject_of + ts + compare", lambda: [
                (e.id, type(e).__name__, events.subject_of(e), e.workflow_id, e.ts.timestamp()) == r[1:6]
                for e, r in zip(decoded, table, strict=True)]),
        ]
        times: dict[str, list[float]] = {name: [] for name, _ in parts}
        for _ in range(args.repeat):
            for name, fn in parts:
                t0 = time.process_time()
                fn()
                times[name].append(time.process_time() - t0)
    reference = statistics.median(times[parts[0][0]])
    print(f"{n:,} events, CPU µs per row (median of {args.repeat}); share = reference / path")
    for name, values in times.items():
        med = statistics.median(values)
        share = f"{reference / med:.0%}" if not name.startswith("part") else ""
        print(f"  {med / n * 1e6:6.2f}  {share:>5}  {name}")


if __name__ == "__main__":
    main()
