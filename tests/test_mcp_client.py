"""The MCP client against a small server of our own, over stdio and streamable HTTP, for what
the registries' reference servers (test_mcp_registry_servers.py) cannot be made to do on
demand: sleep through a timeout, die in the middle of a call, flood their output; and its
config."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
from rich.pretty import pretty_repr

from tests.support import wait_until
from tools import McpClient, McpServer, ToolError

from .mcp_servers import SERVER_SOURCE


@pytest.fixture
def server_py(tmp_path: Path) -> Path:
    path = tmp_path / "server.py"
    path.write_text(SERVER_SOURCE)
    return path


def ours(server_py: Path, **limits: object) -> McpServer:
    return msgspec.convert({"name": "custom", "command": [sys.executable, str(server_py)], **limits}, McpServer)


@pytest.fixture
async def custom(server_py: Path) -> AsyncIterator[McpClient]:
    async with McpClient(ours(server_py)) as client:
        yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def http_server(server_py: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Our server over streamable HTTP, in a process of its own: (its URL, the process)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(server_py), "http", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the HTTP test server exited with {process.returncode}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline, "the HTTP test server did not listen within 60 s"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp", process
    finally:
        process.terminate()
        process.wait(10)


def gone(pid: int) -> bool:
    """No such process, or only its zombie (an orphan's parent may be an init that never reaps)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


# Our own server, over stdio and HTTP.


async def test_streamable_http_server_lists_and_calls(http_server: tuple[str, subprocess.Popen[bytes]]) -> None:
    server = McpServer(name="web", transport="http", url=http_server[0])
    async with McpClient(server) as client:
        assert {"echo", "sleep", "total"} <= {tool.name for tool in await client.list_tools()}
        assert (await client.call("echo", {"text": "over http"})).text == "over http"
        assert (await client.call("total", {"numbers": [1, 2, 3]})).structured == {"result": 6}
        assert client.pid is None
        with pytest.raises(ToolError) as caught:
            await client.call("sleep", {"seconds": 600}, timeout=0.5)
        assert str(caught.value) == "mcp:web.sleep: server 'web' did not answer the call of 'sleep' within 0.5 s"
        assert (await client.call("echo", {"text": "still here"})).text == "still here"


async def test_an_http_server_that_dies_mid_call_fails_the_call(
        http_server: tuple[str, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    url, process = http_server
    marker = tmp_path / "in-call"
    async with McpClient(McpServer(name="web", transport="http", url=url)) as client:
        call = asyncio.create_task(client.call("sleep", {"seconds": 600, "marker": str(marker)}))
        await wait_until(marker.exists, what="the server to be in the call")
        process.kill()
        with pytest.raises(ToolError) as caught:
            await asyncio.wait_for(call, 30)  # a bound so a hang fails the test
    assert (caught.value.kind, str(caught.value)) == (
        "failed", "mcp:web.sleep: the call of 'sleep' failed: server 'web' closed the connection; the server is "
                  "connected to again at the next call")


async def test_an_http_server_that_does_not_listen_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    client = McpClient(McpServer(name="web", transport="http", url=url, max_start_failures=5))
    with pytest.raises(ToolError, match=f"^mcp:web: could not connect to server 'web' at {re.escape(url)}: ") as caught:
        await client.start()
    assert caught.value.kind == "failed"
    await client.aclose()


async def test_many_tasks_share_one_server_and_one_start(server_py: Path) -> None:
    client = McpClient(ours(server_py))  # not started: the first calls all wait for the same start
    try:
        results = await asyncio.gather(*(client.call("echo", {"text": f"call {i}"}) for i in range(40)))
        assert [r.text for r in results] == [f"call {i}" for i in range(40)]
        assert client.starts == 1
    finally:
        await client.aclose()


async def test_a_server_killed_mid_call_fails_the_call_with_how_it_died_and_is_started_again(
        custom: McpClient, tmp_path: Path) -> None:
    marker = tmp_path / "in-call"
    pid = custom.pid
    assert pid is not None
    call = asyncio.create_task(custom.call("sleep", {"seconds": 600, "marker": str(marker)}))
    await wait_until(marker.exists, what="the server to be in the call")
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ToolError) as caught:
        await asyncio.wait_for(call, 30)  # a bound so a hang fails the test
    assert caught.value.kind == "failed"
    assert str(caught.value) == ("mcp:custom.sleep: the call of 'sleep' failed: server 'custom' was killed by "
                                 "SIGKILL; its last stderr line: 'sleeping 600 s'; the server is started again "
                                 "at the next call")
    assert (await custom.call("echo", {"text": "back"})).text == "back"
    assert custom.starts == 2
    assert custom.pid not in (None, pid)
    assert gone(pid)


async def test_a_server_whose_child_keeps_its_pipes_open_still_fails_the_call(server_py: Path,
                                                                               tmp_path: Path) -> None:
    # The command is a launcher that runs the server as its child and waits: killing the launcher
    # leaves the child holding stdout open, so the end of the output never comes; the exit must
    # be noticed.
    marker = tmp_path / "in-call"
    launcher = f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, {str(server_py)!r}]))"
    wrapped = McpServer(name="custom", command=(sys.executable, "-c", launcher))
    async with McpClient(wrapped) as client:
        launcher_pid = client.pid
        assert launcher_pid is not None
        call = asyncio.create_task(client.call("sleep", {"seconds": 600, "marker": str(marker)}))
        await wait_until(marker.exists, what="the server to be in the call")
        os.kill(launcher_pid, signal.SIGKILL)
        with pytest.raises(ToolError) as caught:
            await asyncio.wait_for(call, 30)
        assert str(caught.value) == ("mcp:custom.sleep: the call of 'sleep' failed: server 'custom' was killed by "
                                     "SIGKILL; its last stderr line: 'sleeping 600 s'; the server is started "
                                     "again at the next call")
        assert (await client.call("echo", {"text": "back"})).text == "back"
        await wait_until(lambda: gone(int(marker.read_text())), what="the orphaned server to be stopped")


