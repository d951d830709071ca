"""ruff on a piece of Python: its findings, under rules named here and no project configuration
(`--isolated`), so the same code and the same ruff give the same findings wherever they run.
The outcome check `lint` (`_code.py`) and the assessor's lint evidence both read it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import subprocess

import msgspec

__all__ = ["Finding", "RuffError", "ruff", "ruff_binary", "ruff_blocking"]

SECONDS = 10.0  # the most one run may take


class Finding(msgspec.Struct, frozen=True):
    code: str | None  # None: a syntax error
    message: str
    location: dict[str, int]

    @property
    def row(self) -> int:
        return self.location.get("row", 0)


class RuffError(Exception):
    """Why ruff gave no findings: not installed, would not start, too slow, or failed."""


_FINDINGS = msgspec.json.Decoder(list[Finding])


@functools.cache
def ruff_binary() -> str | None:
    """ruff's executable: the one its Python package ships, else one on PATH, else None
    (looked up once per process)."""
    try:
        from ruff.__main__ import find_ruff_bin  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return shutil.which("ruff")
    try:
        return str(find_ruff_bin())
    except FileNotFoundError:
        return shutil.which("ruff")


def _command(select: str, ignore: str, filename: str) -> list[str]:
    binary = ruff_binary()
    if binary is None:
        raise RuffError("ruff is not installed here (neither its Python package nor a ruff on PATH)")
    return [binary, "check", "--isolated", "--no-cache", "--select", select, *(["--ignore", ignore] if ignore else []),
            "--output-format", "json", "--stdin-filename", filename, "-"]


def _findings(returncode: int | None, out: bytes, err: bytes) -> list[Finding]:
    try:
        return _FINDINGS.decode(out)
    except msgspec.DecodeError:
        last = err.decode(errors="replace").strip().splitlines()
        raise RuffError(f"ruff failed (exit {returncode}): {last[-1] if last else 'no output'}") from None


async def ruff(code: str, select: str, ignore: str = "", filename: str = "solution.py") -> list[Finding]:
    """ruff's findings on `code` under the rules `select` less `ignore`, within `SECONDS`."""
    command = _command(select, ignore, filename)
    try:
        process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE,
                                                       stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise RuffError(f"could not start ruff: {exc.strerror}") from None
    try:
        async with asyncio.timeout(SECONDS):
            out, err = await process.communicate(code.encode())
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise RuffError(f"ruff ran past its {SECONDS:g}s time limit") from None
    return _findings(process.returncode, out, err)


def ruff_blocking(code: str, select: str, ignore: str = "", filename: str = "solution.py") -> list[Finding]:
    """`ruff`, for a caller with no event loop (a bench)."""
    command = _command(select, ignore, filename)
    try:
        done = subprocess.run(command, input=code.encode(), capture_output=True, timeout=SECONDS, check=False)
    except OSError as exc:
        raise RuffError(f"could not start ruff: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise RuffError(f"ruff ran past its {SECONDS:g}s time limit") from None
    return _findings(done.returncode, done.stdout, done.stderr)
