"""Which alerts are open, and the hysteresis that raises and resolves them: a fold of the
monitor's own decisions, pure, part of the monitor's snapshot.

- Raise: a reading past its threshold (`Reading.bad`) raises its alert, once: while it is open,
  further bad readings change nothing.
- Resolve: an open alert resolves once its metric has been back past the threshold by the
  rules' margin (`Reading.good`) at `resolve.checks` evaluations in a row. A check where the
  rule had too few samples to judge (the provider or model fell silent) counts as back; a
  check in between (neither past the threshold nor back by the margin) starts the count again.
- A quality_degradation alert keeps the model's baseline from when it was raised, so the
  degraded scores seeping into the trailing baseline cannot resolve it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

from events import AlertRaised, AlertResolved
from store import alert_key

from ._rules import Reading

__all__ = ["AlertBook", "Change", "OpenAlert"]


class OpenAlert(msgspec.Struct, kw_only=True):
    id: str  # the AlertRaised's
    alert: str
    subject: str | None = None
    metric: str
    threshold: float
    good_checks: int = 0
    baseline: float | None = None


class Change(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["raised", "resolved"]
    key: str
    n: int  # the how-many-th raise of this key: the events' ids derive from it
    reading: Reading | None  # None: resolved for want of samples
    raised: OpenAlert  # the alert raised, or the one a resolve ends


class AlertBook(msgspec.Struct):
    open: dict[str, OpenAlert] = {}
    raised: dict[str, int] = {}  # alert key -> times raised
    slot: int | None = None  # the last evaluation's `at // check_interval`

    def baselines(self) -> dict[str, float]:
        """The baselines open quality_degradation alerts keep, per model."""
        return {a.subject: a.baseline for a in self.open.values()
                if a.alert == "quality_degradation" and a.subject is not None and a.baseline is not None}

    def decide(self, readings: list[Reading], checks: int, raised_id: Callable[[str, int], str], *,
               complete: bool = True) -> list[Change]:
        """The raises and resolves these readings make; the book updated for them. `raised_id(key,
        n)` is the id of the n-th AlertRaised of an alert key. `complete`: the readings of every
        rule (an evaluation), so an open alert with none had too few samples; else only some."""
        changes: list[Change] = []
        seen = set()
        for reading in readings:
            key = alert_key(reading.alert, reading.subject)
            seen.add(key)
            is_open = self.open.get(key)
            if is_open is not None:
                is_open.good_checks = is_open.good_checks + 1 if reading.good else 0
                if is_open.good_checks >= checks:
                    changes.append(self._resolve(key, reading))
            elif reading.bad:
                n = self.raised.get(key, 0) + 1
                self.raised[key] = n
                self.open[key] = OpenAlert(id=raised_id(key, n), alert=reading.alert, subject=reading.subject,
                                           metric=reading.metric, threshold=reading.threshold,
                                           baseline=reading.baseline)
                changes.append(Change(kind="raised", key=key, n=n, reading=reading, raised=self.open[key]))
        for key, silent in list(self.open.items()):
            if complete and key not in seen:
                silent.good_checks += 1
                if silent.good_checks >= checks:
                    changes.append(self._resolve(key, None))
        return changes

    def _resolve(self, key: str, reading: Reading | None) -> Change:
        return Change(kind="resolved", key=key, n=self.raised.get(key, 1), reading=reading, raised=self.open.pop(key))

    def learn(self, event: AlertRaised | AlertResolved, slot: int) -> None:
        """An alert this monitor did not decide while folding (the idle tick decided it live, or
        another monitor did): the book takes it as it is, so it does not raise it again."""
        key = alert_key(event.alert, event.subject)
        if isinstance(event, AlertRaised):
            self.raised[key] = self.raised.get(key, 0) + 1
            self.open[key] = OpenAlert(id=event.id, alert=event.alert, subject=event.subject, metric=event.metric or "",
                                       threshold=event.threshold or 0.0)
        elif key in self.open and self.open[key].id == event.raised_id:
            del self.open[key]
        self.slot = max(self.slot if self.slot is not None else slot, slot)
