"""How one MCP server is reached and bounded: `McpServer`, as declared in config. Its secrets (the
values of `env` and `headers`) never appear in its repr or in an error (`redact`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from ._errors import ToolError

__all__ = ["McpServer", "redact"]

# A server's name becomes part of task kinds and messages: a plain word.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SHORTEST_SECRET = 4  # shorter values ("1", "on") are everywhere in text; hiding them hides nothing


class McpServer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One MCP server: `stdio` (a `command` run with `env` added to a minimal environment, in
    `cwd`) or `http` (streamable HTTP at `url`, sending `headers`).

    Limits: `call_timeout` (seconds for one tools/call, unless the call gives its own),
    `start_timeout` (spawning or connecting and the handshake), `max_output` (bytes of one
    result's content). Supervision: a server that fails to start is tried again after
    `restart_backoff` seconds, doubling up to `max_backoff`; after `max_start_failures` failures
    in a row it is not started again for `cooldown` seconds, and calls are refused meanwhile."""

    name: str
    transport: Literal["stdio", "http"] = "stdio"
    command: tuple[str, ...] = ()
    env: dict[str, str] = {}
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    call_timeout: float = 60.0
    start_timeout: float = 30.0
    max_output: int = 1 << 20
    max_start_failures: int = 3
    restart_backoff: float = 0.5
    max_backoff: float = 10.0
    cooldown: float = 60.0

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "command", tuple(self.command))
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise self._bad(f"server name {self.name!r} is not a plain name (letters, digits, '_', '-'; "
                            "64 at most)")
        if self.transport == "stdio":
            if not self.command or not all(isinstance(a, str) and a for a in self.command):
                raise self._bad(f"server {self.name!r} (stdio) needs a command: a list of non-empty strings")
            if self.url is not None or self.headers:
                raise self._bad(f"server {self.name!r} (stdio) takes no url or headers")
        elif self.transport == "http":
            if not self.url or not self.url.startswith(("http://", "https://")):
                raise self._bad(f"server {self.name!r} (http) needs an http:// or https:// url")
            if self.command or self.env or self.cwd is not None:
                raise self._bad(f"server {self.name!r} (http) takes no command, env or cwd")
        else:
            raise self._bad(f"server {self.name!r}: transport {self.transport!r} is not 'stdio' or 'http'")
        for field in ("call_timeout", "start_timeout", "restart_backoff", "max_backoff", "cooldown"):
            if not getattr(self, field) > 0:
                raise self._bad(f"server {self.name!r}: {field} must be above 0")
        if self.max_output < 1 or self.max_start_failures < 1:
            raise self._bad(f"server {self.name!r}: max_output and max_start_failures must be at least 1")

    def _bad(self, reason: str) -> ToolError:
        return ToolError("mcp", "bad_request", reason)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values to keep out of anything shown: the env's and the headers'."""
        return tuple(v for v in (*self.env.values(), *self.headers.values()) if len(v) >= _SHORTEST_SECRET)

    def __rich_repr__(self) -> list[tuple[str, Any]]:  # rich's pretty printer reads this, not __repr__
        shown: list[tuple[str, Any]] = []
        for field in self.__struct_fields__:
            value = getattr(self, field)
            if field in ("env", "headers"):
                value = dict.fromkeys(value, "***")
            elif field == "url" and value is not None:
                value = redact(value, self.secrets)
            shown.append((field, value))
        return shown

    def __repr__(self) -> str:  # configs get logged: names of the env and headers, never their values
        where = (f"command={list(self.command)!r}" if self.transport == "stdio"
                 else f"url={redact(self.url or '', self.secrets)!r}")
        hidden = ", ".join(f"{k}=***" for k in (*self.env, *self.headers))
        return f"McpServer(name={self.name!r}, transport={self.transport!r}, {where}" + (
            f", {hidden})" if hidden else ")")


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret in it replaced by `***` (a server may print its own token)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
