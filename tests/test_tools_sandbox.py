"""The code sandbox against real programs: each escape attempt fails with the reason a user reads,
and leaves nothing behind (no process of the sandbox's uid, no work directory).

Limits are kept small so a bomb that got through would still not hurt the machine."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import Limits, ToolError, run_code
from tools import _sandbox as sandbox

ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not ROOT, reason="confinement beyond rlimits needs root (see tools/_sandbox.py)")


def sandbox_processes(*, zombies: bool = True) -> list[int]:
    """Processes of the sandbox's uid (nobody); zombies (killed, not yet reaped by init) or not."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == sandbox.NOBODY:
                    state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
                    if zombies or state != "Z":
                        found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    return found


def exists(path: str | Path) -> bool:
    return Path(path).exists()


def work_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("ymera-code-*")}


@pytest.fixture(autouse=True)
def _leaves_the_machine_as_it_was() -> Iterator[None]:
    before = work_dirs()
    yield
    assert work_dirs() == before
    assert sandbox_processes(zombies=False) == []
    # Killed processes that left their parent are reaped by init, in its own time.
    deadline = time.monotonic() + 5
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes() == []


async def test_python_runs_isolated_with_a_clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret")
    monkeypatch.setenv("YMERA_SIGNING_KEY", "parent-secret")
    code = "import json, os, sys\nprint(json.dumps([dict(os.environ), os.getcwd(), os.getuid(), sys.flags.isolated]))"
    result = await run_code(code)
    env, cwd, uid, isolated = json.loads(result.stdout)
    assert "parent-secret" not in result.stdout
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "LD_LIBRARY_PATH"}
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert env["HOME"] == cwd
    assert isolated == 1
    assert uid == (sandbox.NOBODY if ROOT else os.getuid())
    assert not exists(cwd)
    assert (result.exit_code, result.stderr, result.stdout_truncated) == (0, "", False)


async def test_shell_reads_its_stdin() -> None:
    result = await run_code('read line; echo "got $line"', language="shell", stdin="hello\n")
    assert result.stdout == "got hello\n"


async def test_a_non_zero_exit_is_an_answer_unless_checked() -> None:
    result = await run_code("import sys; sys.exit('no luck')")
    assert (result.exit_code, result.stderr) == (1, "no luck\n")
    with pytest.raises(ToolError) as caught:
        await run_code("import sys; sys.exit('no luck')", check=True)
    assert (caught.value.kind, str(caught.value)) == ("failed", "code: exited with 1: no luck")


async def test_an_unknown_language_is_a_bad_request() -> None:
    with pytest.raises(ToolError, match=r"^code: no language 'ruby': python or shell$"):
        await run_code("puts 1", language="ruby")  # type: ignore[arg-type]


# (program, language, limits, the error a user reads)
BOMBS = {
    "time": ("import time; time.sleep(60)", "python", Limits(time=1), "code: ran past its 1s time limit; killed"),
    "cpu": ("while True: pass", "python", Limits(cpu=1, time=10), "code: used up its 1s CPU limit; killed"),
    "infinite output": ("while True: print('x' * 1000)", "python", Limits(output=65536),
                        "code: wrote more than its 65536 bytes output cap; killed"),
    "infinite output, shell": ("yes", "shell", Limits(output=65536),
                               "code: wrote more than its 65536 bytes output cap; killed"),
    "memory bomb": ("x = []\nwhile True: x.append(' ' * 10**6)", "python", Limits(memory=256 * sandbox.MiB),
                    "code: ran out of its 256 MiB memory limit"),
    "fork bomb": ("import os\nwhile True: os.fork()", "python", Limits(processes=8, time=5),
                  "code: hit its limit of 8 processes"),
    "big file": ("open('big', 'wb').write(b'x' * 2 * 1024 * 1024)", "python", Limits(file_size=sandbox.MiB),
                 "code: wrote a file past its 1 MiB file size limit"),
}


@root_only
@pytest.mark.parametrize(("code", "language", "limits", "message"), BOMBS.values(), ids=BOMBS.keys())
async def test_a_bomb_is_stopped_by_its_limit(code: str, language: str, limits: Limits, message: str) -> None:
    with pytest.raises(ToolError) as caught:
        await run_code(code, language=language, limits=limits)  # type: ignore[arg-type]
    assert (caught.value.kind, str(caught.value)) == ("limit", message)


@root_only
async def test_a_shell_fork_bomb_is_bounded_and_leaves_nothing() -> None:
    result = await run_code("f(){ f|f& };f", language="shell", limits=Limits(processes=8, time=5))
    assert "Cannot fork" in result.stderr  # the autouse fixture checks no process is left


@root_only
async def test_a_process_that_leaves_the_group_is_killed_too() -> None:
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('parent done')"
    with pytest.raises(ToolError, match=r"^code: ran past its 1s time limit; killed$"):
        await run_code(code, limits=Limits(time=1))  # the run lasts while anything holds its output


async def test_output_past_the_cap_can_be_kept_truncated() -> None:
    result = await run_code("print('x' * 100000)", limits=Limits(output=1000), on_output_cap="truncate")
    assert (result.stdout, result.stdout_truncated, result.stderr_truncated) == ("x" * 1000, True, False)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


@root_only
async def test_the_network_is_out_of_reach(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with pytest.raises(ToolError) as caught:
        await run_code(f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)")
    assert (caught.value.kind, str(caught.value)) == ("refused",
                                                      "code: tried to reach the network, which it was not granted")
    with pytest.raises(BlockingIOError):
        listener.accept()


@root_only
async def test_the_network_is_there_when_granted(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = await run_code(f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)",
                            network=True)
    assert result.exit_code == 0
    listener.accept()[0].close()


async def test_without_network_isolation_a_run_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "_network_isolation", False)  # as for a process not allowed to unshare
    with pytest.raises(ToolError) as caught:
        await run_code("print(1)")
    assert (caught.value.kind, str(caught.value)) == (
        "refused", "code: cannot cut the child off the network here (unshare(CLONE_NEWNET) is not permitted); "
                   "pass network=True to run it with the network")


@root_only
async def test_nothing_outside_the_work_dir_can_be_written_or_read(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "secret.txt").write_text("parent's secret")
    world_writable = Path(tempfile.gettempdir()) / f"ymera-escape-{os.getpid()}"
    code = f"""
import os
for attempt in (lambda: open({str(private / 'escape.txt')!r}, 'w'), lambda: open({str(world_writable)!r}, 'w'),
                lambda: open('/dev/shm/ymera-escape', 'w'), lambda: open({str(private / 'secret.txt')!r}).read(),
                lambda: os.listdir('/root')):
    try:
        attempt()
        print('escaped')
    except OSError as exc:
        print(exc.strerror)
open('inside.txt', 'w').write('fine')
print(open('inside.txt').read())
"""
    result = await run_code(code)
    assert result.stdout.split("\n") == ["Permission denied", "Read-only file system", "Read-only file system",
                                         "Permission denied", "Permission denied", "fine", ""]
    assert list(private.iterdir()) == [private / "secret.txt"]
    assert not exists(world_writable)
    assert not exists("/dev/shm/ymera-escape")
