"""The load client of bench/web_load.py, a process of its own so the engine's clock is not its:
`clients` Server-Sent Events readers of /api/live and an open loop of `rate` requests a second,
round robin over ROUTES, until SIGTERM; then what it did, as JSON (`Load`) on stdout.

    python bench/web_load_client.py BASE_URL [--clients 200] [--rate 500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
import sys
import time

import aiohttp
import msgspec

ROUTES = ("/dashboard", "/api/workflows", "/api/events", "/metrics")
MAX_IN_FLIGHT = 500  # requests kept open at most; a request past it is counted as not sent


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


async def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("base", help="the server's base URL")
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--rate", type=float, default=500.0)
    args = p.parse_args()
    sys.stdout.buffer.write(msgspec.json.encode(await load_client(args.base, args.clients, args.rate)))


if __name__ == "__main__":
    asyncio.run(main())
