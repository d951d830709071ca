"""When the monitor raises an alert: conditions on the metrics, and a gate that emits each alert once.

Thresholds are documented in docs/quality.md; `DEFAULT_THRESHOLDS` holds the defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from config import Settings
from store import MetricsState, percentile

__all__ = ["DEFAULT_THRESHOLDS", "Alert", "AlertGate", "Thresholds", "evaluate", "firing"]

Severity = Literal["info", "warning", "critical"]


class Thresholds(msgspec.Struct, frozen=True):
    """The fixed alert thresholds; the quality threshold and time limit come from `Settings`."""

    quality_min_assessed: int = 5
    quality_critical_margin: float = 0.2  # critical below QUALITY_THRESHOLD minus this
    failure_min_ends: int = 8
    failure_rate_warning: float = 0.25
    failure_rate_critical: float = 0.5
    latency_min_samples: int = 20
    latency_share_of_timeout: float = 0.8
    timeouts_warning: int = 3
    # Security: any finding of these in the last hour is a critical alert; more than
    # `security_events_per_hour` security events (findings and rejected messages) a warning.
    critical_security: tuple[str, ...] = ("injection_attempt", "secret_leak", "harmful_content")
    security_events_per_hour: int = 10


class Alert(msgspec.Struct, frozen=True):
    """One alert condition that holds now; the monitor publishes it as `AlertRaised`."""

    alert: str
    severity: Severity
    message: str
    metric: str
    value: float
    threshold: float

    @property
    def key(self) -> str:
        """What the gate remembers: an alert escalating or easing to another severity is news."""
        return f"{self.alert}/{self.severity}"


DEFAULT_THRESHOLDS = Thresholds()


class AlertGate:
    """Lets each alert through once when it starts, and again only after it has cleared.

    The gate is a fold plus a decision over one memory, `MetricsState.raised`: the keys
    (`<alert>/<severity>`) of the alerts raised and not cleared since.

    - Fold: `Metrics.apply` adds the key of every `AlertRaised`, so a monitor rebuilt from
      the log knows which alerts it has already emitted and does not emit them again.
    - Decision: `admit(firing)` drops the keys that are no longer firing (those alerts
      cleared, so they may fire again), returns the firing alerts whose key was not there,
      and adds their keys at once, so a second evaluation before the `AlertRaised` comes
      back through the bus does not emit a copy. Afterwards `raised` is exactly the set of
      firing keys.

    Clearing is not an event: a monitor rebuilt from the log starts from every key ever
    raised, and its first `admit` drops those no longer firing, which is where the live
    monitor stood after its last evaluation.
    """

    def __init__(self, raised: set[str]) -> None:
        self.raised = raised  # shared with the MetricsState it came from

    def admit(self, alerts: Sequence[Alert]) -> list[Alert]:
        keys = {alert.key for alert in alerts}
        self.raised.intersection_update(keys)
        new = [alert for alert in alerts if alert.key not in self.raised]
        self.raised.update(keys)
        return new


def evaluate(state: MetricsState, settings: Settings, thresholds: Thresholds = DEFAULT_THRESHOLDS, *,
             at: float | None = None) -> list[Alert]:
    """The alerts to emit now: those firing and not already raised. Updates `state.raised`."""
    return AlertGate(state.raised).admit(firing(state, settings, thresholds, at=at))


def firing(state: MetricsState, settings: Settings, thresholds: Thresholds = DEFAULT_THRESHOLDS, *,
           at: float | None = None) -> list[Alert]:
    """Every alert whose condition holds on `state` at `at` (epoch seconds; the security window
    ends there, or at the latest security event), whether raised already or not. Pure."""
    checks = (
        _quality(state, settings, thresholds) if settings.alert_on_quality_degradation else None,
        _failure_rate(state, thresholds),
        _latency(state, settings, thresholds),
        _timeouts(state, thresholds),
        *_security(state, thresholds, at),
    )
    return [alert for alert in checks if alert is not None]


def _security(state: MetricsState, t: Thresholds, at: float | None) -> list[Alert]:
    if not state.security:
        return []
    end = at if at is not None else state.security[-1][0]
    recent = [(what, workflow) for ts, what, workflow in state.security if end - 3600 < ts <= end]
    alerts = []
    for name in t.critical_security:
        hits = [workflow for what, workflow in recent if what == name]
        if hits:
            alerts.append(Alert(alert=name, severity="critical",
                                message=f"{len(hits)} {name.replace('_', ' ')} finding(s) in the last hour, the latest "
                                        f"in workflow {hits[-1]}",
                                metric=f"security.{name}", value=float(len(hits)), threshold=1.0))
    if len(recent) > t.security_events_per_hour:
        alerts.append(Alert(alert="security_events", severity="warning",
                            message=f"{len(recent)} security events in the last hour, over "
                                    f"{t.security_events_per_hour}",
                            metric="security.events_per_hour", value=float(len(recent)),
                            threshold=float(t.security_events_per_hour)))
    return alerts


def _quality(state: MetricsState, settings: Settings, t: Thresholds) -> Alert | None:
    mean, count = state.recent_quality_mean, len(state.recent_quality)
    if mean is None or count < t.quality_min_assessed or mean >= settings.quality_threshold:
        return None
    critical = round(settings.quality_threshold - t.quality_critical_margin, 4)
    severity: Severity = "critical" if mean < critical else "warning"
    threshold = critical if severity == "critical" else settings.quality_threshold
    label = "critical threshold" if severity == "critical" else "threshold"
    return Alert(
        alert="quality_degradation",
        severity=severity,
        message=f"recent quality {mean:.2f} is below the {threshold:.2f} {label} (last {count} assessed tasks)",
        metric="quality.recent_mean",
        value=round(mean, 4),
        threshold=threshold,
    )


def _failure_rate(state: MetricsState, t: Thresholds) -> Alert | None:
    rate, count = state.failure_rate, len(state.ends)
    if count < t.failure_min_ends or rate < t.failure_rate_warning:
        return None
    severity: Severity = "critical" if rate >= t.failure_rate_critical else "warning"
    threshold = t.failure_rate_critical if severity == "critical" else t.failure_rate_warning
    label = "critical threshold" if severity == "critical" else "threshold"
    return Alert(
        alert="failure_rate",
        severity=severity,
        message=f"recent failure rate {rate:.2f} is at or above the {threshold:.2f} {label} (last {count} task ends)",
        metric="failure_rate",
        value=round(rate, 4),
        threshold=threshold,
    )


def _latency(state: MetricsState, settings: Settings, t: Thresholds) -> Alert | None:
    count = len(state.latencies)
    p95 = percentile(state.latencies, 0.95)
    limit = t.latency_share_of_timeout * settings.task_timeout_seconds * 1000
    if p95 is None or count < t.latency_min_samples or p95 <= limit:
        return None
    share = f"{t.latency_share_of_timeout:.0%}"
    return Alert(
        alert="latency",
        severity="warning",
        message=(f"p95 latency {p95:.0f} ms is above {limit:.0f} ms, {share} of the "
                 f"{settings.task_timeout_seconds:g} s task timeout (last {count} tasks)"),
        metric="latency_ms.p95",
        value=p95,
        threshold=limit,
    )


def _timeouts(state: MetricsState, t: Thresholds) -> Alert | None:
    timeouts, count = state.recent_timeouts, len(state.ends)
    if timeouts < t.timeouts_warning:
        return None
    return Alert(
        alert="task_timeouts",
        severity="warning",
        message=f"{timeouts} of the last {count} task ends timed out (threshold {t.timeouts_warning})",
        metric="tasks.recent_timeouts",
        value=float(timeouts),
        threshold=float(t.timeouts_warning),
    )
