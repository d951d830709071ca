"""The Celery side of bench/throughput.py: the same no-op DAGs on Celery 5 with Redis, in the same run.

Broker and result backend are the local Redis (`redis://127.0.0.1:6379/15` unless
YMERA_BENCH_REDIS says otherwise; db 15 is flushed before each worker starts). A `Setup`
says how Celery is run: the pool (`prefork` with N processes under one worker, or `solo`
workers, N of them, each its own process with no pool to hand tasks to), the prefetch
multiplier, and how many client processes submit the wide workloads (each its share of the
groups, all starting at one instant). `Setup(n)` is Celery's defaults with one client;
`tuned` are the setups that measured fastest on these machines (BENCHMARKS.md shows the
sweep: `bench/throughput.py --celery-sweep`). Each worker is warmed up before it is measured.
Install with `pip install -e '.[bench]'`.

- wide: `workflows` groups of `width` no-op signatures, all submitted, then every result
  fetched; tasks/s = tasks / (last result fetched - first submit). With several clients
  each submits and fetches its share. A Celery result in Redis is its whole record: there
  is no event history to store.
- chain: `chain(noop.si() * length)`; each task returns `time.time()` taken when it starts,
  so a step is the time between consecutive tasks' starts (the same cycle as Ymera's
  TaskReady to the next TaskReady).

This module is also the Celery app the worker loads (`celery -A celery_peer worker`).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery, chain, group

REDIS_URL = os.environ.get("YMERA_BENCH_REDIS", "redis://127.0.0.1:6379/15")
QUEUE = "ymera-bench"
HERE = Path(__file__).resolve().parent

app = Celery("ymera_bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=600,
)


@app.task(name="bench.noop")
def noop() -> float:
    """A task that does nothing but say when it started."""
    return time.time()


def flush() -> None:
    """Empty the bench's Redis db (queues, results) so every measurement starts clean."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()


@dataclass(frozen=True)
class Setup:
    """How Celery runs: `workers` processes executing tasks (`pool` prefork: one worker with
    that many pool processes; `solo`: that many workers, each executing in its main process),
    `prefetch` (the worker's prefetch multiplier), `clients` (processes submitting wide work)."""

    workers: int
    pool: str = "prefork"
    prefetch: int = 4
    clients: int = 1

    @property
    def label(self) -> str:
        return f"{self.pool} ×{self.workers}, prefetch {self.prefetch}, {self.clients} client(s)"


def tuned(cores: int) -> list[Setup]:
    """The fastest setups of the sweep on these machines (BENCHMARKS.md, "Celery at its best"):
    a solo worker per core (no hand-off to a pool process), prefetch 64, with one client and
    with one per core (the sweep had each ahead on one workload; the comparison takes the faster)."""
    return [Setup(cores, pool="solo", prefetch=64, clients=1), Setup(cores, pool="solo", prefetch=64, clients=cores)]


def sweep(cores: int) -> list[Setup]:
    """The setups `--celery-sweep` measures: pool, workers, prefetch and clients, up to 2 per core."""
    return [Setup(w, pool, prefetch, clients)
            for pool in ("prefork", "solo") for w in (cores, 2 * cores) for prefetch in (4, 64)
            for clients in (1, cores, 2 * cores)]


@contextlib.contextmanager
def worker(setup: Setup, log: Path) -> Iterator[Clients]:
    """Celery running as `setup` says, ready (tasks round-tripped, every client warm) when yielded."""
    flush()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    per_worker = setup.workers if setup.pool == "prefork" else 1
    procs = []
    with open(log, "ab") as sink:
        for i in range(setup.workers // per_worker):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "celery_peer", "worker", "--pool", setup.pool,
                 "--concurrency", str(per_worker), "--prefetch-multiplier", str(setup.prefetch), "-Q", QUEUE,
                 "-n", f"bench{i}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "--loglevel", "WARNING"],
                cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT))
    clients = Clients(setup.clients, procs)
    try:
        # Ready = a task went through; a few more warm every process up.
        noop.delay().get(timeout=60)
        group(noop.si() for _ in range(20 * setup.workers)).apply_async().get(timeout=60)
        clients.wide(setup.clients, 10)
        yield clients
    finally:
        clients.close()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)  # warm shutdown: finish what it holds, then exit
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        flush()


class Clients:
    """Processes that submit groups and fetch their results, all starting at one instant."""

    def __init__(self, count: int, workers: list[subprocess.Popen[bytes]]) -> None:
        self.workers = workers
        ctx = multiprocessing.get_context("spawn")
        self.results: multiprocessing.Queue[float] = ctx.Queue()
        self.commands: list[multiprocessing.Queue[Any]] = [ctx.Queue() for _ in range(count)]
        self.procs = [ctx.Process(target=_client, args=(q, self.results), daemon=True) for q in self.commands]
        for proc in self.procs:
            proc.start()

    def pids(self) -> dict[str, int]:
        """Every process of this Celery by name, for CPU accounting: workers, pool processes,
        clients, redis-server."""
        pids = {}
        for i, proc in enumerate(self.workers):
            pids[f"celery worker {i}"] = proc.pid
            pool = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            pids.update({f"celery pool {i}.{j}": int(pid) for j, pid in enumerate(pool)})
        pids.update({f"client {i}": p.pid or 0 for i, p in enumerate(self.procs)})
        for comm in Path("/proc").glob("[0-9]*/comm"):
            with contextlib.suppress(OSError):
                if comm.read_text().strip() == "redis-server":
                    pids["redis-server"] = int(comm.parent.name)
        return pids

    def wide(self, groups: int, width: int, timeout: float = 120.0) -> float:
        """Seconds from the common start until the last client has every result of its share
        (one group wider than there are clients is split among them)."""
        start = time.time() + 0.2
        n = len(self.procs)
        shares = [groups // n + (i < groups % n) for i in range(n)]
        if groups < n:
            shares, width = [1] * n, width * groups // n
        for q, share in zip(self.commands, shares, strict=True):
            q.put((share, width, start, timeout))
        ends = [self.results.get(timeout=timeout + 10) for _ in self.procs]
        return max(ends) - start

    def close(self) -> None:
        for q in self.commands:
            q.put(None)
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


def _client(commands: multiprocessing.Queue[Any], results: multiprocessing.Queue[float]) -> None:
    """A client process: for each (groups, width, start, timeout), submit and fetch from `start`."""
    while (job := commands.get()) is not None:
        groups, width, start, timeout = job
        time.sleep(max(0.0, start - time.time()))
        pending = [group(noop.si() for _ in range(width)).apply_async() for _ in range(groups)]
        for r in pending:
            assert len(r.get(timeout=timeout)) == width
        results.put(time.time())


def chained(length: int, timeout: float = 120.0) -> tuple[float, list[float]]:
    """(seconds from submit to the last result, each step in seconds: start of task i+1 - start of task i)."""
    t0 = time.perf_counter()
    result = chain(noop.si() for _ in range(length)).apply_async()
    result.get(timeout=timeout)
    elapsed = time.perf_counter() - t0
    starts: list[float] = []
    node = result
    while node is not None:
        starts.append(float(node.get(timeout=timeout)))
        node = node.parent
    starts.reverse()
    assert len(starts) == length, f"chain returned {len(starts)} results, expected {length}"
    return elapsed, [b - a for a, b in itertools.pairwise(starts)]
