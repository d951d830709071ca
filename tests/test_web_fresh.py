"""web/_fresh.py: the answers that read the log, computed once for many requests and kept for a moment."""

from __future__ import annotations

import asyncio

import pytest

from web._fresh import Fresh


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> dict[str, int]:
        self.calls += 1
        await asyncio.sleep(0.01)  # a computation under way when the other requests arrive
        return {"n": self.calls}


async def test_requests_that_find_a_computation_under_way_share_it() -> None:
    seq = 5
    fresh, compute = Fresh(lambda: seq, refresh=0), Counting()
    answers = await asyncio.gather(*(fresh.get("k", compute, same_seq_same_answer=False) for _ in range(50)))
    assert answers == [{"n": 1}] * 50
    assert compute.calls == fresh.computed == 1


async def test_within_the_refresh_the_last_answer_is_kept_though_events_arrived() -> None:
    seq = 5
    fresh, compute = Fresh(lambda: seq, refresh=3600), Counting()
    assert await fresh.get("k", compute, same_seq_same_answer=True) == {"n": 1}
    seq = 9
    assert await fresh.get("k", compute, same_seq_same_answer=True) == {"n": 1}
    assert await fresh.get("other", compute, same_seq_same_answer=True) == {"n": 2}  # each key its own
    assert compute.calls == 2


async def test_past_the_refresh_an_answer_is_computed_again_once_the_view_moved_on() -> None:
    seq = 5
    fresh, compute = Fresh(lambda: seq, refresh=0), Counting()
    assert await fresh.get("board", compute, same_seq_same_answer=True) == {"n": 1}
    assert await fresh.get("board", compute, same_seq_same_answer=True) == {"n": 1}  # same events: same answer
    assert await fresh.get("report", compute, same_seq_same_answer=False) == {"n": 2}
    assert await fresh.get("report", compute, same_seq_same_answer=False) == {"n": 3}  # its window ends at the clock
    seq = 6
    assert await fresh.get("board", compute, same_seq_same_answer=True) == {"n": 4}


async def test_a_failed_computation_is_not_kept() -> None:
    fresh = Fresh(lambda: 1, refresh=3600)

    async def broken() -> None:
        raise OSError("disk gone")

    for _ in range(2):  # the second request computes again: the first's failure was not kept
        with pytest.raises(OSError, match=r"^disk gone$"):
            await fresh.get("k", broken, same_seq_same_answer=True)
    assert fresh.computed == 0
