"""The MCP client: one supervised session with one MCP server, shared by every task that calls it.

`McpClient(server)` starts the server on first use (stdio: spawn it and shake hands; http:
connect), lists its tools, and multiplexes calls from any number of asyncio tasks over the one
session (the SDK's `Client`, requests matched by id). Supervision: when a stdio server dies,
the calls in flight fail at once with a `ToolError` saying how it died (exit code or signal,
its last stderr line) and the next call starts it again; failed starts are retried after a
doubling backoff, and after `max_start_failures` in a row calls are refused for `cooldown`
seconds. The SDK's errors (`MCPError`, timeouts, pydantic's) become `ToolError`s here, in
`_failure`, the one boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import httpx2
import mcp_types
import pydantic
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from ._errors import ToolError
from ._mcp_config import McpServer, redact
from ._mcp_result import ArgumentCheck, McpResult, McpTool, argument_problem, content_size, result_of, tool_of
from ._mcp_stdio import StdioTransport

__all__ = ["McpClient"]

_CLIENT_INFO = mcp_types.Implementation(name="ymera", version="0.1")
_MAX_PAGES = 100  # of a tool listing
_CLOSE_WAIT = 10.0  # for a session to wind down (the transport's own waits are bounded below this)


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside the exception groups anyio's task groups wrap errors in."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class _Connection:
    """One session with one run of the server. Its own task enters and leaves the SDK's client
    (anyio's cancel scopes must be left by the task that entered them); any task sends requests."""

    def __init__(self, server: McpServer) -> None:
        self.server = server
        self.stdio = StdioTransport(server) if server.transport == "stdio" else None
        self.client: Client | None = None
        self.tools: dict[str, McpTool] | None = None
        self.checks: dict[str, ArgumentCheck] = {}
        self.listing = asyncio.Lock()
        self.broken = asyncio.Event()  # the session can take no more requests
        self._owner: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        return not self.broken.is_set() and not (self.stdio is not None and self.stdio.lost.is_set())

    async def open(self) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._owner = asyncio.create_task(self._own(ready))
        name = self.server.name
        try:
            await asyncio.wait_for(asyncio.shield(ready), self.server.start_timeout)
        except TimeoutError:
            await self.close()
            raise ToolError(f"mcp:{name}", "limit", f"server {name!r} did not finish starting within "
                                                    f"{self.server.start_timeout:g} s") from None
        except BaseException:
            await self.close()
            raise

    async def _own(self, ready: asyncio.Future[None]) -> None:
        try:
            async with AsyncExitStack() as stack:
                if self.stdio is not None:
                    transport: Any = self.stdio
                else:
                    http = await stack.enter_async_context(httpx2.AsyncClient(
                        headers=self.server.headers, trust_env=False,
                        timeout=httpx2.Timeout(self.server.start_timeout, read=None)))
                    transport = streamable_http_client(self.server.url or "", http_client=http,
                                                       max_sse_event_size=6 * self.server.max_output + (1 << 16))
                self.client = await stack.enter_async_context(Client(
                    transport, cache=None, client_info=_CLIENT_INFO, read_timeout_seconds=self.server.start_timeout))
                ready.set_result(None)
                ends = [asyncio.ensure_future(self.broken.wait())]
                if self.stdio is not None:
                    ends.append(asyncio.ensure_future(self.stdio.lost.wait()))
                try:
                    await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for end in ends:
                        end.cancel()
        except Exception as exc:  # the start failed (after it, nothing above raises but the shutdown)
            if not ready.done():
                ready.set_exception(self._start_error(_leaf(exc)))
        finally:
            self.broken.set()

    def _start_error(self, exc: BaseException) -> ToolError:
        name, label = self.server.name, f"mcp:{self.server.name}"
        if isinstance(exc, ToolError):
            return exc
        # A server that died during the handshake: how it died says more than the SDK's error.
        if self.stdio is not None and self.stdio.died:
            return ToolError(label, self.stdio.lost_kind, f"could not start server {name!r}: "
                                                         f"{self.stdio.lost_reason}")
        if isinstance(exc, httpx2.HTTPError | OSError):
            where = redact(self.server.url or "", self.server.secrets)
            return ToolError(label, "failed", f"could not connect to server {name!r} at {where}: "
                                              f"{redact(str(exc) or type(exc).__name__, self.server.secrets)}")
        what = exc.message if isinstance(exc, MCPError) else f"{type(exc).__name__}: {exc}"
        return ToolError(label, "failed", f"could not start server {name!r}: "
                                          f"{redact(what, self.server.secrets)}")

    async def close(self) -> None:
        self.broken.set()
        if self._owner is None:
            return
        # asyncio.wait, not await: the owner's end (a failed start, a cancel) was reported already.
        _, running = await asyncio.wait({self._owner}, timeout=_CLOSE_WAIT)
        if running:
            self._owner.cancel()
            await asyncio.wait({self._owner})

    async def loss(self) -> str:
        """Why the session ended, once the transport knows (a dead stdio server: how it died)."""
        if self.stdio is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stdio.lost.wait(), 3.0)
            if self.stdio.lost.is_set():
                return self.stdio.lost_reason
        self.broken.set()
        return f"server {self.server.name!r} closed the connection"


