"""Running untrusted code: a Python or shell program in a confined child process, and the process
core (`run_process`) the command runner (`_commands.py`) shares, so both keep the same limits.

How a child is confined on Linux, in `preexec_fn` (after fork, before exec), in this order:
- network: a new network namespace (`unshare(CLONE_NEWNET)`) has only a loopback that is down,
  so any connect fails. Unprivileged processes may not do this; rather than run with the network
  silently, a call without `network=True` is then refused, naming why.
- filesystem (when we are root): a new mount namespace where `/` and `/dev/shm` are read-only
  and only the child's working directory stays writable; nothing of it reaches the host.
- rlimits, soft = hard so the child cannot raise them: CPU, address space (memory), processes,
  file size, open files, core files 0.
- uid (run_code, when we are root): the child runs as nobody (65534). The kernel never enforces
  RLIMIT_NPROC for uid 0 (and root may raise its rlimits again), so only another uid bounds a
  fork bomb. The count is per uid, so concurrent sandboxes share it. Our interpreter may sit
  where nobody cannot reach it (pyenv under /root, 0700, with an absolute RUNPATH): its prefix
  is bind-mounted read-only into the run's own directory and run from there.
Without root there is no uid change and no read-only filesystem; the rlimits still hold (the
process limit then counts all of our own processes).

A wall-clock limit kills the whole process group (`start_new_session=True`) with SIGKILL, and so
does passing the output cap: output is read in chunks and never held past the cap. A run lasts
while anything holds its output open. At its end every process of the group is killed, and so is
every process in the run's own namespace (mount as root, else network), which finds one that
left the group with setsid(); without either (not root, network granted) such a process may
outlive the run, its output cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._errors import ToolError

__all__ = ["CodeResult", "Limits", "run_code"]

MiB = 1024 * 1024
NOBODY = 65534
PATH = "/usr/local/bin:/usr/bin:/bin"

# <sched.h> and <sys/mount.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Limits:
    """What one run may use. `time` is wall-clock seconds; `cpu` CPU seconds per process;
    `memory` address space in bytes; `processes` for the child's uid; `output` bytes of stdout
    and stderr together; `file_size` bytes of any file it writes."""

    time: float = 10.0
    cpu: int = 10
    memory: int = 512 * MiB
    processes: int = 32
    output: int = 1 * MiB
    file_size: int = 16 * MiB
    open_files: int = 64


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class CodeResult:
    """How a run ended. A non-zero `exit_code` is an answer, not an error (unless `check=True`);
    a negative one is the signal that ended it. `*_truncated` only with `on_output_cap="truncate"`."""

    exit_code: int
    stdout: str
    stderr: str
    duration: float
    stdout_truncated: bool = False
    stderr_truncated: bool = False


@dataclass(frozen=True)
class Confinement:
    """How far a child is shut in beyond its rlimits (see the module docstring)."""

    network: bool = False
    writable: Path | None = None  # with it, a mount namespace where only this directory is writable
    binds: tuple[tuple[Path, Path], ...] = ()  # read-only bind mounts (source, target) inside it
    uid: int | None = None


async def run_code(code: str, *, language: Literal["python", "shell"] = "python", limits: Limits = Limits(),
                   network: bool = False, stdin: str = "", check: bool = False,
                   on_output_cap: Literal["fail", "truncate"] = "fail") -> CodeResult:
    """Run `code` as a Python (`-I`, isolated) or `/bin/sh` program in a directory made for this
    run and deleted after it, with a clean environment (a fixed PATH, HOME the work directory)."""
    if language not in ("python", "shell"):
        raise ToolError("code", "bad_request", f"no language {language!r}: python or shell")
    root = Path(tempfile.mkdtemp(prefix="ymera-code-"))
    try:
        argv, env, confinement = _prepare(root, code, language, network)
        result = await run_process("code", argv, cwd=root / "work", env=env, limits=limits,
                                   confinement=confinement, stdin=stdin, on_output_cap=on_output_cap)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if check and result.exit_code != 0:
        raise ToolError("code", "failed", f"exited with {result.exit_code}: {_last_line(result.stderr)}")
    return result


def _prepare(root: Path, code: str, language: str, network: bool) -> tuple[list[str], dict[str, str], Confinement]:
    """The run's directory (`root/work`, the child's own when it runs as nobody), its argv,
    environment and confinement."""
    work = root / "work"
    work.mkdir()
    script = work / ("main.py" if language == "python" else "main.sh")
    script.write_text(code)
    env = {"PATH": PATH, "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8"}
    as_root = os.geteuid() == 0
    binds: tuple[tuple[Path, Path], ...] = ()
    if language == "python":
        program = sys.executable
        if as_root:
            program, binds, library = _interpreter_for_nobody(root / "python")
            env["LD_LIBRARY_PATH"] = library
        argv = [program, "-I", str(script)]
    else:
        argv = ["/bin/sh", str(script)]
    if as_root:
        root.chmod(0o755)
        for path in (work, script):
            os.chown(path, NOBODY, NOBODY)
    confinement = Confinement(network=network, writable=work if as_root else None, binds=binds,
                              uid=NOBODY if as_root else None)
    return argv, env, confinement


def _interpreter_for_nobody(mount_point: Path) -> tuple[str, tuple[tuple[Path, Path], ...], str]:
    """Our interpreter as nobody can run it: its installation bind-mounted at `mount_point`."""
    prefix = Path(sys.base_prefix).resolve()
    executable = Path(sys.executable).resolve()
    if not executable.is_relative_to(prefix):
        return str(executable), (), ""
    mount_point.mkdir()
    return str(mount_point / executable.relative_to(prefix)), ((prefix, mount_point),), str(mount_point / "lib")


async def run_process(tool: str, argv: list[str], *, cwd: Path, env: dict[str, str], limits: Limits,
                      confinement: Confinement, stdin: str = "",
                      on_output_cap: Literal["fail", "truncate"] = "fail", executable: str | None = None) -> CodeResult:
    """Run `executable` (by default argv[0]; an absolute path) with `argv`, confined and within
    `limits`; every way it ran into a limit is a `ToolError` of kind `limit` naming the limit."""
    if not confinement.network and not await network_isolation():
        raise ToolError(tool, "refused", "cannot cut the child off the network here (unshare(CLONE_NEWNET) "
                                         "is not permitted); pass network=True to run it with the network")
    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, executable=executable, cwd=cwd, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            preexec_fn=_confine(confinement, limits))
    except subprocess.SubprocessError as exc:
        raise ToolError(tool, "failed", "could not confine the child (namespace, mount, rlimit or uid "
                                        "refused)") from exc
    except OSError as exc:
        raise ToolError(tool, "failed", f"could not start {executable or argv[0]}: {exc.strerror}") from exc

    own_namespace = _own_namespace(process.pid, confinement)
    output = _Output(limits.output, lambda: _kill_group(process.pid))
    assert process.stdout is not None
    assert process.stderr is not None
    assert process.stdin is not None
    readers = asyncio.gather(output.read(process.stdout, "stdout"), output.read(process.stderr, "stderr"))
    feeder = asyncio.create_task(_feed(process.stdin, stdin.encode()))
    timed_out = False
    try:
        async with asyncio.timeout(limits.time):
            await process.wait()
    except TimeoutError:
        timed_out = True
    finally:
        await _end(process, own_namespace, readers)
        feeder.cancel()
    duration = time.monotonic() - started
    result = CodeResult(exit_code=process.returncode if process.returncode is not None else -signal.SIGKILL,
                        stdout=output.text("stdout"), stderr=output.text("stderr"), duration=duration,
                        stdout_truncated="stdout" in output.truncated, stderr_truncated="stderr" in output.truncated)
    if timed_out:
        raise ToolError(tool, "limit", f"ran past its {_seconds(limits.time)} time limit; killed")
    if output.truncated and on_output_cap == "fail":
        raise ToolError(tool, "limit", f"wrote more than its {_size(limits.output)} output cap; killed")
    if (reason := _limit_reason(result, limits)) is not None:
        raise ToolError(tool, "limit", reason)
    if not confinement.network and result.exit_code != 0 and "Network is unreachable" in result.stderr[-2000:]:
        raise ToolError(tool, "refused", "tried to reach the network, which it was not granted")
    return result


async def _end(process: asyncio.subprocess.Process, own_namespace: tuple[str, int] | None,
               readers: asyncio.Future[tuple[None, None]]) -> None:
    """Kill whatever is left of a run and collect its output, every wait bounded: a process that
    escaped both the group and the run's namespace could hold the pipes open for ever."""
    _kill_group(process.pid)
    if own_namespace is not None:  # what left the group (setsid) is still in the run's namespace
        _kill_namespace(*own_namespace)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            await process.wait()  # asyncio's wait is for the exit and the pipes' closing
            await asyncio.shield(readers)
    await _group_gone(process.pid)
    if not readers.done():
        readers.cancel()
        transport = getattr(process, "_transport", None)
        if transport is not None:
            transport.close()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await readers


