"""The view behind `ymera serve`: two views over the same events answer the same; `ymera serve`
killed and started again does too; blob-held values fold the same live and rebuilt; health says
where each part stands; stopping ends the live streams; a hostile publisher on the same NATS
changes nothing. Real nats-server, SQLite, engine (in this process) and uvicorn."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

import bus
import events
import store
from actors import client_access
from web._app import create_app
from web._auth import Tokens
from web._health import health
from web._serve import running
from web._view import View
from ymera._client import store_caught_up

from .conftest import ymera_env
from .web_support import run_echo, serving

# Routes whose answers two views that folded the same events must agree on.
SAME = ["/api/workflows", "/api/workflows/wf-web", "/api/events?limit=1000", "/api/events?limit=3&after_seq=2",
        "/dashboard", "/dashboard?hours=0.5", "/api/models", "/api/keys", "/api/alerts",
        "/quality/metrics", "/security/events", "/api/workflows?state=completed"]


def _steady(body: Any) -> Any:
    """An answer without the wall-clock times of a report's window (`since`, `until`: now)."""
    if isinstance(body, dict):
        return {k: _steady(v) for k, v in body.items() if k not in ("since", "until")}
    if isinstance(body, list):
        return [_steady(v) for v in body]
    return body


async def _answers(http: httpx.AsyncClient, paths: list[str]) -> dict[str, Any]:
    out = {}
    for path in paths:
        r = await http.get(path)
        assert r.status_code == 200, (path, r.text)
        out[path] = _steady(r.json())
    return out


async def test_two_views_answer_the_same_and_a_new_one_folds_what_the_stream_adds(
        tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus) as web:
        first = await run_echo(web)
        await store_caught_up(nats_bus)
        # A second view, on a connection of its own: rebuilt from the log (which holds the first run).
        other_bus, _ = await bus.open_local(web.settings, "ymera-web-other", client_access(web.settings))
        try:
            async with View(web.settings, other_bus) as other:
                assert other.rebuilt_seq > 0
                # A second run: the first view and the new one fold it live from the stream.
                await run_echo(web, "wf-web", tasks=2)
                await store_caught_up(nats_bus)
                await other.wait_for((await nats_bus.stream_state()).last_seq)
                app = create_app(other, Tokens.of(web.settings.data_dir), refresh=0)
                async with (running(app, "127.0.0.1", 0) as url, web.client("admin") as one,
                            httpx.AsyncClient(base_url=url, headers=web.headers("admin")) as two):
                    paths = [*SAME, f"/api/workflows/wf-web/runs/{first.id}"]
                    assert await _answers(one, paths) == await _answers(two, paths)
                # Each folded every event once: what a fold of the whole log gives.
                async with store.SqliteEventLog(web.settings.log_path, readonly=True) as log:
                    runs, _ = await store.rebuild(store.WorkflowRuns(), log)
                    metrics, _ = await store.rebuild(store.Metrics(), log)
                for view in (web.view, other):
                    assert view.runs == runs
                    assert store.report(view.metrics) == store.report(metrics)
                assert [r.state for r in runs.of("wf-web")] == ["completed", "completed"]
        finally:
            await other_bus.close()


async def test_health_says_where_each_part_stands_and_503_without_nats(tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus) as web, web.client(None) as http:
        await run_echo(web)
        await store_caught_up(nats_bus)
        body = (await http.get("/healthz")).json()
        last = (await nats_bus.stream_state()).last_seq
        assert body["status"] == "ok"
        assert body["nats"]["reachable"] is True
        assert body["view"]["last_seq"] == last
        assert body["view"]["lag"] == 0
        lag = body["nats"]["consumer_lag"]
        assert {"store", "distributor", "executor", "monitor"} <= set(lag)
        assert all(set(one) == {"pending", "ack_pending"} and min(one.values()) >= 0 for one in lag.values())
        async with store.SqliteEventLog(web.settings.log_path, readonly=True) as log:
            assert (body["store"]["head_seq"], body["store"]["head_hash"]) == (log.head_seq, log.head_hash.hex())
        r = await http.get("/healthz?max_lag=-1")
        assert (r.status_code, r.json()["error"]) == (
            400, "query parameter max_lag must be an integer from 0 (default 10000); got '-1'")
        # A view of this log following another stream (a server made anew) is not healthy either.
        other = bus.EmbeddedServer(tmp_path / "other-nats")
        other.start()
        try:
            other_bus = await bus.connect(other.url)
            try:
                async with View(web.settings, other_bus, extra=[]) as stray:
                    ok, stray_body = await health(stray)
                assert not ok
                assert stray_body["error"] == (f"the stream ends at seq 0, before seq {stray.last_seq} the view folded "
                                               "from the log: another stream, or one made anew")
            finally:
                await other_bus.close()
        finally:
            other.stop()
        assert web.view.bus is not None
        await web.view.bus.close()  # the view's connection to NATS is gone
        down = await http.get("/healthz")
        assert down.status_code == 503
        body = down.json()
        assert body["status"] == "unavailable"
        assert body["nats"]["reachable"] is False
        assert body["error"].startswith("NATS is not reachable: could not read stream YMERA: ")


