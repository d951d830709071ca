"""End-to-end throughput of no-op tasks on Ymera, against Celery + Redis measured in the same run.

A task is done when its workflow's `WorkflowCompleted` is out AND the store writer has
committed every event up to the stream's last seq to the SQLite log: every event stored,
not just executed. Each Ymera variant gets a fresh `bus.EmbeddedServer` (never the system
NATS) and a fresh data dir; the engine runs as `python -m runner up --processes --executors N`
(one OS process per actor, as in production), or, once, every actor in this process
(`actors.run_all`, how `ymera.WorkflowOrchestrator` runs with nothing configured). After
the actors' durable consumers exist, a small warm-up workflow runs; then `WorkflowSubmitted`
events (`TaskSpec(type="noop")`) are published directly and followed:

- wide: `--workflows` workflows of `--width` independent tasks, all submitted at once;
  tasks/s = tasks / (last event stored - first submit).
- chain: one workflow of `--chain` tasks, each depending on the one before. A step is one
  task's `TaskReady.ts` to the next task's `TaskReady.ts` (the events' own timestamps, read
  back from the log), i.e. one full trip: release, start, run, succeed, outcome check,
  assessment, release of the next. Reported as p50/p99; the median of each hop is printed.

The Celery peer (`celery_peer.py`) runs the same shapes with 1 and 2 prefork worker
processes. While each Ymera workload runs, the CPU time of every engine process (and the
nats-server) is read from /proc, to show which hop is CPU-bound.

Targets (issue): >= 3,000 no-op tasks/s end to end with every event stored; >= 3x Celery's
tasks/s; chain step p50 <= 3 ms.

    /work/venv/bin/python bench/throughput.py [--workflows 20 --width 100 --chain 200] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nats.js.errors
import structlog
from report import machine, write_section

import bus
import events
from actors import load_settings, run_all

TASKS_TARGET = 3_000
CELERY_FACTOR = 3.0
STEP_TARGET_MS = 3.0
CONSUMERS = ("store", "security", "validator", "distributor", "assessor", "monitor", "executor")
HOPS = ("TaskReady", "TaskStarted", "TaskSucceeded", "OutcomeChecked", "TaskAssessed")
CLK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    engine: str
    workload: str
    workers: int
    tasks: int
    seconds: float
    steps_ms: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


# ---- the engine ----------------------------------------------------------------------------


@dataclass
class Engine:
    bus: bus.Bus
    db: Path
    pids: dict[str, int]  # process label -> pid, for CPU accounting


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def engine_pids(up_pid: int, server_pid: int | None) -> dict[str, int]:
    pids = {"nats-server": server_pid or 0, "bench (this process)": os.getpid()}
    children = Path(f"/proc/{up_pid}/task/{up_pid}/children").read_text().split()
    executors = 0
    for pid in map(int, children):
        name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-2].decode()
        if name == "executor":
            executors += 1
            name = f"executor {executors}"
        pids[name] = pid
    return pids


async def wait_for_consumers(connection: bus.Bus, executors: int, timeout: float = 60.0) -> None:
    """Until every actor's durable consumer exists, and `executors` pull requests wait on the shared one."""
    deadline = time.monotonic() + timeout
    for name in CONSUMERS:
        while True:
            try:
                info = await connection.js.consumer_info(connection.stream.name, name)
                if name != "executor" or (info.num_waiting or 0) >= executors:
                    break
            except nats.js.errors.NotFoundError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"actor {name} not ready within {timeout:g}s")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def engine_processes(tmp: Path, executors: int) -> AsyncIterator[Engine]:
    """`runner up --processes` against a fresh embedded server and data dir."""
    data = tmp / "data"
    data.mkdir(parents=True)
    with bus.EmbeddedServer(tmp / "nats") as server:
        env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "YMERA_DATA_DIR")}
        env.update(NATS_URL=server.url, YMERA_DATA_DIR=str(data), YMERA_LOG_LEVEL="warning")
        with open(tmp / "engine.log", "ab") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "runner", "up", "--processes", "--executors", str(executors)],
                env=env, cwd=data, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
        connection = await bus.connect(server.url, name="bench")
        try:
            await wait_for_consumers(connection, executors)
            yield Engine(connection, data / "events.db", engine_pids(proc.pid, server.pid))
        finally:
            await connection.close()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.asynccontextmanager
async def engine_in_process(tmp: Path) -> AsyncIterator[Engine]:
    """Every actor (one executor) on this process's event loop, as WorkflowOrchestrator runs them."""
    data = tmp / "data"
    data.mkdir(parents=True)
    with bus.EmbeddedServer(tmp / "nats") as server:
        settings = load_settings({"NATS_URL": server.url, "YMERA_DATA_DIR": str(data)}, dotenv=None)
        connection = await bus.connect(server.url, name="bench")
        stop, ready = asyncio.Event(), asyncio.Event()
        actors = asyncio.create_task(run_all(settings, connection, stop, ready))
        try:
            await asyncio.wait_for(ready.wait(), 60)
            await wait_for_consumers(connection, 1)
            yield Engine(connection, settings.log_path,
                         {"nats-server": server.pid or 0, "bench + every actor": os.getpid()})
        finally:
            stop.set()
            await actors
            await connection.close()


