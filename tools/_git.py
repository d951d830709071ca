"""Git in one granted repository: status, diff, log and commit, run through the command runner
with git's own allowlist, so a call can name paths and a message but never a flag of its own.

A repository's content may come from the agent itself (files it wrote), so nothing in it may run
code: hooks are off (`core.hooksPath=/dev/null`), as are fsmonitor, pagers, external diff and
textconv drivers; system and global configuration are not read. Clean/smudge filters a
repository's own `.git/config` declares are still honoured by git: grant only repositories whose
`.git` the agent cannot write (the file tools' workspace should exclude it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ._commands import ArgumentRules, CommandRules, inside, run_command
from ._errors import ToolError
from ._sandbox import DEFAULT_LIMITS, CodeResult, Limits

__all__ = ["Git"]

_LOG_FORMAT = "%H%x09%an <%ae>%x09%ad%x09%s"
_AUTHOR = re.compile(r"([^<>\n]+?) <([^<>\s]+@[^<>\s]+)>")
_NO_DRIVERS = ("--no-ext-diff", "--no-textconv")

# The only git a call can reach: these subcommands with these flags, and config set here alone.
_RULES = ArgumentRules(
    prefix=("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.pager=cat", "--no-pager"),
    subcommands={
        "status": ArgumentRules(options={"--porcelain": "v1"}),
        "diff": ArgumentRules(prefix=_NO_DRIVERS, flags=frozenset({"--cached", "--quiet"})),
        "log": ArgumentRules(prefix=_NO_DRIVERS, options={"--max-count": r"[1-9][0-9]{0,5}",
                                                          "--format": re.escape(_LOG_FORMAT)}),
        "add": ArgumentRules(),
        "commit": ArgumentRules(options={"--message": r"(?s).+"}),
        "rev-parse": ArgumentRules(operands="HEAD", paths=False),
    },
)
_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0"}


class Git:
    """The git tool for the repository at `root`, fixed here: every path a call names must stay
    inside it."""

    def __init__(self, root: Path, *, limits: Limits = DEFAULT_LIMITS) -> None:
        if not (root / ".git").exists():
            raise ToolError("git", "refused", f"{root} is not a git repository")
        self.root = root.resolve()
        self.limits = limits
        self._allow = CommandRules({"git": _RULES})

    async def status(self) -> str:
        """`git status --porcelain=v1`: one line per changed path."""
        return await self._git("status", "--porcelain=v1")

    async def diff(self, paths: Sequence[str] = (), *, staged: bool = False) -> str:
        """The unstaged changes (staged ones with `staged=True`), of `paths` or of everything."""
        return await self._git("diff", *(["--cached"] if staged else []), "--", *self._inside(paths))

    async def log(self, *, limit: int = 20, paths: Sequence[str] = ()) -> str:
        """The last `limit` commits (of `paths`), one a line: hash, author, date, subject, tab-separated."""
        return await self._git("log", f"--max-count={limit}", f"--format={_LOG_FORMAT}", "--",
                               *self._inside(paths))

    async def commit(self, paths: Sequence[str], *, message: str, author: str) -> str:
        """Add `paths` and commit them alone, as `author` ("Name <email>"); the new commit's hash."""
        match = _AUTHOR.fullmatch(author)
        if match is None:
            raise ToolError("git", "bad_request", f"author {author!r} is not 'Name <email>'")
        if not message.strip():
            raise ToolError("git", "bad_request", "a commit needs a message")
        if not paths:
            raise ToolError("git", "bad_request", "a commit needs the paths to commit")
        name, email = match.groups()
        who = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
               "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        inside_paths = self._inside(paths)
        await self._git("add", "--", *inside_paths)
        staged = await self._run("diff", "--cached", "--quiet", "--", *inside_paths)
        if staged.exit_code == 0:
            raise ToolError("git", "failed", f"nothing to commit in {', '.join(paths)}")
        await self._git("commit", f"--message={message}", "--", *inside_paths, env=who)
        return (await self._git("rev-parse", "HEAD")).strip()

    def _inside(self, paths: Sequence[str]) -> list[str]:
        for path in paths:
            if not inside(self.root / path, self.root):
                raise ToolError("git", "refused", f"path {path!r} is outside the repository {self.root}")
        return list(paths)

    async def _git(self, *arguments: str, env: dict[str, str] | None = None) -> str:
        result = await self._run(*arguments, env=env)
        if result.exit_code != 0:
            lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
            raise ToolError("git", "failed", f"git {arguments[0]} exited with {result.exit_code}: "
                                             f"{lines[-1] if lines else 'no error output'}")
        return result.stdout

    async def _run(self, *arguments: str, env: dict[str, str] | None = None) -> CodeResult:
        try:
            return await run_command(["git", *arguments], allow=self._allow, cwd=self.root, limits=self.limits,
                                     env={**_ENV, **(env or {})})
        except ToolError as exc:
            raise ToolError("git", exc.kind, exc.reason) from exc