async def test_a_server_that_dies_fails_every_call_in_flight(custom: McpClient, tmp_path: Path) -> None:
    markers = [tmp_path / f"call-{i}" for i in range(5)]
    calls = [asyncio.create_task(custom.call("sleep", {"seconds": 600, "marker": str(m)})) for m in markers]
    await wait_until(lambda: all(m.exists() for m in markers), what="five calls in the server")
    assert custom.pid is not None
    os.kill(custom.pid, signal.SIGTERM)
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)
    assert all(isinstance(r, ToolError) and "server 'custom' was killed by SIGTERM" in str(r) for r in results)


async def test_a_call_over_its_timeout_is_a_limit_and_the_session_goes_on(custom: McpClient) -> None:
    pid = custom.pid
    with pytest.raises(ToolError) as caught:
        await custom.call("sleep", {"seconds": 600}, timeout=0.5)
    assert caught.value.kind == "limit"
    assert str(caught.value) == "mcp:custom.sleep: server 'custom' did not answer the call of 'sleep' within 0.5 s"
    assert (await custom.call("echo", {"text": "still here"})).text == "still here"
    assert (custom.pid, custom.starts) == (pid, 1)


async def test_an_unknown_tool_is_a_bad_request_naming_the_tools(custom: McpClient) -> None:
    with pytest.raises(ToolError) as caught:
        await custom.call("nope", {})
    assert caught.value.kind == "bad_request"
    assert str(caught.value) == ("mcp:custom.nope: server 'custom' has no tool 'nope'; its tools: big, echo, "
                                 "getenv, sleep, total")


@pytest.mark.parametrize(("tool", "arguments", "problem"), [
    ("total", {"numbers": [1, "two"]}, "at /numbers/1: 'two' is not of type 'integer'"),
    ("echo", {}, "at the top level: 'text' is a required property"),
    ("echo", {"text": 5}, "at /text: 5 is not of type 'string'"),
])
async def test_arguments_that_do_not_fit_the_schema_are_refused_before_sending(
        custom: McpClient, tool: str, arguments: dict[str, object], problem: str) -> None:
    with pytest.raises(ToolError) as caught:
        await custom.call(tool, arguments)
    assert caught.value.kind == "bad_request"
    assert str(caught.value) == (f"mcp:custom.{tool}: the arguments do not match the input schema of {tool!r} "
                                 f"on server 'custom', {problem}")


