"""Rate limits: a sliding window per principal in a JetStream KV bucket, shared by every
connection and kept across a restart of the server.

Real nats-server. Times are passed as `now=` wherever the numbers are asserted, so the
windows are exact and no test waits on the clock.
"""

from __future__ import annotations

import asyncio
import re

import pytest

import bus
from bus._limits import RateWindow
from guard._ratelimit import InvalidRateLimit, RateDecision, RateLimiter, check_rate_limit, decide

T0 = 1_700_000_000.0  # a wall-clock time, in seconds since the epoch


async def test_the_call_over_the_limit_is_refused_until_the_first_leaves_the_window(nats_bus: bus.Bus) -> None:
    limiter = RateLimiter(nats_bus)
    decisions = [await limiter.check("alice", 3, 10, now=T0 + i) for i in range(4)]
    assert decisions == [RateDecision(True, 2, 10.0), RateDecision(True, 1, 9.0), RateDecision(True, 0, 8.0),
                         RateDecision(False, 0, 7.0)]


async def test_the_window_slides(nats_bus: bus.Bus) -> None:
    limiter = RateLimiter(nats_bus)
    for i in range(3):
        await limiter.check("alice", 3, 10, now=T0 + i)
    # T0 + 10: the first call (at T0) has left the window, the other two have not.
    assert await limiter.check("alice", 3, 10, now=T0 + 10) == RateDecision(True, 0, 1.0)
    assert await limiter.check("alice", 3, 10, now=T0 + 10.5) == RateDecision(False, 0, 0.5)
    # Long after, the window is empty again.
    assert await limiter.check("alice", 3, 10, now=T0 + 100) == RateDecision(True, 2, 10.0)


async def test_a_refused_call_is_not_recorded(nats_bus: bus.Bus) -> None:
    limiter = RateLimiter(nats_bus)
    await limiter.check("alice", 1, 10, now=T0)
    for i in range(1, 10):
        assert not (await limiter.check("alice", 1, 10, now=T0 + i)).allowed
    # Had the refusals counted, the window would be full until T0 + 19.
    assert await limiter.check("alice", 1, 10, now=T0 + 10) == RateDecision(True, 0, 10.0)


async def test_check_rate_limit_returns_the_dict(nats_bus: bus.Bus) -> None:
    first = await check_rate_limit(nats_bus, "alice", 2, 60)
    assert first["allowed"] is True
    assert first["remaining"] == 1
    assert 59 < first["reset_in_seconds"] <= 60
    await check_rate_limit(nats_bus, "alice", 2, 60)
    last = await check_rate_limit(nats_bus, "alice", 2, 60)
    assert set(last) == {"allowed", "remaining", "reset_in_seconds"}
    assert (last["allowed"], last["remaining"]) == (False, 0)


async def test_concurrent_checks_on_two_connections_admit_exactly_the_limit(nats_server: bus.EmbeddedServer) -> None:
    first, second = await bus.connect(nats_server.url), await bus.connect(nats_server.url)
    try:
        limiters = [RateLimiter(first), RateLimiter(second)]
        decisions = await asyncio.gather(*(limiter.check("shared", 40, 60) for limiter in limiters
                                           for _ in range(50)))
    finally:
        await first.close()
        await second.close()
    admitted = [d for d in decisions if d.allowed]
    assert len(admitted) == 40
    # Each admission was written on top of all the earlier ones: none overwrote another.
    assert sorted(d.remaining for d in admitted) == list(range(40))


async def test_the_window_survives_a_restart_of_the_server(nats_server: bus.EmbeddedServer) -> None:
    before = await bus.connect(nats_server.url)
    try:
        for i in range(3):
            assert (await RateLimiter(before).check("alice", 3, 60, now=T0 + i)).allowed
    finally:
        await before.close()
    nats_server.stop()
    with bus.EmbeddedServer(nats_server.store_dir, port=nats_server.port) as restarted:
        after = await bus.connect(restarted.url)
        try:
            limiter = RateLimiter(after)
            assert await limiter.check("alice", 3, 60, now=T0 + 3) == RateDecision(False, 0, 57.0)
            assert await limiter.check("alice", 3, 60, now=T0 + 60) == RateDecision(True, 0, 1.0)
        finally:
            await after.close()