class _Output:
    """Stdout and stderr read in chunks against one shared cap; past it, `on_cap` kills the run."""

    def __init__(self, cap: int, on_cap: Callable[[], None]) -> None:
        self.left = cap
        self.on_cap = on_cap
        self.chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        self.truncated: set[str] = set()

    async def read(self, stream: asyncio.StreamReader, name: str) -> None:
        while chunk := await stream.read(65536):
            kept = chunk[: self.left]
            if kept:
                self.chunks[name].append(kept)
                self.left -= len(kept)
            if len(kept) < len(chunk) and name not in self.truncated:
                self.truncated.add(name)
                self.on_cap()  # then read on to the end, keeping nothing, so the pipe closes

    def text(self, name: str) -> str:
        return b"".join(self.chunks[name]).decode("utf-8", errors="replace")


async def _feed(pipe: asyncio.StreamWriter, data: bytes) -> None:
    try:
        if data:
            pipe.write(data)
            await pipe.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the program did not read all of its input: its choice
    finally:
        pipe.close()


def _limit_reason(result: CodeResult, limits: Limits) -> str | None:
    """Which limit a failed run ran into, read from how it ended: a signal, or the error the
    program itself reported as it failed (a limit the kernel enforces by refusing a call)."""
    if result.exit_code == 0:
        return None
    if result.exit_code == -signal.SIGXCPU:
        return f"used up its {_seconds(limits.cpu)} CPU limit; killed"
    tail = result.stderr[-2000:]
    if "MemoryError" in tail or "Cannot allocate memory" in tail or "bad_alloc" in tail:
        return f"ran out of its {_size(limits.memory)} memory limit"
    if "Resource temporarily unavailable" in tail or "fork: " in tail or "Cannot fork" in tail:
        return f"hit its limit of {limits.processes} processes"
    if "File too large" in tail or result.exit_code == -signal.SIGXFSZ:
        return f"wrote a file past its {_size(limits.file_size)} file size limit"
    return None


