"""The stdio transport of an MCP server we run: its process, spoken to in JSON lines.

The SDK has one (`mcp.client.stdio`), but it hides the process: a supervisor needs its pid,
its exit code and the last lines it wrote to stderr, to say why a call failed, and needs to
notice the death itself even when a grandchild keeps the pipes open. So this transport owns
the process and hands the SDK's session the two streams it expects; the session, the protocol
and everything above are the SDK's. When the process dies (or breaks the protocol) `lost` is
set with the reason, then the read stream closes, which fails every call in flight at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from types import TracebackType
from typing import Any

import anyio
import mcp_types
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage

from ._errors import ToolError, ToolErrorKind
from ._mcp_config import McpServer, redact

__all__ = ["StdioTransport"]

_CHUNK = 1 << 16
_POLL = 0.02  # seconds between looks at the exit status (asyncio's wait() also waits for the pipes)
_WATCH = 0.2  # the exit watcher's pace: it only matters when stdout stays open after a death
_GRACE = 2.0  # for the server to exit once its stdin is closed, and again after SIGTERM
_STDERR_LINES = 20
_STDERR_LINE_CHARS = 400


class StdioTransport:
    """One run of a stdio server: an async context manager giving (read stream, write stream).

    Entering spawns the process; leaving closes its stdin, then TERM, then KILL, to its whole
    process group, every wait bounded."""

    def __init__(self, server: McpServer) -> None:
        self.server = server
        self.process: asyncio.subprocess.Process | None = None
        self.lost = asyncio.Event()
        self.lost_kind: ToolErrorKind = "failed"
        self.lost_reason = ""
        self.died = False  # lost on its own, not stopped by us
        self._closing = False
        # A server message may be this big: a result of max_output bytes of text, escaped as JSON.
        self.max_line = 6 * server.max_output + (1 << 16)
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._tasks: list[asyncio.Task[None]] = []
        self._stderr_done = asyncio.Event()
        send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](16)
        self._to_session, self._from_server = send, receive
        out_send, out_receive = anyio.create_memory_object_stream[SessionMessage](16)
        self._to_server, self._from_session = out_send, out_receive

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def last_stderr(self) -> str | None:
        return self._stderr[-1] if self._stderr else None

    async def __aenter__(self) -> tuple[Any, Any]:
        try:
            self.process = await self._spawn()
        except BaseException:
            self._close_streams()
            raise
        stdin, stdout, stderr = self.process.stdin, self.process.stdout, self.process.stderr
        assert stdin is not None
        assert stdout is not None
        assert stderr is not None
        for job in (self._read_stdout(stdout), self._write_stdin(stdin), self._read_stderr(stderr), self._watch_exit()):
            self._tasks.append(asyncio.create_task(job))
        return self._from_server, self._to_server

    def _check_cwd(self) -> None:  # a stat: quick enough for the loop
        name, cwd = self.server.name, self.server.cwd
        if cwd is not None and not os.path.isdir(cwd):
            raise ToolError(f"mcp:{name}", "failed", f"could not start server {name!r}: its working directory "
                                                    f"{cwd!r} is not a directory")

    async def _spawn(self) -> asyncio.subprocess.Process:
        name, argv = self.server.name, self.server.command
        self._check_cwd()
        try:
            return await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=get_default_environment() | self.server.env,
                cwd=self.server.cwd, start_new_session=True)
        except FileNotFoundError:
            raise ToolError(f"mcp:{name}", "failed",
                            f"could not start server {name!r}: command {argv[0]!r} not found") from None
        except PermissionError:
            raise ToolError(f"mcp:{name}", "failed",
                            f"could not start server {name!r}: {argv[0]!r} is not executable") from None
        except OSError as exc:
            raise ToolError(f"mcp:{name}", "failed",
                            f"could not start server {name!r}: {argv[0]!r}: {exc.strerror or exc}") from None

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        process = self.process
        assert process is not None
        self._closing = True
        try:
            if process.stdin is not None:
                process.stdin.close()
            if not await self._exited(_GRACE):
                self._signal(signal.SIGTERM)
                if not await self._exited(_GRACE):
                    self._signal(signal.SIGKILL)
                    await self._exited(_GRACE)
            self._signal(signal.SIGKILL)  # what the server left behind in its group
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._close_streams()
            # The pipes are ours to close: a server stopped mid-flood, or a grandchild holding its
            # stdout, would keep them open. asyncio has no public way; the SDK's transport does the same.
            transport = getattr(process, "_transport", None)
            if transport is not None:
                transport.close()

    def _close_streams(self) -> None:
        for stream in (self._to_session, self._from_server, self._to_server, self._from_session):
            stream.close()

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    async def _exited(self, within: float, poll: float = _POLL) -> bool:
        assert self.process is not None
        deadline = asyncio.get_running_loop().time() + within
        while self.process.returncode is None:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(poll)
        return True

    async def _lose(self, kind: ToolErrorKind, reason: str) -> None:
        """Record why the server is gone (the first reason wins), then fail the calls in flight."""
        if not self.lost.is_set():
            self.lost_kind, self.lost_reason, self.died = kind, reason, not self._closing
            self.lost.set()
        await self._to_session.aclose()  # the session sees the end: every pending request fails
        if self.process is not None and self.process.returncode is None:
            self._signal(signal.SIGKILL)

    async def _read_stdout(self, stdout: asyncio.StreamReader) -> None:
        pending: list[bytes] = []  # the start of a line still coming, in pieces (no quadratic joins)
        size = 0
        while chunk := await stdout.read(_CHUNK):
            *lines, rest = chunk.split(b"\n")
            if lines:
                lines[0] = b"".join([*pending, lines[0]])
                pending, size = [], 0
            pending.append(rest)
            size += len(rest)
            if size > self.max_line or any(len(line) > self.max_line for line in lines):
                await self._lose("limit", f"server {self.server.name!r} sent a message over {self.max_line} "
                                          "bytes (its max_output allows no more); it was stopped")
                return
            for line in lines:
                if not line.strip():
                    continue
                try:
                    item: SessionMessage | Exception = SessionMessage(
                        mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
                except ValueError as exc:  # a stray print: the session ignores it, as the SDK's transport does
                    item = exc
                try:
                    await self._to_session.send(item)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return
        # The server closed its stdout: it is exiting, or no longer speaks. Give it a moment to
        # show its exit code and finish its stderr, so the reason says what happened.
        await self._exited(_GRACE / 2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stderr_done.wait(), _GRACE / 4)
        await self._lose("failed", self._death())

    def _death(self) -> str:
        assert self.process is not None
        code, name = self.process.returncode, self.server.name
        if code is None:
            what = f"server {name!r} closed its stdout"
        elif code < 0:
            try:
                what = f"server {name!r} was killed by {signal.Signals(-code).name}"
            except ValueError:
                what = f"server {name!r} was killed by signal {-code}"
        else:
            what = f"server {name!r} exited with code {code}"
        last = self.last_stderr()
        return what + (f"; its last stderr line: {last!r}" if last else "; it wrote nothing to stderr")

    async def _watch_exit(self) -> None:
        # A grandchild holding stdout open would keep the reader waiting after the server died.
        await self._exited(float("inf"), poll=_WATCH)
        await asyncio.sleep(_GRACE / 2)  # the reader usually sees EOF first and says more
        await self._lose("failed", self._death())

    async def _write_stdin(self, stdin: asyncio.StreamWriter) -> None:
        try:
            async for message in self._from_session:
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                stdin.write(data.encode() + b"\n")
                await stdin.drain()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, ConnectionError, OSError):
            pass  # the server is gone: the reader or the exit watcher says so

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        try:
            buffer = b""
            while chunk := await stderr.read(_CHUNK):
                *lines, buffer = (buffer + chunk).split(b"\n")
                buffer = buffer[-_STDERR_LINE_CHARS * 4:]
                self._keep(lines)
            self._keep([buffer])
        finally:
            self._stderr_done.set()

    def _keep(self, lines: list[bytes]) -> None:
        for raw in lines:
            line = raw.decode(errors="replace").strip()
            if line:
                line = redact(line, self.server.secrets)
                self._stderr.append(line if len(line) <= _STDERR_LINE_CHARS else line[:_STDERR_LINE_CHARS] + "…")
