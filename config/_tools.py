"""What a deployment lets the built-in tools reach (docs/tools.md, "As task kinds"): the
workspace files tasks use, the hosts HTTP tasks may call, the programs command tasks may run,
the databases SQL tasks may query, the repositories git tasks may use, and the MCP servers mcp
tasks may call (`YMERA_MCP_SERVERS`, a file in the `mcpServers` shape MCP clients share).

A task names a database or a repository, never a path or a DSN: what exists on this machine
is the deployment's to grant, and a workflow cannot reach the event log's own SQLite file by
naming it. Everything defaults to nothing but the workspace, which lives in the data dir.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec

from events import YmeraError

__all__ = ["McpServerEntry", "ToolSettings", "ToolSettingsError", "load_tool_settings"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FLAG = re.compile(r"-[A-Za-z0-9][A-Za-z0-9_-]*")
_PROGRAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


class ToolSettingsError(YmeraError):
    """A tool setting that cannot be used, in one line naming the setting and the entry."""

    def __init__(self, name: str, entry: str, expected: str) -> None:
        super().__init__(f"setting {name}: {entry!r} is not {expected}")
        self.name = name


class McpServerEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One server of the YMERA_MCP_SERVERS file: a `command` with `args` (stdio; `env` added to a
    minimal environment, in `cwd`), or a `url` (streamable HTTP, sending `headers`); `type` says
    which where both could be meant. `timeout`: seconds one call may take (60)."""

    type: str | None = None  # "stdio", "http" or "streamable-http"
    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    timeout: float | None = None


class _McpFile(msgspec.Struct, frozen=True):
    mcpServers: dict[str, McpServerEntry]  # the name MCP clients' files use


class ToolSettings(msgspec.Struct, frozen=True):
    # YMERA_WORKSPACE: the root `files` tasks work in and `command` tasks run in; None: <data dir>/workspace.
    workspace: Path | None = None
    # YMERA_HTTP_ALLOW_HOSTS: the hosts `http` tasks may call (names, IPs, `*.suffix`); none by default.
    http_allow_hosts: tuple[str, ...] = ()
    # YMERA_HTTP_GRANT_NETWORKS: non-public networks (CIDR) they may reach too; metadata services never.
    http_grant_networks: tuple[str, ...] = ()
    # YMERA_COMMANDS: program -> the flags it may take (`ls -l -a, wc -l`); none by default.
    commands: dict[str, tuple[str, ...]] = {}
    # YMERA_DATABASES: name -> `sqlite:<path>` or a `postgresql://` DSN; none by default.
    databases: dict[str, str] = {}
    # YMERA_GIT_REPOSITORIES: name -> a repository's path; none by default.
    git_repositories: dict[str, Path] = {}
    # YMERA_MCP_SERVERS: a JSON or YAML file, {"mcpServers": {name: {command, args, env} or {url, headers}}}.
    mcp_servers: dict[str, McpServerEntry] = {}

    def __repr__(self) -> str:  # settings get logged: a DSN may hold a password, a server's env a key
        return (f"ToolSettings(workspace={self.workspace!r}, http_allow_hosts={self.http_allow_hosts!r}, "
                f"http_grant_networks={self.http_grant_networks!r}, commands={self.commands!r}, "
                f"databases={sorted(self.databases)!r}, git_repositories={self.git_repositories!r}, "
                f"mcp_servers={sorted(self.mcp_servers)!r})")