def _confine(confinement: Confinement, limits: Limits) -> Callable[[], None]:
    """The `preexec_fn` that shuts the child in; it runs in the forked child, before exec."""
    rlimits = [(resource.RLIMIT_CPU, limits.cpu), (resource.RLIMIT_AS, limits.memory),
               (resource.RLIMIT_NPROC, limits.processes), (resource.RLIMIT_FSIZE, limits.file_size),
               (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0)]

    def confine() -> None:
        flags = (0 if confinement.network else CLONE_NEWNET) | (CLONE_NEWNS if confinement.writable else 0)
        if flags:
            _check(_libc.unshare(flags))
        if confinement.writable is not None:
            _mount(None, "/", MS_REC | MS_PRIVATE)
            _mount(confinement.writable, confinement.writable, MS_BIND | MS_REC)
            for source, target in confinement.binds:
                _mount(source, target, MS_BIND | MS_REC)
                _mount(None, target, MS_REMOUNT | MS_BIND | MS_RDONLY)
            _mount(None, "/", MS_REMOUNT | MS_BIND | MS_RDONLY)
            with contextlib.suppress(OSError):
                _mount(None, "/dev/shm", MS_REMOUNT | MS_BIND | MS_RDONLY)
            os.chdir(confinement.writable)  # subprocess entered it before the bind: enter the writable mount
        for which, value in rlimits:
            # CPU: SIGXCPU at the soft limit names the cause; SIGKILL a second later if caught.
            resource.setrlimit(which, (value, value + 1 if which == resource.RLIMIT_CPU else value))
        if confinement.uid is not None:
            os.setgroups([])
            os.setgid(confinement.uid)
            os.setuid(confinement.uid)

    return confine


def _mount(source: Path | str | None, target: Path | str, flags: int) -> None:
    _check(_libc.mount(None if source is None else os.fsencode(source), os.fsencode(target), None,
                       ctypes.c_ulong(flags), None))


def _check(returned: int) -> None:
    if returned != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


_network_isolation: bool | None = None


async def network_isolation() -> bool:
    """Whether this process may put a child in a network namespace of its own (asked once)."""
    global _network_isolation
    if _network_isolation is None:
        def unshare() -> None:
            _check(_libc.unshare(CLONE_NEWNET))

        try:
            probe = await asyncio.create_subprocess_exec("/bin/true", preexec_fn=unshare, env={})
            _network_isolation = await probe.wait() == 0
        except (subprocess.SubprocessError, OSError):
            _network_isolation = False
    return _network_isolation


async def _group_gone(pid: int, *, within: float = 2.0) -> None:
    """Wait (bounded) until every process of the killed group has died and been reaped."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        await asyncio.sleep(0.02)


def _own_namespace(pid: int, confinement: Confinement) -> tuple[str, int] | None:
    """A namespace only this run's processes are in (kind, inode), to find the ones that left its
    process group; None if it has none of its own."""
    kind = "mnt" if confinement.writable is not None else "net" if not confinement.network else None
    if kind is None:
        return None
    try:
        return kind, os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def _kill_namespace(kind: str, inode: int) -> None:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry.name}/ns/{kind}").st_ino == inode:
                    os.kill(int(entry.name), signal.SIGKILL)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no error output"


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _size(value: int) -> str:
    return f"{value / MiB:g} MiB" if value >= MiB else f"{value} bytes"
