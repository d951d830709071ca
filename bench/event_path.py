"""Benchmark Ymera's durable event path against the raw libraries it is built on.

Every event Ymera emits must be published to JetStream and then appended to the SQLite
event log before anything downstream can trust it, so this path bounds what the whole
system can do. This script measures, in one run, on nats-servers it starts itself (never
the system NATS) and temporary SQLite files:

(a) the raw pair, the floor of what the libraries allow:
    - nats-py JetStream `publish_async`, fully pipelined, of N encoded events (the bytes
      Ymera would publish, on the subject Ymera would use, with `Nats-Msg-Id`), all acks
      awaited;
    - stdlib `sqlite3` inserting the same payloads (WAL, synchronous=NORMAL, 1000-row
      transactions via `executemany`) into a table shaped like Ymera's `events`;
    - "raw pair" = N / (t_publish + t_insert).
(b) Ymera's durable path: `Bus.publish_many` in chunks while a `store.StoreWriter`
    appends the stream to a `store.SqliteEventLog`, timed from the first publish until the
    log's head reaches the last published seq. Once with the writer in this process (one
    event loop, one connection), once with the writer as its own process
    (`python -m runner actor store`), each against a fresh server and stream.
(c) replay over the stored log: `log.read(0)` + `events.decode`, `store.verify` (the hash
    chain audit) and `store.rebuild(store.EventCounts(), log)`; plus a synchronous stdlib
    scan + decode as a reference. The readers and the reference take turns, five rounds per
    repetition, and each keeps its best time of the five.

Targets (from the issue): durable path >= 50% of the raw pair; replay (read + decode) and
`store.verify` >= 60% of the stdlib sqlite3 scan + decode reference, paired per repetition.

Each measurement is repeated (--repeat, default 3) and the table shows the median and the
range, because on a 2-core machine one run of a path that shares cores with nats-server
varies by +-20%.

    .venv/bin/python bench/event_path.py [--events 100000] [--chunk 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import nats
import nats.js.errors
import structlog
from raw import raw_insert, raw_publish, raw_scan_decode
from report import Row, machine, table, write_section

import bus
import events
import store

DURABLE_TARGET = 0.50
REPLAY_SHARE = 0.60  # of the stdlib sqlite3 scan + decode, measured in the same run
POLL_S = 0.005
REPLAY_ROUNDS = 5  # turns each reader and the reference take, per repetition; the best counts

# ---- workload ----------------------------------------------------------------------------


def make_events(n: int) -> list[events.Event]:
    """Workflows of 50 task attempts as an executor reports them: the workflow's submission
    (which starts its run, so a fold admits its events), then per task TaskStarted and
    TaskSucceeded with a small output."""
    out: list[events.Event] = []
    attempt = 0
    while len(out) < n:
        workflow_id, task_id = f"wf-{attempt // 50:05d}", f"t{attempt % 50:02d}"
        if attempt % 50 == 0:
            out.append(events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id,
                                                name="bench"))
        out.append(events.TaskStarted(
            id=events.new_id(), ts=events.now(), workflow_id=workflow_id, causation_id=events.new_id(),
            actor="executor", task_id=task_id, attempt=1, executor="executor-1"))
        out.append(events.TaskSucceeded(
            id=events.new_id(), ts=events.now(), workflow_id=workflow_id, causation_id=events.new_id(),
            actor="executor", task_id=task_id, attempt=1,
            output={"text": f"summary of part {attempt}", "tokens": 40 + attempt % 200},
            duration_ms=812.5, model="gpt-4o-mini", cost_usd=0.00021))
        attempt += 1
    return out[:n]


def wire_form(evs: Sequence[events.Event]) -> list[tuple[str, str, bytes]]:
    """(subject, id, bytes) exactly as Ymera publishes them."""
    return [(events.subject_of(e), e.id, events.encode(e)) for e in evs]


def log_rows(evs: Sequence[events.Event], wire: Sequence[tuple[str, str, bytes]]) -> list[tuple[object, ...]]:
    """The events table rows Ymera would store, hash chain included (computed here, untimed)."""
    rows: list[tuple[object, ...]] = []
    prev = store.GENESIS
    for seq, (e, (subject, event_id, data)) in enumerate(zip(evs, wire, strict=True), start=1):
        h = store.link(prev, seq, event_id, data)
        rows.append((seq, event_id, type(e).__name__, subject, e.workflow_id, e.ts.timestamp(), data, prev, h))
        prev = h
    return rows


# ---- (b) Ymera's durable path --------------------------------------------------------------


async def wait_for_consumer(connection: bus.Bus, durable: str = "store", timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await connection.js.consumer_info(connection.stream.name, durable)
            return
        except nats.js.errors.NotFoundError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumer {durable!r} not created within {timeout:g}s") from None
            await asyncio.sleep(0.02)


async def publish_chunks(connection: bus.Bus, evs: Sequence[events.Event], chunk: int) -> int:
    """Publish through Ymera's Bus, `chunk` events per call; return the last stream seq."""
    last = 0
    for i in range(0, len(evs), chunk):
        acks = await connection.publish_many(evs[i : i + chunk])
        last = acks[-1].seq
    return last


