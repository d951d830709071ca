"""The monitor: metrics folded from every event, the monitoring report, and the alerts raised on them."""

from ._actor import Monitor
from ._alerts import DEFAULT_THRESHOLDS, Alert, AlertGate, Thresholds, evaluate, firing
from ._metrics import Metrics, MetricsState, ModelStats, percentile, report

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Alert",
    "AlertGate",
    "Metrics",
    "MetricsState",
    "ModelStats",
    "Monitor",
    "Thresholds",
    "evaluate",
    "firing",
    "percentile",
    "report",
]
