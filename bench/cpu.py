"""CPU accounting for the benchmarks: CPU seconds per process and the machine's busy time, from /proc."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CLK = os.sysconf("SC_CLK_TCK")


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far (utime + stime, all threads) per process, and the machine's busy time."""
    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / CLK
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return {**out, "machine": (sum(ticks) - ticks[3] - ticks[4]) / CLK}  # all but idle and iowait


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    used = {k: after[k] - before[k] for k in before if k in after}
    machine = used.pop("machine")
    return {**used, "unattributed": max(0.0, machine - sum(used.values()))}


def actor_pids(up_pid: int) -> dict[str, int]:
    """The actor processes `runner up --processes` started, by actor name (the last argument)."""
    pids = {}
    for i, pid in enumerate(int(c) for c in Path(f"/proc/{up_pid}/task/{up_pid}/children").read_text().split()):
        name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-2].decode()
        pids[f"executor {i}" if name == "executor" else name] = pid
    return pids