async def wait_until(head: Callable[[], Awaitable[int]], seq: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while await head() < seq:
        if time.monotonic() > deadline:
            raise TimeoutError(f"log head did not reach seq {seq} within {timeout:g}s")
        await asyncio.sleep(POLL_S)


async def durable_in_process(url: str, log_path: Path, evs: Sequence[events.Event],
                             chunk: int) -> tuple[float, float]:
    """(seconds until every event is published, seconds until every event is in the log)."""
    connection = await bus.connect(url)
    log = store.SqliteEventLog(log_path)
    await log.open()
    stop = asyncio.Event()
    writer = asyncio.create_task(store.StoreWriter(connection, log).run(stop))
    try:
        await wait_for_consumer(connection)

        async def head() -> int:
            return log.head_seq

        t0 = time.perf_counter()
        last = await publish_chunks(connection, evs, chunk)
        t_pub = time.perf_counter() - t0
        await wait_until(head, last)
        t_all = time.perf_counter() - t0
        assert last == len(evs), f"stream seq {last} != {len(evs)} events"
        return t_pub, t_all
    finally:
        stop.set()
        await writer
        await log.close()
        await connection.close()


def spawn_store_actor(url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "YMERA_DATA_DIR")}
    env.update(NATS_URL=url, YMERA_DATA_DIR=str(data_dir), YMERA_LOG_LEVEL="warning")
    stderr = open(data_dir / "store-actor.stderr", "wb")  # noqa: SIM115 - owned by the child
    # cwd = data_dir, so no stray .env from the caller's directory is read.
    return subprocess.Popen([sys.executable, "-m", "runner", "actor", "store"], env=env, cwd=data_dir,
                            stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)


async def durable_subprocess(url: str, data_dir: Path, evs: Sequence[events.Event],
                             chunk: int) -> tuple[float, float]:
    """As `durable_in_process`, with the writer in its own process; the log is polled read-only."""
    proc = spawn_store_actor(url, data_dir)
    connection = await bus.connect(url, name="bench-publisher")
    reader: sqlite3.Connection | None = None
    try:
        await wait_for_consumer(connection)
        reader = sqlite3.connect(f"file:{data_dir / 'events.db'}?mode=ro", uri=True)

        async def head() -> int:
            assert reader is not None
            return int(reader.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])

        t0 = time.perf_counter()
        last = await publish_chunks(connection, evs, chunk)
        t_pub = time.perf_counter() - t0
        await wait_until(head, last)
        t_all = time.perf_counter() - t0
        assert last == len(evs), f"stream seq {last} != {len(evs)} events"
        return t_pub, t_all
    finally:
        if reader is not None:
            reader.close()
        await connection.close()
        proc.terminate()
        if proc.wait(30) != 0:
            print(f"warning: store actor exited {proc.returncode}; see {data_dir / 'store-actor.stderr'}",
                  file=sys.stderr)


# ---- (c) replay ----------------------------------------------------------------------------


async def replay_decode(log: store.SqliteEventLog) -> int:
    n = 0
    async for chunk in log.read_chunks(0):
        for row in chunk:
            events.decode(row.data)
        n += len(chunk)
    return n


