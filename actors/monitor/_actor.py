"""The monitor: folds every event into live metrics and raises alerts on them.

Listens to: everything on `ymera.>`.
Emits: AlertRaised when an alert starts firing (once, until it clears and fires again).
Decides: on a timer, with `evaluate` over the folded metrics (`store/_metrics.py`, `_alerts.py`);
the thresholds are documented in docs/quality.md. (Issue "quality" deepens it.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from actors._runtime import Actor
from config import Settings
from events import EVENT_TYPES, NO_WORKFLOW, AlertRaised, Event, derive_id
from store import Metrics, MetricsState, Once

from ._alerts import evaluate

__all__ = ["Monitor"]


class Monitor(Actor):
    name: ClassVar[str] = "monitor"
    reads: ClassVar[tuple[type[Event], ...]] = tuple(EVENT_TYPES.values())  # the whole stream
    tick_seconds: ClassVar[float | None] = 1.0
    state_fields: ClassVar[dict[str, Any]] = {"state": MetricsState, "once": Once, "raises": dict[str, int]}
    # 2: the once-gate of fencing in the state; 3: loose ids in a store.Recent; 4: attempts that began
    state_version: ClassVar[int] = 5  # 5: security events
    by_reference: ClassVar[frozenset[str]] = Metrics.by_reference

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.metrics = Metrics()
        self.state: MetricsState = self.metrics.initial()
        # Folds each event once, whatever the stream holds (store/_once.py): the report then
        # equals the same projection rebuilt from the log.
        self.once = Once()
        self.raises: dict[str, int] = {}  # alert key -> times raised, folded from AlertRaised

    def apply(self, event: Event) -> None:
        if not self.once.admit(event):
            return
        self.state = self.metrics.apply(self.state, event)
        if isinstance(event, AlertRaised):
            key = f"{event.alert}/{event.severity}"
            self.raises[key] = self.raises.get(key, 0) + 1

    async def reconcile(self, at: datetime) -> list[Event]:
        if not self.settings.enable_continuous_monitoring:
            return []
        out: list[Event] = []
        for alert in evaluate(self.state, self.settings, at=at.timestamp()):
            n = self.raises.get(alert.key, 0) + 1
            out.append(AlertRaised(
                id=derive_id("monitor", alert.key, n, key=self.settings.id_key), ts=at, workflow_id=NO_WORKFLOW,
                actor=self.name, alert=alert.alert, severity=alert.severity, message=alert.message, metric=alert.metric,
                value=alert.value, threshold=alert.threshold))
        return out
