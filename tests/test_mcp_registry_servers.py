"""The MCP client against the registries' reference servers, started here: mcp-server-time,
-git and -fetch from PyPI (the dev extra), mcp-server-sqlite in a venv of its own (its last
release needs mcp 1.x), and @modelcontextprotocol/server-filesystem from npm, run with the
machine's Node.js. Our own server's tests, for what these cannot be made to do on demand, are
in test_mcp_client.py."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import cache_lock, npm_package, serving
from tools import McpClient, McpServer

from .mcp_servers import console_script, git, new_repo

FILESYSTEM_PACKAGE = "@modelcontextprotocol/server-filesystem@2026.8.31"
SQLITE_PACKAGES = ("mcp-server-sqlite==2025.4.25", "mcp>=1.6,<2")


@pytest.fixture(scope="session")
def filesystem_server_js() -> Path:
    """@modelcontextprotocol/server-filesystem, installed from npm once into the test cache."""
    prefix = npm_package(FILESYSTEM_PACKAGE, "npm")
    return prefix / "node_modules" / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"


@pytest.fixture(scope="session")
def sqlite_server_bin() -> str:
    """mcp-server-sqlite in a venv of its own: its last release needs mcp 1.x, our client mcp 2."""
    with cache_lock("mcp-server-sqlite-2025.4.25") as venv:
        script, done = venv / "bin" / "mcp-server-sqlite", venv / "installed"
        if not done.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
            pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                                  *SQLITE_PACKAGES], capture_output=True, text=True, timeout=600)
            assert pip.returncode == 0, f"pip install {' '.join(SQLITE_PACKAGES)} failed:\n{pip.stderr}"
            done.write_text("\n".join(SQLITE_PACKAGES))
        return str(script)


@pytest.fixture
def web_page(tmp_path: Path) -> Iterator[str]:
    """A page served on 127.0.0.1 by the standard library's HTTP server, in a thread."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "page.html").write_text("<html><head><title>Ymera</title></head><body><h1>Hello from Ymera</h1>"
                                    "<p>Event-sourced workflows, served locally.</p></body></html>")
    with serving(site) as host:
        yield f"http://{host}/page.html"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return new_repo(tmp_path / "repo")




async def test_time_server_lists_its_tools_and_tells_the_time() -> None:
    async with McpClient(McpServer(name="time", command=(console_script("mcp-server-time"),))) as client:
        tools = {tool.name: tool for tool in await client.list_tools()}
        assert {"get_current_time", "convert_time"} <= set(tools)
        assert tools["get_current_time"].description
        assert tools["get_current_time"].input_schema["required"] == ["timezone"]
        result = await client.call("get_current_time", {"timezone": "UTC"})
    assert not result.is_error
    assert result.structured is not None
    assert result.structured["timezone"] == "UTC"
    assert json.loads(result.text)["timezone"] == "UTC"


async def test_sqlite_server_creates_writes_and_reads_a_database(tmp_path: Path, sqlite_server_bin: str) -> None:
    db = tmp_path / "notes.db"
    async with McpClient(McpServer(name="sqlite", command=(sqlite_server_bin, "--db-path", str(db)))) as client:
        made = await client.call("create_table", {"query": "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"})
        assert not made.is_error, made.text
        written = await client.call("write_query", {"query": "INSERT INTO notes (body) VALUES ('hello from mcp')"})
        assert not written.is_error, written.text
        read = await client.call("read_query", {"query": "SELECT body FROM notes"})
        assert "hello from mcp" in read.text
        assert "notes" in (await client.call("list_tables")).text
        # This server answers a refusal as plain text, without flagging it as an error.
        refused = await client.call("read_query", {"query": "DELETE FROM notes"})
        assert refused.text == "Error: Only SELECT queries are allowed for read_query"
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT body FROM notes").fetchall() == [("hello from mcp",)]


async def test_git_server_reports_status_and_commits(repo: Path) -> None:
    server = McpServer(name="git", command=(console_script("mcp-server-git"), "--repository", str(repo)))
    async with McpClient(server) as client:
        status = await client.call("git_status", {"repo_path": str(repo)})
        assert not status.is_error
        assert "a.txt" in status.text
        assert not (await client.call("git_add", {"repo_path": str(repo), "files": ["a.txt"]})).is_error
        committed = await client.call("git_commit", {"repo_path": str(repo), "message": "Add a"})
        assert not committed.is_error, committed.text
        log = await client.call("git_log", {"repo_path": str(repo)})
        assert "Add a" in log.text
    assert git(repo, "log", "--format=%s") == "Add a\n"


async def test_fetch_server_reads_a_local_page_when_private_addresses_are_allowed(web_page: str) -> None:
    command = (console_script("mcp-server-fetch"), "--ignore-robots-txt", "--allow-private-ips")
    async with McpClient(McpServer(name="fetch", command=command)) as client:
        result = await client.call("fetch", {"url": web_page})
    assert not result.is_error, result.text
    assert "Hello from Ymera" in result.text
    assert "Event-sourced workflows, served locally." in result.text


async def test_fetch_server_refuses_a_local_page_by_default_and_says_so_in_its_result(web_page: str) -> None:
    async with McpClient(McpServer(name="fetch", command=(console_script("mcp-server-fetch"),))) as client:
        result = await client.call("fetch", {"url": web_page})
    assert result.is_error
    assert "--allow-private-ips" in result.text


async def test_filesystem_server_from_npm_writes_reads_and_refuses_outside(tmp_path: Path,
                                                                           filesystem_server_js: Path) -> None:
    root = (tmp_path / "files").resolve()
    root.mkdir()
    command = (shutil.which("node") or "node", str(filesystem_server_js), str(root))
    async with McpClient(McpServer(name="files", command=command)) as client:
        written = await client.call("write_file", {"path": str(root / "note.txt"), "content": "from ymera\n"})
        assert not written.is_error, written.text
        assert (await client.call("read_text_file", {"path": str(root / "note.txt")})).text == "from ymera\n"
        assert "[FILE] note.txt" in (await client.call("list_directory", {"path": str(root)})).text
        outside = await client.call("read_text_file", {"path": str(tmp_path / "server.py")})
        assert outside.is_error
        assert "Access denied" in outside.text
    assert (root / "note.txt").read_text() == "from ymera\n"
