"""The monitor: folds every event into the metrics projection (`store.Metrics`) and raises
alerts on them."""

from ._actor import Monitor
from ._alerts import DEFAULT_THRESHOLDS, Alert, AlertGate, Thresholds, evaluate, firing

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Alert",
    "AlertGate",
    "Monitor",
    "Thresholds",
    "evaluate",
    "firing",
]
