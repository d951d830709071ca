"""End-to-end throughput of no-op tasks on Ymera, against Celery + Redis measured in the same run.

A task counts as done when its workflow's `WorkflowCompleted` is out AND the store writer
has committed the stream up to its last seq to the SQLite log (polled read-only): every
event stored, not only executed. Each repetition of each Ymera variant gets a fresh
`bus.EmbeddedServer` (never the system NATS) and data dir, runs a 20-task warm-up, then the
workloads one after another, publishing `WorkflowSubmitted` (`TaskSpec(type="noop")`)
directly, as the embedded default runs: signed, on a server enforcing who publishes what
(`YMERA_NATS_AUTH`, `YMERA_SIGN_EVENTS` in the environment change it). Variants: `python -m
runner up --processes --executors N` (one OS process per actor, as deployed), and every actor
on this event loop (`actors.run_all`, as `ymera.WorkflowOrchestrator` runs with nothing
configured).

- wide AxB: A workflows of B independent tasks, submitted at once; tasks/s = tasks /
  (log holds the last event - first submit).
- chain N: one workflow of N tasks, each depending on the one before. A step is one task's
  `TaskReady.ts` to the next one's (the events' own timestamps, read back from the log):
  release, run (with the outcome check), succeed, next release. p50/p99 over the steps of
  every repetition; the median of each hop is shown too.

The Celery peer (`celery_peer.py`) runs the same shapes twice: with its defaults (one
prefork worker of 1 or 2 processes, one client), and tuned (a solo worker per core, prefetch
64, with one client and with one per core: the fastest setups of `--celery-sweep`, which
measures a grid of pools, worker and client processes and prefetch once and prints it). CPU time of every
process involved is read from /proc around each workload.

Targets (issue 8), against Celery at its best in the same run (the faster of the two rows):
chain step p50 <= 0.6x Celery's; wide tasks/s >= 5x Celery's with one process per actor,
>= 3x with every actor in one process.

    .venv/bin/python bench/throughput.py [--wide 50x100,1x2000] [--chain 200] [--repeat 3] [--write]
    .venv/bin/python bench/throughput.py --celery-sweep [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import nats.js.errors
import structlog
from cpu import actor_pids, cpu_snapshot, cpu_used
from nats.aio.msg import Msg
from report import machine, pct, write_section
from throughput_report import CELERY, CELERY_TUNED, CORES, IN_PROCESS, PROCESSES, Row, Run, busy, render

import bus
import events
from actors import client_access, load_settings, run_all

if TYPE_CHECKING:
    import celery_peer

CONSUMERS = ("store", "security", "validator", "distributor", "assessor", "monitor", "executor")
# One chain step's critical path: two durable hops; the next release waits for TaskSucceeded,
# not TaskAssessed.
HOPS = ("TaskReady", "TaskSucceeded", "TaskReady")
ENDS = ("completed", "failed", "invalid", "refused", "cancelled")


# ---- the engine ----------------------------------------------------------------------------


@dataclass
class Engine:
    bus: bus.Bus
    db: Path
    pids: dict[str, int]  # process label -> pid


async def wait_for_consumers(connection: bus.Bus, executors: int, timeout: float = 60.0) -> None:
    """Until every actor's durable consumer exists and `executors` pull requests wait on the shared one."""
    deadline = time.monotonic() + timeout
    for name in CONSUMERS:
        while True:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                info = await connection.js.consumer_info(connection.stream.name, name)
                if name != "executor" or (info.num_waiting or 0) >= executors:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"actor {name} not ready within {timeout:g}s")
            await asyncio.sleep(0.05)


def spawn_engine(url: str, data: Path, executors: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "YMERA_DATA_DIR")}
    env.update(NATS_URL=url, YMERA_DATA_DIR=str(data), YMERA_LOG_LEVEL="warning",
               YMERA_NATS_AUTH=os.environ.get("YMERA_NATS_AUTH", "true"))
    with open(log, "ab") as sink:  # cwd = data: no stray .env is read
        return subprocess.Popen([sys.executable, "-m", "runner", "up", "--processes", "--executors", str(executors)],
                                env=env, cwd=data, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)