def load_tool_settings(values: Mapping[str, str]) -> ToolSettings:
    """The tool settings from the environment's `values` (see `ToolSettings` for the names)."""
    workspace = values.get("YMERA_WORKSPACE", "")
    return ToolSettings(
        workspace=Path(workspace) if workspace else None,
        http_allow_hosts=_items(values.get("YMERA_HTTP_ALLOW_HOSTS", "")),
        http_grant_networks=_items(values.get("YMERA_HTTP_GRANT_NETWORKS", "")),
        commands=_commands(values.get("YMERA_COMMANDS", "")),
        databases=_named("YMERA_DATABASES", values.get("YMERA_DATABASES", ""), _database),
        git_repositories={name: Path(path) for name, path in
                          _named("YMERA_GIT_REPOSITORIES", values.get("YMERA_GIT_REPOSITORIES", ""), _path).items()},
        mcp_servers=_mcp_servers(values.get("YMERA_MCP_SERVERS", "")),
    )


def _mcp_servers(raw: str) -> dict[str, McpServerEntry]:
    """The servers of the file `raw` names (none if unset), each with a plain name and a way to reach it."""
    if not raw:
        return {}
    path = Path(raw)
    where = f"setting YMERA_MCP_SERVERS: {path}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise YmeraError(f"{where}: cannot read it: {exc.strerror}") from None
    decode = msgspec.yaml.decode if path.suffix in (".yaml", ".yml") else msgspec.json.decode
    try:
        servers = decode(data, type=_McpFile).mcpServers
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise YmeraError(f"{where}: {str(exc).splitlines()[0]} (expected {{\"mcpServers\": {{name: {{\"command\": …, "
                         f"\"args\": […]}} or {{\"url\": …}}}}}})") from None
    for name, entry in servers.items():
        if _NAME.fullmatch(name) is None:
            raise YmeraError(f"{where}: server name {name!r} is not a plain name (letters, digits, _ . -)")
        kind = entry.type or ("http" if entry.url else "stdio")
        if kind not in ("stdio", "http", "streamable-http"):
            raise YmeraError(f"{where}: server {name!r}: type {kind!r} is not stdio, http or streamable-http")
        if (kind == "stdio") != (entry.command is not None) or (kind != "stdio") != (entry.url is not None):
            raise YmeraError(f"{where}: server {name!r} needs a command (stdio) or a url (streamable HTTP), "
                             "one of the two")
        if entry.timeout is not None and not entry.timeout > 0:
            raise YmeraError(f"{where}: server {name!r}: timeout must be above 0 seconds")
    return servers


def _items(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _commands(raw: str) -> dict[str, tuple[str, ...]]:
    """`ls -l -a, wc -l, echo`: each program by name (found on the sandbox's PATH), then its flags."""
    out: dict[str, tuple[str, ...]] = {}
    for entry in _items(raw):
        program, *flags = entry.split()
        if _PROGRAM.fullmatch(program) is None:
            raise ToolSettingsError("YMERA_COMMANDS", entry, "a program's name (no path) followed by its flags")
        for flag in flags:
            if _FLAG.fullmatch(flag) is None:
                raise ToolSettingsError("YMERA_COMMANDS", entry, f"a program and its flags: {flag!r} is no flag "
                                                                 "(options with values are not supported)")
        out[program] = tuple(flags)
    return out


def _named(setting: str, raw: str, check: Callable[[str], str | None]) -> dict[str, str]:
    """`name=value, name2=value2` (a value may hold '=', not ',')."""
    out: dict[str, str] = {}
    for entry in _items(raw):
        name, sep, value = entry.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or _NAME.fullmatch(name) is None or not value:
            raise ToolSettingsError(setting, _shown(entry), "name=value (a name of letters, digits, _ . -)")
        if (problem := check(value)) is not None:
            raise ToolSettingsError(setting, _shown(entry), problem)
        out[name] = value
    return out


def _database(value: str) -> str | None:
    if value.startswith("sqlite:") and len(value) > len("sqlite:"):
        return None
    if value.startswith(("postgresql://", "postgres://")):
        return None
    return "name=sqlite:<path> or name=postgresql://…"


def _path(value: str) -> str | None:
    return None if Path(value).is_absolute() else "name=<absolute path of a repository>"


def _shown(entry: str) -> str:
    """An entry as an error shows it: a DSN's password hidden."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", entry)
