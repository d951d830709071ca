"""1,000 LLM calls in flight on one executor, against a local provider that answers after 1 s.

The provider is an OpenAI-format chat-completions server in its own process (`--serve`):
asyncio, HTTP/1.1 keep-alive, every request answered after `--delay` seconds, however many
are open at once; it counts the calls. Ymera runs as deployed: `python -m runner up
--processes --executors 1` (one OS process per actor) on a fresh `bus.EmbeddedServer`,
with `YMERA_EXECUTOR_CONCURRENCY=1000`.

A run publishes W workflows of T `llm` tasks at once (W x T = 1,000), after one warm-up
round of the same shape (a warm executor: its client's connections are open), and measures, from the
first publish to the last `WorkflowCompleted`: the wall time, the provider calls, every
`TaskTimedOut` (a false timeout: the provider never fails), the attempts started, each
attempt's `duration_ms`, and each attempt's longest silence (the largest gap between its
`TaskStarted`, heartbeats and result, by the events' own timestamps) against the
distributor's loss threshold (3 heartbeat intervals). Variants: the default heartbeat (5 s),
and 0.2 s (loss after 0.6 s), which makes any stall of the executor's loop a false timeout.

The references, measured in the same run: the provider's delay itself, and 1,000 concurrent
posts from one bare client in this process: aiohttp (the executor's client) with a pool of
1,000, and httpx (its client before) with a pool of 1,000 and with its default of 100.

Target (issue 7): 1,000 tasks done in under 2 s with one executor, no false timeout,
exactly 1,000 provider calls.

    .venv/bin/python bench/llm_inflight.py [--workflows 10] [--tasks 100] [--repeat 3] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import nats.js.errors
from cpu import actor_pids, cpu_snapshot, cpu_used
from report import machine, write_section

import bus
import events

CONSUMERS = ("store", "security", "validator", "distributor", "assessor", "monitor", "executor")
TARGET_SECONDS = 2.0
ENDS = (events.WorkflowCompleted, events.WorkflowFailed, events.WorkflowCancelled, events.WorkflowInvalid,
        events.WorkflowRefused)


# -- the provider ------------------------------------------------------------------------------

def completion(model: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
    }).encode()


async def serve(delay: float) -> None:
    calls = 0
    body = completion("bench-model")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                if head.split(b" ", 2)[1].endswith(b"/stats"):
                    payload = json.dumps({"calls": calls}).encode()
                else:
                    calls += 1
                    await asyncio.sleep(delay)
                    payload = body
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(payload)).encode() + b"\r\n\r\n" + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


@contextlib.contextmanager
def provider(delay: float) -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--delay", str(delay)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1", proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


async def provider_calls(base_url: str) -> int:
    async with httpx.AsyncClient() as http:
        return int((await http.get(f"{base_url}/stats")).json()["calls"])


# -- the reference: bare clients ---------------------------------------------------------------

async def bare(client: str, base_url: str, n: int, pool: int | None) -> tuple[float, float]:
    """n concurrent posts from one client in this process: (wall seconds, CPU seconds of this process)."""
    url = f"{base_url}/chat/completions"
    body = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]}
    c0, t0 = time.process_time(), time.perf_counter()
    if client == "aiohttp":
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=pool or 100)) as session:
            async def one() -> bytes:
                async with session.post(url, json=body) as response:
                    return await response.read()
            await asyncio.gather(*(one() for _ in range(n)))
    else:
        limits = httpx.Limits() if pool is None else httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        async with httpx.AsyncClient(timeout=None, limits=limits) as http:
            await asyncio.gather(*(http.post(url, json=body) for _ in range(n)))
    return time.perf_counter() - t0, time.process_time() - c0


# -- Ymera -----------------------------------------------------------------------------------

@dataclass
class Run:
    seconds: float
    calls: int
    timed_out: int
    started: int
    succeeded: int
    duration_p50_ms: float
    duration_max_ms: float
    silence_max_s: float
    lost_after_s: float
    # Seconds from the first TaskReady to the last of each kind, by the events' own timestamps.
    phases: dict[str, float]
    # CPU seconds during the run: each actor process, the provider, and the rest of the machine.
    cpu: dict[str, float]


def spawn_engine(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`ymera up --processes --executors 1`, as deployed."""
    with open(log, "ab") as sink:
        return subprocess.Popen([sys.executable, "-m", "runner", "up", "--processes", "--executors", "1"], env=env,
                                cwd=Path(__file__).resolve().parent.parent, stdin=subprocess.DEVNULL, stdout=sink,
                                stderr=subprocess.STDOUT)