async def replay_decode_payloads(log: store.SqliteEventLog) -> int:
    n = 0
    async for rows in log.scan("seq, data"):
        for _, data in rows:
            events.decode(data)
        n += len(rows)
    return n


async def replay_decode_rows(log: store.SqliteEventLog) -> int:
    n = 0
    async for row in log.read(0):
        events.decode(row.data)
        n += 1
    return n


async def replay_verify(log: store.SqliteEventLog) -> int:
    report = await store.verify(log)
    assert report.ok, f"audit failed: {report.broken}"
    return report.rows


async def replay_rebuild(log: store.SqliteEventLog) -> int:
    state, _ = await store.rebuild(store.EventCounts(), log)
    return sum(state.values())


# ---- report --------------------------------------------------------------------------------


def verdicts(raw_pair: Row, durable: Sequence[Row], replay: Sequence[Row]) -> list[str]:
    out = []
    for r in durable:
        paired = [d / p for d, p in zip(r.rates, raw_pair.rates, strict=True)]
        ratio = r.rate / raw_pair.rate
        out.append(f"- {r.path}: {ratio:.1%} of the raw pair (per repetition: "
                   f"{', '.join(f'{x:.1%}' for x in paired)}; target >= {DURABLE_TARGET:.0%}): "
                   f"{'met' if ratio >= DURABLE_TARGET else 'NOT met'}")
    reference = replay[-1]
    for r in replay[:-1]:
        paired = [x / ref for x, ref in zip(r.rates, reference.rates, strict=True)]
        ratio = statistics.median(paired)
        line = (f"- {r.path}: {r.rate:,.0f} events/s, {ratio:.1%} of the stdlib reference in the same run "
                f"(per repetition: {', '.join(f'{x:.1%}' for x in paired)}")
        if "row by row" in r.path or "every column" in r.path:
            # Row APIs (`read`, `read_chunks`), shown for comparison: no replay and no audit reads
            # through them (the audit reads its columns in a thread; the rest scan the columns they use).
            out.append(line + "; no target)")
        else:
            out.append(line + f"; target >= {REPLAY_SHARE:.0%}): {'met' if ratio >= REPLAY_SHARE else 'NOT met'}")
    return out


# ---- main ----------------------------------------------------------------------------------


async def measure_once(evs: Sequence[events.Event], wire: Sequence[tuple[str, str, bytes]],
                       rows_for_log: Sequence[tuple[object, ...]], chunk: int, tmp: Path,
                       subprocess_variant: bool) -> dict[str, float]:
    """Every measurement once, each against its own fresh server, stream and SQLite file."""
    n, t = len(evs), dict[str, float]()
    print("  (a) raw pair …", file=sys.stderr)
    with bus.EmbeddedServer(tmp / "raw" / "nats") as server:
        t["raw_publish"] = await raw_publish(server.url, wire)
    t["raw_insert"] = raw_insert(tmp / "raw" / "events.db", rows_for_log)
    t["raw_pair"] = t["raw_publish"] + t["raw_insert"]

    print("  (b) Ymera durable path, writer in process …", file=sys.stderr)
    with bus.EmbeddedServer(tmp / "inproc" / "nats") as server:
        t["inproc_publish"], t["inproc"] = await durable_in_process(
            server.url, tmp / "inproc" / "events.db", evs, chunk)
    if subprocess_variant:
        print("  (b) Ymera durable path, writer as `runner actor store` …", file=sys.stderr)
        with bus.EmbeddedServer(tmp / "subproc" / "nats") as server:
            t["subproc_publish"], t["subproc"] = await durable_subprocess(
                server.url, tmp / "subproc" / "data", evs, chunk)

    print("  (c) replay …", file=sys.stderr)
    log_path = tmp / "inproc" / "events.db"

    async def reference(_: store.SqliteEventLog) -> int:
        return raw_scan_decode(log_path)

    # Each reader and the reference take turns, REPLAY_ROUNDS times; each keeps its best time:
    # on a machine shared with other jobs, a pause lands on one pass, not on one reader.
    async with store.SqliteEventLog(log_path, readonly=True) as log:
        for _ in range(REPLAY_ROUNDS):
            for key, fn in (("payloads", replay_decode_payloads), ("decode", replay_decode),
                            ("decode_rows", replay_decode_rows), ("verify", replay_verify),
                            ("rebuild", replay_rebuild), ("raw_scan", reference)):
                t0 = time.perf_counter()
                count = await fn(log)
                t[key] = min(t.get(key, float("inf")), time.perf_counter() - t0)
                assert count == n, f"replay {key}: {count} rows, expected {n}"
    return t


