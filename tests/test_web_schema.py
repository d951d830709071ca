"""schemathesis against /openapi.json of a live server over a real engine's log: requests generated
from the document (valid and invalid) never get a 500, and every 4xx is a JSON body with `error`.

The server runs in the test's event loop (uvicorn on a loopback port); schemathesis's requests are
blocking, so they are made from a worker thread. Examples are bounded per operation so the whole
test stays within about a minute."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

import bus
from ymera._client import store_caught_up

from .web_support import Served, echo_workflow, serving

EXAMPLES = 15  # per operation and generation mode
# The live feed never ends (it is tested in tests/test_web_live.py); the verify route starts an audit.
SKIPPED = {("GET", "/api/live")}


def _error_bodies(ctx: object, response: Any, case: schemathesis.Case) -> bool | None:
    """Every 4xx and 5xx is a JSON object with a non-empty `error` string."""
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict), (case.path, response.status_code, response.text)
        assert isinstance(body.get("error"), str), (case.path, response.status_code, body)
        assert body["error"], (case.path, response.status_code, body)
    return None


def _fuzz(web: Served, document: dict[str, Any], statuses: Counter[int]) -> list[str]:
    schema = schemathesis.openapi.from_dict(document)
    seen: list[str] = []
    headers = web.headers("admin")
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        seen.append(f"{operation.method.upper()} {operation.path}")
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: schemathesis.Case) -> None:
                response = case.call(base_url=web.url, headers=headers, timeout=30)
                statuses[response.status_code] += 1
                case.validate_response(response, checks=[not_a_server_error, _error_bodies])

            check()
    return seen


async def test_no_500_and_every_error_is_a_json_body(tmp_path: Path, nats_bus: bus.Bus) -> None:
    async with serving(tmp_path, nats_bus) as web:
        for i in range(2):
            assert await web.submit(echo_workflow(f"wf-{i}", tasks=2)) is not None
        await store_caught_up(nats_bus)
        async with httpx.AsyncClient(base_url=web.url) as http:
            document = (await http.get("/openapi.json")).json()
        statuses: Counter[int] = Counter()
        fuzzed = await asyncio.to_thread(_fuzz, web, document, statuses)
        assert {200, 400, 404} <= set(statuses), statuses  # valid and invalid requests both ran
        assert {"GET /api/workflows", "GET /api/workflows/{workflow_id}",
                "GET /api/workflows/{workflow_id}/runs/{run_id}", "GET /api/events", "GET /dashboard",
                "GET /quality/metrics", "GET /security/events", "GET /api/models", "GET /api/keys", "GET /api/alerts",
                "GET /api/audit", "POST /api/audit/verify", "GET /healthz", "GET /metrics"} <= set(fuzzed)