@contextlib.asynccontextmanager
async def engine(tmp: Path, executors: int, in_process: bool,
                 environ: Mapping[str, str] | None = None) -> AsyncIterator[Engine]:
    """A fresh embedded server and data dir, and the engine: `runner up --processes`, or `run_all` here.
    The server authenticates every connection and enforces each one's permissions, as the
    embedded default does (docs/security.md); YMERA_NATS_AUTH=false in the environment measures
    a server anyone may use, where every actor checks what it reads. `environ`: more settings
    (the in-process engine's; a process engine reads the environment)."""
    data = tmp / "data"
    data.mkdir(parents=True)
    settings = load_settings({"NATS_URL": "nats://unused", "YMERA_DATA_DIR": str(data),
                              "YMERA_NATS_AUTH": os.environ.get("YMERA_NATS_AUTH", "true"),
                              "YMERA_SIGN_EVENTS": os.environ.get("YMERA_SIGN_EVENTS", "true"), **(environ or {})},
                             dotenv=None)
    access = client_access(settings)
    authorization = access.authorization() if access.authorization is not None else None
    with bus.EmbeddedServer(tmp / "nats", authorization=authorization) as server:
        pids = {"nats-server": server.pid or 0, "bench": os.getpid()}
        connection = await bus.connect(server.url, name="bench", signer=access.signer, credentials=access.credentials,
                                       require_auth=authorization is not None)
        stop, ready = asyncio.Event(), asyncio.Event()
        if in_process:
            settings = msgspec.structs.replace(settings, nats_url=server.url)
            actors = asyncio.create_task(run_all(settings, connection, stop, ready))
        else:
            proc = spawn_engine(server.url, data, executors, tmp / "engine.log")
        try:
            await wait_for_consumers(connection, executors)
            if not in_process:
                pids.update(actor_pids(proc.pid))
            yield Engine(connection, data / "events.db", pids)
        finally:
            stop.set()
            if in_process:
                await actors
            await connection.close()
            if not in_process:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


# ---- workloads -----------------------------------------------------------------------------


def submission(workflow_id: str, n: int, chained: bool) -> events.WorkflowSubmitted:
    tasks = [events.TaskSpec(id=f"t{i:05d}", type="noop", dependencies=[f"t{i - 1:05d}"] if chained and i else [])
             for i in range(n)]
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id,
                                    principal="bench", tasks=tasks)


async def run_workflows(engine: Engine, subs: Sequence[events.WorkflowSubmitted], *, interval: float = 0.0,
                        latencies: list[float] | None = None) -> tuple[float, int]:
    """(seconds from the first submit until the log holds every event, events the run caused).
    Every workflow is submitted at once; with `interval`, one every `interval` seconds (a pace).
    `latencies`: appended each workflow's ms from its submission to its end."""
    pending, failed, done = {s.workflow_id for s in subs}, [], asyncio.Event()
    sent: dict[str, float] = {}
    ended: dict[str, float] = {}

    async def on_end(msg: Msg) -> None:
        workflow = msg.subject.split(".")[2]
        if workflow not in pending:
            return
        ended[workflow] = time.perf_counter()
        if not msg.subject.endswith(".completed"):
            failed.append(msg.subject)
        pending.discard(workflow)
        if not pending:
            done.set()

    nc, js, stream = engine.bus.nc, engine.bus.js, engine.bus.stream.name
    watching = [await nc.subscribe(f"ymera.wf.*.{verb}", cb=on_end) for verb in ENDS]
    await nc.flush()
    try:
        first = (await js.stream_info(stream)).state.last_seq
        t0 = time.perf_counter()
        principal = engine.bus.principal  # where clients sign, a submission names the client's key
        if principal is not None:
            subs = [msgspec.structs.replace(s, principal=principal) for s in subs]
        if interval:
            for i, sub in enumerate(subs):
                wait = t0 + i * interval - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                sent[sub.workflow_id] = time.perf_counter()
                await engine.bus.publish(sub)
        else:
            sent = dict.fromkeys((s.workflow_id for s in subs), t0)
            await engine.bus.publish_many(subs)
        await asyncio.wait_for(done.wait(), 300 + interval * len(subs))
        if failed:
            raise RuntimeError(f"workflows did not complete: {failed[:3]}")
        last = (await js.stream_info(stream)).state.last_seq
        await stored_through(engine.db, last)
        if latencies is not None:
            latencies += [(ended[w] - sent[w]) * 1000 for w in sent]
        return time.perf_counter() - t0, last - first
    finally:
        for sub in watching:
            await sub.unsubscribe()


