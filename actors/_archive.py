"""Events the stream has dropped, read back from the log: the archive behind stream retention.

With a retention limit (docs/operations.md, "Stream retention") the stream starts at some seq
after 1. An actor whose snapshot is older than that (or that has none) needs the events in
between: it folds them from the SQLite log when the log is on this host (`ymera up`, or an
actor run with the store writer's data dir), and refuses to start, naming the gap, when it
is not, rather than start on a state that silently misses them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bus import Bus
from events import BlobError, MalformedEvent, YmeraError, resolve
from store import SqliteEventLog, StoreError

if TYPE_CHECKING:
    from ._runtime import Actor

__all__ = ["HistoryDropped", "fold_archived", "matcher", "matches"]


class HistoryDropped(YmeraError):
    """The stream no longer holds events an actor needs, and the log cannot supply them."""

    def __init__(self, actor: str, start: int, first: int, why: str) -> None:
        super().__init__(
            f"actor {actor} cannot start: it needs the stream from seq {start}, but the stream now "
            f"starts at seq {first} (retention dropped seqs {start}..{first - 1}) and {why}; "
            "run the actor where the store writer's log is (same YMERA_DATA_DIR), or lengthen "
            "YMERA_STREAM_MAX_AGE_SECONDS / YMERA_STREAM_MAX_BYTES")
        self.actor = actor
        self.start = start
        self.first = first


def matches(subject: str, pattern: str) -> bool:
    """NATS subject matching: `*` is one token, a final `>` one or more."""
    return matcher([pattern])(subject) is not None


def matcher(patterns: Sequence[str]) -> Callable[[str], object]:
    """One compiled test for "matches any of these NATS subject filters": truthy when it does."""
    def token(t: str) -> str:
        return "[^.]+" if t == "*" else ".+" if t == ">" else re.escape(t)
    alternatives = ("\\.".join(token(t) for t in p.split(".")) for p in patterns)
    return re.compile("(?:" + "|".join(alternatives) + ")").fullmatch


async def fold_archived(actor: Actor, bus: Bus, subjects: list[str], start: int, first: int) -> int:
    """Fold the logged events on `subjects` with seqs `start` .. `first - 1`, read as the stream's
    are (blobs resolved from the bucket, but for the actor's `by_reference`); return how many."""
    path = actor.settings.log_path
    if not path.exists():
        raise HistoryDropped(actor.name, start, first, f"there is no log at {path}")
    folded = 0
    wanted = matcher(subjects)
    try:
        async with SqliteEventLog(path, readonly=True) as log:
            if log.head_seq < first - 1:
                raise HistoryDropped(actor.name, start, first,
                                     f"the log at {path} holds seqs only through {log.head_seq}")
            async with contextlib.aclosing(log.scan("seq, subject, data, seal", start)) as chunks:
                async for chunk in chunks:
                    for seq, subject, data, sealed in chunk:
                        if seq >= first:
                            return folded
                        if not wanted(subject):
                            continue
                        try:
                            event = bus.decode(subject, data, sealed)
                            if event.blobs:
                                event = await resolve(event, bus.get_blob, actor.by_reference)
                        except (MalformedEvent, BlobError):
                            continue
                        actor.apply(event)
                        folded += 1
    except StoreError as exc:
        raise HistoryDropped(actor.name, start, first, f"the log cannot be read: {exc}") from None
    return folded
