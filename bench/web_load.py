"""What `ymera serve` under load costs the engine: its throughput alone, then while the API is busy.

Loopback only and bounded. Each repetition runs bench/throughput.py's wide workload (`--tasks`
no-op tasks in workflows of `--per-workflow`, offered at `--pace` tasks/s: 1,000 by default, a
workflow of 100 every 0.1 s, as issue 13 asks; `--pace 0` submits them at once, the engine at full
speed; done when every workflow has ended and the log holds every event) twice, each time on a
fresh embedded nats-server and data dir with the engine as deployed (`runner up --processes`, one
process per actor):

- **alone**: the engine and nothing else;
- **under load**: the same, while `python -m runner serve` (its own process, on the engine's data
  dir and server) serves `--clients` Server-Sent Events clients on `/api/live` and an open-loop
  `--rate` API requests a second, a round robin of `/dashboard`, `/api/workflows`, `/api/events`
  and `/metrics`. The clients run in a process of their own (this script, `--load-client`), so
  the engine's clock is not theirs; they start before the workload and run through it.

It prints the engine's tasks/s both ways (median over `--repeat`) with each workflow's time from
submission to end (p50, p99: at a pace the engine keeps up with, that is where load shows), the drop in %, the API's
latency percentiles per route and its errors, and what the SSE clients received. `--write`
records it in BENCHMARKS.md with the machine and the command. Target (issue 13): a drop < 10% at
200 SSE clients and 500 requests/s.

    .venv/bin/python bench/web_load.py [--tasks 10000] [--clients 200] [--rate 500] [--repeat 3] [--write]
    .venv/bin/python bench/web_load.py --tasks 400 --clients 10 --rate 50 --repeat 1   # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import msgspec
import structlog
from cpu import cpu_snapshot, cpu_used
from report import machine, pct, write_section
from throughput import ENDS, Engine, engine, run_workflows, submission

import events

if TYPE_CHECKING:
    from nats.aio.msg import Msg

ROUTES = ("/dashboard", "/api/workflows", "/api/events", "/metrics")
MAX_IN_FLIGHT = 500  # requests the load client keeps open at most; a request past it is counted as not sent
SERVE_START_SECONDS = 120.0


# ---- the engine's side -----------------------------------------------------------------------


async def measure(ymera: Engine, args: argparse.Namespace, label: str, rep: int) -> tuple[float, list[float]]:
    """(tasks/s, each workflow's ms from its submission to its end) of one run of the wide workload,
    after a 20-task warm-up: paced at `--pace` tasks/s (a workflow every `per-workflow / pace` s), or
    submitted at once with `--pace 0`."""
    tag = label.replace(" ", "-")  # a workflow id is a subject token
    await run_workflows(ymera, [submission(f"warm-{tag}-{rep}", 20, False)])
    n, per = int(args.tasks), int(args.per_workflow)
    subs = [submission(f"wide-{tag}-{rep}-{i:04d}", min(per, n - i * per), False) for i in range(-(-n // per))]
    if args.pace:
        seconds, latencies = await run_paced(ymera, subs, per / args.pace)
    else:
        (seconds, _), latencies = await run_workflows(ymera, subs), []
    rate = n / seconds
    print(f"    {label}: {n:,} tasks in {seconds:.2f} s, {rate:,.0f} tasks/s", file=sys.stderr)
    return rate, latencies


async def run_paced(ymera: Engine, subs: Sequence[events.WorkflowSubmitted], interval: float
                    ) -> tuple[float, list[float]]:
    """Submit a workflow every `interval` s; (seconds from the first submission until the log holds
    every event, each workflow's ms from its submission to its end)."""
    sent: dict[str, float] = {}
    ended: dict[str, float] = {}
    failed: list[str] = []
    done = asyncio.Event()

    async def on_end(msg: Msg) -> None:
        workflow = msg.subject.split(".")[2]
        if workflow in sent and workflow not in ended:
            ended[workflow] = time.perf_counter()
            if not msg.subject.endswith(".completed"):
                failed.append(msg.subject)
            if len(ended) == len(subs):
                done.set()

    nc, js, stream = ymera.bus.nc, ymera.bus.js, ymera.bus.stream.name
    watching = [await nc.subscribe(f"ymera.wf.*.{verb}", cb=on_end) for verb in ENDS]
    await nc.flush()
    principal = ymera.bus.principal  # where clients sign, a submission names the client's key
    if principal is not None:
        subs = [msgspec.structs.replace(s, principal=principal) for s in subs]
    try:
        t0 = time.perf_counter()
        for i, sub in enumerate(subs):
            wait = t0 + i * interval - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            sent[sub.workflow_id] = time.perf_counter()
            await ymera.bus.publish(sub)
        await asyncio.wait_for(done.wait(), 600)
        if failed:
            raise RuntimeError(f"workflows did not complete: {failed[:3]}")
        last = (await js.stream_info(stream)).state.last_seq
        await stored_through(ymera.db, last)
        return time.perf_counter() - t0, [(ended[w] - sent[w]) * 1000 for w in sent]
    finally:
        for sub in watching:
            await sub.unsubscribe()


async def stored_through(db: Path, seq: int, timeout: float = 120.0) -> None:
    reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        deadline = time.monotonic() + timeout
        while reader.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0] < seq:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the store writer did not reach seq {seq} within {timeout:g}s")
            await asyncio.sleep(0.005)
    finally:
        reader.close()


def spawn_serve(data: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "YMERA_DATA_DIR")}
    env.update(NATS_URL=url, YMERA_DATA_DIR=str(data), YMERA_LOG_LEVEL="warning",
               YMERA_NATS_AUTH=os.environ.get("YMERA_NATS_AUTH", "true"))
    with open(log, "ab") as sink:  # cwd = data: no stray .env is read
        return subprocess.Popen([sys.executable, "-m", "runner", "serve", "--host", "127.0.0.1", "--port", "0"],
                                env=env, cwd=data, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=sink)


