"""`ymera mcp serve` driven by a real MCP client (the SDK's), as an MCP host would drive it:
over stdio (the client spawns `ymera mcp serve`) and over streamable HTTP, on the embedded
defaults (the server starts NATS and runs every actor itself); and the MCP project's
conformance suite (@modelcontextprotocol/conformance, from npm) against it where it applies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import CallToolResult, TextContent

import bus

from .conftest import spawn_ymera, ymera, ymera_env
from .support import npm_package, wait_until

ROOT = Path(__file__).parent.parent
PIPELINE = ROOT / "examples" / "pipeline.yaml"
TOOLS = {"submit_workflow", "workflow_status", "workflow_result", "workflow_quality", "security_report",
         "cancel_workflow", "audit_verify"}
# The last release that runs on Node.js 20: 0.1.14 on import fs.globSync, which is Node 22's.
CONFORMANCE_PACKAGE = "@modelcontextprotocol/conformance@0.1.13"
# The server scenarios that apply to a server of tools only (no prompts, resources, completions,
# logging, sampling or elicitation), each testing the protocol rather than the suite's own test
# tools (tools-call-* call tools named test_*, which a server other than the suite's reference
# one does not have; they "pass" on any server that answers an unknown tool with isError).
CONFORMANCE_SCENARIOS = ("server-initialize", "ping", "tools-list", "resources-list", "prompts-list",
                         "server-sse-multiple-streams", "dns-rebinding-protection")


def _text(result: CallToolResult) -> str:
    [block] = result.content
    assert isinstance(block, TextContent), result.content
    return block.text


async def _call(client: Client, tool: str, **arguments: Any) -> tuple[dict[str, Any], str]:
    """A tool's structured result and text, which must not be an error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    return result.structured_content, _text(result)


async def _error(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result
    return _text(result)


@contextlib.asynccontextmanager
async def _stdio(data_dir: Path) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "runner", "mcp", "serve"],
                                   env=ymera_env(data_dir), cwd=str(ROOT))
    async with Client(params) as client:
        yield client


async def _run_to_end(client: Client, workflow_id: str) -> tuple[dict[str, Any], str]:
    """workflow_status, waiting, until the run has ended (each call waits up to 30 s)."""
    for _ in range(10):
        status, text = await _call(client, "workflow_status", workflow_id=workflow_id, wait_seconds=30)
        if status["status"] in ("completed", "failed", "cancelled", "invalid", "refused"):
            return status, text
    raise AssertionError(f"{workflow_id} did not end: {text}")


