"""Key pools shared by every executor (actors/executor/_pools.py, llm/_keys.py): another
process's calls count against a key's limits at their own time, its 429s rest the key, a
refusal from before the pool existed is forgotten; an executor folds every executor's
LLMCalled from the stream, the last day's before its first task, then live, and skips its own.
Real nats-server, a local OpenAI-format server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

import bus
import events
import llm
from actors import Settings, load_settings, run_all
from actors.executor import context
from actors.executor._pools import SharedPools
from ymera import WorkflowClient

from .engine import all_events, connected
from .llm_server import OpenAIServer
from .support import wait_until

T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self, at: datetime = T0) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now


def pool(clock: Clock, keys: int = 1) -> llm.KeyPool:
    endpoint = llm.Endpoint(llm.PROVIDERS["groq"], "https://groq.example/v1",
                            tuple((f"groq:{n}", f"secret-{n}") for n in range(1, keys + 1)))
    return llm.KeyPool(endpoint, clock=clock)


MODEL = llm.ModelInfo(provider="groq", name="m", context_window=8000, rpm=2)


def called(key: str, at: datetime, outcome: str = "ok", *, retry_after: float | None = None,
           tokens: int = 0, executor: str = "elsewhere-1", provider: str = "groq", model: str = "m",
           error: str | None = None) -> events.LLMCalled:
    return events.LLMCalled(id=events.new_id(), ts=at, workflow_id="wf", run_id="run", actor="executor",
                            task_id="t", attempt=1, provider=provider, model=model, key_id=key, outcome=outcome,
                            retry_after_seconds=retry_after, tokens_in=tokens, error=error, executor=executor)


def reserved(key: str, at: datetime, *, cost: float | None = 0.1, run: str = "run", call: int = 1,
             executor: str = "elsewhere-1", provider: str = "groq", model: str = "m",
             holds: float = 300.0) -> events.CallReserved:
    return events.CallReserved(id=events.new_id(), ts=at, workflow_id="wf", run_id=run, actor="executor",
                               task_id="t", attempt=1, call=call, provider=provider, model=model, key_id=key,
                               cost_usd=cost, holds_until=at + timedelta(seconds=holds), executor=executor)


def test_another_processs_reservation_counts_against_the_keys_limit_at_its_own_time() -> None:
    clock = Clock()
    keys = pool(clock)
    ledger = llm.Ledger({"groq": keys}, clock=clock)
    keys.take(MODEL, "m")  # this process's own call, counted when taken
    ledger.reserve(reserved("groq:1", T0 - timedelta(seconds=30)))  # another's, begun earlier
    with pytest.raises(llm.LLMError) as caught:
        keys.choose(MODEL, "m")
    assert caught.value.kind == "rate_limited"
    # The other call began 30 s before: its slot frees 30 s from now, not a minute.
    assert caught.value.retry_after == pytest.approx(30.0)
    clock.now += 30.5
    assert keys.choose(MODEL, "m") == "groq:1"


def test_another_processs_429_rests_the_key_from_the_time_it_was_met() -> None:
    clock = Clock()
    keys = pool(clock, keys=2)
    keys.apply(called("groq:1", T0 - timedelta(seconds=5), "rate_limited", retry_after=20))
    assert [keys.take(MODEL, "m")[0] for _ in range(2)] == ["groq:2", "groq:2"]
    [one, _] = keys.state()
    assert one["cooling_for"] == pytest.approx(15.0)


def test_a_refusal_recorded_before_the_pool_existed_is_forgotten_one_after_is_not() -> None:
    clock = Clock()
    keys = pool(clock, keys=2)
    keys.apply(called("groq:1", T0 - timedelta(hours=2), "auth", error="bad key"))
    keys.apply(called("groq:2", T0 + timedelta(seconds=1), "auth", error="revoked"))
    assert [(k["key"], k["disabled"]) for k in keys.state()] == [("groq:1", None), ("groq:2", "revoked")]


def test_a_hold_counts_its_estimate_until_its_record_puts_the_real_cost_in_its_place() -> None:
    clock = Clock()
    keys = pool(clock)
    ledger = llm.Ledger({"groq": keys}, clock=clock)
    budgets = llm.Budgets(per_run=1.0, per_day=0.5)
    ledger.reserve(reserved("groq:1", T0, cost=0.3))
    assert keys.state()[0]["in_flight"] == 1
    # In flight, the hold keeps the room: a call that would fit once it ends waits.
    assert ledger.refusal("run", 0.25, budgets, "m") == llm.Refusal(
        "the budget for 2026-01-05 of $0.5 cannot cover this call while calls in flight hold $0.3 of it ($0 spent; "
        "the call may cost up to $0.25)", final=False)
    record = msgspec.structs.replace(called("groq:1", T0), cost_usd=0.01)
    ledger.settle(llm.hold_id("run", "t", 1, 1, "elsewhere-1"), record, "run")
    assert (ledger.day_spent, ledger.run_spent) == ({"2026-01-05": pytest.approx(0.01)}, {"run": pytest.approx(0.01)})
    assert ledger.day_held == {"2026-01-05": pytest.approx(0.0)}
    assert keys.state()[0]["in_flight"] == 0
    assert ledger.refusal("run", 0.25, budgets, "m") is None
    # What is spent leaves no room: no wait helps.
    assert ledger.refusal("run", 0.495, budgets, "m") == llm.Refusal(
        "the budget for 2026-01-05 of $0.5 cannot cover this call: $0.01 is spent, and the call may cost up to "
        "$0.495", final=True)
    assert ledger.refusal("run", None, budgets, "m") == llm.Refusal(
        "the model catalogue has no price for m, so a call to it cannot be held against a budget (give it one in "
        "YMERA_MODELS_FILE)", final=True)
    assert ledger.refusal("run", None, llm.Budgets(), "m") is None  # no budget: nothing to hold against


def test_a_hold_whose_record_never_comes_frees_its_key_at_its_time_and_counts_as_spent() -> None:
    clock = Clock()
    keys = pool(clock)
    ledger = llm.Ledger({"groq": keys}, clock=clock)
    ledger.reserve(reserved("groq:1", T0, cost=0.2, holds=60))
    ledger.expire()
    assert (keys.state()[0]["in_flight"], ledger.run_held, ledger.run_spent) == (1, {"run": 0.2}, {})
    clock.now += 61
    ledger.expire()
    assert keys.state()[0]["in_flight"] == 0
    assert (ledger.run_held, ledger.run_spent) == ({"run": pytest.approx(0.0)}, {"run": pytest.approx(0.2)})
    # Its record after all, late: the real cost in place of the estimate.
    late = msgspec.structs.replace(called("groq:1", T0), cost_usd=0.05)
    ledger.settle(llm.hold_id("run", "t", 1, 1, "elsewhere-1"), late, "run")
    assert ledger.run_spent == {"run": pytest.approx(0.05)}
    ledger.reserve(reserved("groq:1", T0, cost=0.2, call=2))
    # Abandoned mid-call: its key back, its estimate spent.
    ledger.settle(llm.hold_id("run", "t", 1, 2, "elsewhere-1"), None, "run")
    assert (keys.state()[0]["in_flight"], ledger.run_spent) == (0, {"run": pytest.approx(0.25)})


# ---- through the stream ----------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(model="gpt-test") as srv:
        yield srv


def settings_for(tmp_path: Path, server: OpenAIServer) -> Settings:
    return load_settings({"YMERA_DATA_DIR": str(tmp_path / "data"), "YMERA_LLM_BASE_URL": server.base_url,
                          "YMERA_LLM_MODEL": "gpt-test", "YMERA_LLM_API_KEY_1": "k1", "YMERA_LLM_API_KEY_2": "k2"},
                         dotenv=None)


def local(key: str, outcome: str = "ok", *, at: datetime | None = None, retry_after: float | None = None,
          executor: str = "elsewhere-1", error: str | None = None) -> events.LLMCalled:
    return called(key, at or events.now(), outcome, retry_after=retry_after, executor=executor,
                  provider="local", model="gpt-test", error=error)


def local_hold(key: str, *, run: str = "other-run", call: int = 1, cost: float = 0.0,
               executor: str = "elsewhere-1") -> events.CallReserved:
    return reserved(key, events.now(), cost=cost, run=run, call=call, executor=executor, provider="local",
                    model="gpt-test")


@pytest.fixture
async def shared(nats_bus: bus.Bus, tmp_path: Path, server: OpenAIServer) -> AsyncIterator[SharedPools]:
    # Before it starts: a 429 on key 1 a minute ago (resting 10 minutes), a refusal of key 2 a
    # minute ago (before this pool existed), and another executor's call on key 2, reserved and
    # not recorded yet (in flight).
    minute_ago = events.now() - timedelta(minutes=1)
    await nats_bus.publish_many([
        local("local:1", "rate_limited", at=minute_ago, retry_after=600),
        local("local:2", "auth", at=minute_ago, error="Incorrect API key provided."),
        local_hold("local:2"),
    ])
    async with context(settings_for(tmp_path, server), 8) as ctx:
        pools = SharedPools(ctx.llm, "me")
        await pools.start(nats_bus)
        try:
            yield pools
        finally:
            await pools.stop()


def state(pools: SharedPools) -> dict[str, tuple[object, bool, object]]:
    """key -> (why it is refused, whether it rests, calls in flight)."""
    return {str(k["key"]): (k["disabled"], float(k["cooling_for"]) > 0, k["in_flight"])  # type: ignore[arg-type]
            for k in pools.client.pools["local"].state()}


async def test_an_executor_starts_with_the_streams_last_day_of_calls_folded(shared: SharedPools) -> None:
    assert shared.caught_up.is_set()
    assert shared.folded == 3
    # Key 1 rests (about 9 minutes left); key 2's refusal predates this executor: another chance.
    assert state(shared) == {"local:1": (None, True, 0), "local:2": (None, False, 1)}
    [one, _] = shared.client.pools["local"].state()
    assert 530 < float(one["cooling_for"]) <= 540  # type: ignore[arg-type]


async def test_an_executor_folds_every_record_live_and_skips_only_its_own_reservations(
        nats_bus: bus.Bus, shared: SharedPools) -> None:
    await nats_bus.publish(local_hold("local:1", run="mine", executor="me"))  # its own: applied as it was made
    # The other executor's call on key 2 ends: refused.
    await nats_bus.publish(msgspec.structs.replace(local("local:2", "auth", error="revoked"), run_id="other-run"))
    # Its own records it folds as everyone's, in stream order.
    await nats_bus.publish(local("local:1", "rate_limited", retry_after=60, executor="me"))
    await wait_until(lambda: shared.folded == 5, 10, "the live records folded")
    assert state(shared) == {"local:1": (None, True, 0), "local:2": ("revoked", False, 0)}


async def test_a_malformed_call_record_in_the_stream_is_passed_over(nats_bus: bus.Bus, shared: SharedPools) -> None:
    subject = events.subject_of(local("local:2"))
    await nats_bus.nc.publish(subject, b'{"type": "LLMCalled", "id": 1}')
    await nats_bus.publish(local("local:2", "rate_limited", retry_after=60))
    await wait_until(lambda: shared.folded == 4, 10, "the valid call after it folded")
    assert state(shared) == {"local:1": (None, True, 0), "local:2": (None, True, 1)}


async def test_executors_racing_for_one_budget_never_hold_more_than_it_together(
        nats_bus: bus.Bus, tmp_path: Path, server: OpenAIServer) -> None:
    settings = msgspec.structs.replace(settings_for(tmp_path, server), daily_budget_usd=1.0)
    async with context(settings, 8) as one_ctx, context(settings, 8) as other_ctx:
        one, other = SharedPools(one_ctx.llm, "one"), SharedPools(other_ctx.llm, "other")
        await one.start(nats_bus)
        await other.start(nats_bus)
        target = one_ctx.llm.models.resolve(None)

        async def call(pools: SharedPools, n: int) -> llm.Grant:
            """A call that may cost $0.3 and costs $0.1, recorded as an executor records it."""
            gate = pools.gate(nats_bus, ready(f"t{n}"), settings)
            grant = await gate.admit(target, 100, 0.3)
            made = llm.Call(ts=events.now(), provider="local", model="gpt-test", key_id=grant.key_id, cost_usd=0.1)
            await nats_bus.publish(events.LLMCalled(
                id=events.new_id(), workflow_id="wf-race", run_id="race", actor="executor", task_id=f"t{n}",
                attempt=1, call=1, executor=pools.executor_id, **msgspec.structs.asdict(made)))
            gate.done(grant, made)
            return grant

        try:
            # Twelve calls at once from two executors against $1 a day: while calls are in flight
            # the rest wait for room; once $0.8 is spent no call that may cost $0.3 fits.
            outcomes = await asyncio.wait_for(asyncio.gather(
                *(call(pools, n) for n in range(6) for pools in (one, other)), return_exceptions=True), 60)
        finally:
            await one.stop()
            await other.stop()
    granted = [o for o in outcomes if isinstance(o, llm.Grant)]
    refused = [o for o in outcomes if isinstance(o, llm.LLMError)]
    assert (len(granted), len(refused)) == (8, 4), outcomes
    assert {(e.kind, e.retryable) for e in refused} == {("budget", False)}
    assert str(refused[0]) == (f"the budget for {events.now().date().isoformat()} of $1 cannot cover this call: "
                               "$0.8 is spent, and the call may cost up to $0.3")
    assert one.lost + other.lost >= 1  # the two decided on the same view at first: one was fenced
    # Folded in stream order, what was held and spent never passed the budget.
    ledger = llm.Ledger({})
    for event in await all_events(nats_bus, events.domain_filter(events.CallReserved)):
        if isinstance(event, events.CallReserved):
            ledger.reserve(event)
            day = event.ts.date().isoformat()
            assert ledger.day_spent.get(day, 0) + ledger.day_held.get(day, 0) <= 1.0 + 1e-9
        elif isinstance(event, events.LLMCalled):
            ledger.settle(llm.hold_of(event), event, event.run_id)
    assert ledger.day_spent == {events.now().date().isoformat(): pytest.approx(0.8)}


def ready(task_id: str) -> events.TaskReady:
    return events.TaskReady(id=events.new_id(), ts=events.now(), workflow_id="wf-race", run_id="race",
                            actor="distributor", task_id=task_id, attempt=1, timeout_seconds=60)


async def test_a_restarted_engine_does_not_call_a_key_that_rests_after_a_429_met_before_it_started(
        nats_bus: bus.Bus, tmp_path: Path, server: OpenAIServer) -> None:
    # What an executor that died had recorded, signed as it signed it.
    async with connected(nats_bus.url, signing_as=(tmp_path / "data" / "keys", "executor")) as dead:
        await dead.publish(local("local:1", "rate_limited", retry_after=600, executor="vm-killed"))
    stop, started = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(run_all(settings_for(tmp_path, server), nats_bus, stop, started))
    try:
        await asyncio.wait_for(started.wait(), 30)
        client = WorkflowClient(nats_bus)
        sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-pools", tasks=[
            events.TaskSpec(id=f"t{n}", type="llm", parameters={"prompt": f"say {n}"}) for n in range(4)])
        end, _ = await client.wait(sub.workflow_id, await client.submit(sub), timeout=60)
    finally:
        stop.set()
        await running
    assert isinstance(end, events.WorkflowCompleted), end
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer k2"] * 4
    seen = [e for e in await _events(nats_bus, events.LLMCalled, "wf-pools") if isinstance(e, events.LLMCalled)]
    assert {(c.key_id, c.outcome, c.executor != "") for c in seen} == {("local:2", "ok", True)}
    # Each call was reserved before it was made, on the key it used.
    holds = await _events(nats_bus, events.CallReserved, "wf-pools")
    assert sorted((h.task_id, h.key_id) for h in holds if isinstance(h, events.CallReserved)) == [
        (f"t{n}", "local:2") for n in range(4)]


async def _events(connection: bus.Bus, kind: type[events.Event], workflow_id: str = "*") -> list[events.Event]:
    return await all_events(connection, events.subject_filter(kind, workflow_id))


async def test_a_call_its_workflows_budget_cannot_cover_fails_before_any_request(
        nats_bus: bus.Bus, tmp_path: Path, server: OpenAIServer) -> None:
    prices = tmp_path / "models.yaml"  # the local model at $1,000 per million tokens each way
    prices.write_text("models:\n  - {provider: local, name: gpt-test, context_window: 8000, price_in: 1000, "
                      "price_out: 1000}\n")
    settings = msgspec.structs.replace(settings_for(tmp_path, server), models_file=prices)
    stop, started = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(run_all(settings, nats_bus, stop, started))
    try:
        await asyncio.wait_for(started.wait(), 30)
        client = WorkflowClient(nats_bus)
        sub = events.WorkflowSubmitted(id=events.new_id(), ts=events.now(), workflow_id="wf-budget", budget_usd=0.05,
                                       tasks=[events.TaskSpec(id="t", type="llm",
                                                              parameters={"prompt": "say hi", "max_tokens": 100})])
        end, _ = await client.wait(sub.workflow_id, await client.submit(sub), timeout=60)
    finally:
        stop.set()
        await running
    assert isinstance(end, events.WorkflowFailed), end
    [failed] = [e for e in await _events(nats_bus, events.TaskFailed, "wf-budget") if isinstance(e, events.TaskFailed)]
    assert (failed.kind, failed.retryable, failed.attempt) == ("budget", False, 1)
    # 100 answer tokens at $1,000 a million are $0.1 already: no request is made.
    # The prompt's tokens are estimated high (three characters a token): $0.13 in all.
    assert failed.error == ("the workflow's budget of $0.05 cannot cover this call: $0 is spent, and the call may "
                            "cost up to $0.13")
    assert server.requests == []
    assert await _events(nats_bus, events.CallReserved, "wf-budget") == []
