"""How many events per second the monitor's fold and alert evaluation sustain, against the rate
the engine emits them.

The monitor reads every event on `ymera.>`, so its CPU per event competes with the engine's
on the same cores. This script folds a realistic mix through `actors.monitor.Monitor.apply`
(the once-gate, `store.Metrics` with its time windows, and the rules evaluated each
`check_interval` of event time), with no bus, so it measures the monitor's own cost:

- the mix: tests/monitor_log.py's workflows of five LLM tasks (submitted, admitted, validated,
  released, succeeded or failed and retried, assessed, completed), plus what the engine emits
  besides for each attempt: TaskStarted, ModelChosen and LLMCalled; about 6.8 events a task,
  as bench/throughput.py's engine writes them;
- "engine pace": tasks released 2,500 a second of event time, the engine's wide throughput
  (bench/throughput.py), so a check every 60 s of event time covers ~1M events;
- "slow pace": one task every 1.5 s, the pace of tests/test_monitor_replay.py, where a check
  falls every ~180 events: the evaluation's worst share;
- `store.Metrics` alone (what `WorkflowOrchestrator.monitor` and `ymera report monitoring` fold);
- the monitor's snapshot size after a quarter, half, three quarters and all of a log with a task
  every 6 s (8, 17, 25 and 33 hours of event time at the default 20,000 tasks): it stops
  growing once the 25 hour buckets are full: bounded by the windows, not the log.

The comparison: the CPU share of one core the monitor needs at 20,000 events/s (the engine's
~6-8 events a task at ~2,500 tasks/s).

    .venv/bin/python bench/monitor_rate.py [--tasks 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from report import machine, write_section

import events
import store
from actors._snapshot import encode_snapshot
from actors.monitor import Monitor
from config import Settings
from tests.monitor_log import build_log

ENGINE_EVENTS_PER_SECOND = 20_000


def engine_mix(log: list[events.Event]) -> list[events.Event]:
    """`log` with each attempt's TaskStarted, ModelChosen and LLMCalled, as the executor emits them."""
    out: list[events.Event] = []
    for e in log:
        if isinstance(e, events.TaskSucceeded | events.TaskFailed) and e.model:
            common = {"id": events.new_id(), "ts": e.ts, "workflow_id": e.workflow_id, "run_id": e.run_id,
                      "task_id": e.task_id, "attempt": e.attempt}
            out.append(events.TaskStarted(**common, executor="ex-1"))  # type: ignore[arg-type]
            out.append(events.ModelChosen(**{**common, "id": events.new_id()}, model=e.model,  # type: ignore[arg-type]
                                          candidates=[e.model], reason="measured quality"))
            out.append(events.LLMCalled(**{**common, "id": events.new_id()}, provider=e.model.split("/")[0],  # type: ignore[arg-type]
                                        model=e.model, tokens_in=600, tokens_out=300, latency_ms=e.duration_ms,
                                        cost_usd=0.002))
        out.append(e)
    return out


def fold_seconds(log: list[events.Event], settings: Settings) -> tuple[float, Monitor]:
    monitor = Monitor(settings)
    t0 = time.perf_counter()
    for event in log:
        monitor.apply(event)
        monitor.outbox.clear()
    return time.perf_counter() - t0, monitor


def metrics_seconds(log: list[events.Event]) -> float:
    metrics = store.Metrics()
    state = metrics.initial()
    t0 = time.perf_counter()
    for event in log:
        state = metrics.apply(state, event)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    settings = Settings()
    logs = {
        "monitor, engine pace (2,500 tasks/s)": engine_mix(build_log(args.tasks, spacing=1 / 2500)),
        "monitor, slow pace (1 task / 1.5 s)": engine_mix(build_log(args.tasks)),
    }
    rows = []
    for name, log in logs.items():
        fold_seconds(log[:2000], settings)  # warm up
        runs = [fold_seconds(log, settings)[0] for _ in range(args.repeat)]
        rows.append((name, len(log), runs))
    engine_log = logs["monitor, engine pace (2,500 tasks/s)"]
    rows.append(("store.Metrics alone, engine pace", len(engine_log),
                 [metrics_seconds(engine_log) for _ in range(args.repeat)]))
    sparse = engine_mix(build_log(args.tasks, spacing=6.0))
    sizes = []
    for n in (len(sparse) // 4, len(sparse) // 2, 3 * len(sparse) // 4, len(sparse)):
        _, monitor = fold_seconds(sparse[:n], settings)
        hours = (sparse[n - 1].ts - sparse[0].ts).total_seconds() / 3600
        sizes.append((n, hours, len(encode_snapshot(monitor, n, "bench"))))
    lines = [machine(), "",
             "| path | events | events/s (median) | µs/event | CPU share at 20,000 events/s |",
             "|---|---:|---:|---:|---:|"]
    for name, n, runs in rows:
        rate = n / statistics.median(runs)
        lines.append(f"| {name} | {n:,} | {rate:,.0f} | {1e6 / rate:.1f} | {ENGINE_EVENTS_PER_SECOND / rate:.0%} |")
    lines += ["", "| events folded (a task every 6 s) | hours of event time | monitor snapshot (bytes) |",
              "|---:|---:|---:|"]
    lines += [f"| {n:,} | {hours:.1f} | {size:,} |" for n, hours, size in sizes]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("Monitor (bench/monitor_rate.py)", text)


if __name__ == "__main__":
    main()
