"""`GET /api/live`: the events the view folds, as Server-Sent Events, over a real engine run and a
real uvicorn server. A client sees each event once, in stream order; a filtered client sees its
workflow only; a slow client is told it lagged and holds no one back; a client that goes leaves the
hub; the page listens to every event type there is."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from litestar import Litestar

import bus
import events
from web._live import Hub, live_routes
from web._serve import running
from ymera._client import stored

from .web_support import Served, echo_workflow, serving

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
READ_TIMEOUT = 60.0  # a guard against a test hanging, never an assertion


class Frame(NamedTuple):
    id: str | None
    event: str | None
    data: str | None
    comment: str | None

    @property
    def json(self) -> dict[str, Any]:
        assert self.data is not None, self
        body: dict[str, Any] = json.loads(self.data)
        return body


class SSE:
    """Reads one response's Server-Sent Events frame by frame (comments included)."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines: AsyncIterator[str] = response.aiter_lines()

    async def next(self) -> Frame:
        return await asyncio.wait_for(self._next(), READ_TIMEOUT)

    async def _next(self) -> Frame:
        fields: dict[str, str] = {}
        comments: list[str] = []
        while True:
            try:
                line = await anext(self.lines)
            except StopAsyncIteration:
                raise EOFError("the stream ended") from None
            if line == "":
                if fields or comments:
                    return Frame(fields.get("id"), fields.get("event"), fields.get("data"),
                                 "\n".join(comments) if comments else None)
                continue
            if line.startswith(":"):
                comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = f"{fields[name]}\n{value}" if name == "data" and name in fields else value

    async def until(self, done: Callable[[Frame], bool]) -> list[Frame]:
        """Every frame up to and including the first that is `done`."""
        frames: list[Frame] = []
        while True:
            frame = await self.next()
            frames.append(frame)
            if done(frame):
                return frames


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Until `condition()` holds; fails naming `what` if it never does (a bound, not a measurement)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"{what} did not happen"
        await asyncio.sleep(0.02)


@pytest.fixture
async def web(tmp_path: Path, nats_bus: bus.Bus) -> AsyncIterator[Served]:
    """The engine, a view and `ymera serve`'s app with a read and an admin token (tests/web_support.py)."""
    async with serving(tmp_path, nats_bus) as served:
        yield served


def ended(workflow_id: str) -> Callable[[Frame], bool]:
    return lambda f: f.event == "WorkflowCompleted" and f.json["workflow_id"] == workflow_id


async def stream_ids(web: Served, workflow_id: str) -> list[str]:
    """The ids of the workflow's events in the stream, in stream order, up to its end."""
    ids = []
    for event in await stored(web.bus, events.workflow_filter(workflow_id)):
        ids.append(event.id)
        if isinstance(event, events.WorkflowCompleted):
            break
    return ids


# ---- over a real engine run ---------------------------------------------------------------------------------


async def test_a_client_sees_every_event_of_a_run_once_in_stream_order(web: Served) -> None:
    async with web.client() as http, http.stream("GET", "/api/live") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        sse = SSE(response)
        hello = await sse.next()  # sent at once: the client is in the hub before anything is submitted
        assert hello.comment == "ymera live"
        await web.submit(echo_workflow("wf-live", tasks=3))
        frames = await sse.until(ended("wf-live"))

    seen = [f for f in frames if f.event is not None]
    assert all(f.event == f.json["type"] for f in seen)  # `event:` is the event's type
    seqs = [int(f.id) for f in seen if f.id is not None]
    assert len(seqs) == len(seen)  # each with its stream seq,
    assert seqs == sorted(set(seqs))  # once, in order
    mine = [f.json for f in seen if f.json["workflow_id"] == "wf-live"]
    assert [e["id"] for e in mine] == await stream_ids(web, "wf-live")
    for task in ("t1", "t2", "t3"):
        kinds = [e["type"] for e in mine if e.get("task_id") == task]
        assert kinds.index("TaskReady") < kinds.index("TaskSucceeded"), kinds
        assert "TaskAssessed" not in kinds  # an echo is scored in its attempt
    assert mine[0]["type"] == "WorkflowSubmitted"
    assert [e["task_id"] for e in mine if e["type"] == "TaskSucceeded"] == ["t1", "t2", "t3"]


async def test_a_client_filtered_to_a_workflow_sees_that_workflow_only(web: Served) -> None:
    async with web.client() as http, http.stream("GET", "/api/live", params={"workflow_id": "wf-b"}) as response:
        sse = SSE(response)
        await sse.next()
        await web.submit(echo_workflow("wf-a", tasks=2))
        await web.submit(echo_workflow("wf-b", tasks=2))
        frames = [f for f in await sse.until(ended("wf-b")) if f.event is not None]

    assert {f.json["workflow_id"] for f in frames} == {"wf-b"}
    assert [f.json["id"] for f in frames] == await stream_ids(web, "wf-b")


async def test_the_feed_takes_its_token_as_a_query_parameter_and_says_what_is_wrong(web: Served) -> None:
    async with web.client(role=None) as anonymous:
        refused = await anonymous.get("/api/live")
        assert refused.status_code == 401
        assert refused.json()["error"].startswith("this route needs a token")
        wrong = await anonymous.get("/api/live", params={"token": "ymera_not-a-token"})
        assert (wrong.status_code, wrong.json()["error"]) == (401, "unknown or revoked token")
        bad = await anonymous.get("/api/live", params={"token": web.tokens["read"], "workflow_id": "a.b"})
        assert bad.status_code == 400
        assert bad.json()["error"].startswith("workflow id 'a.b' is not valid: an id is 1 to 128 letters")
        async with anonymous.stream("GET", "/api/live", params={"token": web.tokens["read"]}) as response:
            assert response.status_code == 200
            assert (await SSE(response).next()).comment == "ymera live"