@contextlib.asynccontextmanager
async def serving(data: Path, url: str, log: Path) -> AsyncIterator[tuple[str, int]]:
    """`python -m runner serve --port 0` on the engine's data dir and server; yields its base URL and pid."""
    proc = spawn_serve(data, url, log)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), SERVE_START_SECONDS)
        if not line.startswith(b"serving "):
            raise RuntimeError(f"ymera serve did not start (see {log}): {line!r}")
        yield line.split()[1].decode(), proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.asynccontextmanager
async def loading(base: str, args: argparse.Namespace) -> AsyncIterator[Report]:
    """The load client (this script, `--load-client`) for the block; yields its `Report` (its pid; what it
    did, once it has stopped)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--load-client", base, "--clients", str(args.clients), "--rate", str(args.rate),
        stdin=subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    report = Report(proc.pid)
    try:
        ready = await asyncio.wait_for(proc.stdout.readline(), 120)
        if ready.strip() != b"ready":
            raise RuntimeError(f"the load client did not start: {ready!r}")
        yield report
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out = await asyncio.wait_for(proc.stdout.read(), 60)
        await proc.wait()
        if out.strip():
            report.load = msgspec.json.decode(out, type=Load)


# ---- the load client (its own process) -------------------------------------------------------


class Load(msgspec.Struct):
    """What the load client did, as it reports it when stopped."""

    seconds: float
    sent: int
    not_sent: int
    latencies_ms: dict[str, list[float]]
    errors: dict[str, int]
    sse_clients: int
    sse_connected_at_end: int
    sse_events: list[int]


class Report:
    """The load client's process, and its `Load` once it has stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.load: Load | None = None

    def get(self) -> Load:
        if self.load is None:
            raise RuntimeError("the load client reported nothing")
        return self.load


