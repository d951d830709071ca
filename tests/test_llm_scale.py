"""300 LLM tasks over 3 providers and 10 keys, on 3 executor processes, one of them SIGKILLed
mid-way and started again.

Each of two providers is a local server speaking OpenAI's format whose own per-key limit
(one request in any 0.2 s, which the model catalogue does not know) turns calls away with 429
and a Retry-After: at least a third of all the calls the providers see (some 250 of 550). The
third provider's model has a per-key rpm in the catalogue (10) that its 24 tasks keep only
if every executor counts every executor's calls. A daily budget holds every call's estimate.
Checked from the stream, folded in order as every executor folds it: every task completes;
no key is reserved while a 429 recorded on it rests it; no key goes over its catalogue rpm;
what is held and spent never passes the budget; and the executor started again rebuilt its
pools from what came before."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

import bus
import events
import llm
from ymera import WorkflowClient

from .engine import SINGLETONS, Actors, all_events, connected, engine_env, wait_for_actors
from .llm_server import LLMServer
from .support import wait_until

pytestmark = pytest.mark.slow

PROVIDERS = {"groq": 4, "mistral": 3, "together": 3}  # provider -> keys
TASKS = {"groq": 146, "mistral": 130, "together": 24}
LIMITED = ("groq", "mistral")  # providers whose own per-key limit turns calls away with 429
# Their own limit, which the catalogue does not know: each key, 1 request in any 0.2 s (5 a
# second), then 429 with a Retry-After; small windows meet it often, about as often as calls pass.
PER_KEY = (1, 0.2)
RPM = 10  # together's model, per key, in the catalogue: 3 keys hold its 24 tasks only if they share
# USD a day: a call may cost ~$0.43 (200 answer tokens at $2,000 a million) and costs ~$0.02, so
# calls in flight hold the budget and the rest wait for room; what a killed executor held counts
# as spent once its attempts' time limit (20 s) has passed.
BUDGET = 15.0
EXECUTORS = ("executor", "executor", "executor")


@pytest.fixture
def providers() -> Iterator[dict[str, LLMServer]]:
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(LLMServer("openai", model=f"m-{name}")) for name in PROVIDERS}
        for name in LIMITED:
            servers[name].limit_keys(*PER_KEY)  # then 429 with a Retry-After
        yield servers


def catalogue(path: Path) -> Path:
    lines = ["models:"]
    for name in PROVIDERS:
        rpm = f", rpm: {RPM}" if name == "together" else ""
        lines.append(f"  - {{provider: {name}, name: m-{name}, context_window: 8000, price_in: 1000, "
                     f"price_out: 2000{rpm}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def task(n: int, provider: str) -> events.TaskSpec:
    # 10 attempts (the most a task may have): a 429, and a pool with every key resting, each fail
    # one; the backoff spaces them so that the last tasks served still have attempts left.
    parameters = {"prompt": f"Say {n}", "model": f"{provider}/m-{provider}", "max_tokens": 200}
    return events.TaskSpec(id=f"t{n:03d}", type="llm", parameters=parameters,
                           retry=events.RetryPolicy(max_attempts=10, initial_delay_seconds=0.5, backoff_multiplier=2.0,
                                                    max_delay_seconds=4.0))


async def test_300_calls_over_10_keys_keep_every_cooldown_limit_and_budget_through_a_sigkill(
        nats_server: bus.EmbeddedServer, tmp_path: Path, providers: dict[str, LLMServer]) -> None:
    env = engine_env(tmp_path / "data", nats_server.url, YMERA_MODELS_FILE=str(catalogue(tmp_path / "models.yaml")),
                     YMERA_DAILY_BUDGET_USD=str(BUDGET), YMERA_LOG_LEVEL="info", YMERA_EXECUTOR_CONCURRENCY="32",
                     TASK_TIMEOUT_SECONDS="20")
    for name, keys in PROVIDERS.items():
        env[f"{name.upper()}_BASE_URL"] = providers[name].base_url
        env.update((f"{name.upper()}_API_KEY_{n}", f"{name}-key-{n}") for n in range(1, keys + 1))
    names = (*SINGLETONS, *EXECUTORS)
    actors = Actors(env, tmp_path / "logs", names)
    killed = names.index("executor") + 1  # the second executor
    try:
        async with connected(nats_server.url) as connection:
            await wait_for_actors(connection)
            plan = [p for p, count in TASKS.items() for _ in range(count)]
            sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-300",
                                           tasks=[task(n, p) for n, p in enumerate(plan)])
            succeeded: list[bus.Delivery] = []

            async def count(msg: bus.Delivery) -> None:
                succeeded.append(msg)

            watching = await connection.subscribe(events.subject_filter(events.TaskSucceeded, "wf-300"), count)
            client = WorkflowClient(connection)
            seq = await client.submit(sub)
            # Mid-way, once a third of the tasks have succeeded: SIGKILL one executor, start it again.
            await wait_until(lambda: len(succeeded) >= 100, 120, "a third of the tasks to succeed")
            await watching.stop()
            actors.kill_and_restart(killed)
            end, _ = await client.wait(sub.workflow_id, seq, timeout=240)
            seen = await all_events(connection, events.domain_filter(events.CallReserved))
    finally:
        actors.stop()
    assert isinstance(end, events.WorkflowCompleted), end
    assert [r.status for r in end.results].count("succeeded") == 300

    calls = [e for e in seen if isinstance(e, events.LLMCalled)]
    holds = [e for e in seen if isinstance(e, events.CallReserved)]
    limited = [c for c in calls if c.outcome == "rate_limited"]
    served = sum(len([c for c in p.calls if c[2] == 200]) for p in providers.values())
    turned_away = sum(len([c for c in p.calls if c[2] == 429]) for p in providers.values())
    print(f"{len(holds)} reservations, {len(calls)} calls recorded, {len(limited)} met a 429; "
          f"providers served {served} and turned away {turned_away} ({turned_away / (served + turned_away):.0%})")
    assert len(limited) >= 0.1 * len(calls)  # the providers' own limits were met, often
    assert turned_away >= (served + turned_away) / 3, "under a third of the calls made met a 429"
    assert {c.outcome for c in calls} <= {"ok", "rate_limited"}

    # Folded in stream order, as each executor folds it.
    ledger = llm.Ledger({})
    resting: dict[str, float] = defaultdict(float)  # key -> until when a recorded 429 rests it
    per_key: dict[str, list[float]] = defaultdict(list)  # together's keys -> reservation times
    for event in seen:
        if isinstance(event, events.CallReserved):
            at = event.ts.timestamp()
            assert event.key_id is not None
            assert at >= resting[event.key_id] - 1e-3, f"{event.key_id} reserved while resting: {event}"
            ledger.reserve(event)
            day = event.ts.date().isoformat()
            assert ledger.day_spent.get(day, 0) + ledger.day_held.get(day, 0) <= BUDGET + 1e-9
            if event.provider == "together":
                per_key[event.key_id].append(at)
        elif isinstance(event, events.LLMCalled):
            if event.outcome == "rate_limited" and event.key_id is not None:
                wait = event.retry_after_seconds if event.retry_after_seconds is not None else 10.0
                resting[event.key_id] = max(resting[event.key_id], event.ts.timestamp() + wait)
            ledger.settle(llm.hold_of(event), event, event.run_id)
    for key, times in per_key.items():
        for i, at in enumerate(times):
            in_minute = [t for t in times[i:] if t < at + 60]
            assert len(in_minute) <= RPM, f"{key}: {len(in_minute)} calls in a minute, over its rpm of {RPM}"
    # The executor started again read the pools' past before its first call.
    log = (tmp_path / "logs" / f"{killed}-executor.log").read_text()
    rebuilt = [line for line in log.splitlines() if "key pools rebuilt" in line]
    assert len(rebuilt) == 2, log[-3000:]
    assert "events=0" not in rebuilt[1]