# ---- against a hub the test feeds ---------------------------------------------------------------------------


def _event(n: int, workflow_id: str = "wf", size: int = 400) -> events.CancelRequested:
    return events.CancelRequested(id=f"e{n}", ts=events.now(), workflow_id=workflow_id, reason="x" * size)


async def test_the_hub_hands_each_listener_what_it_follows_and_counts_what_it_dropped() -> None:
    hub = Hub(size=3)
    everything, only_b, system = hub.listen(), hub.listen("b"), hub.listen("_")
    for n, workflow in enumerate(["a", "b", "a", "b", "a", "_"], start=1):
        hub.publish(n, _event(n, workflow, size=1))
    hub.close()
    got = {name: [(seq, event["workflow_id"], dropped) async for seq, event, dropped in listener.entries()]
           for name, listener in (("everything", everything), ("b", only_b), ("_", system))}
    assert got == {"everything": [(4, "b", 3), (5, "a", 0), (6, "_", 0)],  # 3 kept, the 3 oldest dropped
                   "b": [(2, "b", 0), (4, "b", 0)],
                   "_": [(6, "_", 0)]}
    assert not hub.listeners
    late = hub.listen()  # after the hub closed: ends at once
    assert [e async for e in late.entries()] == []


async def test_a_slow_client_is_told_it_lagged_and_holds_no_one_back() -> None:
    hub = Hub(size=50)
    # The slow client stops reading: once the sockets' buffers are full, the server's writes to it wait.
    async with running(Litestar(route_handlers=live_routes(hub)), "127.0.0.1", 0) as url, \
            httpx.AsyncClient(base_url=url, timeout=READ_TIMEOUT) as slow_http, \
            httpx.AsyncClient(base_url=url, timeout=READ_TIMEOUT) as fast_http, \
            slow_http.stream("GET", "/api/live") as slow_response:
        slow = SSE(slow_response)
        await slow.next()
        [slow_listener] = hub.listeners
        async with fast_http.stream("GET", "/api/live") as fast_response:
            fast = SSE(fast_response)
            await fast.next()
            received: list[Frame] = []
            published = 0
            # Publish in bursts the fast client reads in full, until the slow one has lost entries.
            while slow_listener.dropped == 0:
                for _ in range(20):
                    published += 1
                    hub.publish(published, _event(published))
                while len(received) < published:
                    received.append(await fast.next())
                assert published < 100_000, "the slow client never fell behind"
            assert [f.event for f in received] == ["CancelRequested"] * published  # no `lagged` for it
            assert [int(f.id or 0) for f in received] == list(range(1, published + 1))

        # The slow client reads again: what it missed is counted, the rest arrives in order.
        frames = await slow.until(lambda f: f.id == str(published))
    lagged = [f for f in frames if f.event == "lagged"]
    got = [int(f.id) for f in frames if f.event == "CancelRequested" and f.id is not None]
    assert lagged
    dropped = sum(f.json["dropped"] for f in lagged)
    assert dropped > 0
    assert len(got) + dropped == published  # each event either arrived or was counted as dropped
    assert got == sorted(got)
    assert got[-1] == published


async def test_a_client_that_goes_leaves_the_hub_and_a_closed_hub_ends_the_streams() -> None:
    hub = Hub()
    async with running(Litestar(route_handlers=live_routes(hub)), "127.0.0.1", 0) as url, \
            httpx.AsyncClient(base_url=url, timeout=READ_TIMEOUT) as http:
        async with http.stream("GET", "/api/live") as first, http.stream("GET", "/api/live") as second:
            await SSE(first).next()
            await SSE(second).next()
            assert len(hub.listeners) == 2
        await eventually(lambda: not hub.listeners, "the listeners leaving the hub once their clients went")

        async with http.stream("GET", "/api/live") as response:
            sse = SSE(response)
            await sse.next()
            hub.publish(1, _event(1))
            hub.close()  # the server stops: the stream ends after what it holds
            frames = [f async for f in _rest(sse)]
        assert [f.id for f in frames if f.event] == ["1"]
        assert not hub.listeners


async def _rest(sse: SSE) -> AsyncIterator[Frame]:
    try:
        while True:
            yield await sse.next()
    except EOFError:
        return


async def test_an_idle_stream_gets_a_keep_alive_comment() -> None:
    hub = Hub()
    async with running(Litestar(route_handlers=live_routes(hub, keepalive=0.05)), "127.0.0.1", 0) as url, \
            httpx.AsyncClient(base_url=url, timeout=READ_TIMEOUT) as http, \
            http.stream("GET", "/api/live") as response:
        sse = SSE(response)
        assert (await sse.next()).comment == "ymera live"
        assert await sse.next() == Frame(None, None, None, "keep-alive")


def test_the_page_listens_to_every_event_type() -> None:
    """The page subscribes to each `event:` by name (EventSource has no wildcard), so its list is the union's."""
    source = (STATIC / "live.js").read_text()
    listed = re.search(r"export const EVENT_TYPES = \[(.*?)\];", source, re.S)
    assert listed is not None
    assert sorted(re.findall(r'"(\w+)"', listed.group(1))) == sorted(events.EVENT_TYPES)