async def load_client(base: str, clients: int, rate: float) -> Load:
    """`clients` SSE readers of /api/live and `rate` requests/s round-robin over ROUTES, until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    latencies: dict[str, list[float]] = {r: [] for r in ROUTES}
    errors: dict[str, int] = {}
    received = [0] * clients
    all_connected = asyncio.Event()
    connected = [False] * clients
    dropped = 0

    def error(what: str) -> None:
        errors[what] = errors.get(what, 0) + 1

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    connector = aiohttp.TCPConnector(limit=0)  # the SSE streams hold one connection each
    async with aiohttp.ClientSession(base, timeout=timeout, connector=connector) as http:

        async def sse(i: int) -> None:
            try:
                async with http.get("/api/live") as response:
                    if response.status != 200:
                        error(f"SSE HTTP {response.status}")
                        return
                    connected[i] = True
                    if all(connected):
                        all_connected.set()
                    # Counted in whatever chunks arrive (a frame's `data:` line starts a line; the
                    # stream starts with a comment): one line at a time would cost this client more
                    # than the server spends writing them.
                    tail = b""  # a marker split between two chunks counts once: 5 bytes can't hold all 6
                    async for chunk in response.content.iter_any():
                        joined = tail + chunk
                        received[i] += joined.count(b"\ndata:")
                        tail = joined[-5:]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # counted: a dropped stream is a result
                error(f"SSE {type(exc).__name__}")
            finally:
                connected[i] = False

        async def request(route: str) -> None:
            t0 = time.perf_counter()
            try:
                async with http.get(route, timeout=aiohttp.ClientTimeout(total=30)) as response:
                    await response.read()
                    if response.status != 200:
                        error(f"{route} HTTP {response.status}")
                        return
            except Exception as exc:
                error(f"{route} {type(exc).__name__}")
                return
            latencies[route].append((time.perf_counter() - t0) * 1000)

        streams = [asyncio.create_task(sse(i)) for i in range(clients)]
        if clients:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_connected.wait(), 60)
        print("ready", flush=True)
        in_flight: set[asyncio.Task[None]] = set()
        start, sent = time.perf_counter(), 0
        routes = itertools.cycle(ROUTES)
        while not stop.is_set():
            due = start + sent / rate
            wait = due - time.perf_counter()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                continue
            sent += 1
            route = next(routes)
            if len(in_flight) >= MAX_IN_FLIGHT:
                dropped += 1
                continue
            task = asyncio.create_task(request(route))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        seconds = time.perf_counter() - start
        still_connected = sum(connected)
        if in_flight:
            await asyncio.wait(in_flight, timeout=30)
        for t in streams:
            t.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    return Load(seconds=seconds, sent=sent, not_sent=dropped, latencies_ms=latencies, errors=errors,
                sse_clients=clients, sse_connected_at_end=still_connected, sse_events=received)


# ---- the report -------------------------------------------------------------------------------


def spread(rates: list[float]) -> str:
    return f"{min(rates):,.0f} – {max(rates):,.0f}" if len(rates) > 1 else ""


def render(args: argparse.Namespace, alone: list[float], loaded: list[float], loads: list[Load],
           alone_ms: list[float], loaded_ms: list[float]) -> str:
    a, b = statistics.median(alone), statistics.median(loaded)
    drop = (a - b) / a * 100
    pace = f"offered at {args.pace:,.0f} tasks/s" if args.pace else "submitted at once"
    lines = [f"Workload: wide, {args.tasks:,} no-op tasks in workflows of {args.per_workflow}, {pace}, engine "
             f"`runner up --processes --executors {args.executors}`; load: {args.clients} SSE clients on /api/live "
             f"and {args.rate:g} requests/s over {', '.join(ROUTES)} (round robin); {args.repeat} repetition(s).",
             "", "| engine | tasks/s (median) | range | workflow p50 ms | workflow p99 ms |",
             "|---|---:|---:|---:|---:|",
             f"| alone | {a:,.0f} | {spread(alone)} | {_pct(alone_ms, 50)} | {_pct(alone_ms, 99)} |",
             f"| while `ymera serve` is under load | {b:,.0f} | {spread(loaded)} | {_pct(loaded_ms, 50)} | "
             f"{_pct(loaded_ms, 99)} |", "",
             f"Throughput drop: {drop:.1f}% (target < 10%: {'met' if drop < 10 else 'NOT met'})", "",
             "| route | requests | p50 ms | p90 ms | p99 ms | max ms | errors |", "|---|---:|---:|---:|---:|---:|---:|"]
    merged: dict[str, list[float]] = {r: [] for r in ROUTES}
    errors: dict[str, int] = {}
    sent = not_sent = 0
    seconds = 0.0
    events: list[int] = []
    connected = clients = 0
    for load in loads:
        for route, values in load.latencies_ms.items():
            merged[route] += values
        for what, n in load.errors.items():
            errors[what] = errors.get(what, 0) + n
        sent += load.sent
        not_sent += load.not_sent
        seconds += load.seconds
        events += load.sse_events
        connected += load.sse_connected_at_end
        clients += load.sse_clients
    for route in (*ROUTES, "all"):
        values = merged[route] if route != "all" else [v for vs in merged.values() for v in vs]
        failed = sum(n for what, n in errors.items() if route == "all" or what.startswith(route + " "))
        if values:
            lines.append(f"| {route} | {len(values):,} | {pct(values, 50):.1f} | {pct(values, 90):.1f} | "
                         f"{pct(values, 99):.1f} | {max(values):.1f} | {failed} |")
        else:
            lines.append(f"| {route} | 0 |  |  |  |  | {failed} |")
    lines += ["", f"Requests: {sent:,} due in {seconds:.1f} s ({sent / seconds if seconds else 0:,.0f}/s), "
                  f"{not_sent:,} not sent (over {MAX_IN_FLIGHT} in flight). SSE: {connected} of {clients} clients "
                  f"still connected at the end, {statistics.mean(events) if events else 0:,.0f} events received "
                  f"per client on average (min {min(events, default=0):,}, max {max(events, default=0):,})."]
    if errors:
        lines.append("Errors: " + ", ".join(f"{what} ×{n}" for what, n in sorted(errors.items())))
    return "\n".join(lines)


def _pct(values: list[float], q: float) -> str:
    """A percentile of a workflow's time from submission to end, or blank (the workload submitted at once)."""
    return f"{pct(values, q):,.0f}" if values else ""


