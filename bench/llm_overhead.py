"""What the AI layer adds to one LLM call, over a bare httpx call to the same local provider;
and how many key and budget decisions it makes a second.

The provider is bench/llm_inflight.py's (an OpenAI-format server in its own process: asyncio,
keep-alive), answering at once. Each path makes N calls one after another, after a warm-up,
and the latency of each is timed in this process:

- bare httpx: `httpx.AsyncClient` posting the body the OpenAI wire format sends;
- bare aiohttp: the same with the client Ymera's transport uses;
- `llm.LLMClient.complete`, its own gate: the prompt's answer budget, a key from the pool,
  the request encoded, the answer decoded and normalised, priced from the catalogue, held and
  settled in the client's ledger, the call's record made;
- the same through an executor's gate (actors/executor/_pools.py): the model chosen by the
  selector (`llm.Selector.choose`, as the executor's `run_llm` does), then the call reserved
  in the stream, a `CallReserved` published fenced on `ymera.llm.>` (a fresh embedded
  nats-server) and its ack awaited, as every executor does before every call.

Added latency = p50 of a path minus p50 of bare httpx, paired per repetition. Decisions per
second: `KeyPool.choose` + `Ledger.reserve` + `Ledger.settle` over 10 keys in a loop (what
deciding a key costs); the selector's choices over three configured providers' catalogue
models (13 candidates, a tracker holding measures of each); and sequential fenced
reservations against the embedded server (what making a decision durable costs).

Target (issue 9): under 1 ms added per call, p50, on the executor's path.

    .venv/bin/python bench/llm_overhead.py [--calls 1000] [--repeat 3] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import httpx
from llm_inflight import provider
from report import machine, pct, timed, write_section

import bus
import events
import llm
from actors import load_settings
from actors.executor import context
from actors.executor._pools import SharedPools

TARGET_MS = 1.0
MESSAGES = (llm.Message("system", "You are a helpful assistant."), llm.Message("user", "Say done."))
BODY = {"model": "bench-model", "max_tokens": 16,
        "messages": [{"role": m.role, "content": m.content} for m in MESSAGES]}


async def bare_httpx(base_url: str, n: int) -> list[float]:
    async with httpx.AsyncClient() as http:
        async def call() -> None:
            answer = await http.post(f"{base_url}/chat/completions", json=BODY, headers={"authorization": "Bearer k1"})
            answer.raise_for_status()

        return await timed(call, n)


async def bare_aiohttp(base_url: str, n: int) -> list[float]:
    async with aiohttp.ClientSession() as http:
        async def call() -> None:
            async with http.post(f"{base_url}/chat/completions", json=BODY,
                                 headers={"authorization": "Bearer k1"}) as answer:
                answer.raise_for_status()
                await answer.read()

        return await timed(call, n)


def settings_for(base_url: str, data: Path) -> object:
    env = {"YMERA_LLM_BASE_URL": base_url, "YMERA_LLM_MODEL": "bench-model", "YMERA_DATA_DIR": str(data)}
    env.update((f"YMERA_LLM_API_KEY_{n}", f"k{n}") for n in range(1, 11))
    return load_settings(env, dotenv=None)


async def layer(base_url: str, n: int, tmp: Path, *, reserved: bool) -> list[float]:
    settings = settings_for(base_url, tmp / "data")
    async with context(settings, 8) as ctx:  # type: ignore[arg-type]
        target = ctx.llm.models.resolve(None)
        if not reserved:
            return await timed(lambda: ctx.llm.complete(target, MESSAGES, max_tokens=16), n)
        with bus.EmbeddedServer(tmp / f"nats-{time.monotonic_ns()}") as server:
            connection = await bus.connect(server.url)
            shared = SharedPools(ctx.llm, "bench")
            await shared.start(connection)
            try:
                calls = 0
                need = llm.Need(task_type="llm", model="bench-model", named_by="YMERA_LLM_MODEL")

                async def call() -> None:
                    nonlocal calls
                    calls += 1
                    ready = events.TaskReady(id=events.new_id(), ts=events.now(), workflow_id="bench", run_id="run",
                                             actor="distributor", task_id=f"t{calls}", attempt=1, timeout_seconds=60)
                    with llm.recording(shared.gate(connection, ready, settings)) as record:  # type: ignore[arg-type]
                        choice = ctx.llm.selector.choose(need)
                        record.chose(choice)
                        await ctx.llm.complete(choice.target, MESSAGES, max_tokens=16)

                return await timed(call, n)
            finally:
                await shared.stop()
                await connection.close()


def decisions_per_second(n: int) -> float:
    """choose + reserve + settle over 10 keys, in a loop, no I/O."""
    endpoint = llm.Endpoint(llm.PROVIDERS["groq"], "https://groq.example/v1",
                            tuple((f"groq:{k}", f"secret-{k}") for k in range(1, 11)))
    pool = llm.KeyPool(endpoint)
    ledger = llm.Ledger({"groq": pool})
    info = llm.ModelInfo(provider="groq", name="m", context_window=8000, price_in=0.1, price_out=0.1, rpm=10_000)
    budgets = llm.Budgets(per_run=1e9, per_day=1e9)
    t0 = time.perf_counter()
    for i in range(n):
        ledger.expire()
        assert ledger.refusal("run", 0.001, budgets, "m") is None
        key = pool.choose(info, "m")
        at = events.now()
        hold = events.CallReserved(id="x", ts=at, workflow_id="bench", run_id="run", task_id="t", attempt=1, call=i,
                                   provider="groq", model="m", key_id=key, cost_usd=0.001,
                                   holds_until=at + timedelta(seconds=60))
        ledger.reserve(hold)
        record = llm.Call(ts=at, provider="groq", model="m", key_id=key, cost_usd=0.0005)
        ledger.settle(llm.hold_id("run", "t", 1, i, ""), record, "run")
    return n / (time.perf_counter() - t0)


def choices_per_second(tmp: Path, n: int) -> float:
    """`Selector.choose` for a task naming no model, over openai, groq and gemini's catalogue models."""
    env = {"YMERA_DATA_DIR": str(tmp / "data"), "OPENAI_API_KEY": "k", "GROQ_API_KEY": "k", "GEMINI_API_KEY": "k"}
    models = llm.Models(load_settings(env, dotenv=None), llm.Catalogue.load())
    selector = llm.Selector(models, llm.Tracker(), {name: llm.KeyPool(e) for name, e in models.endpoints.items()})
    need = llm.Need(task_type="code_generation", agent="developer")
    for i, target in enumerate(selector.candidates(need)):
        for k in range(20):
            selector.tracker.called(target.ref, "code_generation", "ok", 300.0 + 10 * i + k, 0.0001)
            selector.tracker.assessed(target.ref, "code_generation", 0.5 + (i * k % 10) / 20)
    t0 = time.perf_counter()
    for _ in range(n):
        selector.choose(need)
    return n / (time.perf_counter() - t0)