@contextlib.asynccontextmanager
async def engine(base_url: str, heartbeat: float, concurrency: int, tmp: Path,
                 ) -> AsyncIterator[tuple[bus.Bus, int]]:
    server = bus.EmbeddedServer(tmp / "nats")
    server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YMERA_", "NATS_"))}
    env.update({"NATS_URL": server.url, "YMERA_DATA_DIR": str(tmp / "data"), "YMERA_LOG_LEVEL": "warning",
                "YMERA_LLM_BASE_URL": base_url, "YMERA_LLM_MODEL": "bench-model",
                "YMERA_EXECUTOR_CONCURRENCY": str(concurrency), "YMERA_HEARTBEAT_SECONDS": str(heartbeat),
                "RATE_LIMIT_PER_HOUR": "100000"})
    proc = spawn_engine(env, tmp / "engine.log")
    connection = await bus.connect(server.url)
    try:
        for name in CONSUMERS:
            while True:
                try:
                    await connection.js.consumer_info(connection.stream.name, name)
                    break
                except nats.js.errors.NotFoundError:
                    await asyncio.sleep(0.05)
        yield connection, proc.pid
    finally:
        await connection.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server.stop()


def submissions(prefix: str, workflows: int, tasks: int) -> list[events.WorkflowSubmitted]:
    return [events.WorkflowSubmitted(
        id=events.new_id(), ts=events.now(), workflow_id=f"{prefix}-{w}", principal="bench",
        tasks=[events.TaskSpec(id=f"t{i}", type="llm", description=f"say done {i}") for i in range(tasks)])
        for w in range(workflows)]


async def run_workflows(connection: bus.Bus, subs: list[events.WorkflowSubmitted]) -> tuple[float, list[events.Event]]:
    """Publish at once; follow the stream until every workflow ended. Seconds to the last end, and the events."""
    start = (await connection.stream_state()).last_seq + 1
    sub = await connection.follow(start)
    pending = {s.workflow_id for s in subs}
    seen: list[events.Event] = []
    try:
        t0 = time.perf_counter()
        await connection.publish_many(subs)
        while pending:
            msg = await sub.next(timeout=120)
            if msg is None:
                raise TimeoutError(f"no event for 120 s; workflows still open: {sorted(pending)}")
            event = events.decode(msg.data)
            seen.append(event)
            if isinstance(event, ENDS) and event.workflow_id in pending:
                pending.discard(event.workflow_id)
        return time.perf_counter() - t0, seen
    finally:
        await sub.stop()


def analyse(seconds: float, calls: int, seen: list[events.Event], lost_after: float, cpu: dict[str, float]) -> Run:
    signs: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    durations = []
    for e in seen:
        if isinstance(e, (events.TaskStarted, events.TaskHeartbeat, events.TaskSucceeded, events.TaskFailed)):
            signs[(e.workflow_id, e.task_id, e.attempt)].append(e.ts.timestamp())
        if isinstance(e, events.TaskSucceeded):
            durations.append(e.duration_ms)
    silence = max((max(b - a for a, b in zip(sorted(ts), sorted(ts)[1:], strict=False)) if len(ts) > 1 else 0.0)
                  for ts in signs.values()) if signs else 0.0
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for e in seen:
        kind = type(e).__name__
        first.setdefault(kind, e.ts.timestamp())
        last[kind] = e.ts.timestamp()
    origin = first.get("TaskReady", 0.0)
    phases = {k: round(last[k] - origin, 3) for k in ("TaskReady", "TaskStarted", "TaskSucceeded",
                                                       "TaskAssessed", "WorkflowCompleted")
              if k in last}
    return Run(seconds=seconds, calls=calls, phases=phases, cpu=cpu,
               timed_out=sum(isinstance(e, events.TaskTimedOut) for e in seen),
               started=sum(isinstance(e, events.TaskStarted) for e in seen),
               succeeded=sum(isinstance(e, events.TaskSucceeded) for e in seen),
               duration_p50_ms=statistics.median(durations) if durations else 0.0,
               duration_max_ms=max(durations, default=0.0), silence_max_s=silence, lost_after_s=lost_after)


async def ymera_run(base_url: str, provider_pid: int, heartbeat: float, workflows: int, tasks: int) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        async with engine(base_url, heartbeat, workflows * tasks, Path(tmp)) as (connection, up_pid):
            # A warm executor, as under sustained load: one round of the same shape first, so the
            # measured round reuses the client's connections (TCP setup is measured by the bare
            # clients' first round).
            await run_workflows(connection, submissions("warm", workflows, tasks))
            pids = {**actor_pids(up_pid), "provider": provider_pid, "bench": os.getpid()}
            before, calls_before = cpu_snapshot(pids), await provider_calls(base_url)
            seconds, seen = await run_workflows(connection, submissions("run", workflows, tasks))
            calls, after = await provider_calls(base_url) - calls_before, cpu_snapshot(pids)
    return analyse(seconds, calls, seen, heartbeat * 3, cpu_used(before, after))


