"""What an actor has sent and not attested yet, kept where killing the actor cannot take it.

An actor attests what it sent every 20 ms (bus/_attest.py); killed in between (SIGKILL, the
kernel's OOM killer), it would leave those events unattested for good. So each run writes the
leaf of every message to a journal file before sending it, and the count attested so far at
the file's head as attestations are acked:

    <dir>/<actor>.<key id>.<epoch>.leaves   8 bytes: the count attested (big-endian),
                                            then 16 bytes a message, in order

The file is locked (`flock`) while its process lives. An actor starting with the same key
takes the journals nobody holds (`orphans`): it attests the rest of each under the dead run's
epoch with the key they share, and deletes it. The page cache keeps a write once `pwrite`
returns, so a killed process loses nothing; a host that loses power can lose the last writes,
and those events stay unattested.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

__all__ = ["Journal", "Orphan", "orphans"]

_HEAD = 8
_LEAF = 16


class Journal:
    """The journal of one run (`epoch`) of `actor`'s key `key_id` in `directory`, locked."""

    def __init__(self, directory: Path, actor: str, key_id: str, epoch: str) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / f"{actor}.{key_id}.{epoch}.leaves"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.pwrite(self._fd, bytes(_HEAD), 0)

    def add(self, first: int, leaves: bytes) -> None:
        """The leaves of messages `first`, `first + 1`, ..., before they are sent."""
        os.pwrite(self._fd, leaves, _HEAD + _LEAF * first)

    def attested(self, through: int) -> None:
        """Messages before `through` are attested, and their attestations acked."""
        os.pwrite(self._fd, through.to_bytes(_HEAD, "big"), 0)

    def close(self, done: bool) -> None:
        """Unlock it; `done`, every message attested: delete it (else the next start attests the rest)."""
        if done:
            with contextlib.suppress(OSError):
                self.path.unlink()
        os.close(self._fd)


class Orphan(NamedTuple):
    """A dead run's journal, locked by the caller until it `release`s it."""

    path: Path
    epoch: str
    first: int  # the first message not known to be attested
    leaves: bytes  # its leaf and every later one
    fd: int

    def release(self) -> None:
        """Everything in it is attested now: delete it."""
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self.fd)


def orphans(directory: Path, actor: str, key_id: str) -> Iterator[Orphan]:
    """The journals of `actor`'s key `key_id` that no living process holds, each locked. One a
    live process holds, or that cannot be read, is left as it is."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(f"{actor}.{key_id}.*.leaves")):
        epoch = path.name.split(".")[2]
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            data = path.read_bytes()
        except OSError:  # held by the run that writes it (BlockingIOError), or unreadable
            os.close(fd)
            continue
        through = int.from_bytes(data[:_HEAD], "big") if len(data) >= _HEAD else 0
        body = data[_HEAD + _LEAF * through:]
        yield Orphan(path, epoch, through, body[:len(body) - len(body) % _LEAF], fd)
