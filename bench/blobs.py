"""Large values through the blob bucket: storing and reading back 1, 10 and 60 MB.

Reference, measured in the same run: nats-py's own `ObjectStore.get`, which joins the
128 KiB chunks with `bytes +=` (quadratic in the number of chunks); `Bus.get_blob` writes
them into one buffer. Also timed: hashing the value (every blob is checked against its
sha256 on the way back). Run: `python -m bench.blobs [--repeat 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import bus
import events

from .report import machine, write_section

SIZES_MB = (1, 10, 60)


def _value(size: int, salt: int) -> bytes:
    line = f"{salt:08d} the quick brown fox jumps over the lazy dog\n".encode()
    return (line * (size // len(line) + 1))[:size]


async def _measure(url: str, repeat: int) -> list[tuple[str, int, list[float]]]:
    connection = await bus.connect(url)
    rows: list[tuple[str, int, list[float]]] = []
    try:
        await connection.blobs.open()  # the bucket, made as Ymera makes it
        bucket = await connection.js.object_store(bus.BLOB_BUCKET)
        for mb in SIZES_MB:
            size = mb * 1_000_000
            timings: dict[str, list[float]] = {"put_blob": [], "get_blob": [], "nats-py get (reference)": [],
                                               "sha256": []}
            for i in range(repeat):
                data = _value(size, mb * 100 + i)  # new content each time: a put is never a no-op
                ref = events.blob_ref(data)
                t0 = time.perf_counter()
                await connection.put_blob(ref, data)
                t1 = time.perf_counter()
                assert await connection.get_blob(ref) == data
                t2 = time.perf_counter()
                result = await bucket.get(ref.digest)
                t3 = time.perf_counter()
                assert result.data == data
                hashlib.sha256(data).hexdigest()
                t4 = time.perf_counter()
                for name, seconds in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                    timings[name].append(seconds)
            rows += [(name, mb, seconds) for name, seconds in timings.items()]
    finally:
        await connection.close()
    return rows


def _table(rows: list[tuple[str, int, list[float]]]) -> str:
    lines = ["| path | MB | MB/s (median) | range (MB/s) | seconds (median) |", "|---|---:|---:|---:|---:|"]
    for name, mb, seconds in rows:
        rates = [mb / s for s in seconds]
        lines.append(f"| {name} | {mb} | {statistics.median(rates):,.0f} | {min(rates):,.0f} – {max(rates):,.0f} "
                     f"| {statistics.median(seconds):.3f} |")
    ratios = []
    for mb in SIZES_MB:
        ours = statistics.median(next(s for n, m, s in rows if n == "get_blob" and m == mb))
        ref = statistics.median(next(s for n, m, s in rows if n.startswith("nats-py") and m == mb))
        ratios.append(f"{mb} MB {ref / ours:.1f}x")
    lines.append("")
    lines.append(f"get_blob against nats-py's get (reference time / ours): {', '.join(ratios)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bus.EmbeddedServer(Path(tmp)) as server:
        rows = asyncio.run(_measure(server.url, args.repeat))
    text = f"{machine()}\n{_table(rows)}"
    print(text)
    write_section("Large values (bench/blobs.py)", text)


if __name__ == "__main__":
    main()
