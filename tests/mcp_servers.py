"""What the MCP tests share: a small server of our own (`SERVER_SOURCE`, the SDK's MCPServer
with tools that misbehave on request), the dev extra's reference servers (`console_script`),
and a git repository to point mcp-server-git at."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent  # the console scripts of the dev extra's servers

# Our own server: the SDK's MCPServer with tools that misbehave on request.
SERVER_SOURCE = '''
import os, sys
from pathlib import Path

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("ymera-test", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return text


@server.tool()
def total(numbers: list[int]) -> int:
    """Add the numbers."""
    return sum(numbers)


@server.tool()
async def sleep(seconds: float, marker: str = "") -> str:
    """Sleep, having said so on stderr and, when named, in the marker file."""
    print(f"sleeping {seconds:g} s", file=sys.stderr, flush=True)
    if marker:
        Path(marker).write_text(str(os.getpid()))
    await anyio.sleep(seconds)
    return "awake"


@server.tool()
def big(size: int) -> str:
    """Answer `size` characters."""
    return "x" * size


@server.tool()
def getenv(name: str) -> str:
    """An environment variable of the server, or '' when it is not set."""
    return os.environ.get(name, "")


if sys.argv[1:2] == ["http"]:
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
else:
    server.run()
'''


def console_script(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is not installed: pip install -e '.[dev]'"
    return str(path)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def new_repo(root: Path) -> Path:
    """A git repository at `root` with one file not yet added, a.txt, and an author."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    git(root, "config", "user.email", "ada@example.com")
    git(root, "config", "user.name", "Ada")
    (root / "a.txt").write_text("one\n")
    return root
