"""File operations confined to a workspace root: read, write, list, search and patch, for a task
that was granted a directory and nothing outside it.

Every path is walked from the root one component at a time through directory file descriptors
(`os.open(name, O_NOFOLLOW | O_DIRECTORY, dir_fd=parent)`), and the final file is opened the
same way and checked with `fstat` after opening. So there is no check-then-use gap: what was
checked is the descriptor that is used, and a symlink swapped in mid-walk is met by
`O_NOFOLLOW`, never followed.

Any symlink is refused, even one that stays inside the workspace: deciding whether a link's
target is inside means resolving it, which is the race this module exists to avoid; an agent's
workspace does not need links.
"""

from __future__ import annotations

import builtins
import errno
import functools
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

from ._errors import ToolError, ToolErrorKind

__all__ = ["FileEntry", "FileLimits", "FileMatch", "Workspace"]

TOOL = "files"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer before fstat could refuse it.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_BINARY_SNIFF = 8192
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class FileLimits:
    """How much one call may read, write, list or find."""

    max_read_bytes: int = 1 << 20
    max_write_bytes: int = 1 << 20
    max_entries: int = 1000  # list: entries returned
    max_matches: int = 100  # search: matching lines returned
    max_search_files: int = 10_000  # search: files looked at
    max_line_chars: int = 500  # search: a matching line is cut to this many characters


@dataclass(frozen=True)
class FileEntry:
    """One directory entry, as `list` gives it (a symlink is shown, never followed)."""

    name: str
    kind: Literal["file", "dir", "symlink", "other"]
    size: int


@dataclass(frozen=True)
class FileMatch:
    """One matching line: its file (relative to the root), its 1-based number and its text."""

    path: str
    line: int
    text: str


def _error(kind: ToolErrorKind, reason: str) -> ToolError:
    return ToolError(TOOL, kind, reason)


def _parts(path: str) -> list[str]:
    """The components of a relative path, or a refusal saying why it is not one."""
    if "\0" in path:
        raise _error("bad_request", f"path {path!r} contains a NUL byte")
    if path.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", path):
        raise _error("refused", f"path {path!r} is absolute; give a path relative to the workspace")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _error("refused", f"path {path!r} goes up with '..'; it must stay inside the workspace")
    return parts


def _mapped(method: Callable[P, R]) -> Callable[P, R]:
    """Any other OS error (a permission, a full disk) as one line naming the path."""
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except OSError as exc:
            path = next((a for a in args[1:] if isinstance(a, str)), ".")
            raise _error("failed", f"path {path!r}: {exc.strerror or exc}") from None
    return wrapper


