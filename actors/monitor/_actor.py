"""The monitor: folds every event into live metrics and raises and resolves alerts on them.

Listens to: everything on `ymera.>` but TaskReady.
Emits: AlertRaised when a rule's metric crosses its threshold, AlertResolved when it has been
back past it by the margin for a while (`_book.py`); the rules are `Settings.alerts`
(alerts.yaml, docs/quality.md "Alerts").
Decides: in the fold, on event time. When an event's `ts` enters a new `check_interval` slot,
the rules are evaluated at the slot's start over the windows folded so far, before the event
is folded. Nothing reads the clock, so a monitor rebuilt from the log (from the start, or from
a snapshot) decides the same alerts with the same ids and times, and drops the logged copies
of the ones it decided before; a decision whose event never reached the log (a crash between)
is published again at start. A critical security finding is judged at once, at its event's
`ts`. When no event has entered the wall clock's check interval 2 s after it began, the
one-second tick evaluates at its start, so an idle system still resolves; that decision reaches the
log like any other, and a monitor rebuilt from the log takes it from there (`AlertBook.learn`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from actors._runtime import Actor
from config import Settings
from events import (
    EVENT_TYPES,
    NO_WORKFLOW,
    AlertRaised,
    AlertResolved,
    EdgeFlagged,
    Event,
    InputFlagged,
    OutputFlagged,
    TaskReady,
    derive_id,
)
from store import Metrics, MetricsState, Once

from ._book import AlertBook, Change
from ._rules import Reading, critical, readings

__all__ = ["Monitor"]

_ALERTS = (AlertRaised, AlertResolved)
# How long into a check interval the tick waits for an event to start it before evaluating
# itself: events stamped just before the interval began may still be on their way.
IDLE_GRACE_SECONDS = 2.0
_SECURITY = (InputFlagged, EdgeFlagged, OutputFlagged)


class Monitor(Actor):
    name: ClassVar[str] = "monitor"
    # The whole stream but TaskReady (a third of a run's events), which the metrics pass over: a
    # task's type and agent come from its run's submission, a run runs once a task began.
    reads: ClassVar[tuple[type[Event], ...]] = tuple(kind for kind in EVENT_TYPES.values() if kind is not TaskReady)
    tick_seconds: ClassVar[float | None] = 1.0
    # It only folds and judges once a check interval: waking once for a trickle of events, not
    # for each, costs its alerts nothing.
    linger_seconds: ClassVar[float] = 0.01
    state_fields: ClassVar[dict[str, Any]] = {"state": MetricsState, "once": Once, "book": AlertBook,
                                              "outbox": list[AlertRaised | AlertResolved]}
    # 2: the once-gate of fencing in the state; 3: loose ids in a store.Recent; 4: attempts that began;
    # 5: security events
    # 6: time windows, alert rules decided on event time; 7: the once-gate counts active runs per workflow;
    # 8: no TaskReady (kinds from the submission)
    state_version: ClassVar[int] = 8
    by_reference: ClassVar[frozenset[str]] = Metrics.by_reference

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.metrics = Metrics()
        self.state: MetricsState = self.metrics.initial()
        # Folds each event once, whatever the stream holds (store/_once.py): the report then
        # equals the same projection rebuilt from the log.
        self.once = Once()
        self.book = AlertBook()
        self.outbox: list[AlertRaised | AlertResolved] = []  # decided, not yet published

    def apply(self, event: Event) -> None:
        if isinstance(event, _ALERTS) and self.outbox:
            self.outbox = [decided for decided in self.outbox if decided.id != event.id]  # the stream has it
        if not self.once.admit(event):
            return
        ts = event.ts.timestamp()
        if isinstance(event, _ALERTS):
            self.book.learn(event, int(ts // self.settings.alerts.quality.check_interval))
        elif self.settings.enable_continuous_monitoring:
            self._check(ts)
        self.state = self.metrics.apply(self.state, event)
        if self.settings.enable_continuous_monitoring and isinstance(event, _SECURITY):
            # A critical finding is judged at once, at its own time, not at the next check.
            names = {f.alert for f in event.findings}
            if names & set(self.settings.alerts.security.critical_events):
                self._decide(critical(self.state, self.settings.alerts, ts, names), ts, complete=False)

    async def handle(self, batch: list[Event]) -> list[Event]:
        for event in batch:
            self.apply(event)
        return self._drain()

    async def reconcile(self, at: datetime) -> list[Event]:
        """Publish what was decided; and when no event has entered the wall clock's check interval
        `IDLE_GRACE_SECONDS` after it began, evaluate at its start, so an idle system still resolves."""
        interval = self.settings.alerts.quality.check_interval
        wall = at.timestamp()
        slot = int(wall // interval)
        if (self.settings.enable_continuous_monitoring and self.book.slot is not None and slot > self.book.slot
                and wall - slot * interval >= min(IDLE_GRACE_SECONDS, interval / 2)):
            self._evaluate(slot)
        return self._drain()

    def _drain(self) -> list[Event]:
        out: list[Event] = list(self.outbox)
        self.outbox.clear()
        return out

    def _check(self, ts: float) -> None:
        """Evaluate the rules if `ts` is in a later slot than the last evaluation."""
        slot = int(ts // self.settings.alerts.quality.check_interval)
        if self.book.slot is not None and slot <= self.book.slot:
            return
        if self.book.slot is None:
            self.book.slot = slot  # nothing folded yet to judge
            return
        self._evaluate(slot)

    def _evaluate(self, slot: int) -> None:
        rules = self.settings.alerts
        self.book.slot = slot
        at = slot * rules.quality.check_interval
        self._decide(readings(self.state, rules, at, quality=self.settings.alert_on_quality_degradation,
                              baselines=self.book.baselines()), at)

    def _decide(self, found: list[Reading], at: float, *, complete: bool = True) -> None:
        for change in self.book.decide(found, self.settings.alerts.resolve.checks, self._raised_id,
                                       complete=complete):
            event = self._event(change, at)
            self.once.admit(event)
            self.state = self.metrics.apply(self.state, event)
            self.outbox.append(event)

    def _raised_id(self, key: str, n: int) -> str:
        return derive_id("monitor", key, n, key=self.settings.id_key)

    def _event(self, change: Change, at: float) -> AlertRaised | AlertResolved:
        ts = datetime.fromtimestamp(at, UTC)
        reading, alert = change.reading, change.raised
        if change.kind == "raised":
            assert reading is not None
            return AlertRaised(id=alert.id, ts=ts, workflow_id=NO_WORKFLOW, actor=self.name, alert=reading.alert,
                               severity=reading.severity, message=reading.message, metric=reading.metric,
                               value=reading.value, threshold=reading.threshold, subject=reading.subject)
        about = alert.alert + (f" of {alert.subject}" if alert.subject is not None else "")
        checks = self.settings.alerts.resolve.checks
        why = (f"{alert.metric} {reading.value:g} is back past {reading.resolve_at:g}" if reading is not None
               else "too few samples to judge")
        return AlertResolved(id=derive_id("monitor", change.key, change.n, "resolved", key=self.settings.id_key),
                             ts=ts, workflow_id=NO_WORKFLOW, actor=self.name, alert=alert.alert, raised_id=alert.id,
                             message=f"{about} resolved: {why} at {checks} checks in a row", metric=alert.metric,
                             value=reading.value if reading is not None else None, subject=alert.subject)