@pytest.mark.parametrize("other", ["bob", "alice@example.com", "ünïcode", "p.alice", "a" * 300, "a" * 301])
async def test_principals_are_counted_apart(nats_bus: bus.Bus, other: str) -> None:
    limiter = RateLimiter(nats_bus)
    assert (await limiter.check("alice", 1, 60, now=T0)).allowed
    assert await limiter.check(other, 2, 60, now=T0) == RateDecision(True, 1, 60.0)
    assert await limiter.check(other, 2, 60, now=T0 + 1) == RateDecision(True, 0, 59.0)
    assert await limiter.check(other, 2, 60, now=T0 + 2) == RateDecision(False, 0, 58.0)
    assert not (await limiter.check("alice", 1, 60, now=T0 + 3)).allowed


@pytest.mark.parametrize("principal", ["alice", "alice@example.com", "ünïcode", "a.b", "x" * 10_000, "*", ">"])
def test_every_principal_has_a_valid_key(principal: str) -> None:
    key = bus.RateWindows.key_of(principal)
    assert re.fullmatch(r"[-/_=.a-zA-Z0-9]+", key)
    assert not key.startswith(".")
    assert not key.endswith(".")
    assert len(key) <= 200


def test_keys_of_different_principals_differ() -> None:
    principals = ["alice", "p.alice", "b.alice", "ALICE", "alice@example.com", "alice@example.co",
                  "ünïcode", "unicode", "a" * 300, "a" * 301]
    assert len({bus.RateWindows.key_of(p) for p in principals}) == len(principals)


@pytest.mark.parametrize(("principal", "limit", "window", "message"), [
    ("alice", 0, 10, "limit 0 is less than 1: a window must admit at least one call"),
    ("alice", -3, 10, "limit -3 is less than 1: a window must admit at least one call"),
    ("alice", 3, -1, "window -1 is not a positive, finite number of seconds"),
    ("alice", 3, 0, "window 0 is not a positive, finite number of seconds"),
    ("alice", 3, float("inf"), "window inf is not a positive, finite number of seconds"),
    ("", 3, 10, "principal '' is empty: a rate limit counts the calls of a named principal"),
])
async def test_bad_arguments_are_refused_with_the_reason(nats_bus: bus.Bus, principal: str, limit: int,
                                                         window: float, message: str) -> None:
    with pytest.raises(InvalidRateLimit) as refused:
        await check_rate_limit(nats_bus, principal, limit, window)
    assert str(refused.value) == message
    assert isinstance(refused.value, ValueError)


async def test_a_check_that_lost_a_race_decides_again_on_what_won(nats_bus: bus.Bus,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    limiter, rival = RateLimiter(nats_bus), RateLimiter(nats_bus)
    read = limiter.windows.read
    interfered = []

    async def read_then_lose(principal: str) -> RateWindow:
        window = await read(principal)
        if not interfered:  # the rival's call lands between this read and the write
            interfered.append(await rival.check(principal, 2, 60, now=T0))
        return window

    monkeypatch.setattr(limiter.windows, "read", read_then_lose)
    assert await limiter.check("carol", 2, 60, now=T0 + 1) == RateDecision(True, 0, 59.0)
    assert await limiter.check("carol", 2, 60, now=T0 + 2) == RateDecision(False, 0, 58.0)


async def test_a_check_that_keeps_losing_gives_up_naming_the_principal(nats_bus: bus.Bus,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    limiter, rival = RateLimiter(nats_bus, attempts=3), RateLimiter(nats_bus)
    read = limiter.windows.read

    async def read_then_lose(principal: str) -> RateWindow:
        window = await read(principal)
        await rival.check(principal, 100, 60)
        return window

    monkeypatch.setattr(limiter.windows, "read", read_then_lose)
    with pytest.raises(bus.BusError) as gave_up:
        await limiter.check("carol", 100, 60)
    assert str(gave_up.value) == ("rate limit of principal 'carol': 3 writes in a row lost to concurrent checks "
                                  "of the same principal; try again")


def test_decide_keeps_only_the_window() -> None:
    decision, stored = decide([T0 - 20, T0 - 10, T0 - 5], 3, 10, T0)
    assert decision == RateDecision(True, 1, 5.0)
    assert stored == [T0 - 5, T0]


def test_decide_stores_nothing_for_a_refusal() -> None:
    assert decide([T0 - 2, T0 - 1], 2, 10, T0) == (RateDecision(False, 0, 8.0), None)


def test_decide_never_stores_more_than_the_limit() -> None:
    # Times written under a larger limit: the window is full under the smaller one.
    decision, stored = decide([T0 - i for i in range(1, 9)], 3, 10, T0)
    assert (decision.allowed, stored) == (False, None)
    times: list[float] = []
    for i in range(20):
        _, new = decide(times, 5, 100, T0 + i)
        times = new if new is not None else times
        assert len(times) <= 5
