"""Benchmark the validator's pure logic: `validate_workflow` + `plan` on large random DAGs.

Each workflow is a layered random DAG: layers of `--width` tasks, every task after the first
layer depending on 3 distinct tasks drawn from the 3 layers before its own, priorities at
random. It is timed twice: submitted in layer order (the usual way to write a workflow, each
task after its dependencies) and shuffled (tasks before their dependencies, so levels need
the depth-first walk). Building the tasks is not timed. Each size runs --repeat times (3);
the table shows the median.

    .venv/bin/python bench/plan.py [--sizes 1000,10000,100000] [--repeat 3] [--write]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Sequence

from report import machine, write_section

import events
from actors.validator import plan, validate_workflow
from config import Settings

TARGET_SECONDS = 1.0  # validate + plan of 100,000 tasks
PRIORITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")


def layered_dag(n: int, width: int, shuffled: bool, seed: int = 1) -> list[events.TaskSpec]:
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        layer = i // width
        deps = []
        if layer:
            window = range(max(0, layer - 3) * width, layer * width)
            deps = [f"t{j}" for j in rng.sample(window, min(3, len(window)))]
        tasks.append(events.TaskSpec(id=f"t{i}", type="noop", dependencies=deps, priority=rng.choice(PRIORITIES)))
    if shuffled:
        rng.shuffle(tasks)
    return tasks


def measure(tasks: list[events.TaskSpec], settings: Settings) -> tuple[float, float, int]:
    """Seconds to validate, seconds to plan, and the number of levels."""
    submission = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="bench", tasks=tasks)
    start = time.perf_counter()
    problems = validate_workflow(submission, settings)
    validated = time.perf_counter()
    result = plan(tasks)
    planned = time.perf_counter()
    if problems:
        raise SystemExit(f"the generated workflow is invalid: {problems[0].message}")
    return validated - start, planned - validated, len(result.levels)


def run(sizes: Sequence[int], width: int, repeat: int) -> str:
    settings = Settings(max_tasks_per_workflow=max(sizes))
    lines = ["| tasks | submitted | levels | validate ms | plan ms | total ms | tasks/s (validate + plan) |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    verdicts = []
    for n in sizes:
        for shuffled in (False, True):
            tasks = layered_dag(n, width, shuffled)
            runs = [measure(tasks, settings) for _ in range(repeat)]
            v = statistics.median(r[0] for r in runs)
            p = statistics.median(r[1] for r in runs)
            total = statistics.median(r[0] + r[1] for r in runs)
            order = "shuffled" if shuffled else "in order"
            lines.append(f"| {n:,} | {order} | {runs[0][2]:,} | {v * 1e3:,.1f} | {p * 1e3:,.1f} | "
                         f"{total * 1e3:,.1f} | {n / total:,.0f} |")
            if n == 100_000:
                verdicts.append(f"100,000 tasks {order}: {total:.2f} s, target < {TARGET_SECONDS:.0f} s: "
                                f"{'met' if total < TARGET_SECONDS else 'NOT met'}")
    return "\n".join(lines) + ("\n\n" + "\n".join(verdicts) if verdicts else "")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--sizes", default="1000,10000,100000", help="comma-separated task counts")
    p.add_argument("--width", type=int, default=100, help="tasks per layer (default 100)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions per size; the table shows the median")
    p.add_argument("--write", action="store_true", help="also record the results in BENCHMARKS.md")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    header = machine()
    print(header + "\n")
    results = run([int(s) for s in args.sizes.split(",")], args.width, args.repeat)
    print(results)
    if args.write:
        write_section("Validate and plan (bench/plan.py)", header + "\n\n" + results)


if __name__ == "__main__":
    main()
