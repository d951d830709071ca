"""bench/throughput.py's results: a run and a row of the table, the tables, and the verdicts
against issue 8's targets (each judged against the fastest Celery row on its workload)."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from report import pct

# Issue 8's targets against Celery at its best: wide tasks/s (by variant), chain step p50.
WIDE_FACTOR = {"Ymera, process per actor": 5.0, "Ymera, one process (run_all)": 3.0}
STEP_FACTOR = 0.6
CORES = os.cpu_count() or 1
PROCESSES, IN_PROCESS = "Ymera, process per actor", "Ymera, one process (run_all)"
CELERY, CELERY_TUNED = "Celery + Redis", "Celery + Redis, tuned"


@dataclass
class Run:
    """One workload, once."""

    seconds: float
    steps_ms: list[float] = field(default_factory=list)
    hops_ms: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds during the run
    events_per_task: float = 0.0


@dataclass
class Row:
    engine: str
    workload: str  # "wide AxB" or "chain N"
    workers: int
    tasks: int
    runs: list[Run] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        return [self.tasks / r.seconds for r in self.runs]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def steps(self) -> list[float]:
        return [s for r in self.runs for s in r.steps_ms]

    @property
    def shape(self) -> tuple[int, int]:
        count, width = self.workload.split(" ")[1].split("×")
        return int(count), int(width)


def busy(run: Run) -> float:
    """All CPU time used on the machine during the run / (wall clock * cores)."""
    return sum(run.cpu.values()) / (run.seconds * CORES)


def render(rows: Sequence[Row]) -> str:
    lines = ["| engine | workload | executors / workers | tasks | seconds (median) | tasks/s (median) | range | "
             "step p50 ms | step p99 ms | events/task |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        p50, p99 = (f"{pct(r.steps, 50):.2f}", f"{pct(r.steps, 99):.2f}") if r.steps else ("", "")
        spread = f"{min(r.rates):,.0f} – {max(r.rates):,.0f}" if len(r.runs) > 1 else ""
        per_task = f"{statistics.median(x.events_per_task for x in r.runs):.2f}" if r.runs[0].events_per_task else ""
        lines.append(f"| {r.engine} | {r.workload} | {r.workers} | {r.tasks:,} | "
                     f"{statistics.median(x.seconds for x in r.runs):.2f} | {r.rate:,.0f} | {spread} | {p50} | {p99} | "
                     f"{per_task} |")
    hops = [f"- chain hops, {r.engine}, {r.workers} executor(s), median ms: " + ", ".join(
        f"{k} {statistics.median(x.hops_ms[k] for x in r.runs):.2f}" for k in r.runs[0].hops_ms)
        for r in rows if r.runs[0].hops_ms]
    return "\n".join([*lines, "", *cpu_table(rows), "", *hops, "", *verdicts(rows)])


def column(process: str) -> str:
    """Executors, a Celery worker's processes, and Celery's clients are one column each."""
    for prefix, name in (("executor", "executors"), ("celery", "celery workers"), ("client", "celery clients")):
        if process.startswith(prefix):
            return name
    return process


def cpu_table(rows: Sequence[Row]) -> list[str]:
    """CPU µs per task by process (median over repetitions), and how busy the machine was."""
    def per_task(r: Row, name: str) -> float:
        return statistics.median(sum(v for k, v in x.cpu.items() if column(k) == name) for x in r.runs) / r.tasks * 1e6

    names = list(dict.fromkeys(column(k) for r in rows for k in r.runs[0].cpu))
    names.append(names.pop(names.index("unattributed")))
    out = ["CPU time per task by process, µs, median over repetitions, from /proc. bench = this script (the Celery "
           "client; in the one-process variant, every actor too); unattributed = the machine's busy time outside "
           "these processes (interrupts, anything else running); busy = all CPU / (wall × cores).", "",
           "| engine | workload | ex. | " + " | ".join(names) + " | total | busy |",
           "|---|---|---:|" + "---:|" * (len(names) + 2)]
    for r in rows:
        cells = [f"{per_task(r, n):,.0f}" if any(column(k) == n for k in r.runs[0].cpu) else "" for n in names]
        total = statistics.median(sum(x.cpu.values()) / r.tasks * 1e6 for x in r.runs)
        out.append(f"| {r.engine} | {r.workload} | {r.workers} | {' | '.join(cells)} | {total:,.0f} | "
                   f"{statistics.median(busy(x) for x in r.runs):.0%} |")
    return out


def verdicts(rows: Sequence[Row]) -> list[str]:
    """Issue 8's targets, each against Celery at its best on that workload in this run."""
    def ok(flag: bool) -> str:
        return "met" if flag else "NOT met"

    out = []
    celery = [r for r in rows if r.engine.startswith(CELERY)]
    for r in rows:
        if r.engine.startswith(CELERY):
            continue
        peers = [c for c in celery if c.workload == r.workload]
        if not peers:
            continue
        what = f"{r.engine}, {r.workload}, {r.workers} executor(s)"
        if r.steps:
            best = min(peers, key=lambda c: pct(c.steps, 50))
            p50, peer = pct(r.steps, 50), pct(best.steps, 50)
            out.append(f"- {what}: chain step p50 {p50:.2f} ms, {p50 / peer:.2f}× Celery's best {peer:.2f} ms "
                       f"({best.engine}, {best.workers} worker process(es)) (target <= {STEP_FACTOR:g}×): "
                       f"{ok(p50 <= STEP_FACTOR * peer)}")
        elif r.engine in WIDE_FACTOR:
            best = max(peers, key=lambda c: c.rate)
            ratio, target = r.rate / best.rate, WIDE_FACTOR[r.engine]
            out.append(f"- {what}: {r.rate:,.0f} tasks/s, {ratio:.2f}× Celery's best {best.rate:,.0f} "
                       f"({best.engine}, {best.workers} worker process(es)) (target >= {target:g}×): "
                       f"{ok(ratio >= target)}")
    return out
