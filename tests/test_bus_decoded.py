"""Connections opened from one (`Bus.as_actor`: every actor in one process) decode each message
once between them (bus/_decoded.py); a process of one actor keeps nothing."""

from __future__ import annotations

import pytest

import bus
import events
from bus._decoded import Decoded


def _succeeded(task: str) -> tuple[str, bytes]:
    event = events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="wf", task_id=task, attempt=1,
                                 output="done", actor="executor")
    return events.subject_of(event), events.encode(event)


async def test_actors_of_one_process_share_what_they_decoded(nats_bus: bus.Bus) -> None:
    assert nats_bus.decoded is None  # one connection alone keeps nothing
    subject, data = _succeeded("t")
    async with nats_bus.as_actor("distributor") as one, nats_bus.as_actor("monitor") as other:
        assert one.decoded is not None
        assert one.decoded is other.decoded is nats_bus.decoded
        first = one.decode(subject, data, None)
        assert other.decode(subject, bytes(data), None) is first  # the same bytes, delivered again
        assert isinstance(first, events.TaskSucceeded)
        assert first.task_id == "t"


def test_a_malformed_message_is_refused_each_time_and_never_kept() -> None:
    decoded = Decoded()
    for _ in range(2):
        with pytest.raises(events.MalformedEvent, match="not valid JSON"):
            decoded.decode("ymera.task.wf.t.succeeded", b"{")
    subject, data = _succeeded("t")
    with pytest.raises(events.MalformedEvent):
        decoded.decode(subject.replace(".t.", ".u."), data)  # its subject names another task
    assert decoded.decode(subject, data).task_id == "t"  # type: ignore[attr-defined]


def test_only_the_latest_events_are_kept() -> None:
    decoded = Decoded(most=2)
    messages = [_succeeded(task) for task in ("a", "b", "c")]
    first = [decoded.decode(*m) for m in messages]
    assert decoded.decode(*messages[2]) is first[2]
    assert decoded.decode(*messages[1]) is first[1]
    again = decoded.decode(*messages[0])  # the oldest was let go: decoded anew
    assert again is not first[0]
    assert again == first[0]


def test_large_messages_are_bounded_by_their_bytes() -> None:
    decoded = Decoded(most=100, most_bytes=3 * 1024)
    messages = []
    for task in ("a", "b", "c", "d"):
        event = events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="wf", task_id=task, attempt=1,
                                     output="x" * 1000, actor="executor")
        messages.append((events.subject_of(event), events.encode(event)))
    first = [decoded.decode(*m) for m in messages]
    assert decoded.held_bytes <= 3 * 1024
    assert decoded.held_bytes == sum(len(m[1]) for m in messages[-2:])  # two fit, the older let go
    assert decoded.decode(*messages[3]) is first[3]
    assert decoded.decode(*messages[0]) is not first[0]
    too_big = Decoded(most=100, most_bytes=100)
    assert too_big.decode(*messages[0]) == first[0]  # decoded, and not kept at all
    assert too_big.held_bytes == 0