def cpu_line(cpu: list[dict[str, float]]) -> str:
    """Where the CPU went during the runs under load: ymera serve, the load client, the engine."""
    def total(names: tuple[str, ...], exclude: bool = False) -> float:
        return sum(v for run in cpu for k, v in run.items() if (k in names) != exclude)

    mine = ("ymera serve", "load client", "bench", "unattributed")
    return (f"CPU seconds during the runs under load (all repetitions; 2 cores = 2 s per s): ymera serve "
            f"{total(('ymera serve',)):.1f}, load client {total(('load client',)):.1f}, engine (nats-server and "
            f"actors) {total(mine, exclude=True):.1f}, this script {total(('bench',)):.1f}, elsewhere "
            f"{total(('unattributed',)):.1f}.")


# ---- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=10_000, help="no-op tasks in the wide workload (default 10000)")
    p.add_argument("--per-workflow", type=int, default=100, help="tasks per workflow (default 100)")
    p.add_argument("--pace", type=float, default=1000.0,
                   help="tasks/s offered: a workflow every per-workflow/pace seconds (default 1000, as issue 13 "
                        "asks); 0: every workflow at once, the engine at full speed")
    p.add_argument("--clients", type=int, default=200, help="concurrent SSE clients (default 200)")
    p.add_argument("--rate", type=float, default=500.0, help="API requests per second (default 500)")
    p.add_argument("--executors", type=int, default=1, help="executor processes (default 1)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions of both runs; medians shown (default 3)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    p.add_argument("--write", action="store_true", help="also record the results in BENCHMARKS.md")
    p.add_argument("--load-client", metavar="URL", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tasks < 1 or args.per_workflow < 1 or args.clients < 0 or args.rate <= 0 or args.repeat < 1 \
            or args.pace < 0:
        p.error("--tasks, --per-workflow, --repeat and --rate must be positive, --clients and --pace at least 0")
    return args


def more_files() -> None:
    """Raise this process's open-file limit to its hard limit: its children (`ymera serve`, the load
    client) inherit it, and each holds a socket per SSE client and per request in flight."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def main() -> None:
    args = parse_args()
    more_files()
    if args.load_client:
        sys.stdout.buffer.write(msgspec.json.encode(await load_client(args.load_client, args.clients, args.rate)))
        return
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    header = machine()
    print(header + "\n")
    tmp = Path(tempfile.mkdtemp(prefix="ymera-web-load-"))
    alone: list[float] = []
    loaded: list[float] = []
    alone_ms: list[float] = []  # each workflow's ms from submission to end, every repetition
    loaded_ms: list[float] = []
    loads: list[Load] = []
    cpu: list[dict[str, float]] = []  # CPU seconds by process during each run under load
    try:
        for rep in range(args.repeat):  # interleaved, so a slow minute touches both
            print(f"  repetition {rep + 1}", file=sys.stderr)
            async with engine(tmp / f"alone-{rep}", args.executors, in_process=False) as ymera:
                rate, latencies = await measure(ymera, args, "alone", rep)
                alone.append(rate)
                alone_ms += latencies
            where = tmp / f"loaded-{rep}"
            async with engine(where, args.executors, in_process=False) as ymera, \
                    serving(where / "data", ymera.bus.url, where / "serve.log") as (base, serve_pid), \
                    loading(base, args) as load:
                pids = {**ymera.pids, "ymera serve": serve_pid, "load client": load.pid}
                before = cpu_snapshot(pids)
                rate, latencies = await measure(ymera, args, "under load", rep)
                loaded.append(rate)
                loaded_ms += latencies
                used = cpu_used(before, cpu_snapshot(pids))
            loads.append(load.get())
            cpu.append(used)
        text = render(args, alone, loaded, loads, alone_ms, loaded_ms) + "\n" + cpu_line(cpu)
        print(text)
        if args.write:
            write_section("The API under load (bench/web_load.py)", header + "\n\n" + text)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