class McpClient:
    """The supervised client of one MCP server; safe to share between asyncio tasks."""

    def __init__(self, server: McpServer) -> None:
        self.server = server
        self.starts = 0  # runs of the server started so far (restarts are starts after the first)
        self._conn: _Connection | None = None
        self._starting: asyncio.Task[_Connection] | None = None
        self._failures = 0  # failed starts in a row
        self._last_failure = ""
        self._next_try = 0.0
        self._refused_until = 0.0
        self._closed = False

    def __repr__(self) -> str:
        return f"McpClient({self.server!r}, starts={self.starts})"

    @property
    def pid(self) -> int | None:
        """The process id of the running stdio server, if one runs."""
        conn = self._conn
        return conn.stdio.pid if conn is not None and conn.stdio is not None and conn.usable else None

    async def __aenter__(self) -> McpClient:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the server now rather than at the first call (a bad config shows at once)."""
        await self._connection()

    async def aclose(self) -> None:
        """Stop the server; calls in flight fail. Safe to call twice; the client cannot reopen."""
        self._closed = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, ToolError):
                await self._starting
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def list_tools(self) -> tuple[McpTool, ...]:
        """The server's tools, as it listed them when it started (or last re-listed)."""
        conn = await self._connection()
        return tuple((await self._listing(conn, f"mcp:{self.server.name}")).values())

    async def call(self, tool: str, arguments: dict[str, Any] | None = None, *,
                   timeout: float | None = None) -> McpResult:
        """Call `tool` with `arguments`; `timeout` seconds (default: the server's `call_timeout`).

        The arguments are checked against the tool's input schema before anything is sent. A
        result the tool marks as an error is returned (`is_error`); a call that gets no result
        raises `ToolError`: `bad_request` (no such tool, arguments that do not fit), `limit`
        (timeout, output over `max_output`), `failed` (the server died, answered with an error,
        or could not start), `refused` (the server keeps failing to start)."""
        name, label = self.server.name, f"mcp:{self.server.name}.{tool}"
        arguments = dict(arguments or {})
        limit = self.server.call_timeout if timeout is None else timeout
        if not limit > 0:
            raise ToolError(label, "bad_request", f"timeout must be above 0 seconds, not {limit!r}")
        conn = await self._connection()
        spec = await self._tool(conn, tool, label)
        if problem := argument_problem(conn.checks, spec, arguments):
            raise ToolError(label, "bad_request", f"the arguments do not match the input schema of {tool!r} "
                                                  f"on server {name!r}, {problem}")
        assert conn.client is not None
        try:
            async with asyncio.timeout(limit + 1.0):  # the SDK's own timeout (below) fires first
                raw = await conn.client.call_tool(tool, arguments, read_timeout_seconds=limit)
        except Exception as exc:
            raise await self._failure(conn, label, _leaf(exc), f"the call of {tool!r}", limit) from None
        result = result_of(raw)
        if (size := content_size(result)) > self.server.max_output:
            raise ToolError(label, "limit", f"server {name!r} answered {tool!r} with {size} bytes, over the "
                                            f"limit of {self.server.max_output}")
        return result

    async def _tool(self, conn: _Connection, tool: str, label: str) -> McpTool:
        tools = await self._listing(conn, label)
        if tool not in tools:  # the server may have added it since it was listed
            tools = await self._listing(conn, label, refresh=True)
        if tool not in tools:
            raise ToolError(label, "bad_request", f"server {self.server.name!r} has no tool {tool!r}; its tools: "
                                                  f"{', '.join(sorted(tools)) or 'none'}")
        return tools[tool]

    async def _listing(self, conn: _Connection, label: str, refresh: bool = False) -> dict[str, McpTool]:
        if conn.tools is not None and not refresh:
            return conn.tools
        seen = conn.tools
        async with conn.listing:  # the first calls of a fresh session wait for one listing
            if conn.tools is not None and conn.tools is not seen:
                return conn.tools  # listed (again) while this task waited
            return await self._list(conn, label)

    async def _list(self, conn: _Connection, label: str) -> dict[str, McpTool]:
        assert conn.client is not None
        tools: dict[str, McpTool] = {}
        cursor: str | None = None
        try:
            async with asyncio.timeout(self.server.call_timeout):
                for _ in range(_MAX_PAGES):
                    page = await conn.client.list_tools(cursor=cursor)
                    tools.update((t.name, tool_of(t)) for t in page.tools)
                    if (cursor := page.next_cursor) is None:
                        break
        except Exception as exc:
            raise await self._failure(conn, label, _leaf(exc), "listing the tools", self.server.call_timeout) from None
        conn.tools, conn.checks = tools, {}
        return tools

    async def _failure(self, conn: _Connection, label: str, exc: BaseException, what: str,
                       limit: float) -> ToolError:
        """The one place the SDK's errors become ours."""
        name, secrets = self.server.name, self.server.secrets
        if isinstance(exc, ToolError):
            return exc
        if isinstance(exc, TimeoutError) or (isinstance(exc, MCPError) and exc.code == mcp_types.REQUEST_TIMEOUT):
            return ToolError(label, "limit", f"server {name!r} did not answer {what} within {limit:g} s")
        if self._closed:
            return ToolError(label, "failed", f"{what} failed: the client of server {name!r} was closed")
        if not conn.usable or (isinstance(exc, MCPError) and exc.code == mcp_types.CONNECTION_CLOSED):
            reason = await conn.loss()
            kind = conn.stdio.lost_kind if conn.stdio is not None and conn.stdio.lost.is_set() else "failed"
            again = "started again" if conn.stdio is not None else "connected to again"
            return ToolError(label, kind, f"{what} failed: {reason}; the server is {again} at the next call")
        if isinstance(exc, MCPError):
            kind = "bad_request" if exc.code == mcp_types.INVALID_PARAMS else "failed"
            return ToolError(label, kind, f"server {name!r} answered {what} with error {exc.code}: "
                                          f"{redact(exc.message, secrets)}")
        if isinstance(exc, pydantic.ValidationError):
            return ToolError(label, "failed", f"server {name!r} answered {what} with a malformed result "
                                              f"({exc.error_count()} problems)")
        if isinstance(exc, httpx2.HTTPError):
            conn.broken.set()
            return ToolError(label, "failed", f"{what} failed: server {name!r}: "
                                              f"{redact(str(exc) or type(exc).__name__, secrets)}")
        # RuntimeError: a structured result that does not match the tool's output schema, and the like.
        return ToolError(label, "failed", f"{what} failed: server {name!r}: "
                                          f"{redact(f'{type(exc).__name__}: {exc}', secrets)}")

    async def _connection(self) -> _Connection:
        if self._closed:
            raise ToolError(f"mcp:{self.server.name}", "refused",
                            f"the client of server {self.server.name!r} is closed")
        conn = self._conn
        if conn is not None and conn.usable:
            return conn
        if self._starting is None or self._starting.done():
            self._starting = asyncio.create_task(self._restart())
            self._starting.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(self._starting)  # one start for every caller waiting on it

    async def _restart(self) -> _Connection:
        name, loop = self.server.name, asyncio.get_running_loop()
        old, self._conn = self._conn, None
        if old is not None:
            await old.close()
        if self._failures >= self.server.max_start_failures:
            if (wait := self._refused_until - loop.time()) > 0:
                raise ToolError(f"mcp:{name}", "refused", f"server {name!r} failed to start {self._failures} "
                                f"times in a row (last: {self._last_failure}); not trying again for {wait:.0f} s")
            self._failures -= 1  # the cool-down is over: one more try
        if self._failures:
            await asyncio.sleep(max(0.0, self._next_try - loop.time()))
        conn = _Connection(self.server)
        try:
            await conn.open()
        except ToolError as exc:
            self._failures += 1
            self._last_failure = exc.reason
            backoff = self.server.restart_backoff * 2 ** (self._failures - 1)
            self._next_try = loop.time() + min(backoff, self.server.max_backoff)
            if self._failures >= self.server.max_start_failures:
                self._refused_until = loop.time() + self.server.cooldown
            raise
        self._failures = 0
        self.starts += 1
        self._conn = conn
        return conn