async def test_a_result_over_max_output_is_a_limit(server_py: Path) -> None:
    async with McpClient(ours(server_py, max_output=1000)) as client:
        assert len((await client.call("big", {"size": 400})).text) == 400
        with pytest.raises(ToolError, match=r"^mcp:custom.big: server 'custom' answered 'big' with \d+ bytes, "
                                            r"over the limit of 1000$") as caught:
            await client.call("big", {"size": 5000})
        assert caught.value.kind == "limit"


async def test_a_server_flooding_its_output_is_stopped_and_started_again(server_py: Path) -> None:
    async with McpClient(ours(server_py, max_output=1000)) as client:
        with pytest.raises(ToolError) as caught:
            await client.call("big", {"size": 500_000})
        assert caught.value.kind == "limit"
        assert str(caught.value) == ("mcp:custom.big: the call of 'big' failed: server 'custom' sent a message over "
                                     "71536 bytes (its max_output allows no more); it was stopped; the server is "
                                     "started again at the next call")
        assert (await client.call("echo", {"text": "again"})).text == "again"
        assert client.starts == 2


async def test_a_command_that_does_not_exist_is_retried_with_backoff_then_refused() -> None:
    server = McpServer(name="ghost", command=("/no/such/mcp-server",), max_start_failures=2, restart_backoff=0.01)
    client = McpClient(server)
    why = "could not start server 'ghost': command '/no/such/mcp-server' not found"
    for _ in range(2):
        with pytest.raises(ToolError) as caught:
            await client.call("anything")
        assert (caught.value.kind, str(caught.value)) == ("failed", f"mcp:ghost: {why}")
    with pytest.raises(ToolError, match=r"^mcp:ghost: server 'ghost' failed to start 2 times in a row "
                                        rf"\(last: {why}\); not trying again for \d+ s$") as refused:
        await client.call("anything")
    assert refused.value.kind == "refused"
    await client.aclose()


@pytest.mark.parametrize(("fields", "message"), [
    ({"command": ["/no/such/mcp-server"]}, "could not start server 'odd': command '/no/such/mcp-server' not found"),
    ({"command": ["{tmp}/plain.txt"]}, "could not start server 'odd': '{tmp}/plain.txt' is not executable"),
    ({"command": ["{tmp}/script"]}, "could not start server 'odd': '{tmp}/script': Exec format error"),
    ({"command": ["python3"], "cwd": "/no/such/dir"},
     "could not start server 'odd': its working directory '/no/such/dir' is not a directory"),
])
async def test_a_server_that_cannot_be_spawned_says_why(tmp_path: Path, fields: dict[str, object],
                                                        message: str) -> None:
    (tmp_path / "plain.txt").write_text("not a program\n")
    (tmp_path / "script").write_text("not a program either\n")
    (tmp_path / "script").chmod(0o755)
    fields = json.loads(json.dumps(fields).replace("{tmp}", str(tmp_path)))
    message = message.replace("{tmp}", str(tmp_path))
    client = McpClient(msgspec.convert({"name": "odd", **fields}, McpServer))
    with pytest.raises(ToolError) as caught:
        await client.start()
    assert (caught.value.kind, str(caught.value)) == ("failed", f"mcp:odd: {message}")
    await client.aclose()


async def test_a_timeout_below_zero_is_a_bad_request(custom: McpClient) -> None:
    with pytest.raises(ToolError) as caught:
        await custom.call("echo", {"text": "x"}, timeout=-1)
    assert (caught.value.kind, str(caught.value)) == (
        "bad_request", "mcp:custom.echo: timeout must be above 0 seconds, not -1")


async def test_a_server_that_exits_at_start_says_why_without_its_secrets() -> None:
    script = "import os, sys; print('bad token', os.environ['API_TOKEN'], file=sys.stderr); sys.exit(3)"
    server = McpServer(name="dies", command=(sys.executable, "-c", script), env={"API_TOKEN": "tok-12345678"})
    with pytest.raises(ToolError) as caught:
        async with McpClient(server):
            pass
    assert caught.value.kind == "failed"
    assert str(caught.value) == ("mcp:dies: could not start server 'dies': server 'dies' exited with code 3; "
                                 "its last stderr line: 'bad token ***'")


