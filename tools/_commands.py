"""Running allowed system commands: an argv (never a shell string) whose program is on an
allowlist and whose arguments pass that program's rules, confined and limited as sandboxed code
is (`_sandbox.run_process`), in a given directory.

Programs are named, not given as paths, and resolved to absolute paths once, when the rules are
made: a later change of PATH or of the working directory cannot swap the program that runs.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import ToolError
from ._sandbox import DEFAULT_LIMITS, PATH, CodeResult, Confinement, Limits, run_process

__all__ = ["ArgumentRules", "CommandRules", "run_command"]

# What one argument must pass: a regular expression it must match whole, or a predicate.
Check = str | Callable[[str], bool]


@dataclass(frozen=True)
class ArgumentRules:
    """What a program (or one of its subcommands) accepts after its name.

    `subcommands`: when given, the first argument must name one, and the rest pass its rules;
    `flags`: options without a value (`-s`, `--oneline`); `options`: options with a value, given
    as `--name=value`, each value checked; `operands`: the check every other argument passes
    (None: any); `paths`: operands name files, which must stay inside the working directory;
    `prefix`: fixed arguments put right after the name, never taken from the caller (e.g. git's
    `-c core.hooksPath=/dev/null`)."""

    subcommands: Mapping[str, ArgumentRules] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    options: Mapping[str, Check] = field(default_factory=dict)
    operands: Check | None = None
    paths: bool = True
    prefix: tuple[str, ...] = ()


class CommandRules:
    """The programs a call may run, by name, each with its `ArgumentRules`."""

    def __init__(self, programs: Mapping[str, ArgumentRules], *, path: str = PATH) -> None:
        self.programs: dict[str, tuple[str, ArgumentRules]] = {}
        for name, rules in programs.items():
            found = shutil.which(name, path=path) if "/" not in name else None
            if found is None:
                raise ToolError("command", "bad_request", f"no program {name!r} on {path}")
            self.programs[name] = (os.path.realpath(found), rules)

    def argv(self, argv: Sequence[str], cwd: Path) -> list[str]:
        """`argv` as it will run (program resolved, prefixes in), or the `ToolError` refusing it."""
        if not argv:
            raise ToolError("command", "bad_request", "no program given")
        name, *arguments = argv
        if name not in self.programs:
            raise ToolError("command", "refused",
                            f"{name!r} is not an allowed program (allowed: {', '.join(sorted(self.programs))})")
        program, rules = self.programs[name]
        return [program, *_checked(name, arguments, rules, cwd.resolve())]


def _checked(name: str, arguments: list[str], rules: ArgumentRules, cwd: Path) -> list[str]:
    if rules.subcommands:
        if not arguments or arguments[0] not in rules.subcommands:
            given = repr(arguments[0]) if arguments else "nothing"
            allowed = ", ".join(sorted(rules.subcommands))
            raise ToolError("command", "refused", f"{name}: {given} is not an allowed subcommand (allowed: {allowed})")
        sub, *rest = arguments
        return [*rules.prefix, sub, *_checked(f"{name} {sub}", rest, rules.subcommands[sub], cwd)]
    checked = []
    operands_only = False
    for argument in arguments:
        if argument == "--" and not operands_only:
            operands_only = True
        elif argument.startswith("-") and not operands_only:
            option, has_value, value = argument.partition("=")
            if has_value and option in rules.options:
                if not _passes(value, rules.options[option]):
                    raise ToolError("command", "refused", f"{name}: value {value!r} of {option} is not allowed")
            elif has_value or argument not in rules.flags:
                raise ToolError("command", "refused", f"{name}: option {argument!r} is not allowed")
        else:
            if rules.operands is not None and not _passes(argument, rules.operands):
                raise ToolError("command", "refused", f"{name}: argument {argument!r} is not allowed")
            if rules.paths and not inside(cwd / argument, cwd):
                raise ToolError("command", "refused", f"{name}: path {argument!r} leaves {cwd}")
        checked.append(argument)
    return [*rules.prefix, *checked]


def _passes(value: str, check: Check) -> bool:
    return re.fullmatch(check, value) is not None if isinstance(check, str) else check(value)


def inside(path: Path, root: Path) -> bool:
    """Whether `path`, with `..` and symlinks resolved, stays inside `root`."""
    return path.resolve().is_relative_to(root.resolve())


async def run_command(argv: Sequence[str], *, allow: CommandRules, cwd: Path, limits: Limits = DEFAULT_LIMITS,
                      network: bool = False, env: Mapping[str, str] | None = None, stdin: str = "",
                      check: bool = False) -> CodeResult:
    """Run `argv` if `allow` lets it, in `cwd`, with a clean environment (a fixed PATH, HOME the
    working directory, plus `env`). As root, the filesystem is read-only except `cwd`."""
    resolved = allow.argv(argv, cwd)
    confinement = _confinement(cwd, network)
    clean = {"PATH": PATH, "HOME": str(cwd), "LANG": "C.UTF-8", **(env or {})}
    # The program runs from its resolved path under its own name, so its messages read as usual.
    result = await run_process("command", [argv[0], *resolved[1:]], executable=resolved[0], cwd=cwd, env=clean,
                               limits=limits, confinement=confinement, stdin=stdin)
    if check and result.exit_code != 0:
        last = result.stderr.strip().splitlines()[-1:] or ["no error output"]
        raise ToolError("command", "failed", f"{argv[0]} exited with {result.exit_code}: {last[0]}")
    return result


def _confinement(cwd: Path, network: bool) -> Confinement:
    """As root, a mount namespace where only `cwd` is writable; the child keeps our uid (a
    command works on files we own: a repository, a workspace)."""
    return Confinement(network=network, writable=cwd.resolve() if os.geteuid() == 0 else None)
