"""What each alert rule reads off the metrics windows at one evaluation: a `Reading` per thing it
watches (all tasks, a provider, a model, an event kind), pure.

The rules and their defaults are `config.AlertRules` (alerts.yaml, docs/quality.md "Alerts").
Each reading says whether its metric is past the threshold (`bad`) and whether it is back past
the threshold by the resolve margin (`good`); `_book.py` turns readings into raises and resolves.
A window is the whole minutes of event time in [at - seconds, at).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from config import AlertRules
from store import MetricsState, Stats, merged, percentile_ms

__all__ = ["HOUR", "Reading", "critical", "readings"]

HOUR = 3600.0
NO_MODEL = "-"


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    alert: str
    subject: str | None = None  # what the alert is about when the rule watches many
    severity: Literal["info", "warning", "critical"] = "warning"
    metric: str
    value: float
    threshold: float
    resolve_at: float  # back past this (on the good side) counts towards resolving
    bad: bool
    good: bool
    message: str  # why it is bad, as the raised alert says it
    # quality_degradation: the model's trailing baseline mean, which an open alert keeps
    baseline: float | None = None


def _above(value: float, limit: float, margin: float) -> tuple[bool, bool, float]:
    """A metric that must stay at or below `limit` (a rate, a duration, a count): bad above it,
    good at or below `limit` less `margin` of it."""
    back = limit * (1 - margin)
    return value > limit, value <= back, back


def _below(value: float, limit: float, margin: float) -> tuple[bool, bool, float]:
    """A share that must stay at or above `limit` (a score, a success rate): bad below it, good
    at or above `limit` plus `margin` of the room up to 1."""
    back = limit + (1 - limit) * margin
    return value < limit, value >= back, back


def readings(state: MetricsState, rules: AlertRules, at: float, *, quality: bool,
             baselines: dict[str, float]) -> list[Reading]:
    """Every reading at event time `at`. `quality`: judge the quality rules (ALERT_ON_QUALITY_DEGRADATION);
    `baselines`: the baseline an open quality_degradation alert froze, per model."""
    out = _performance(state, rules, at) + _security(state, rules, at)
    if quality:
        out += _quality(state, rules, at, baselines)
    return out


def _performance(state: MetricsState, rules: AlertRules, at: float) -> list[Reading]:
    p, margin = rules.performance, rules.resolve.margin
    recent = state.windows.minutes.between(at - p.window_seconds, at)
    everything = merged(recent).get("all", Stats())
    out = []
    window = f"in the last {p.window_seconds:g} s"
    if everything.ended >= p.min_samples:
        rate = everything.failed / everything.ended
        bad, good, back = _above(rate, p.max_error_rate, margin)
        out.append(Reading(alert="error_rate", metric="error_rate", value=round(rate, 4),
                           threshold=p.max_error_rate, resolve_at=back, bad=bad, good=good,
                           message=f"error rate {rate:.2f} is above {p.max_error_rate:.2f}: {everything.failed} of "
                                   f"{everything.ended} attempts failed {window}"))
    runs = everything.completed + everything.run_failed
    if runs >= p.min_samples:
        rate = everything.completed / runs
        bad, good, back = _below(rate, p.min_success_rate, margin)
        out.append(Reading(alert="success_rate", metric="success_rate", value=round(rate, 4),
                           threshold=p.min_success_rate, resolve_at=back, bad=bad, good=good,
                           message=f"success rate {rate:.2f} is below {p.min_success_rate:.2f}: "
                                   f"{everything.completed} of {runs} runs completed {window}"))
    for provider, stats in sorted(merged(recent, "provider").items()):
        if stats.succeeded < p.min_samples:
            continue
        p95 = (percentile_ms(stats.latency, 0.95) or 0.0) / 1000
        bad, good, back = _above(p95, p.max_response_time, margin)
        out.append(Reading(alert="response_time", subject=provider, metric="latency_p95_seconds",
                           value=round(p95, 3), threshold=p.max_response_time, resolve_at=back, bad=bad, good=good,
                           message=f"p95 response time of provider {provider} is {p95:.1f} s, above "
                                   f"{p.max_response_time:g} s ({stats.succeeded} attempts {window})"))
    return out


def _security(state: MetricsState, rules: AlertRules, at: float) -> list[Reading]:
    s, margin = rules.security, rules.resolve.margin
    counts: dict[str, int] = {}
    for bucket in state.windows.minutes.between(at - HOUR, at):
        for what, n in bucket.security.items():
            counts[what] = counts.get(what, 0) + n
    total = sum(counts.values())
    bad, good, back = _above(float(total), float(s.max_events_per_hour), margin)
    return [Reading(alert="security_events", metric="security.events_per_hour", value=float(total),
                    threshold=float(s.max_events_per_hour), resolve_at=back, bad=bad, good=good,
                    message=f"{total} security events in the last hour, over {s.max_events_per_hour}"),
            *_critical(counts, s.critical_events)]


def critical(state: MetricsState, rules: AlertRules, at: float, names: set[str]) -> list[Reading]:
    """The readings of the critical security events among `names`, up to and including `at`:
    what the monitor judges at once when an event brings one."""
    counts: dict[str, int] = {}
    for bucket in state.windows.minutes.between(at - HOUR, at + 1):
        for what, n in bucket.security.items():
            counts[what] = counts.get(what, 0) + n
    return _critical(counts, tuple(n for n in rules.security.critical_events if n in names))


def _critical(counts: dict[str, int], names: tuple[str, ...]) -> list[Reading]:
    out = []
    for name in names:
        n = counts.get(name, 0)
        out.append(Reading(alert=name, severity="critical", metric=f"security.{name}", value=float(n), threshold=1.0,
                           resolve_at=0.0, bad=n > 0, good=n == 0,
                           message=f"{n} {name.replace('_', ' ')} finding(s) in the last hour"))
    return out


def _quality(state: MetricsState, rules: AlertRules, at: float, baselines: dict[str, float]) -> list[Reading]:
    q, margin = rules.quality, rules.resolve.margin
    minutes = state.windows.minutes
    recent_since = at - q.window_seconds
    recent = minutes.between(recent_since, at)
    out = []
    window = f"the last {q.window_seconds:g} s"
    everything = merged(recent).get("all", Stats())
    if everything.assessed >= q.min_samples:
        mean = everything.scores[-1] / everything.assessed
        bad, good, back = _below(mean, q.min_score, margin)
        out.append(Reading(alert="quality_low", metric="quality.overall", value=round(mean, 4), threshold=q.min_score,
                           resolve_at=back, bad=bad, good=good,
                           message=f"mean overall quality {mean:.2f} is below {q.min_score:.2f} "
                                   f"({everything.assessed} tasks assessed in {window})"))
    before = merged(minutes.between(recent_since - q.baseline_seconds, recent_since), "model")
    for model, stats in sorted(merged(recent, "model").items()):
        if model == NO_MODEL or stats.assessed < q.min_samples:
            continue
        baseline = baselines.get(model)
        if baseline is None:
            trailing = before.get(model)
            if trailing is None or trailing.assessed < q.min_samples:
                continue
            baseline = round(trailing.scores[-1] / trailing.assessed, 4)
        mean = stats.scores[-1] / stats.assessed
        drop = baseline - mean
        bad, good, back = _above(drop, q.max_drop, margin)
        out.append(Reading(alert="quality_degradation", subject=model, metric="quality.overall_mean",
                           value=round(mean, 4), threshold=round(baseline - q.max_drop, 4),
                           resolve_at=round(baseline - back, 4), bad=bad, good=good, baseline=baseline,
                           message=f"model {model}: mean overall quality {mean:.2f} over {window} is {drop:.2f} "
                                   f"below its baseline {baseline:.2f} (more than {q.max_drop:.2f})"))
    return out