def executor_cpu(run: Run) -> float:
    return sum(v for k, v in run.cpu.items() if k.startswith("executor"))


def spread(values: list[float], fmt: str) -> str:
    med = statistics.median(values)
    return f"{med:{fmt}} ({min(values):{fmt}} – {max(values):{fmt}})" if len(values) > 1 else f"{med:{fmt}}"


async def main(args: argparse.Namespace) -> str:
    n = args.workflows * args.tasks
    refs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    runs: dict[float, list[Run]] = {h: [] for h in args.heartbeats}
    with provider(args.delay) as (base_url, provider_pid):
        for rep in range(args.repeat):
            refs[f"bare aiohttp, pool {n:,}"].append(await bare("aiohttp", base_url, n, n))
            if rep < args.httpx_repeat:  # slow: minutes at 1,000
                refs[f"bare httpx, pool {n:,}"].append(await bare("httpx", base_url, n, n))
                refs["bare httpx, default pool (100)"].append(await bare("httpx", base_url, n, None))
            for h in args.heartbeats:
                runs[h].append(await ymera_run(base_url, provider_pid, h, args.workflows, args.tasks))
                print(h, runs[h][-1], file=sys.stderr)
    lines_cpu = [f"- heartbeat {h:g} s, CPU seconds per process (median): " + ", ".join(
        f"{k} {statistics.median(r.cpu.get(k, 0.0) for r in rs):.2f}" for k in rs[0].cpu)
        + "; last event of each kind after the first TaskReady (s, median): " + ", ".join(
        f"{k} {statistics.median(r.phases.get(k, 0.0) for r in rs):.2f}" for k in rs[0].phases)
        for h, rs in runs.items()]
    lines = [machine(), "",
             f"{n:,} llm tasks ({args.workflows} workflows x {args.tasks}) on one executor "
             f"(`YMERA_EXECUTOR_CONCURRENCY={n}`), provider delay {args.delay:g} s, {args.repeat} runs "
             f"(httpx references: {args.httpx_repeat}); median (range).", "",
             "| path | seconds | client CPU s | provider calls | false timeouts | attempts started "
             "| duration_ms p50 / max | longest silence / loss threshold | CPU s: other processes |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| provider delay (floor) | {args.delay:.2f} | | | | | | | |"]
    for name, values in refs.items():
        lines.append(f"| {name}, {n:,} concurrent posts | {spread([w for w, _ in values], '.2f')} "
                     f"| {spread([c for _, c in values], '.2f')} | | | | | | |")
    for h, rs in runs.items():
        lines.append(
            f"| Ymera, heartbeat {h:g} s | {spread([r.seconds for r in rs], '.2f')} "
            f"| {spread([executor_cpu(r) for r in rs], '.2f')} (executor) "
            f"| {spread([float(r.calls) for r in rs], ',.0f')} | {spread([float(r.timed_out) for r in rs], '.0f')} "
            f"| {spread([float(r.started) for r in rs], ',.0f')} "
            f"| {statistics.median(r.duration_p50_ms for r in rs):,.0f} / "
            f"{max(r.duration_max_ms for r in rs):,.0f} "
            f"| {max(r.silence_max_s for r in rs):.2f} s / {rs[0].lost_after_s:g} s "
            f"| {spread([r.cpu.get('unattributed', 0.0) for r in rs], '.1f')} |")
    lines += ["", *lines_cpu]
    ok = all(r.seconds < TARGET_SECONDS and r.timed_out == 0 and r.calls == n for rs in runs.values() for r in rs)
    lines += ["", f"Target: every run under {TARGET_SECONDS:g} s, no false timeout, exactly {n:,} provider calls: "
              f"{'met' if ok else 'NOT met'}."]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--workflows", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--heartbeats", type=lambda s: [float(x) for x in s.split(",")], default=[5.0, 0.2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--httpx-repeat", type=int, default=1, help="runs of the (slow) httpx references")
    parser.add_argument("--write", action="store_true", help="record the result in BENCHMARKS.md")
    cli = parser.parse_args()
    if cli.serve:
        asyncio.run(serve(cli.delay))
        sys.exit(0)
    result = asyncio.run(main(cli))
    print(result)
    if cli.write:
        write_section("1,000 LLM calls in flight (bench/llm_inflight.py)", result)
