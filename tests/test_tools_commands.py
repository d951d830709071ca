"""Allowed commands against real programs: what the rules let through runs confined; everything
else is refused before anything runs, with the reason a user reads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tools import ArgumentRules, CommandRules, Limits, ToolError, run_command

ALLOWED = "(allowed: echo, env, git, ls, sleep, yes)"
RULES = CommandRules({
    "ls": ArgumentRules(flags=frozenset({"-1", "-a"})),
    "echo": ArgumentRules(operands=r"[a-z ]+", paths=False),
    "sleep": ArgumentRules(operands=str.isdigit, paths=False),
    "env": ArgumentRules(),
    "yes": ArgumentRules(paths=False),
    "git": ArgumentRules(subcommands={"status": ArgumentRules(options={"--porcelain": "v1|v2"})}),
})


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "outside").symlink_to("/etc")
    return tmp_path.resolve()


async def test_an_allowed_command_runs_in_its_directory(cwd: Path) -> None:
    result = await run_command(["ls", "-1"], allow=RULES, cwd=cwd)
    assert (result.exit_code, result.stdout) == (0, "a.txt\noutside\n")
    result = await run_command(["ls", "-1", "--", "a.txt"], allow=RULES, cwd=cwd)
    assert result.stdout == "a.txt\n"


async def test_a_command_sees_a_clean_environment(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YMERA_SIGNING_KEY", "parent-secret")
    result = await run_command(["env"], allow=RULES, cwd=cwd, env={"EXTRA": "given"})
    assert sorted(result.stdout.splitlines()) == ["EXTRA=given", f"HOME={cwd}", "LANG=C.UTF-8",
                                                  "PATH=/usr/local/bin:/usr/bin:/bin"]


# (argv, the refusal a user reads; {cwd} is the working directory)
REFUSED = {
    "not on the allowlist": (["rm", "-rf", "a.txt"],
                             f"command: 'rm' is not an allowed program {ALLOWED}"),
    "a path to a program": (["/bin/ls"],
                            f"command: '/bin/ls' is not an allowed program {ALLOWED}"),
    "a shell string": (["ls -1; rm -rf /"],
                       f"command: 'ls -1; rm -rf /' is not an allowed program {ALLOWED}"),
    "a flag not allowed": (["ls", "-R"], "command: ls: option '-R' is not allowed"),
    "an option with a value": (["ls", "--color=always"], "command: ls: option '--color=always' is not allowed"),
    "dot-dot": (["ls", "../"], "command: ls: path '../' leaves {cwd}"),
    "dot-dot inside": (["ls", "a/../../x"], "command: ls: path 'a/../../x' leaves {cwd}"),
    "an absolute path": (["ls", "/etc"], "command: ls: path '/etc' leaves {cwd}"),
    "a symlink out": (["ls", "--", "outside"], "command: ls: path 'outside' leaves {cwd}"),
    "an argument failing its regex": (["echo", "Hi!"], "command: echo: argument 'Hi!' is not allowed"),
    "an argument failing its predicate": (["sleep", "1e9"], "command: sleep: argument '1e9' is not allowed"),
    "a subcommand not allowed": (["git", "push"],
                                 "command: git: 'push' is not an allowed subcommand (allowed: status)"),
    "no subcommand": (["git"], "command: git: nothing is not an allowed subcommand (allowed: status)"),
    "an option value not allowed": (["git", "status", "--porcelain=v3"],
                                    "command: git status: value 'v3' of --porcelain is not allowed"),
}


@pytest.mark.parametrize(("argv", "message"), REFUSED.values(), ids=REFUSED.keys())
async def test_a_command_outside_its_rules_is_refused(cwd: Path, argv: list[str], message: str) -> None:
    with pytest.raises(ToolError) as caught:
        await run_command(argv, allow=RULES, cwd=cwd)
    assert (caught.value.kind, str(caught.value)) == ("refused", message.format(cwd=cwd))


async def test_no_program_is_a_bad_request(cwd: Path) -> None:
    with pytest.raises(ToolError, match=r"^command: no program given$"):
        await run_command([], allow=RULES, cwd=cwd)


def test_a_rule_for_a_missing_program_is_refused_when_made() -> None:
    with pytest.raises(ToolError, match=r"^command: no program 'no-such-program' on /usr/local/bin:/usr/bin:/bin$"):
        CommandRules({"no-such-program": ArgumentRules()})


def test_programs_are_resolved_to_absolute_paths_when_the_rules_are_made() -> None:
    program, _ = RULES.programs["ls"]
    assert Path(program).is_absolute()
    assert RULES.argv(["ls", "-a"], Path.cwd()) == [program, "-a"]


async def test_a_command_has_the_sandboxs_limits(cwd: Path) -> None:
    with pytest.raises(ToolError, match=r"^command: ran past its 1s time limit; killed$"):
        await run_command(["sleep", "30"], allow=RULES, cwd=cwd, limits=Limits(time=1))
    with pytest.raises(ToolError, match=r"^command: wrote more than its 4096 bytes output cap; killed$"):
        await run_command(["yes"], allow=RULES, cwd=cwd, limits=Limits(output=4096))


async def test_a_non_zero_exit_is_an_answer_unless_checked(cwd: Path) -> None:
    result = await run_command(["ls", "missing"], allow=RULES, cwd=cwd)
    assert result.exit_code == 2
    with pytest.raises(ToolError) as caught:
        await run_command(["ls", "missing"], allow=RULES, cwd=cwd, check=True)
    assert str(caught.value) == "command: ls exited with 2: ls: cannot access 'missing': No such file or directory"


@pytest.mark.skipif(os.geteuid() != 0, reason="the read-only filesystem needs root (a mount namespace)")
async def test_even_a_careless_rule_cannot_write_outside_cwd(cwd: Path) -> None:
    careless = CommandRules({"touch": ArgumentRules(paths=False)})
    escape = Path(tempfile.gettempdir()) / f"ymera-command-escape-{os.getpid()}"
    result = await run_command(["touch", str(escape), "inside.txt"], allow=careless, cwd=cwd)
    assert result.stderr == f"touch: cannot touch '{escape}': Read-only file system\n"
    assert not escape.exists()
    assert (cwd / "inside.txt").exists()