def build_rows(n: int, runs: Sequence[dict[str, float]], avg_size: float,
               subprocess_variant: bool) -> tuple[list[Row], Row, list[Row], list[Row]]:
    def row(path: str, key: str, note: str = "") -> Row:
        return Row(path, n, [r[key] for r in runs], note)

    def publishing(key: str) -> str:
        return f"all publish acks in at {statistics.median(n / r[key] for r in runs):,.0f}/s"

    raw_pair = row("raw pair = N / (t_publish + t_insert)", "raw_pair")
    raw = [row("raw: nats-py publish_async (pipelined, all acks)", "raw_publish", f"avg {avg_size:.0f} B/event"),
           row("raw: sqlite3 executemany, 1000-row txns", "raw_insert", "WAL, synchronous=NORMAL"),
           raw_pair]
    durable = [row("Ymera: publish_many + StoreWriter, same process", "inproc", publishing("inproc_publish"))]
    if subprocess_variant:
        durable.append(row("Ymera: publish_many + `runner actor store` process", "subproc",
                           publishing("subproc_publish")))
    for r in durable:
        r.note = f"{r.rate / raw_pair.rate:.1%} of raw pair; {r.note}"
    replay = [row("replay: log.scan('seq, data') + events.decode (as store.rebuild)", "payloads"),
              row("replay: log.read_chunks(0) (every column) + events.decode", "decode"),
              row("replay: log.read(0) (row by row) + events.decode", "decode_rows"),
              row("replay: store.verify (audit)", "verify"),
              row("replay: store.rebuild(EventCounts)", "rebuild"),
              row("reference: stdlib sqlite3 scan + events.decode", "raw_scan", "no asyncio, no thread")]
    return raw + durable + replay, raw_pair, durable, replay


async def run(n: int, chunk: int, repeat: int, tmp: Path, subprocess_variant: bool) -> str:
    print(f"building {n:,} events …", file=sys.stderr)
    evs = make_events(n)
    wire = wire_form(evs)
    rows_for_log = log_rows(evs, wire)
    avg_size = sum(len(d) for _, _, d in wire) / n
    runs = []
    for i in range(repeat):
        print(f"repetition {i + 1}/{repeat}", file=sys.stderr)
        runs.append(await measure_once(evs, wire, rows_for_log, chunk, tmp / f"rep{i + 1}", subprocess_variant))
    rows, raw_pair, durable, replay = build_rows(n, runs, avg_size, subprocess_variant)
    return table(rows) + "\n\n" + "\n".join(verdicts(raw_pair, durable, replay))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--events", type=int, default=100_000, help="events per variant (default 100,000)")
    p.add_argument("--chunk", type=int, default=1000, help="events per Bus.publish_many call (default 1000)")
    p.add_argument("--repeat", type=int, default=3,
                   help="repetitions of every measurement; the table shows the median (default 3)")
    p.add_argument("--no-subprocess", action="store_true",
                   help="skip the variant with the store writer in its own process")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    p.add_argument("--write", action="store_true", help="also record the results in BENCHMARKS.md")
    return p.parse_args(argv)


async def main() -> None:
    args = parse_args()
    # The store writer logs at info; keep the table readable.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    header = machine()
    print(header + "\n")
    tmp = Path(tempfile.mkdtemp(prefix="ymera-bench-"))
    try:
        results = await run(args.events, args.chunk, args.repeat, tmp, not args.no_subprocess)
        print(results)
        if args.write:
            write_section("Event path (bench/event_path.py)", header + "\n\n" + results)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
