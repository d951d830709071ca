"""Shared by the benchmarks: the result table, timing calls, the machine, and recording a run in
BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path

import bus

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
LATEST = "### Latest run (written by the script)"


@dataclass
class Row:
    """One line of the result table: a path and its timings, one per repetition."""

    path: str
    events: int
    seconds: list[float]
    note: str = ""

    @property
    def rates(self) -> list[float]:
        return [self.events / s for s in self.seconds]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


async def timed(call: Callable[[], Awaitable[object]], n: int, warmup: int | None = None) -> list[float]:
    """Milliseconds of each of n calls made one after another, after `warmup` untimed ones
    (n // 10, at least 10, unless given)."""
    for _ in range(max(n // 10, 10) if warmup is None else warmup):
        await call()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _machine_facts() -> dict[str, str]:
    cpu: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            cpu.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    server = subprocess.run([bus.find_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": f"{cpu.get('model name', 'unknown')} (family {cpu.get('cpu family', '?')}, "
               f"model {cpu.get('model', '?')}, {cpu.get('cpu MHz', '?')} MHz)",
        "python": platform.python_version(),
        "nats-py": metadata.version("nats-py"),
        "nats-server": server.removeprefix("nats-server: "),
        "msgspec": metadata.version("msgspec"),
        "aiosqlite": metadata.version("aiosqlite"),
        "sqlite": sqlite3.sqlite_version,
    }


def table(rows: Sequence[Row]) -> str:
    lines = ["| path | events | events/s (median) | range (events/s) | note |", "|---|---:|---:|---:|---|"]
    for r in rows:
        spread = f"{min(r.rates):,.0f} – {max(r.rates):,.0f}" if len(r.rates) > 1 else ""
        lines.append(f"| {r.path} | {r.events:,} | {r.rate:,.0f} | {spread} | {r.note} |")
    return "\n".join(lines)


def machine() -> str:
    """Two lines: the machine and libraries, and the exact command."""
    facts = " | ".join(f"{k} {v}" for k, v in _machine_facts().items())
    return f"{facts}\ncommand: {' '.join([sys.executable, *sys.argv])}"


def write_section(section: str, text: str) -> None:
    """Replace the latest-run block under `## {section}` in BENCHMARKS.md with `text`."""
    doc = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    heading = f"## {section}"
    block = f"{LATEST}\n\n{date.today().isoformat()}\n\n```\n{text.splitlines()[0]}\n{text.splitlines()[1]}\n```\n\n"
    block += "\n".join(text.splitlines()[2:]).strip() + "\n"
    if heading not in doc:
        doc = doc.rstrip() + f"\n\n{heading}\n\n{block}"
    else:
        head, _, rest = doc.partition(heading)
        nxt = rest.find("\n## ")
        body, tail = (rest, "") if nxt < 0 else (rest[:nxt], rest[nxt:])
        if LATEST in body:
            before, _, after = body.partition(LATEST)
            following = after.find("\n### ")
            body = before + block + ("" if following < 0 else after[following:])
        else:
            body = body.rstrip() + "\n\n" + block
        doc = head + heading + body + tail
    BENCHMARKS.write_text(doc)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]