async def test_ymera_serve_prints_its_address_answers_as_the_view_does_and_stops_cleanly(
        tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus) as web, web.client("admin") as http:
        await run_echo(web)
        await store_caught_up(nats_bus)
        env = ymera_env(web.settings.data_dir, nats_bus.url)
        want = await _answers(http, SAME)
        for stop in (signal.SIGKILL, signal.SIGTERM):  # killed, then started again and stopped
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "runner", "serve", "--port", "0",
                                                        env=env, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            assert proc.stdout is not None
            try:
                line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
                assert line.startswith("serving http://127.0.0.1:"), line
                url = line.split()[1]
                async with httpx.AsyncClient(base_url=url, headers=web.headers("admin"), timeout=30) as served:
                    last = (await nats_bus.stream_state()).last_seq
                    for _ in range(600):
                        health = (await served.get("/healthz")).json()
                        if health["view"]["last_seq"] >= last:
                            break
                        await asyncio.sleep(0.05)
                    assert await _answers(served, SAME) == want
            finally:
                proc.send_signal(stop)
                out, err = await asyncio.wait_for(proc.communicate(), 30)
            if stop == signal.SIGTERM:
                assert (proc.returncode, out.decode().strip()) == (0, "stopped")
                assert b"Traceback" not in err, err
            else:
                assert proc.returncode == -signal.SIGKILL


async def test_blob_held_tasks_and_outputs_fold_the_same_live_and_rebuilt(tmp_path: Path, nats_bus: bus.Bus) -> None:
    # Over the 64 KiB inline limit: the submission's task list and the task's output go to blobs.
    big = "x" * (70 * 1024)
    submission = events.WorkflowSubmitted(
        id=events.new_id(), ts=events.now(), workflow_id="wf-big",
        tasks=[events.TaskSpec(id="a", type="echo", parameters={"text": big}),
               events.TaskSpec(id="b", type="echo", parameters={"text": "after a"}, dependencies=["a"])])
    async with serving(tmp_path, nats_bus) as web, web.client() as http:
        end = await web.submit(submission)
        assert isinstance(end, events.WorkflowCompleted), end
        await store_caught_up(nats_bus)
        async with View.offline(web.settings, extra=[]) as rebuilt:
            for view in (web.view, rebuilt):  # live from the stream's blobs, rebuilt from the log's copies
                assert view.dags == {submission.id: {"a": [], "b": ["a"]}}
                assert view.runs.runs[submission.id].state == "completed"
            assert rebuilt.runs == web.view.runs
        page = (await http.get("/api/events?workflow_id=wf-big&type=TaskSucceeded&type=WorkflowSubmitted")).json()
        kinds = [(e["event"]["type"], sorted(e["event"].get("blobs", {}))) for e in page["events"]]
        assert kinds == [("WorkflowSubmitted", ["tasks"]), ("TaskSucceeded", ["output"]), ("TaskSucceeded", [])]
        detail = (await http.get("/api/workflows/wf-big")).json()["latest"]
        assert detail["dag"] == {"a": [], "b": ["a"]}


async def test_stopping_the_server_ends_the_live_streams(tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus, engine=False) as web:
        other_bus, _ = await bus.open_local(web.settings, "ymera-web-stop", client_access(web.settings))
        try:
            async with View(web.settings, other_bus, extra=[]) as view:
                app = create_app(view, Tokens.of(web.settings.data_dir), refresh=0)
                server = running(app, "127.0.0.1", 0)
                url = await server.__aenter__()
                async with httpx.AsyncClient(base_url=url, headers=web.headers("read"), timeout=60) as http, \
                        http.stream("GET", "/api/live") as live:
                    assert live.status_code == 200
                    stopping = asyncio.create_task(server.__aexit__(None, None, None))
                    body = b"".join([chunk async for chunk in live.aiter_bytes()])  # ends: the hub closed
                    await stopping
                assert body.startswith(b": ymera live")
        finally:
            await other_bus.close()


async def test_a_hostile_publisher_on_the_same_nats_changes_nothing_the_api_says(tmp_path: Path,
                                                                                  nats_bus: bus.Bus) -> None:
    # Anyone may publish on this test server (no permissions): garbage, and a forged result
    # for a task of a workflow that runs, both land in the stream the view follows.
    async with serving(tmp_path, nats_bus) as web, web.client() as http:
        forged = events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="wf-web", task_id="t1",
                                      attempt=1, output="forged", duration_ms=1.0)
        await nats_bus.js.publish(events.subject_of(forged), events.encode(forged))
        await nats_bus.js.publish("ymera.task.wf-web.t2.succeeded", b"\xff not an event")
        await run_echo(web)
        await store_caught_up(nats_bus)
        await web.caught_up()
        detail = (await http.get("/api/workflows/wf-web")).json()["latest"]
        assert {t: v["state"] for t, v in detail["tasks"].items()} == {"t1": "succeeded", "t2": "succeeded",
                                                                        "t3": "succeeded"}
        page = (await http.get("/api/events", params={"workflow_id": "wf-web", "limit": 1000})).json()
        assert "forged" not in [e["event"].get("output") for e in page["events"]]
        rejected = (await http.get("/api/events", params={"type": "MessageRejected"})).json()["events"]
        assert sorted(e["event"]["reason"].split(":")[0] for e in rejected) == [
            "TaskSucceeded is the executor's to emit, and this one is not signed", "not valid JSON"]
        # The view folded what the log stored (the two rejections among it), and neither message:
        # both counted through the same seq (checkpoints and attestations go on arriving).
        last, folded = web.view.last_seq, web.view.folded
        await store_caught_up(nats_bus)
        async with store.SqliteEventLog(web.settings.log_path, readonly=True) as log:
            stored = len([seq async for rows in log.scan("seq") for (seq,) in rows if seq <= last])
        assert folded == stored
        health = (await http.get("/healthz")).json()
        assert (health["status"], health["view"]["lag"]) == ("ok", 0)
        assert web.view.follow_error is None