async def test_a_client_over_stdio_runs_a_workflow_and_reads_its_result_quality_security_and_audit(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with _stdio(data) as client:
        listed = (await client.list_tools()).tools
        assert {t.name for t in listed} == TOOLS
        assert all(t.description and t.output_schema == {"additionalProperties": True, "type": "object",
                                                         "title": f"{t.name}DictOutput"} for t in listed)

        submitted, text = await _call(client, "submit_workflow", path=str(PIPELINE))
        run_id = submitted["run_id"]
        assert submitted == {"workflow_id": "pipeline-1", "run_id": run_id, "tasks": 4, "stream_seq": 1}
        assert text == f"submitted pipeline-1 (4 tasks) as event {run_id}, stream seq 1"

        status, text = await _run_to_end(client, "pipeline-1")
        assert status["status"] == "completed"
        assert status["run_id"] == run_id
        assert {t: r["status"] for t, r in status["results"].items()} == dict.fromkeys(
            ("fetch", "clean", "wait", "report"), "succeeded")
        assert text.startswith("workflow pipeline-1: completed, overall quality 1.00, ")
        assert f"  run {run_id}\n  fetch: succeeded (attempts 1) quality 1.00\n" in text

        result, text = await _call(client, "workflow_result", workflow_id="pipeline-1", run=run_id[:8])
        assert result["outputs"] == {"fetch": "3 orders, 2 refunds, 1 complaint",
                                     "clean": "cleaned: 3 orders, 2 refunds, 1 complaint",
                                     "wait": {"slept": 0.2},
                                     "report": "report on cleaned: 3 orders, 2 refunds, 1 complaint"}
        assert result["status"] == "completed"
        assert result["overall_quality"] == 1.0
        assert text.endswith('\n  wait output: {"slept":0.2}\n'
                             "  report output: report on cleaned: 3 orders, 2 refunds, 1 complaint")

        quality, text = await _call(client, "workflow_quality", workflow_id="pipeline-1")
        assert quality["overall_quality"] == 1.0
        assert quality["quality_threshold"] == 0.7
        assert not quality["below_threshold"]
        assert quality["unscored"] == []
        assert quality["tasks"]["clean"] == {"model": None, "accuracy": 1.0, "completeness": 1.0, "consistency": 1.0,
                                             "efficiency": 1.0, "maintainability": 1.0, "overall": 1.0}
        assert text.splitlines()[0] == f"workflow pipeline-1 run {run_id}: completed, overall quality 1.00 " \
                                       "(threshold 0.70)"

        report, text = await _call(client, "security_report", hours=1)
        assert text == "no security events in the last hour"
        assert report["hours"] == 1
        assert report["findings"]["total"] == 0
        assert report["refusals"]["total"] == 0

        verified, text = await _call(client, "audit_verify")
        assert verified["ok"]
        assert verified["findings"] == []
        assert verified["broken"] is None
        head = verified["head_seq"]
        assert head == verified["rows"] > 12  # the run's 12 events, and their attestations
        assert text.splitlines()[0] == (f"audit: ok, {head} events and 0 blobs verified, head seq {head}, "
                                        f"head hash {verified['head_hash']}")
        assert text.splitlines()[-1].startswith(f"audit: {head} rows compared with the stream (it holds seqs 1-")
        offline, text = await _call(client, "audit_verify", read_stream=False)
        assert offline["ok"]
        assert offline["stream_range"] is None
        assert "compared with the stream" not in text

    # The client has gone: the server stopped its actors and the embedded NATS server it started,
    # and the log it leaves verifies as `ymera audit verify` checks it.
    assert bus.running_server(data) is None
    audit = ymera("audit", "verify", env=ymera_env(data))
    assert audit.returncode == 0, audit.stderr
    assert audit.stdout.startswith("audit: ok, ")


async def test_bad_inputs_are_tool_errors_saying_what_the_cli_says(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("workflow_id: fine\ntasks:\n  - {id: a, type: echo, priority: SOON}\n")
    missing = tmp_path / "missing.yaml"
    async with _stdio(data) as client:
        # A file's mistakes read as `ymera submit FILE` prints them (after its "ymera: ").
        for path in (bad_file, missing):
            said = await _error(client, "submit_workflow", path=str(path))
            cli = ymera("plan", str(path), env=ymera_env(data))
            assert cli.returncode == 1
            assert cli.stderr == f"ymera: {said}\n"
        assert await _error(client, "submit_workflow", path=str(missing)) == \
            f"cannot read {missing}: No such file or directory"

        # Text is read as a file is, and named as text.
        assert await _error(client, "submit_workflow", workflow="workflow_id: x\ntasks: 3\n") == \
            "workflow text: Expected `array`, got `int` - at `$.tasks`"
        assert await _error(client, "submit_workflow", workflow='{"workflow_id": "x", "tasks": [}') == \
            "workflow text: JSON is malformed: invalid character (byte 31)"
        said = await _error(client, "submit_workflow", workflow="workflow_id: has space\ntasks: []\n")
        assert said.startswith("workflow text: workflow id 'has space' ")
        for arguments in ({}, {"workflow": "workflow_id: x\ntasks: []", "path": str(PIPELINE)}):
            assert await _error(client, "submit_workflow", **arguments) == \
                "submit_workflow: give the workflow as text (workflow) or as a file (path), one of them"

        # Unknown workflows and runs, as `ymera status` says them.
        for tool in ("workflow_status", "workflow_result", "workflow_quality", "cancel_workflow"):
            assert await _error(client, tool, workflow_id="nope") == "no workflow nope in the stream"
        cli = ymera("status", "nope", env=ymera_env(data))  # joins the server's embedded NATS
        assert cli.returncode == 1
        assert cli.stderr == "ymera: no workflow nope in the stream\n"
        said = await _error(client, "workflow_status", workflow_id="../etc")
        assert said.startswith("workflow id '../etc' ")

        # An ended run, an unknown run, a wait and a window that are no numbers of seconds or hours.
        submitted, _ = await _call(client, "submit_workflow",
                                   workflow='{"workflow_id": "tiny", "tasks": [{"id": "a", "type": "noop"}]}')
        await _run_to_end(client, "tiny")
        assert await _error(client, "workflow_status", workflow_id="tiny", run="zzz") == \
            "workflow tiny has no run zzz (`ymera runs tiny` lists them)"
        assert await _error(client, "cancel_workflow", workflow_id="tiny") == \
            f"workflow tiny has no active run to cancel (its latest run {submitted['run_id']} ended completed)"
        assert await _error(client, "workflow_status", workflow_id="tiny", wait_seconds=-1) == \
            "wait_seconds must be a number of seconds, 0 or more, got -1.0"
        assert await _error(client, "security_report", hours=0) == "hours 0.0 is not a positive number of hours"


async def test_a_workflow_that_fails_validation_is_a_result_with_every_problem(tmp_path: Path) -> None:
    workflow = ("workflow_id: loop\ntasks:\n  - {id: a, type: echo, dependencies: [b]}\n"
                "  - {id: b, type: echo, dependencies: [a]}\n")
    async with _stdio(tmp_path / "data") as client:
        await _call(client, "submit_workflow", workflow=workflow)
        status, text = await _run_to_end(client, "loop")
    assert status["status"] == "invalid"
    assert status["errors"]
    assert text.splitlines()[0] == "workflow loop: invalid"
    assert all(f"  {error}" in text for error in status["errors"])


async def test_a_refused_submission_shows_in_its_status_and_in_the_security_report(tmp_path: Path) -> None:
    workflow = {"workflow_id": "wf-inject", "tasks": [
        {"id": "lookup", "type": "echo", "parameters": {"query": "'; DROP TABLE users; --"}}]}
    async with _stdio(tmp_path / "data") as client:
        await _call(client, "submit_workflow", workflow=workflow)  # an object, not text
        status, text = await _run_to_end(client, "wf-inject")
        report, report_text = await _call(client, "security_report")
    assert status["status"] == "refused"
    assert text.splitlines()[0] == "workflow wf-inject: refused"
    assert report["refusals"] == {"total": 1, "for_input": 1}
    assert report["findings"]["by_type"] == {"sql_injection": 1}
    [finding] = report["recent"]
    assert (finding["workflow_id"], finding["stage"], finding["field"]) == ("wf-inject", "input",
                                                                            "lookup.parameters.query")
    assert "findings           1: 1 critical" in report_text
    assert "refusals           1 workflow refused, 1 for their input" in report_text


def _served_at(output: Path, proc: subprocess.Popen[bytes]) -> str | None:
    assert proc.poll() is None, output.read_text()
    for line in output.read_text().splitlines():
        if line.startswith("ymera: MCP over streamable HTTP at "):
            return line.rpartition(" ")[2]
    return None


@contextlib.asynccontextmanager
async def _http_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """`ymera mcp serve --http 127.0.0.1:0` in its own process: its URL and data dir; stopped with SIGTERM,
    which it must end by with 0, its embedded NATS server stopped."""
    data, output = tmp_path / "data", tmp_path / "serve.log"
    proc = spawn_ymera("mcp", "serve", "--http", "127.0.0.1:0", env=ymera_env(data), output=output, cwd=ROOT)
    try:
        await wait_until(lambda: _served_at(output, proc) is not None, timeout=60, what="the server's address")
        url = _served_at(output, proc)
        assert url is not None
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/mcp")
        yield url, data
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert code == 0, output.read_text()
    assert bus.running_server(data) is None


async def test_a_client_over_streamable_http_submits_text_and_reads_the_result(tmp_path: Path) -> None:
    async with _http_server(tmp_path) as (url, _), Client(url) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        workflow = json.dumps({"workflow_id": "over-http", "tasks": [
            {"id": "say", "type": "echo", "parameters": {"text": "hello over http"}}]})
        await _call(client, "submit_workflow", workflow=workflow)
        status, _ = await _run_to_end(client, "over-http")
        assert status["status"] == "completed"
        result, _ = await _call(client, "workflow_result", workflow_id="over-http")
        assert result["outputs"] == {"say": "hello over http"}
        assert await _error(client, "workflow_result", workflow_id="nope") == "no workflow nope in the stream"


def test_http_addresses_that_cannot_be_served_are_refused_before_anything_starts(tmp_path: Path) -> None:
    env = ymera_env(tmp_path / "data")
    bad = ymera("mcp", "serve", "--http", "localhost:http", env=env)
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1] == ("ymera mcp serve: error: argument --http: 'localhost:http' is not "
                                           "[HOST:]PORT, e.g. 8765 or 127.0.0.1:8765")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = ymera("mcp", "serve", "--http", f"127.0.0.1:{port}", env=env)
    assert busy.returncode == 1
    assert busy.stderr == f"ymera: mcp serve: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert bus.running_server(tmp_path / "data") is None
    assert not (tmp_path / "data" / "nats").exists()


# ---- the conformance suite -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def conformance_cli() -> Path:
    """@modelcontextprotocol/conformance, installed from npm once into the test cache."""
    return npm_package(CONFORMANCE_PACKAGE, "npm-conformance") / "node_modules" / ".bin" / "conformance"


async def test_the_server_passes_the_conformance_scenarios_that_apply_to_it(tmp_path: Path,
                                                                          conformance_cli: Path) -> None:
    results = tmp_path / "conformance"
    async with _http_server(tmp_path) as (url, _):
        for scenario in CONFORMANCE_SCENARIOS:
            suite = await asyncio.create_subprocess_exec(
                str(conformance_cli), "server", "--url", url, "--scenario", scenario, "-o", str(results),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            said, _ = await asyncio.wait_for(suite.communicate(), 120)
            assert suite.returncode == 0, f"{scenario}:\n{said.decode()}"
    for scenario in CONFORMANCE_SCENARIOS:
        [checks_file] = results.glob(f"server-{scenario}-*/checks.json")
        checks = json.loads(checks_file.read_text())
        verdicts = {c["id"]: c["status"] for c in checks if c["status"] != "INFO"}
        assert verdicts, (scenario, checks)
        assert set(verdicts.values()) == {"SUCCESS"}, (scenario, checks)