async def fenced_per_second(tmp: Path, n: int) -> float:
    """Reservations published one after another, each fenced on the one before."""
    with bus.EmbeddedServer(tmp / f"nats-fenced-{time.monotonic_ns()}") as server:
        connection = await bus.connect(server.url)
        try:
            over, seq = events.domain_filter(events.CallReserved), 0
            at = events.now()
            t0 = time.perf_counter()
            for i in range(n):
                hold = events.CallReserved(id=events.new_id(), ts=at, workflow_id="bench", run_id="run", task_id="t",
                                           attempt=1, call=i + 1, provider="groq", model="m", key_id="groq:1",
                                           holds_until=at)
                seq = (await connection.publish_after(hold, over, seq)).seq
            return n / (time.perf_counter() - t0)
        finally:
            await connection.close()


async def main(args: argparse.Namespace) -> str:
    header = machine()
    print(header + "\n", file=sys.stderr)
    paths: dict[str, list[list[float]]] = {k: [] for k in ("bare httpx", "bare aiohttp", "llm.LLMClient.complete",
                                                            "LLMClient.complete, reserved in the stream")}
    rates: dict[str, list[float]] = {"decisions/s (choose + reserve + settle, 10 keys)": [],
                                     "selector choices/s (13 candidates, measured)": [],
                                     "fenced reservations/s (sequential)": []}
    with provider(0.0) as (base_url, _pid), tempfile.TemporaryDirectory(prefix="ymera-llm-overhead-") as tmp_dir:
        tmp = Path(tmp_dir)
        for rep in range(args.repeat):  # interleaved, so a slow minute touches every path
            print(f"  repetition {rep + 1} …", file=sys.stderr)
            paths["bare httpx"].append(await bare_httpx(base_url, args.calls))
            paths["bare aiohttp"].append(await bare_aiohttp(base_url, args.calls))
            paths["llm.LLMClient.complete"].append(await layer(base_url, args.calls, tmp, reserved=False))
            paths["LLMClient.complete, reserved in the stream"].append(
                await layer(base_url, args.calls, tmp, reserved=True))
            rates["decisions/s (choose + reserve + settle, 10 keys)"].append(decisions_per_second(args.calls * 20))
            rates["selector choices/s (13 candidates, measured)"].append(choices_per_second(tmp, args.calls * 5))
            rates["fenced reservations/s (sequential)"].append(await fenced_per_second(tmp, args.calls))
    base = [statistics.median(r) for r in paths["bare httpx"]]
    ours = [statistics.median(r) for r in paths["bare aiohttp"]]
    lines = [f"{args.calls} sequential calls per path and repetition, {args.repeat} repetitions; median (range) of "
             "each repetition's figure; added = p50 minus a bare client's p50 in the same repetition.", "",
             "| path | p50 ms | p90 ms | added p50 ms, over bare httpx | over bare aiohttp |",
             "|---|---:|---:|---:|---:|"]
    verdict = ""
    for name, runs in paths.items():
        p50s = [statistics.median(r) for r in runs]
        p90s = [pct(r, 90) for r in runs]
        added = [a - b for a, b in zip(p50s, base, strict=True)]
        over_ours = [a - b for a, b in zip(p50s, ours, strict=True)]
        lines.append(f"| {name} | {_spread(p50s)} | {_spread(p90s)} | {_spread(added)} | {_spread(over_ours)} |")
        if name.endswith("in the stream"):
            met = statistics.median(added) < TARGET_MS
            verdict = (f"Target: under {TARGET_MS:g} ms added per call (p50) on the executor's path, over bare "
                       f"httpx: {statistics.median(added):.3f} ms, {'met' if met else 'NOT met'} "
                       f"({statistics.median(over_ours):.3f} ms over bare aiohttp, the client Ymera uses).")
    lines += ["", "| rate | per second |", "|---|---:|"]
    lines += [f"| {name} | {_spread(values, '{:,.0f}')} |" for name, values in rates.items()]
    lines += ["", verdict]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section("LLM call overhead (bench/llm_overhead.py)", header + "\n\n" + text)
    return text


def _spread(values: list[float], fmt: str = "{:.3f}") -> str:
    mid = fmt.format(statistics.median(values))
    return mid if len(values) == 1 else f"{mid} ({fmt.format(min(values))} – {fmt.format(max(values))})"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="sequential calls per path (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--write", action="store_true", help="also record the results in BENCHMARKS.md")
    asyncio.run(main(parser.parse_args()))