class Workspace:
    """A directory a task may use, and nothing outside it. `root` is trusted (it comes from the
    grant, not the task), so it is resolved once here; everything below it is walked."""

    def __init__(self, root: str | os.PathLike[str], limits: FileLimits | None = None) -> None:
        try:
            self.root = Path(root).resolve(strict=True)
        except OSError as exc:
            raise _error("bad_request", f"workspace root {str(root)!r}: {exc.strerror or exc}") from None
        if not self.root.is_dir():
            raise _error("bad_request", f"workspace root {str(self.root)!r} is not a directory")
        self.limits = limits or FileLimits()

    # -- walking -------------------------------------------------------------------------------

    def _open_dir(self, parts: list[str], path: str, *, create: bool = False) -> int:
        """A descriptor of the directory `parts` (from the root), each step opened without
        following links; with `create`, missing directories are made on the way."""
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for name in parts:
                child = self._step(fd, name, path, create)
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _step(self, dir_fd: int, name: str, path: str, create: bool) -> int:
        if create:
            try:
                os.mkdir(name, 0o755, dir_fd=dir_fd)
            except FileExistsError:
                pass  # a directory already (or a link, which the open below refuses)
            except OSError as exc:
                raise self._refusal(dir_fd, name, path, exc) from None
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            raise _error("failed", f"no such directory: {path!r}") from None
        except OSError as exc:
            raise self._refusal(dir_fd, name, path, exc) from None

    def _refusal(self, dir_fd: int, name: str, path: str, exc: OSError) -> ToolError:
        """Why `name` (in `dir_fd`) could not be opened, as the user should read it."""
        try:
            mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
        except OSError:
            mode = 0
        if stat.S_ISLNK(mode):
            return _error("refused", f"path {path!r} goes through a symlink ({name!r}); symlinks are not followed")
        if exc.errno == errno.ENOTDIR:
            return _error("failed", f"path {path!r}: {name!r} is not a directory")
        return _error("failed", f"path {path!r}: {exc.strerror or exc}")

    def _open_file(self, path: str) -> tuple[int, os.stat_result]:
        """A descriptor of the regular file at `path`, and its fstat."""
        parts = _parts(path)
        if not parts:
            raise _error("bad_request", f"path {path!r} names the workspace itself, not a file")
        dir_fd = self._open_dir(parts[:-1], path)
        try:
            name = parts[-1]
            try:
                before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise _error("failed", f"no such file: {path!r}") from None
            # Checked before opening too, so a device is never opened (opening some has effects).
            self._require_regular(path, before.st_mode)
            try:
                fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                raise self._refusal(dir_fd, name, path, exc) from None
        finally:
            os.close(dir_fd)
        info = os.fstat(fd)
        try:
            self._require_regular(path, info.st_mode)  # what was opened is what counts
            if info.st_nlink > 1:
                # A hard link made from outside (by another tool, or before the grant) would
                # read a file that is not the workspace's; rename-on-write never writes through one.
                raise _error("refused", f"path {path!r} has {info.st_nlink} hard links; a file linked from "
                                        "elsewhere is not read")
        except ToolError:
            os.close(fd)
            raise
        return fd, info

    @staticmethod
    def _require_regular(path: str, mode: int) -> None:
        if stat.S_ISREG(mode):
            return
        if stat.S_ISLNK(mode):
            raise _error("refused", f"path {path!r} is a symlink; symlinks are not followed")
        if stat.S_ISDIR(mode):
            raise _error("failed", f"path {path!r} is a directory, not a file")
        what = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        raise _error("refused", f"path {path!r} is {what}; only regular files are read or written")

    # -- operations ----------------------------------------------------------------------------

    @_mapped
    def read_bytes(self, path: str) -> bytes:
        """The file's bytes; refused past `max_read_bytes` (by its size, and by what is read, in
        case it grows while being read)."""
        cap = self.limits.max_read_bytes
        fd, info = self._open_file(path)
        try:
            if info.st_size > cap:
                raise _error("limit", f"file {path!r} is {info.st_size} bytes, over the read limit of {cap}")
            chunks, size = [], 0
            while chunk := os.read(fd, min(65536, cap + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
                if size > cap:
                    raise _error("limit", f"file {path!r} grew past the read limit of {cap} bytes while read")
            return b"".join(chunks)
        finally:
            os.close(fd)

    def read(self, path: str) -> str:
        """The file as UTF-8 text."""
        data = self.read_bytes(path)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _error("failed", f"file {path!r} is not UTF-8 text (byte {exc.start})") from None

    @_mapped
    def write(self, path: str, data: str | bytes) -> int:
        """Replace (or create) the file with `data`, atomically: a temporary file in the same
        directory, fsynced, then renamed over the name, so a reader sees the old file or the new
        one, never half. Missing parent directories are made. Returns the bytes written."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        cap = self.limits.max_write_bytes
        if len(raw) > cap:
            raise _error("limit", f"writing {len(raw)} bytes to {path!r} is over the write limit of {cap}")
        parts = _parts(path)
        if not parts:
            raise _error("bad_request", f"path {path!r} names the workspace itself, not a file")
        dir_fd = self._open_dir(parts[:-1], path, create=True)
        try:
            name = parts[-1]
            try:
                existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                existing = None
            if existing is not None:
                self._require_regular(path, existing.st_mode)
            temp = f".{name}.{secrets.token_hex(6)}.tmp"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=dir_fd)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(raw)
                    out.flush()
                    os.fsync(out.fileno())
                # rename replaces the directory entry itself: a symlink swapped in meanwhile is
                # replaced, never written through.
                os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                try:
                    os.unlink(temp, dir_fd=dir_fd)
                except OSError:
                    pass
                raise
            return len(raw)
        finally:
            os.close(dir_fd)

    @_mapped
    def list(self, path: str = ".") -> list[FileEntry]:
        """The entries of a directory, sorted by name, up to `max_entries`."""
        fd = self._open_dir(_parts(path), path)
        try:
            entries: builtins.list[FileEntry] = []
            with os.scandir(fd) as found:
                for item in found:
                    if len(entries) >= self.limits.max_entries:
                        raise _error("limit", f"directory {path!r} has more than {self.limits.max_entries} entries")
                    entries.append(_entry(item))
            return sorted(entries, key=lambda e: e.name)
        finally:
            os.close(fd)

    @_mapped
    def search(self, pattern: str, path: str = ".", *, regex: bool = False) -> tuple[builtins.list[FileMatch], bool]:
        """Lines containing `pattern` (a substring, or a Python regex with `regex=True`) in the
        text files under `path`, symlinks and special files skipped. Returns the matches, in path
        order, and whether the search stopped at `max_matches` or `max_search_files`. Files over
        the read limit and binary files are skipped."""
        if not pattern:
            raise _error("bad_request", "empty search pattern")
        try:
            compiled = re.compile(pattern if regex else re.escape(pattern))
        except re.error as exc:
            raise _error("bad_request", f"invalid regex {pattern!r}: {exc}") from None
        matches: builtins.list[FileMatch] = []
        files = 0
        for rel in self._walk(_parts(path), path):
            files += 1
            if files > self.limits.max_search_files:
                return matches, True
            try:
                data = self.read_bytes(rel)
            except ToolError:
                continue  # too large, or swapped for something else since it was listed
            if b"\0" in data[:_BINARY_SNIFF]:
                continue
            for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                if compiled.search(line):
                    matches.append(FileMatch(rel, number, line[: self.limits.max_line_chars]))
                    if len(matches) >= self.limits.max_matches:
                        return matches, True
        return matches, False

    def _walk(self, parts: builtins.list[str], path: str) -> Iterator[str]:
        """Relative paths of the regular files under `parts`, in sorted order, not following links."""
        fd = self._open_dir(parts, path)
        try:
            with os.scandir(fd) as found:
                items = sorted((i.name, _entry(i).kind) for i in found)
        finally:
            os.close(fd)
        for name, kind in items:
            rel = "/".join([*parts, name])
            if kind == "file":
                yield rel
            elif kind == "dir":
                yield from self._walk([*parts, name], rel)

    def patch(self, path: str, old: str, new: str) -> int:
        """Replace the one occurrence of `old` in the file with `new` (a search/replace edit).

        Search/replace rather than a unified diff: a model writes the exact text it wants
        changed far more reliably than correct hunk line numbers, and "must occur exactly once"
        gives a clear answer where a diff would need fuzzy matching. Written atomically; returns
        the bytes written."""
        if not old:
            raise _error("bad_request", "patch: the text to replace is empty")
        text = self.read(path)
        count = text.count(old)
        if count != 1:
            where = "does not occur" if count == 0 else f"occurs {count} times; give more context so it occurs once"
            raise _error("failed", f"patch {path!r}: the text to replace {where}")
        return self.write(path, text.replace(old, new, 1))


def _entry(item: os.DirEntry[str]) -> FileEntry:
    info = item.stat(follow_symlinks=False)
    mode = info.st_mode
    kind: Literal["file", "dir", "symlink", "other"] = (
        "symlink" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode)
        else "other")
    return FileEntry(item.name, kind, info.st_size if kind == "file" else 0)
