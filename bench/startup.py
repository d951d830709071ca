"""Benchmark an actor's start time against the length of the history, with and without snapshots.

For each history length (default 10k, 100k, 1M events), on a nats-server this script starts
itself (never the system NATS): publish a history of whole workflows, most ended, a few in
flight (tests/history.py: submitted, admitted, validated, 4 chained tasks each ready,
started, succeeded, checked, assessed, then completed); fold it once per actor and save that
snapshot; publish `--tail` more events (the default snapshot cadence, so the worst a crash
leaves to fold: YMERA_SNAPSHOT_EVERY_EVENTS); then time starts:

- without snapshots (YMERA_SNAPSHOTS=false): `run_actor` from call to ready, folding the
  whole stream on the actor's subjects, then reconciling and creating its consumer;
- with snapshots: the same, restoring the snapshot and folding only the tail;
- all five together in one process (one event loop, as `ymera up` runs them), both ways.

Target (issue 7): each actor, and all five together, ready in under 1 s after 1,000,000 events.

    .venv/bin/python bench/startup.py [--sizes 10000,100000,1000000] [--tail 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import machine, write_section

import bus
import events
from actors import Actor, Settings, load_settings, rebuild, run_actor
from actors._archive import matcher
from actors._snapshot import encode_snapshot
from actors.assessor._actor import Assessor
from actors.distributor import Distributor
from actors.monitor._actor import Monitor
from actors.security import Security
from actors.validator._actor import Validator
from tests.history import history, publish_history

KINDS: list[type[Actor]] = [Security, Validator, Distributor, Assessor, Monitor]
TARGET_S = 1.0


def settings(data: Path, snapshots: bool) -> Settings:
    return load_settings({"YMERA_DATA_DIR": str(data), "YMERA_SNAPSHOTS": "true" if snapshots else "false",
                          "TASK_TIMEOUT_SECONDS": "86400", "YMERA_SNAPSHOT_EVERY_EVENTS": "100000000",
                          "YMERA_SNAPSHOT_EVERY_SECONDS": "100000"}, dotenv=None)


async def start_time(actors: list[Actor], connection: bus.Bus) -> float:
    """Seconds from `run_actor` to ready for all of `actors` started at once; then stop them."""
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in actors]
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(run_actor(a, connection, stop, r)) for a, r in zip(actors, readies, strict=True)]
    await asyncio.gather(*(r.wait() for r in readies))
    elapsed = time.perf_counter() - t0
    # Stop without the clean-stop snapshot: the next run must find the pre-tail one.
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return elapsed


async def measure(n: int, tail: int, repeat: int, data: Path) -> list[tuple[str, int, list[float], list[float], str]]:
    server = bus.EmbeddedServer(data / "nats")
    server.start()
    rows: list[tuple[str, int, list[float], list[float], str]] = []
    try:
        connection = await bus.connect(server.url, publish_timeout=60)
        t0 = time.perf_counter()
        # Each actor folds the history as it is published (what a rebuild from the stream
        # would fold, without reading it back: at 1M events that saves minutes).
        folding = [(kind(settings(data, True)), matcher([*kind.subjects, *kind.own_subjects])) for kind in KINDS]

        def published(evs: Iterator[events.Event]) -> Iterator[events.Event]:
            for event in evs:
                subject = events.subject_of(event)
                for actor, wanted in folding:
                    if wanted(subject):
                        actor.apply(event)
                yield event

        seq = await publish_history(connection.js, published(history(n - tail, prefix="h")))
        info = (await connection.js.stream_info(connection.stream.name))
        created = info.created.isoformat() if info.created else ""
        snapshots = {actor.name: encode_snapshot(actor, seq, created) for actor, _ in folding}
        if n < 1_000_000:  # check, where it is cheap, that this is what a rebuild folds
            for actor, _ in folding:
                rebuilt = type(actor)(settings(data, True))
                await rebuild(rebuilt, connection)
                assert encode_snapshot(rebuilt, seq, created) == snapshots[actor.name], actor.name
        last = await publish_history(connection.js, history(tail, prefix="tail"))
        print(f"{n:,} events: history {last:,} seqs published and snapshots taken in "
              f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)

        async def restore() -> None:
            for name, blob in snapshots.items():
                await connection.snapshots.save(name, blob)

        # A start without snapshots folds the whole history: at 1M events, once is enough.
        repeat_full = repeat if n < 1_000_000 else 1
        for kind in KINDS:
            without = [await start_time([kind(settings(data, False))], connection) for _ in range(repeat_full)]
            with_ = []
            for _ in range(repeat):
                await restore()
                with_.append(await start_time([kind(settings(data, True))], connection))
            rows.append((kind.name, last, without, with_, f"snapshot {len(snapshots[kind.name]):,} B"))
            print(f"  {kind.name}: {statistics.median(without):.2f}s without, "
                  f"{statistics.median(with_):.3f}s with", file=sys.stderr)
        without = [await start_time([k(settings(data, False)) for k in KINDS], connection)
                   for _ in range(repeat_full)]
        with_ = []
        for _ in range(repeat):
            await restore()
            with_.append(await start_time([k(settings(data, True)) for k in KINDS], connection))
        rows.append(("all five, one process", last, without, with_, ""))
        await connection.close()
    finally:
        server.stop()
    return rows


def fmt(values: list[float]) -> str:
    med = statistics.median(values)
    spread = f" ({min(values):.3f} – {max(values):.3f})" if len(values) > 1 else ""
    return f"{med:.3f}{spread}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--tail", type=int, default=5_000, help="events after the snapshot")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md as it is")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sizes = [int(s) for s in args.sizes.split(",")]
    lines = ["| actor | history (seqs) | start without snapshot, s: median (range) | "
             "start with snapshot, s: median (range) | speed-up | note |",
             "|---|---:|---:|---:|---:|---|"]
    verdicts = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="ymera-startup-") as tmp:
            rows = asyncio.run(measure(n, min(args.tail, n // 2), args.repeat, Path(tmp)))
        for name, seqs, without, with_, note in rows:
            ratio = statistics.median(without) / statistics.median(with_)
            lines.append(f"| {name} | {seqs:,} | {fmt(without)} | {fmt(with_)} | {ratio:.1f}x | {note} |")
            if n >= 1_000_000:
                ok = statistics.median(with_) < TARGET_S
                verdicts.append(f"{name}: {statistics.median(with_):.3f}s {'<' if ok else '>='} {TARGET_S:g}s "
                                f"{'met' if ok else 'MISSED'}")
    text = machine() + "\n" + (f"tail after the snapshot: {args.tail:,} events (half the history at 10k); "
                                f"repeats: {args.repeat} (starts without snapshots at 1M: 1)\n\n")
    text += "\n".join(lines) + "\n"
    if verdicts:
        text += "\nTarget (ready in under 1 s after 1,000,000 events, with snapshots): " + "; ".join(verdicts) + "\n"
    print(text)
    if not args.no_write:
        write_section("Start time against history (bench/startup.py)", text)


if __name__ == "__main__":
    main()