async def test_a_server_that_refuses_the_handshake_says_what_it_answered() -> None:
    grumpy = ("import json, sys\n"
              "for line in sys.stdin:\n"
              "    m = json.loads(line)\n"
              "    if 'id' in m:\n"
              "        error = {'code': -32603, 'message': 'no sessions today'}\n"
              "        print(json.dumps({'jsonrpc': '2.0', 'id': m['id'], 'error': error}), flush=True)\n")
    with pytest.raises(ToolError) as caught:
        await McpClient(McpServer(name="grumpy", command=(sys.executable, "-c", grumpy))).start()
    assert (caught.value.kind, str(caught.value)) == (
        "failed", "mcp:grumpy: could not start server 'grumpy': no sessions today")


async def test_a_server_that_never_answers_the_handshake_is_a_limit() -> None:
    silent = "import sys\nfor line in sys.stdin: pass"
    server = McpServer(name="mute", command=(sys.executable, "-c", silent), start_timeout=1)
    with pytest.raises(ToolError) as caught:
        await McpClient(server).start()
    assert (caught.value.kind, str(caught.value)) == (
        "limit", "mcp:mute: server 'mute' did not finish starting within 1 s")


async def test_the_server_gets_its_env_and_not_ours(server_py: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YMERA_TEST_LEAK", "not for servers")
    async with McpClient(ours(server_py, env={"GREETING": "hello"})) as client:
        assert (await client.call("getenv", {"name": "GREETING"})).text == "hello"
        assert (await client.call("getenv", {"name": "YMERA_TEST_LEAK"})).text == ""


async def test_closing_stops_the_server_and_leaves_no_task(server_py: Path) -> None:
    client = McpClient(ours(server_py))
    await client.start()
    pid = client.pid
    assert pid is not None
    await client.aclose()
    await client.aclose()
    assert gone(pid)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    with pytest.raises(ToolError, match=r"^mcp:custom: the client of server 'custom' is closed$"):
        await client.call("echo", {"text": "late"})


# The config.


def test_a_server_reads_from_config_data_and_hides_its_secrets() -> None:
    stdio = msgspec.convert({"name": "time", "command": ["mcp-server-time"], "env": {"TZ_TOKEN": "s3cret-value"}},
                            McpServer)
    assert stdio.command == ("mcp-server-time",)
    assert repr(stdio) == "McpServer(name='time', transport='stdio', command=['mcp-server-time'], TZ_TOKEN=***)"
    web = McpServer(name="web", transport="http", url="https://mcp.example.com/mcp",
                    headers={"Authorization": "Bearer abcdefgh"})
    assert "abcdefgh" not in repr(web)
    assert "abcdefgh" not in repr(McpClient(web))
    assert "s3cret-value" not in pretty_repr(stdio)
    assert "abcdefgh" not in pretty_repr(web)


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": "my server", "command": ["x"]},
     "mcp: server name 'my server' is not a plain name (letters, digits, '_', '-'; 64 at most)"),
    ({"name": "s"}, "mcp: server 's' (stdio) needs a command: a list of non-empty strings"),
    ({"name": "s", "command": ["x"], "url": "http://h/mcp"}, "mcp: server 's' (stdio) takes no url or headers"),
    ({"name": "s", "transport": "http"}, "mcp: server 's' (http) needs an http:// or https:// url"),
    ({"name": "s", "transport": "http", "url": "ftp://h/"}, "mcp: server 's' (http) needs an http:// or https:// url"),
    ({"name": "s", "transport": "http", "url": "http://h/mcp", "command": ["x"]},
     "mcp: server 's' (http) takes no command, env or cwd"),
    ({"name": "s", "command": ["x"], "call_timeout": 0}, "mcp: server 's': call_timeout must be above 0"),
    ({"name": "s", "command": ["x"], "max_output": 0},
     "mcp: server 's': max_output and max_start_failures must be at least 1"),
])
def test_a_server_config_that_cannot_work_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ToolError) as caught:
        msgspec.convert(fields, McpServer)
    assert (caught.value.kind, str(caught.value)) == ("bad_request", message)
