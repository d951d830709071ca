"""The Celery side of bench/throughput.py: the same no-op DAGs on Celery 5 with Redis, in the same run.

Broker and result backend are the local Redis (`redis://127.0.0.1:6379/15` unless
YMERA_BENCH_REDIS says otherwise; db 15 is flushed before each worker starts). The worker is
`celery worker --pool prefork --concurrency N` as a subprocess (gossip, mingle and heartbeat
off), N = 1 or 2 to mirror the executor processes; otherwise Celery's defaults (prefetch
multiplier 4, ack on receipt, JSON). Each worker is warmed up before it is measured.
Install with `pip install -e '.[bench]'`.

- wide: `workflows` groups of `width` no-op signatures, all submitted, then every result
  fetched; tasks/s = tasks / (last result fetched - first submit). A Celery result in
  Redis is its whole record: there is no event history to store.
- chain: `chain(noop.si() * length)`; each task returns `time.time()` taken when it starts,
  so a step is the time between consecutive tasks' starts (the same cycle as Ymera's
  TaskReady to the next TaskReady).

This module is also the Celery app the worker loads (`celery -A celery_peer worker`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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


@contextlib.contextmanager
def worker(concurrency: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A prefork worker with `concurrency` processes, ready (a task round-tripped) when yielded."""
    flush()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    with open(log, "ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_peer", "worker", "--pool", "prefork",
             "--concurrency", str(concurrency), "-Q", QUEUE, "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--loglevel", "WARNING"],
            cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    try:
        # Ready = a task went through; a few more warm every pool process up.
        noop.delay().get(timeout=60)
        group(noop.si() for _ in range(20 * concurrency)).apply_async().get(timeout=60)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)  # warm shutdown: finish what it holds, then exit
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        flush()


def processes(worker_pid: int) -> dict[str, int]:
    """The worker, its pool processes and redis-server, by name, for CPU accounting."""
    pool = Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split()
    pids = {"celery worker": worker_pid, **{f"celery pool {i}": int(pid) for i, pid in enumerate(pool)}}
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "redis-server":
                pids["redis-server"] = int(comm.parent.name)
    return pids


def wide(workflows: int, width: int, timeout: float = 120.0) -> float:
    """Seconds from the first submit until every result is in."""
    t0 = time.perf_counter()
    results = [group(noop.si() for _ in range(width)).apply_async() for _ in range(workflows)]
    for r in results:
        values = r.get(timeout=timeout)
        assert len(values) == width
    return time.perf_counter() - t0


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
