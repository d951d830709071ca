"""The web API over a real run's log: workflows with their tasks and DAG, events paginated and
filtered, the guide's routes, health; two views answer the same, and so does `ymera serve` killed
and started again. Real nats-server, SQLite, engine (in this process) and uvicorn."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec

import bus
import events
import store
from actors import client_access
from web._app import SECURITY_HEADERS, create_app
from web._auth import Tokens
from web._health import health
from web._serve import running
from web._view import View
from ymera._client import store_caught_up
from ymera._models import as_json, read_models

from .conftest import ymera_env
from .llm_server import OpenAIServer
from .web_support import Served, echo_workflow, serving

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


async def _run_one(web: Served, workflow_id: str = "wf-web", tasks: int = 3,
                   budget_usd: float | None = None) -> events.WorkflowSubmitted:
    submission = msgspec.structs.replace(echo_workflow(workflow_id, tasks), budget_usd=budget_usd)
    end = await web.submit(submission)
    assert isinstance(end, events.WorkflowCompleted), end
    return submission


async def test_a_run_shows_with_its_tasks_states_and_dag(tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus) as web, web.client() as http:
        submission = await _run_one(web, budget_usd=2.5)
        listed = (await http.get("/api/workflows")).json()
        assert listed["total"] == 1
        assert listed["next_offset"] is None
        [row] = listed["workflows"]
        assert (row["workflow_id"], row["runs"]) == ("wf-web", 1)
        assert row["latest"]["state"] == "completed"
        assert row["latest"]["tasks_by_state"] == {"succeeded": 3}
        assert (row["latest"]["budget_usd"], row["latest"]["cost_usd"]) == (2.5, 0.0)  # echo tasks cost nothing

        detail = (await http.get("/api/workflows/wf-web")).json()
        latest = detail["latest"]
        assert latest["run_id"] == submission.id
        assert [r["run_id"] for r in detail["runs"]] == [submission.id]
        assert latest["dag"] == {"t1": [], "t2": ["t1"], "t3": ["t2"]}
        assert latest["levels"] == [["t1"], ["t2"], ["t3"]]
        assert latest["critical_path"] == ["t1", "t2", "t3"]
        assert {t: (v["state"], v["attempts"], v["dependencies"]) for t, v in latest["tasks"].items()} == {
            "t1": ("succeeded", 1, []), "t2": ("succeeded", 1, ["t1"]), "t3": ("succeeded", 1, ["t2"])}

        run = (await http.get(f"/api/workflows/wf-web/runs/{submission.id[:8]}")).json()
        assert run["run_id"] == submission.id
        assert run["tasks"] == latest["tasks"]

        missing = await http.get("/api/workflows/nope")
        assert (missing.status_code, missing.json()["error"]) == (404, "no workflow 'nope'")
        no_run = await http.get("/api/workflows/wf-web/runs/zzzz")
        assert (no_run.status_code, no_run.json()["error"]) == (404, "workflow 'wf-web' has no run 'zzzz'")
        bad = await http.get("/api/workflows/bad%20id")
        assert bad.status_code == 400
        assert bad.json()["error"].startswith("path parameter workflow_id: ")
        states = await http.get("/api/workflows?state=done")
        assert states.status_code == 400
        assert states.json()["error"] == ("query parameter state must be one of submitted, admitted, validated, "
                                          "running, completed, failed, cancelled, invalid, refused; got 'done'")
        assert (await http.get("/api/workflows?state=failed")).json()["workflows"] == []


async def test_workflows_paginate_newest_first(tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus) as web, web.client() as http:
        for i in range(3):
            await _run_one(web, f"wf-{i}", tasks=1)
        first = (await http.get("/api/workflows?limit=2")).json()
        assert [w["workflow_id"] for w in first["workflows"]] == ["wf-2", "wf-1"]
        assert (first["total"], first["next_offset"]) == (3, 2)
        second = (await http.get(f"/api/workflows?limit=2&offset={first['next_offset']}")).json()
        assert [w["workflow_id"] for w in second["workflows"]] == ["wf-0"]
        assert second["next_offset"] is None


async def test_events_paginate_and_filter(tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus) as web, web.client() as http:
        one = await _run_one(web, "wf-a", tasks=2)
        await _run_one(web, "wf-b", tasks=1)
        await store_caught_up(nats_bus)
        everything = (await http.get("/api/events?limit=1000")).json()
        seqs = [e["seq"] for e in everything["events"]]
        assert seqs == sorted(seqs)
        assert everything["next_after_seq"] is None
        async with store.SqliteEventLog(web.settings.log_path, readonly=True) as log:
            assert seqs == [row.seq async for row in log.read()]

        paged, after = [], 0
        while True:
            page = (await http.get(f"/api/events?limit=4&after_seq={after}")).json()
            paged += [e["seq"] for e in page["events"]]
            assert len(page["events"]) <= 4
            if page["next_after_seq"] is None:
                break
            after = page["next_after_seq"]
        assert paged == seqs

        mine = (await http.get("/api/events?workflow_id=wf-a&type=TaskSucceeded&type=WorkflowCompleted")).json()
        assert [(e["event"]["type"], e["event"].get("task_id")) for e in mine["events"]] == [
            ("TaskSucceeded", "t1"), ("TaskSucceeded", "t2"), ("WorkflowCompleted", None)]
        by_run = (await http.get(f"/api/events?run_id={one.id}&type=WorkflowSubmitted&type=TaskReady")).json()
        assert [e["event"]["type"] for e in by_run["events"]] == ["WorkflowSubmitted", "TaskReady", "TaskReady"]
        assert all(e["event"].get("run_id", e["event"]["id"]) == one.id for e in by_run["events"])
        assert (await http.get("/api/events?run_id=no-such-run")).json()["events"] == []

        for query, message in [
            ("limit=0", "query parameter limit must be an integer from 1 to 1000; got '0'"),
            ("limit=1001", "query parameter limit must be an integer from 1 to 1000; got '1001'"),
            ("limit=many", "query parameter limit must be an integer from 1 to 1000; got 'many'"),
            ("after_seq=-1", "query parameter after_seq must be an integer from 0 (a stream seq); got '-1'"),
        ]:
            r = await http.get(f"/api/events?{query}")
            assert (r.status_code, r.json()["error"]) == (400, message), query
        r = await http.get("/api/events?type=TaskExploded")
        assert r.status_code == 400
        assert r.json()["error"].startswith("query parameter type: no event type 'TaskExploded' (`ymera schema` "
                                            "lists them: AlertRaised, AlertResolved, ")


async def test_the_guides_routes_and_their_errors(tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus) as web, web.client("admin") as http:
        await _run_one(web)
        board = (await http.get("/dashboard")).json()
        assert list(board) == ["system_status", "workflows", "tasks", "quality", "cost", "models", "alerts",
                               "security"]
        assert board["system_status"]["status"] == "healthy"
        assert board["system_status"]["as_of_seq"] == web.view.last_seq
        assert (board["workflows"]["completed"], board["tasks"]["succeeded"]) == (1, 3)
        assert [r["workflow_id"] for r in board["workflows"]["recent"]] == ["wf-web"]
        assert board["quality"]["assessed"] == 3
        assert board["quality"]["overall"]["assessed"] == 3
        quality = (await http.get("/quality/metrics?hours=2")).json()
        assert quality["hours"] == 2
        assert quality["overall"]["assessed"] == 3
        security = (await http.get("/security/events")).json()
        assert security["hours"] == 24
        assert security["findings"]["total"] == 0
        for path in ("/dashboard", "/quality/metrics", "/security/events"):
            for hours in ("0", "-3", "nan", "87841"):
                r = await http.get(f"{path}?hours={hours}")
                assert r.status_code == 400, (path, hours, r.text)
                assert r.json()["error"] == (f"query parameter hours must be a number of hours more than 0 and at "
                                             f"most 87840; got '{hours}'")
        assert (await http.get("/api/alerts")).json() == {"open": [], "recent": [], "as_of_seq": web.view.last_seq}
        for path in ("/", "/dashboard", "/api/nothing"):  # the page, an answer, an error: each with the headers
            headers = (await http.get(path)).headers
            assert {k: headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, path
        gone = await http.get("/api/nothing")
        assert gone.status_code == 404
        assert gone.json() == {
            "error": "no route /api/nothing (docs/web.md lists them; /openapi.json describes them)", "detail": None}
        wrong = await http.delete("/api/workflows")
        assert (wrong.status_code, wrong.json()["error"]) == (405, "DELETE is not allowed on /api/workflows")


async def test_the_audit_runs_at_start_and_again_on_request(tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus) as web, web.client("admin") as http:
        await _run_one(web)
        await store_caught_up(nats_bus)
        status = (await http.get("/api/audit")).json()
        assert status["state"] in ("running", "done")
        assert status["started_at"] is not None
        asked = await http.post("/api/audit/verify")
        assert asked.status_code == 202
        assert asked.json()["state"] in ("running", "done")
        for _ in range(600):
            status = (await http.get("/api/audit")).json()
            if status["state"] == "done" and status["result"]["head_seq"] > 0:
                break
            await asyncio.sleep(0.05)
        assert status["ok"] is True
        assert status["error"] is None
        assert status["finished_at"] >= status["started_at"]
        result = status["result"]
        assert result["rows"] > 0
        assert result["findings"] == []
        assert result["broken"] is None
        assert result["rows_compared_with_stream"] == result["rows"]


async def test_two_views_answer_the_same_and_a_new_one_folds_what_the_stream_adds(
        tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus) as web:
        first = await _run_one(web)
        await store_caught_up(nats_bus)
        # A second view, on a connection of its own: rebuilt from the log (which holds the first run).
        other_bus, _ = await bus.open_local(web.settings, "ymera-web-other", client_access(web.settings))
        try:
            async with View(web.settings, other_bus) as other:
                assert other.rebuilt_seq > 0
                # A second run: the first view and the new one fold it live from the stream.
                await _run_one(web, "wf-web", tasks=2)
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
        await _run_one(web)
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
        await _run_one(web)
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


async def test_models_and_keys_show_calls_by_key_id_never_a_key(tmp_path: Path, nats_bus: bus.Bus,
                                                                  llm: OpenAIServer) -> None:
    env = {"YMERA_LLM_BASE_URL": llm.base_url, "YMERA_LLM_MODEL": "test-model", "YMERA_LLM_API_KEY_1": "sk-first",
           "YMERA_LLM_API_KEY_2": "sk-second"}
    llm.reply("Paris is the capital of France.")
    submission = events.WorkflowSubmitted(
        id=events.new_id(), ts=events.now(), workflow_id="wf-llm",
        tasks=[events.TaskSpec(id="ask", type="llm", parameters={"prompt": "What is the capital of France?"})])
    async with serving(tmp_path, nats_bus, env=env) as web, web.client("admin") as http:
        end = await web.submit(submission)
        assert isinstance(end, events.WorkflowCompleted), end
        models = (await http.get("/api/models")).json()
        assert models["configured"] == ["local"]
        [model] = [m for m in models["models"] if m["calls"]]
        assert (model["model"], model["calls"], model["failures"], model["configured"]) == (
            "local/test-model", 1, 0, True)
        # The same measures as `ymera models --json`, which folds the log its own way.
        await store_caught_up(nats_bus)
        await web.caught_up()
        command = as_json(await read_models(web.settings))

        def same(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            keys = ("model", "task_type", "calls", "failures", "latency_ms", "cost_usd", "quality", "scored",
                    "rating", "rated")
            return sorted(({k: r.get(k) for k in keys} for r in rows), key=lambda r: (r["model"], r["task_type"] or ""))

        assert same(models["models"]) == same(command["models"])
        assert same(models["by_task_type"]) == same(command["by_task_type"])
        assert models["by_task_type"][0]["quality"] is not None  # the task's score counts for its model
        keys = await http.get("/api/keys")
        assert "sk-first" not in keys.text
        assert "sk-second" not in keys.text
        states = {k["key"]: (k["state"], k["calls"]) for k in keys.json()["providers"]["local"]}
        assert sorted(states.values()) == [("ok", 1), ("unused", 0)]
        assert set(states) == {"local:1", "local:2"}
        assert keys.json()["unconfigured"] == []


async def test_a_hostile_publisher_on_the_same_nats_changes_nothing_the_api_says(tmp_path: Path,
                                                                                  nats_bus: bus.Bus) -> None:
    # Anyone may publish on this test server (no permissions): garbage, and a forged result
    # for a task of a workflow that runs, both land in the stream the view follows.
    async with serving(tmp_path, nats_bus) as web, web.client() as http:
        forged = events.TaskSucceeded(id=events.new_id(), ts=events.now(), workflow_id="wf-web", task_id="t1",
                                      attempt=1, output="forged", duration_ms=1.0)
        await nats_bus.js.publish(events.subject_of(forged), events.encode(forged))
        await nats_bus.js.publish("ymera.task.wf-web.t2.succeeded", b"\xff not an event")
        await _run_one(web)
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