# ---- workloads -----------------------------------------------------------------------------


def submission(workflow_id: str, n: int, chained: bool) -> events.WorkflowSubmitted:
    tasks = [events.TaskSpec(id=f"t{i:05d}", type="noop", dependencies=[f"t{i - 1:05d}"] if chained and i else [])
             for i in range(n)]
    return events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id=workflow_id,
                                    principal="bench", tasks=tasks)


async def run_workflows(engine: Engine, subs: Sequence[events.WorkflowSubmitted]) -> tuple[float, float, int]:
    """(seconds to the last workflow's end, seconds until the log holds the stream's last seq, that seq)."""
    pending = {s.workflow_id for s in subs}
    done, failed = asyncio.Event(), []

    async def on_end(msg: nats.aio.msg.Msg) -> None:
        workflow_id = msg.subject.split(".")[2]
        if not msg.subject.endswith(".completed"):
            failed.append(msg.subject)
        pending.discard(workflow_id)
        if not pending:
            done.set()

    nc = engine.bus.nc
    subs_end = [await nc.subscribe(f"ymera.wf.*.{verb}", cb=on_end) for verb in
                ("completed", "failed", "invalid", "refused", "cancelled")]
    await nc.flush()
    reader = sqlite3.connect(f"file:{engine.db}?mode=ro", uri=True)
    try:
        t0 = time.perf_counter()
        await engine.bus.publish_many(subs)
        await asyncio.wait_for(done.wait(), 300)
        t_end = time.perf_counter() - t0
        if failed:
            raise RuntimeError(f"workflows did not complete: {failed[:3]}")
        last = (await engine.bus.js.stream_info(engine.bus.stream.name)).state.last_seq
        while reader.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0] < last:
            await asyncio.sleep(0.002)
        return t_end, time.perf_counter() - t0, last
    finally:
        reader.close()
        for s in subs_end:
            await s.unsubscribe()


def chain_steps(db: Path, workflow_id: str) -> tuple[list[float], dict[str, float]]:
    """Step times (ms) between consecutive TaskReady ts, and the median ms of each hop within a step."""
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
    ready = [at[("TaskReady", t)] for t in ids]
    steps = [(b - a) * 1000 for a, b in zip(ready, ready[1:], strict=False)]
    hops: dict[str, float] = {}
    for i, (a, b) in enumerate(zip(HOPS, (*HOPS[1:], "TaskReady"), strict=True)):
        nxt = ids[1:] if i == len(HOPS) - 1 else ids
        hops[f"{a}→{b}"] = statistics.median(
            (at[(b, n)] - at[(a, t)]) * 1000 for t, n in zip(ids, nxt, strict=False))
    return steps, hops


