"""Two or more settings of the engine, measured in turn: what one change is worth on a noisy machine.

Consecutive runs of one variant on these VMs differ by 15-25 %, more than most changes are
worth, so a change is measured in pairs: each repetition runs every variant once, one after
the other, on a fresh `bus.EmbeddedServer` and data dir (bench/throughput.py's `engine`), and
the medians are compared. A variant is a set of environment variables (`GOMAXPROCS=2`,
`YMERA_EXECUTOR_CONCURRENCY=256`, or none: the defaults), given to the engine's processes and
to the embedded server. Each repetition runs wide 50x100 and, with `--chain`, a chain of 200,
and reads every process's CPU from /proc around each, as bench/throughput.py does.

    .venv/bin/python bench/paired.py "" "GOMAXPROCS=2" [--repeat 4] [--chain] [--in-process]

Prints each repetition and, per variant, the medians: tasks/s, CPU per task by process, and
with `--chain` the step's p50 and the chain's CPU per task. Nothing is written to BENCHMARKS.md:
the paired figures quoted there name this command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import throughput
from cpu import cpu_snapshot, cpu_used

WIDE = (50, 100)
CHAIN = 200


def variant(text: str) -> dict[str, str]:
    """`A=1,B=2` as {"A": "1", "B": "2"}; "" is the defaults."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(p) != 2 or not p[0] for p in pairs):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE[,NAME=VALUE...]")
    return {name: value for name, value in pairs}


async def one(env: dict[str, str], rep: int, chain: bool, in_process: bool) -> dict[str, float]:
    """One repetition of one variant: tasks/s and µs of CPU per task by process (and the chain's)."""
    saved = dict(os.environ)
    os.environ.update(env)  # read by the engine's processes and the embedded server as they start
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with throughput.engine(Path(tmp), 1, in_process) as eng:
                await throughput.run_workflows(eng, [throughput.submission(f"warm-{rep}", 20, False)])
                subs = [throughput.submission(f"w-{rep}-{i:03d}", WIDE[1], False) for i in range(WIDE[0])]
                tasks = WIDE[0] * WIDE[1]
                before = cpu_snapshot(eng.pids)
                seconds, _ = await throughput.run_workflows(eng, subs)
                used = cpu_used(before, cpu_snapshot(eng.pids))
                out = {"tasks/s": tasks / seconds, **{k: v / tasks * 1e6 for k, v in used.items()}}
                out["total"] = sum(v / tasks * 1e6 for v in used.values())
                if chain:
                    before = cpu_snapshot(eng.pids)
                    await throughput.run_workflows(eng, [throughput.submission(f"chain-{rep}", CHAIN, True)])
                    chained = cpu_used(before, cpu_snapshot(eng.pids))
                    steps, _ = throughput.chain_steps(eng.db, f"chain-{rep}")
                    out["chain step p50 ms"] = statistics.median(steps)
                    out["chain total"] = sum(chained.values()) / CHAIN * 1e6
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return out


def line(name: str, figures: dict[str, float]) -> str:
    shown = ", ".join(f"{k} {v:,.2f}" if k.endswith("ms") else f"{k} {v:,.0f}" for k, v in figures.items() if v)
    return f"{name or 'defaults'}: {shown}"


async def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("variants", nargs="+", type=variant, help='settings, e.g. "" (the defaults) "GOMAXPROCS=2"')
    p.add_argument("--repeat", type=int, default=4, help="repetitions of each variant (default 4)")
    p.add_argument("--chain", action="store_true", help=f"also a chain of {CHAIN} tasks")
    p.add_argument("--in-process", action="store_true", help="every actor in this process (actors.run_all)")
    args = p.parse_args(argv)
    names = [",".join(f"{k}={v}" for k, v in env.items()) for env in args.variants]
    runs: list[list[dict[str, float]]] = [[] for _ in args.variants]
    for rep in range(args.repeat):
        for i, env in enumerate(args.variants):
            runs[i].append(await one(env, rep, args.chain, args.in_process))
            print(f"rep {rep} {line(names[i], runs[i][-1])}", file=sys.stderr, flush=True)
    print(f"medians of {args.repeat} (µs of CPU per task by process; wide {WIDE[0]}x{WIDE[1]}):")
    for name, results in zip(names, runs, strict=True):
        keys = dict.fromkeys(k for r in results for k in r)
        print(line(name, {k: statistics.median(r.get(k, 0.0) for r in results) for k in keys}))


if __name__ == "__main__":
    asyncio.run(main())
