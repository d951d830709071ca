"""The monitor: folds every event into the metrics projection (`store.Metrics`) and raises and
resolves alerts on it, by the rules of alerts.yaml (`config.AlertRules`)."""

from ._actor import Monitor
from ._book import AlertBook, Change, OpenAlert
from ._rules import Reading, readings

__all__ = [
    "AlertBook",
    "Change",
    "Monitor",
    "OpenAlert",
    "Reading",
    "readings",
]
