"""The web API's routes over a real run's log: workflows with their tasks and DAG, events
paginated and filtered, the guide's routes and their errors, the audit, models and keys (the
view behind them: tests/test_web_view.py). Real nats-server, SQLite, engine (in this process)
and uvicorn."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import bus
import events
import store
from web._app import SECURITY_HEADERS
from ymera._client import store_caught_up
from ymera._models import as_json, read_models

from .llm_server import OpenAIServer
from .web_support import run_echo, serving


async def test_a_run_shows_with_its_tasks_states_and_dag(tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus) as web, web.client() as http:
        submission = await run_echo(web, budget_usd=2.5)
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
            await run_echo(web, f"wf-{i}", tasks=1)
        first = (await http.get("/api/workflows?limit=2")).json()
        assert [w["workflow_id"] for w in first["workflows"]] == ["wf-2", "wf-1"]
        assert (first["total"], first["next_offset"]) == (3, 2)
        second = (await http.get(f"/api/workflows?limit=2&offset={first['next_offset']}")).json()
        assert [w["workflow_id"] for w in second["workflows"]] == ["wf-0"]
        assert second["next_offset"] is None


async def test_events_paginate_and_filter(tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus) as web, web.client() as http:
        one = await run_echo(web, "wf-a", tasks=2)
        await run_echo(web, "wf-b", tasks=1)
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
        await run_echo(web)
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
        await run_echo(web)
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

