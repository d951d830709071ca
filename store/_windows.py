"""Sliding windows of metrics: per-minute and per-hour buckets of event time, per dimension.

Each bucket holds, for all tasks and per workflow, agent, task type, model and provider, the
counts a rule or a report needs: attempts that succeeded, failed or timed out, runs that
completed or failed, a latency histogram, quality sums per dimension, cost and security
events. A bucket is chosen by the event's `ts`, never the clock, so a fold of the log
rebuilds the same buckets.

Memory is bounded by the windows, not the log: `MINUTES_KEPT` minute buckets and
`HOURS_KEPT` hour buckets (these not per workflow), each with at most `KEYS_PER_DIMENSION`
keys per dimension (the rest count under one more, `OTHER`), and a histogram of at most
`_MAX_BIN + 1` bins per key.
An event older than the oldest bucket kept counts in the totals only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec

from config import MINUTES_KEPT
from events import Quality, TaskAssessed

__all__ = ["DIMENSIONS", "HOURS_KEPT", "HOUR_DIMENSIONS", "KEYS_PER_DIMENSION", "MINUTES_KEPT", "NONE", "OTHER",
           "SCORES", "Bucket", "Stats", "Tier", "Windows", "add_scores", "dimension_keys", "keys_of", "merged",
           "percentile_ms"]

DIMENSIONS = ("workflow", "agent", "task_type", "model", "provider")
HOUR_DIMENSIONS = DIMENSIONS[1:]  # an hour counts no workflow: thousands of them pass in an hour
SCORES = ("accuracy", "completeness", "consistency", "efficiency", "maintainability", "overall")
HOURS_KEPT = 25  # the reports' 24 hours, and the hour under way
KEYS_PER_DIMENSION = 100
OTHER = "(other)"
NONE = "-"  # the key of a task with no agent, model or provider in the windows
# Latency bins: 8 per doubling from 1 ms (each within 4.5% of its middle), capped at ~1.5 days.
_BINS_PER_DOUBLING = 8
_STEP = math.log(2) / _BINS_PER_DOUBLING
_MAX_BIN = 216


class Stats(msgspec.Struct, array_like=True):
    """What one bucket counted for one key."""

    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    completed: int = 0  # runs
    run_failed: int = 0
    latency: dict[int, int] = {}  # bin -> succeeded attempts whose duration fell in it
    assessed: int = 0
    scores: list[float] = []  # sums, in SCORES order
    cost_usd: float = 0.0
    security: int = 0

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed + self.timed_out

    def add(self, other: Stats) -> None:
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.timed_out += other.timed_out
        self.completed += other.completed
        self.run_failed += other.run_failed
        for b, n in other.latency.items():
            self.latency[b] = self.latency.get(b, 0) + n
        if other.assessed:
            self.scores = [a + b for a, b in zip(self.scores or [0.0] * len(SCORES), other.scores, strict=True)]
            self.assessed += other.assessed
        self.cost_usd += other.cost_usd
        self.security += other.security


def dimension_keys(workflow: str, task_type: str, agent: str | None, model: str | None) -> list[tuple[str, str]]:
    """The (dimension, key)s a task's event counts for besides all tasks; a provider is its model's prefix."""
    return keys_of(workflow, (task_type or NONE, agent or NONE), model)


def keys_of(workflow: str, kind: tuple[str, str], model: str | None) -> list[tuple[str, str]]:
    """The (dimension, key)s an event of a task of `kind` (type, agent) counts for besides all tasks."""
    provider = model.split("/", 1)[0] if model and "/" in model else NONE
    return [("workflow", workflow), ("task_type", kind[0]), ("agent", kind[1]), ("model", model or NONE),
            ("provider", provider)]


def add_scores(stats: Stats, event: TaskAssessed | Quality) -> None:
    stats.assessed += 1
    sums = stats.scores  # in SCORES order; added to in place, on the hot path of every success
    if not sums:
        stats.scores = [event.accuracy, event.completeness, event.consistency, event.efficiency,
                        event.maintainability, event.overall]
        return
    sums[0] += event.accuracy
    sums[1] += event.completeness
    sums[2] += event.consistency
    sums[3] += event.efficiency
    sums[4] += event.maintainability
    sums[5] += event.overall


class Bucket(msgspec.Struct):
    """One minute or hour of event time: `all` tasks, and per dimension per key."""

    all: Stats
    by: dict[str, dict[str, Stats]]
    security: dict[str, int] = {}  # what (an alert name, "rejected_message", ...) -> events

    def keys(self, of: Iterable[tuple[str, str]]) -> list[Stats]:
        """The stats of `all` and of each (dimension, key), made when new."""
        return [self.all, *(self.one(dim, key) for dim, key in of)]

    def one(self, dim: str, key: str) -> Stats:
        keyed = self.by[dim]
        stats = keyed.get(key)
        if stats is None:
            if len(keyed) >= KEYS_PER_DIMENSION:
                key = OTHER
                stats = keyed.get(OTHER)
            if stats is None:
                stats = keyed[key] = Stats()
        return stats

    def absorb(self, other: Bucket, dims: Iterable[str] = DIMENSIONS) -> None:
        """Add what `other` counted, for all and for the dimensions `dims`."""
        self.all.add(other.all)
        for what, n in other.security.items():
            self.security[what] = self.security.get(what, 0) + n
        for dim in dims:
            for key, stats in other.by[dim].items():
                self.one(dim, key).add(stats)


def _bucket() -> Bucket:
    return Bucket(all=Stats(), by={dim: {} for dim in DIMENSIONS})


class Tier(msgspec.Struct):
    """The last `keep` buckets of `width` seconds, by index (`ts // width`)."""

    width: int
    keep: int
    buckets: dict[int, Bucket] = {}

    def at(self, ts: float) -> Bucket | None:
        index = int(ts // self.width)
        bucket = self.buckets.get(index)
        if bucket is not None:
            return bucket
        newest = max(self.buckets, default=index)
        if index <= newest - self.keep:
            return None  # older than every bucket kept
        bucket = self.buckets[index] = _bucket()
        if index > newest:
            for old in [i for i in self.buckets if i <= index - self.keep]:
                del self.buckets[old]
        return bucket

    def between(self, since: float, until: float) -> list[Bucket]:
        """The buckets that start in [since, until)."""
        return [b for i, b in sorted(self.buckets.items()) if since <= i * self.width < until]


class Windows(msgspec.Struct):
    """Minute and hour buckets. An event counts in its minute; the minute under way (`live`) is
    added to its hour when the next minute starts, so an event costs one bucket's update, not
    two. An event of an earlier minute (late, or from another actor's clock) counts in its
    minute and its hour at once. Hours count per `HOUR_DIMENSIONS`: not per workflow."""

    minutes: Tier = msgspec.field(default_factory=lambda: Tier(60, MINUTES_KEPT))
    hours: Tier = msgspec.field(default_factory=lambda: Tier(3600, HOURS_KEPT))
    live: int | None = None  # the index of the minute under way, not yet in its hour

    def stats(self, ts: float, of: Iterable[tuple[str, str]]) -> list[Stats]:
        """The stats to count an event of `ts` in: its minute's (and hour's, if not the live
        minute) `all` and (dimension, key)s."""
        keyed = list(of)
        minute, live = self._minute(ts)
        out = minute.keys(keyed) if minute is not None else []
        if not live:
            hour = self.hours.at(ts)
            if hour is not None:
                out += hour.keys(k for k in keyed if k[0] != "workflow")
        return out

    def security(self, ts: float, whats: Iterable[str], workflow: str) -> None:
        minute, live = self._minute(ts)
        for bucket in (minute, None if live else self.hours.at(ts)):
            if bucket is None:
                continue
            for what in whats:
                bucket.security[what] = bucket.security.get(what, 0) + 1
                bucket.all.security += 1
                if bucket is minute:
                    bucket.one("workflow", workflow).security += 1

    def hour_buckets(self) -> dict[int, Bucket]:
        """The hour buckets, the live minute's counts included (copies where it adds)."""
        out = dict(self.hours.buckets)
        live = self.minutes.buckets.get(self.live) if self.live is not None else None
        if live is not None:
            index = self.live * self.minutes.width // self.hours.width  # type: ignore[operator]
            hour = _bucket()
            if index in out:
                hour.absorb(out[index])
            hour.absorb(live, HOUR_DIMENSIONS)
            out[index] = hour
        return out

    def _minute(self, ts: float) -> tuple[Bucket | None, bool]:
        index = int(ts // self.minutes.width)
        if self.live is None or index > self.live:
            sealed = self.minutes.buckets.get(self.live) if self.live is not None else None
            if sealed is not None:
                hour = self.hours.at(self.live * self.minutes.width)  # type: ignore[operator]
                if hour is not None:
                    hour.absorb(sealed, HOUR_DIMENSIONS)
            self.live = index
        return self.minutes.at(ts), index == self.live


def latency_bin(ms: float) -> int:
    return 0 if ms <= 1.0 else min(_MAX_BIN, int(math.log(ms) / _STEP))


def percentile_ms(histogram: dict[int, int], q: float) -> float | None:
    """The q-quantile (0..1, nearest rank) of a latency histogram: the middle of its bin."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for b in sorted(histogram):
        seen += histogram[b]
        if seen >= rank:
            return 1.0 if b == 0 else round(math.exp((b + 0.5) * _STEP), 3)
    raise AssertionError("unreachable: the ranks add up to the total")


def merged(buckets: Iterable[Bucket], dim: str | None = None) -> dict[str, Stats]:
    """The buckets' stats summed per key of `dim` (None: one key, "all")."""
    out: dict[str, Stats] = {}
    for bucket in buckets:
        items = bucket.by[dim].items() if dim is not None else (("all", bucket.all),)
        for key, stats in items:
            out.setdefault(key, Stats()).add(stats)
    return out