def event_count(db: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
    finally:
        con.close()


async def measure(engine: Engine, label: str, workers: int, workload: str, args: argparse.Namespace,
                  cpu_out: dict[str, dict[str, float]]) -> Result:
    await run_workflows(engine, [submission(f"warm-{workload}", 20, workload == "chain")])
    if workload == "wide":
        subs = [submission(f"wide-{i:03d}", args.width, False) for i in range(args.workflows)]
    else:
        subs = [submission("chain", args.chain, True)]
    before = {k: cpu_seconds(p) for k, p in engine.pids.items()}
    t_end, t_stored, last = await run_workflows(engine, subs)
    used = {k: cpu_seconds(p) - before[k] for k, p in engine.pids.items()}
    tasks = sum(len(s.tasks) for s in subs)
    counts = event_count(engine.db)
    note = (f"ended at {t_end:.2f}s, stored at {t_stored:.2f}s; "
            f"{sum(counts.values()) / (tasks + 20):.1f} events/task")
    cpu_out[f"{label}, {workload}, {workers}"] = {"elapsed": t_stored, **used}
    result = Result(label, workload, workers, tasks, t_stored, note=note)
    if workload == "chain":
        result.steps_ms, hops = chain_steps(engine.db, "chain")
        result.note += "; hop p50 ms: " + ", ".join(f"{k} {v:.2f}" for k, v in hops.items())
    return result


# ---- the run -------------------------------------------------------------------------------


async def ymera_side(args: argparse.Namespace, tmp: Path, cpu: dict[str, dict[str, float]]) -> list[Result]:
    out: list[Result] = []
    for executors in args.executors:
        for workload in ("wide", "chain"):
            print(f"  ymera, {executors} executor(s), {workload} …", file=sys.stderr)
            async with engine_processes(tmp / f"ymera-{executors}-{workload}", executors) as engine:
                out.append(await measure(engine, "Ymera (process per actor)", executors, workload, args, cpu))
    if not args.no_inprocess:
        for workload in ("wide", "chain"):
            print(f"  ymera in one process, {workload} …", file=sys.stderr)
            async with engine_in_process(tmp / f"ymera-inproc-{workload}") as engine:
                out.append(await measure(engine, "Ymera (one process, run_all)", 1, workload, args, cpu))
    return out


def celery_side(args: argparse.Namespace, tmp: Path) -> list[Result]:
    import celery_peer

    out: list[Result] = []
    for workers in args.executors:
        print(f"  celery, {workers} worker process(es) …", file=sys.stderr)
        with celery_peer.worker(workers, tmp / f"celery-{workers}.log"):
            tasks = args.workflows * args.width
            out.append(Result("Celery + Redis", "wide", workers, tasks, celery_peer.wide(args.workflows, args.width),
                              note="result of every task fetched"))
            seconds, steps = celery_peer.chained(args.chain)
            out.append(Result("Celery + Redis", "chain", workers, args.chain, seconds,
                              [s * 1000 for s in steps], note="step = consecutive task start times"))
    return out


def render(results: Sequence[Result], cpu: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    lines = ["| engine | workload | executors / workers | tasks | seconds | tasks/s | step p50 ms | step p99 ms | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        p50 = f"{pct(r.steps_ms, 50):.2f}" if r.steps_ms else ""
        p99 = f"{pct(r.steps_ms, 99):.2f}" if r.steps_ms else ""
        shape = f"{args.workflows}×{args.width}" if r.workload == "wide" else f"{args.chain} steps"
        lines.append(f"| {r.engine} | {r.workload} ({shape}) | {r.workers} | {r.tasks:,} | {r.seconds:.2f} | "
                     f"{r.rate:,.0f} | {p50} | {p99} | {r.note} |")
    lines += ["", "CPU seconds per process while each Ymera workload ran (elapsed = wall clock):", ""]
    for key, used in cpu.items():
        lines.append(f"- {key}: " + ", ".join(f"{k} {v:.2f}" for k, v in used.items()))
    lines += ["", *verdicts(results)]
    return "\n".join(lines)


def verdicts(results: Sequence[Result]) -> list[str]:
    def ok(flag: bool) -> str:
        return "met" if flag else "NOT met"

    out = []
    ymera = [r for r in results if r.engine.startswith("Ymera")]
    celery = {(r.workload, r.workers): r for r in results if r.engine.startswith("Celery")}
    for r in ymera:
        if r.workload == "wide":
            out.append(f"- {r.engine}, wide, {r.workers} executor(s): {r.rate:,.0f} tasks/s "
                       f"(target >= {TASKS_TARGET:,}): {ok(r.rate >= TASKS_TARGET)}")
        peer = celery.get((r.workload, r.workers))
        if peer is not None:
            ratio = r.rate / peer.rate
            out.append(f"- {r.engine}, {r.workload}, {r.workers}: {ratio:.2f}× Celery's {peer.rate:,.0f} tasks/s "
                       f"(target >= {CELERY_FACTOR:g}×): {ok(ratio >= CELERY_FACTOR)}")
        if r.steps_ms:
            p50 = pct(r.steps_ms, 50)
            out.append(f"- {r.engine}, chain, {r.workers} executor(s): step p50 {p50:.2f} ms "
                       f"(target <= {STEP_TARGET_MS:g} ms): {ok(p50 <= STEP_TARGET_MS)}")
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--workflows", type=int, default=20, help="wide: workflows submitted at once (default 20)")
    p.add_argument("--width", type=int, default=100, help="wide: independent tasks per workflow (default 100)")
    p.add_argument("--chain", type=int, default=200, help="chain: tasks in the chain (default 200)")
    p.add_argument("--executors", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2],
                   help="executor processes / Celery worker processes to measure (default 1,2)")
    p.add_argument("--no-inprocess", action="store_true", help="skip the variant with every actor in this process")
    p.add_argument("--no-celery", action="store_true", help="skip the Celery peer")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    p.add_argument("--write", action="store_true", help="also record the results in BENCHMARKS.md")
    return p.parse_args(argv)


async def main() -> None:
    args = parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    header = machine()
    print(header + "\n")
    tmp = Path(tempfile.mkdtemp(prefix="ymera-throughput-"))
    try:
        cpu: dict[str, dict[str, float]] = {}
        results = await ymera_side(args, tmp, cpu)
        if not args.no_celery:
            results += celery_side(args, tmp)
        text = render(results, cpu, args)
        print(text)
        if args.write:
            write_section("Throughput (bench/throughput.py)", header + "\n\n" + text)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