async def stored_through(db: Path, seq: int, timeout: float = 120.0) -> None:
    """Until the log in `db` holds stream seq `seq` (read through a read-only sqlite3 connection)."""
    reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        deadline = time.monotonic() + timeout
        while reader.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0] < seq:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the store writer did not reach seq {seq} within {timeout:g}s")
            await asyncio.sleep(0.002)
    finally:
        reader.close()


def chain_steps(db: Path, workflow_id: str) -> tuple[list[float], dict[str, float]]:
    """Steps (ms) between consecutive TaskReady ts, and the median ms of each hop of a step."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT type, ts, data FROM events WHERE workflow_id = ? ORDER BY seq",
                           (workflow_id,)).fetchall()
    finally:
        con.close()
    at: dict[tuple[str, str], float] = {}
    for kind, ts, data in rows:
        if kind in HOPS:
            at.setdefault((kind, events.decode(data).task_id), ts)  # type: ignore[union-attr]
    ids = sorted({task for _, task in at})
    path = [h for h in HOPS[:-1] if (h, ids[0]) in at] + [HOPS[-1]]  # every kind that was emitted
    hops, last = {}, len(path) - 2
    for i, (a, b) in enumerate(itertools.pairwise(path)):
        pairs = zip(ids, ids[1:] if i == last else ids, strict=False)
        hops[f"{a}→{'next ' * (i == last)}{b}"] = statistics.median((at[(b, n)] - at[(a, t)]) * 1000 for t, n in pairs)
    return [(at[("TaskReady", n)] - at[("TaskReady", t)]) * 1000 for t, n in itertools.pairwise(ids)], hops


async def measure_ymera(ymera: Engine, rows: list[Row], rep: int) -> None:
    await run_workflows(ymera, [submission(f"warm-{rep}", 20, False)])
    for row in rows:
        chained = row.workload.startswith("chain")
        subs = [submission(f"chain-{rep}", row.tasks, True)] if chained else [
            submission(f"wide-{rep}-{row.shape[1]}-{i:03d}", row.shape[1], False) for i in range(row.shape[0])]
        before = cpu_snapshot(ymera.pids)
        seconds, caused = await run_workflows(ymera, subs)
        run = Run(seconds, cpu=cpu_used(before, cpu_snapshot(ymera.pids)), events_per_task=caused / row.tasks)
        if chained:
            run.steps_ms, run.hops_ms = chain_steps(ymera.db, f"chain-{rep}")
        record(row, run)


def measure_celery(setup: celery_peer.Setup, rows: list[Row], log: Path) -> None:
    import celery_peer  # the bench extra: only when Celery is measured

    with celery_peer.worker(setup, log) as clients:
        pids = {"bench": os.getpid(), **clients.pids()}
        for row in rows:
            before = cpu_snapshot(pids)
            if row.workload.startswith("wide"):
                run = Run(clients.wide(*row.shape))
            else:
                seconds, steps = celery_peer.chained(row.tasks)
                run = Run(seconds, [s * 1000 for s in steps])
            run.cpu = cpu_used(before, cpu_snapshot(pids))
            record(row, run)


def record(row: Row, run: Run) -> None:
    row.runs.append(run)
    print(f"    {row.workload}: {row.tasks / run.seconds:,.0f} tasks/s; machine {busy(run):.0%} busy, "
          f"{run.cpu['unattributed'] / (run.seconds * CORES):.0%} outside the processes measured", file=sys.stderr)


# ---- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    def shapes(text: str) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in (s.split("x") for s in text.split(","))]

    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--wide", type=shapes, default=[(50, 100), (1, 2000)],
                   help="wide shapes, WORKFLOWSxTASKS, comma-separated (default 50x100,1x2000)")
    p.add_argument("--chain", type=int, default=200, help="tasks in the chain (default 200)")
    p.add_argument("--executors", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2],
                   help="executor processes, and Celery worker processes (default 1,2)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions; tables show the median (default 3)")
    p.add_argument("--no-inprocess", action="store_true", help="skip the variant with every actor in this process")
    p.add_argument("--no-celery", action="store_true", help="skip the Celery peer")
    p.add_argument("--celery-sweep", action="store_true",
                   help="only measure Celery over a grid of setups (pool, workers, prefetch, clients), once each")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    p.add_argument("--write", action="store_true", help="also record the results in BENCHMARKS.md")
    return p.parse_args(argv)


async def main() -> None:
    args = parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    header = machine()
    print(header + "\n")
    if args.celery_sweep:
        return sweep_celery(args, header)
    variants: list[tuple[str, int]] = [(PROCESSES, n) for n in args.executors] + [(IN_PROCESS, 1)] * (
        not args.no_inprocess)
    setups: dict[tuple[str, int], celery_peer.Setup] = {}
    if not args.no_celery:
        import celery_peer

        for setup in [*(celery_peer.Setup(n) for n in args.executors), *celery_peer.tuned(CORES)]:
            name = CELERY if setup.pool == "prefork" and setup.prefetch == 4 and setup.clients == 1 \
                else f"{CELERY_TUNED}: {setup.label}"
            setups[(name, setup.workers)] = setup
            variants.append((name, setup.workers))
    # The chain first: right after a wide run, Celery's next chain is up to 3x slower for a while.
    table = {v: [Row(v[0], f"chain {args.chain}", v[1], args.chain)]
             + [Row(v[0], f"wide {a}×{b}", v[1], a * b) for a, b in args.wide] for v in variants}
    tmp = Path(tempfile.mkdtemp(prefix="ymera-throughput-"))
    try:
        for rep in range(args.repeat):  # interleaved, so a slow minute touches every variant
            for (name, workers), rows in table.items():
                print(f"  repetition {rep + 1}: {name}, {workers} …", file=sys.stderr)
                if name.startswith(CELERY):
                    measure_celery(setups[(name, workers)], rows, tmp / f"celery-{rep}-{workers}.log")
                    continue
                async with engine(tmp / f"ymera-{rep}-{len(name)}-{workers}", workers, name == IN_PROCESS) as ymera:
                    await measure_ymera(ymera, rows, rep)
        text = render([r for rows in table.values() for r in rows])
        print(text)
        if args.write:
            write_section("Throughput (bench/throughput.py)", header + "\n\n" + text)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def sweep_celery(args: argparse.Namespace, header: str) -> None:
    """Celery over `celery_peer.sweep`'s grid, each setup once: which one the comparison uses."""
    import celery_peer

    lines = ["| pool | worker processes | prefetch | clients | chain step p50 ms | "
             + " | ".join(f"wide {a}×{b} tasks/s" for a, b in args.wide) + " | busy (wide) |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(args.wide) + "---:|"]
    tmp = Path(tempfile.mkdtemp(prefix="ymera-celery-sweep-"))
    try:
        for setup in celery_peer.sweep(CORES):
            print(f"  {setup.label} …", file=sys.stderr)
            rows = [Row(CELERY, f"chain {args.chain}", setup.workers, args.chain)] + [
                Row(CELERY, f"wide {a}×{b}", setup.workers, a * b) for a, b in args.wide]
            measure_celery(setup, rows, tmp / "celery.log")
            rates = " | ".join(f"{r.rate:,.0f}" for r in rows[1:])
            lines.append(f"| {setup.pool} | {setup.workers} | {setup.prefetch} | {setup.clients} | "
                         f"{pct(rows[0].steps, 50):.2f} | {rates} | {busy(rows[1].runs[0]):.0%} |")
            print(lines[-1], file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section("Celery at its best (bench/throughput.py --celery-sweep)", header + "\n\n" + text)


if __name__ == "__main__":
    asyncio.run(main())
