"""What signing every event costs (bus/_seal.py): the seal and its check alone, and the engine's
throughput with YMERA_SIGN_EVENTS off, on, and on with YMERA_NATS_AUTH (the server enforcing
who publishes what), measured in the same run, in turn.

- **seal**: `bus.seal` of a batch of n real events (one Ed25519 signature, a Merkle tree of n
  leaves), per event; **check**: `SealCheck.check` of each message of the batch (the first
  verifies the signature, the rest meet the root in the cache), per event; and, for scale,
  one Ed25519 signature and one verification.
- **engine**: bench/throughput.py's workloads (wide: W workflows of N independent noop tasks;
  chain: one workflow of C tasks in a line), each actor its own process (`ymera up
  --processes`, one executor), a fresh server and data dir per run; the three modes take turns
  in each repetition. Tasks/s counts from the first submit until the log holds
  every event; the chain reports its step's p50 (TaskReady -> TaskSucceeded -> next TaskReady).

    .venv/bin/python bench/signing.py [--wide 50x100] [--chain 200] [--repeat 3] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from report import machine, write_section
from throughput import chain_steps, engine, run_workflows, submission

import bus
import events
import guard


def per_event_us(fn: Callable[[], object], events_each: int, seconds: float = 0.5) -> float:
    runs, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        runs += 1
    return (time.perf_counter() - t0) / (runs * events_each) * 1e6


class Ring:
    """A keyring of one key: the executor's, `signer`'s."""

    def __init__(self, signer: guard.Identity) -> None:
        self.signer = signer

    def actor_of(self, key: str) -> str | None:
        return "executor"

    def principal_of(self, key: str) -> str | None:
        return None

    def verify(self, key: str, data: bytes, signature: str) -> bool:
        return guard.verify(self.signer.public_key, data, signature)


def micro() -> list[str]:
    signer = guard.Identity.generate("executor")

    lines = ["| batch | seal µs/event | check µs/event |", "|---:|---:|---:|"]
    for n in (1, 10, 100, 1000):
        batch = []
        for i in range(n):
            e = events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="wf", run_id="r",
                                     task_id=f"t{i}", attempt=1, output={"n": i}, actor="executor")
            batch.append((events.subject_of(e), events.encode(e)))
        seals = bus.seal(signer, batch)

        def check_all(seals: list[str] = seals, batch: list[tuple[str, bytes]] = batch) -> None:
            check = bus.SealCheck(Ring(signer))  # a fresh cache: the batch's signature verified once
            for (subject, data), sealed in zip(batch, seals, strict=True):
                check.check("TaskSucceeded", subject, data, sealed)

        lines.append(f"| {n} | {per_event_us(lambda b=batch: bus.seal(signer, b), n):.1f} | "
                     f"{per_event_us(check_all, n):.1f} |")
    lines += ["", *attested_micro(signer)]
    sig = signer.sign(b"x" * 100)
    lines.append("")
    lines.append(f"One Ed25519 signature: {per_event_us(lambda: signer.sign(b'x' * 100), 1):.1f} µs; one "
                 f"verification: {per_event_us(lambda: guard.verify(signer.public_key, b'x' * 100, sig), 1):.1f} µs.")
    return lines


def attested_micro(signer: guard.Identity) -> list[str]:
    """Where the server enforces who publishes what (bus/_attest.py): what an actor does per
    event as it sends it (a leaf and a number), and the audit's check of it against its attestation."""
    batch = []
    for i in range(1000):
        e = events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="wf", run_id="r", task_id=f"t{i}",
                                 attempt=1, output={"n": i}, actor="executor")
        batch.append((events.subject_of(e), events.encode(e)))
    head = f"@{signer.key_id}.0123456789ab."

    def send_side() -> None:
        leaves = []
        for k, (subject, data) in enumerate(batch):
            leaves.append(bus.leaf(subject, data))
            _ = f"{head}{k}"

    leaves = b"".join(bus.leaf(subject, data) for subject, data in batch)
    attestation = events.Attested(id="a", ts=events.now(), workflow_id="_", actor="executor", key_id=signer.key_id,
                                  epoch="0123456789ab", first=0, leaves=leaves,
                                  signature=signer.sign(events.attested_bytes(signer.key_id, "0123456789ab", 0,
                                                                              leaves)))

    def audit_side() -> None:
        check = bus.SealCheck(Ring(signer), attestations=True)
        check.attest(attestation)
        for k, (subject, data) in enumerate(batch):
            check.check("TaskSucceeded", subject, data, f"{head}{k}")

    return [f"Attested (a server enforcing senders): {per_event_us(send_side, len(batch)):.1f} µs/event to seal as "
            f"it is sent, and one signature per 20 ms; the audit's check {per_event_us(audit_side, len(batch)):.1f} "
            "µs/event (1,000 events an attestation)."]


