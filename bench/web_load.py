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
  and `/metrics`. The clients run in a process of their own (bench/web_load_client.py), so
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
import logging
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import msgspec
import structlog
from cpu import cpu_snapshot, cpu_used
from report import machine, pct, write_section
from throughput import Engine, engine, run_workflows, submission
from web_load_client import MAX_IN_FLIGHT, ROUTES, Load

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
    latencies: list[float] = []
    seconds, _ = await run_workflows(ymera, subs, interval=per / args.pace if args.pace else 0.0,
                                     latencies=latencies)
    rate = n / seconds
    print(f"    {label}: {n:,} tasks in {seconds:.2f} s, {rate:,.0f} tasks/s", file=sys.stderr)
    return rate, latencies if args.pace else []


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
    """The load client (bench/web_load_client.py, a process of its own) for the block; yields its
    `Report` (its pid; what it did, once it has stopped)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("web_load_client.py")), base, "--clients", str(args.clients),
        "--rate", str(args.rate),
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


class Report:
    """The load client's process, and its `Load` once it has stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.load: Load | None = None

    def get(self) -> Load:
        if self.load is None:
            raise RuntimeError("the load client reported nothing")
        return self.load


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
