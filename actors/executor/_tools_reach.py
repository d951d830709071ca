"""What the built-in tool kinds may reach here, from the deployment's settings (`config/_tools.py`):
the workspace, the HTTP rules, the command allowlist, the databases and the repositories.

A task names a database or a repository; one the deployment does not list is refused like any
other reach past a grant (a `ToolError` of kind `refused`, so a security event).
"""

from __future__ import annotations

import functools
from pathlib import Path

from config import Settings
from tools import ArgumentRules, CommandRules, Git, HttpRules, ToolError, Workspace

__all__ = ["command_rules", "database", "git", "http_rules", "workspace", "workspace_root"]


def workspace_root(settings: Settings) -> Path:
    """YMERA_WORKSPACE, else `<data dir>/workspace`; made on first use."""
    root = settings.tools.workspace or settings.data_dir / "workspace"
    root.mkdir(parents=True, exist_ok=True)
    return root


def workspace(settings: Settings) -> Workspace:
    return Workspace(workspace_root(settings))


def http_rules(settings: Settings) -> HttpRules:
    return HttpRules(allow_hosts=settings.tools.http_allow_hosts, grant_networks=settings.tools.http_grant_networks)


def command_rules(settings: Settings) -> CommandRules:
    """YMERA_COMMANDS as the allowlist: each program with its flags, operands kept inside the workspace."""
    return _command_rules(tuple(settings.tools.commands.items()))


@functools.lru_cache(maxsize=8)
def _command_rules(commands: tuple[tuple[str, tuple[str, ...]], ...]) -> CommandRules:
    return CommandRules({name: ArgumentRules(flags=frozenset(flags)) for name, flags in commands})


def database(settings: Settings, name: str) -> str:
    """The target YMERA_DATABASES names `name`."""
    databases = settings.tools.databases
    if name not in databases:
        raise ToolError("sql", "refused", f"database {name!r} is not one this deployment grants "
                                          f"(YMERA_DATABASES: {', '.join(sorted(databases)) or 'none'})")
    return databases[name]


def git(settings: Settings, name: str | None) -> Git:
    """The repository YMERA_GIT_REPOSITORIES names `name` (or its only one, when `name` is None)."""
    repositories = settings.tools.git_repositories
    known = ", ".join(sorted(repositories)) or "none"
    if name is None:
        if len(repositories) != 1:
            raise ToolError("git", "bad_request", f"name the repository (YMERA_GIT_REPOSITORIES: {known})")
        name = next(iter(repositories))
    if name not in repositories:
        raise ToolError("git", "refused", f"repository {name!r} is not one this deployment grants "
                                          f"(YMERA_GIT_REPOSITORIES: {known})")
    return Git(repositories[name])