# How the engine runs in each mode: signing off; signed, every actor checking what it reads;
# signed, on a server that authenticates every connection and enforces who publishes what
# (YMERA_NATS_AUTH), where no reader checks an actor's event in real time and each actor
# signs what it sent every 20 ms in an attestation (bus/_attest.py).
MODES = {"unsigned": ("false", "false"), "signed": ("true", "false"), "enforced": ("true", "true")}


async def engine_run(tmp: Path, mode: str, subs: Sequence[events.WorkflowSubmitted]) -> tuple[float, Path]:
    os.environ["YMERA_SIGN_EVENTS"], os.environ["YMERA_NATS_AUTH"] = MODES[mode]
    async with engine(tmp, 1, in_process=False) as running:
        seconds, _ = await run_workflows(running, subs)
        return seconds, running.db


async def measure(args: argparse.Namespace) -> list[str]:
    results: dict[tuple[str, str], list[float]] = {}
    modes = list(MODES)
    for rep in range(args.repeat):
        for mode in modes[rep % len(modes):] + modes[:rep % len(modes)]:  # each rep starts with the next mode
            with tempfile.TemporaryDirectory() as tmp:
                w, n = args.wide
                subs = [submission(f"w{rep}-{i}", n, chained=False) for i in range(w)]
                seconds, _ = await engine_run(Path(tmp) / "wide", mode, subs)
                results.setdefault(("wide", mode), []).append(w * n / seconds)
                chain = submission(f"c{rep}", args.chain, chained=True)
                _, db = await engine_run(Path(tmp) / "chain", mode, [chain])
                steps, _ = chain_steps(db, chain.workflow_id)
                results.setdefault(("chain", mode), []).append(statistics.median(steps))
            print(f"rep {rep + 1}, {mode}: wide {results[('wide', mode)][-1]:,.0f} tasks/s, chain step "
                  f"p50 {results[('chain', mode)][-1]:.2f} ms", flush=True)
    os.environ.pop("YMERA_SIGN_EVENTS", None)
    os.environ.pop("YMERA_NATS_AUTH", None)

    def cell(values: list[float], fmt: str) -> str:
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"

    def ratio(a: list[float], b: list[float]) -> str:
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})"

    w, n = args.wide
    wide = {mode: results[("wide", mode)] for mode in MODES}
    chain = {mode: results[("chain", mode)] for mode in MODES}
    return [
        "| workload | unsigned | signed | signed, NATS-enforced | signed / unsigned | enforced / unsigned |",
        "|---|---:|---:|---:|---:|---:|",
        f"| wide {w}×{n}, tasks/s | {cell(wide['unsigned'], ',.0f')} | {cell(wide['signed'], ',.0f')} | "
        f"{cell(wide['enforced'], ',.0f')} | {ratio(wide['signed'], wide['unsigned'])} | "
        f"{ratio(wide['enforced'], wide['unsigned'])} |",
        f"| chain {args.chain}, step p50 ms | {cell(chain['unsigned'], '.2f')} | {cell(chain['signed'], '.2f')} | "
        f"{cell(chain['enforced'], '.2f')} | {ratio(chain['signed'], chain['unsigned'])} | "
        f"{ratio(chain['enforced'], chain['unsigned'])} |",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--wide", type=lambda s: tuple(int(x) for x in s.split("x")), default=(50, 100))
    p.add_argument("--chain", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-engine", action="store_true", help="the seal and check alone")
    p.add_argument("--write", action="store_true", help="also record the results in BENCHMARKS.md")
    args = p.parse_args(argv)
    lines = micro()
    print("\n".join(lines), flush=True)
    if not args.no_engine:
        table = asyncio.run(measure(args))
        print("\n".join(table))
        lines += ["", *table]
    if args.write:
        command = "`.venv/bin/python bench/signing.py " + " ".join(argv or sys.argv[1:]) + "`"
        write_section("Signing (bench/signing.py)", f"{machine()}\n\n{command}\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
