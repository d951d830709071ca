"""The monitor's alert rules: the shipped `alerts.yaml`, or the file YMERA_ALERTS_FILE names.

Sections and defaults follow the original guide (quality, security, performance), plus how
alerts resolve. Read and checked once at start, with the settings: a bad file stops the start
with one line naming the file, the key, the value and what was expected.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from events import YmeraError

__all__ = ["MINUTES_KEPT", "AlertRules", "AlertsFileError", "PerformanceRules", "QualityRules", "ResolveRules",
           "SecurityRules", "load_alert_rules"]

# The monitor keeps this many minutes of per-minute metrics (store/_windows.py): every window a
# rule looks at must fit in it.
MINUTES_KEPT = 120
_SHIPPED = "the shipped alerts.yaml"


class AlertsFileError(YmeraError):
    """An alerts file that cannot be used; the message names the file, the key and the value."""


class QualityRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    min_score: float = 0.75
    check_interval: float = 60.0
    window_seconds: float = 600.0
    baseline_seconds: float = 3600.0
    max_drop: float = 0.10
    min_samples: int = 20


class SecurityRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    max_events_per_hour: int = 10
    critical_events: tuple[str, ...] = ("injection_attempt", "secret_leak", "harmful_content")


class PerformanceRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    max_error_rate: float = 0.10
    max_response_time: float = 30.0  # seconds, a provider's p95
    min_success_rate: float = 0.90
    window_seconds: float = 300.0
    min_samples: int = 20


class ResolveRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    margin: float = 0.2
    checks: int = 3


class AlertRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    quality: QualityRules = QualityRules()
    security: SecurityRules = SecurityRules()
    performance: PerformanceRules = PerformanceRules()
    resolve: ResolveRules = ResolveRules()
    path: str | None = None  # the file they came from; None: the shipped one

    def __repr__(self) -> str:  # in the settings' repr: which file, not every rule
        return f"AlertRules(path={self.path!r})"


_SHARE = "a number from 0 to 1"
_SECONDS = "a number of seconds greater than 0"
_COUNT = "a whole number of at least 1"
# What each key must hold, as a user reads it in an error.
EXPECTED: dict[str, str] = {
    "quality.min_score": _SHARE, "quality.check_interval": _SECONDS, "quality.window_seconds": _SECONDS,
    "quality.baseline_seconds": _SECONDS, "quality.max_drop": _SHARE, "quality.min_samples": _COUNT,
    "security.max_events_per_hour": "a whole number of at least 0",
    "security.critical_events": "a list of alert names (e.g. [injection_attempt, secret_leak])",
    "performance.max_error_rate": _SHARE, "performance.max_response_time": _SECONDS,
    "performance.min_success_rate": _SHARE, "performance.window_seconds": _SECONDS,
    "performance.min_samples": _COUNT, "resolve.margin": _SHARE, "resolve.checks": _COUNT,
}
_SECTIONS = ("quality", "security", "performance", "resolve")


def load_alert_rules(path: Path | None) -> AlertRules:
    """The rules of `path` (None: the shipped file); `AlertsFileError` says in one line why a file
    cannot be used. A key left out keeps its default."""
    if path is None:
        return _check(resources.files("config").joinpath("alerts.yaml").read_bytes(), _SHIPPED, None)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AlertsFileError(f"alerts file {path}: cannot be read: {exc.strerror or exc}") from None
    return _check(raw, f"alerts file {path}", str(path))


def _check(raw: bytes, where: str, path: str | None) -> AlertRules:
    try:
        data = msgspec.yaml.decode(raw) if raw.strip() else {}
    except msgspec.DecodeError as exc:
        raise AlertsFileError(f"{where}: not valid YAML: {_yaml_problem(str(exc))}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AlertsFileError(f"{where}: expected a mapping of sections ({', '.join(_SECTIONS)}), "
                              f"got {_shown(data)}")
    values: dict[str, dict[str, Any]] = {}
    for section, body in data.items():
        if section not in _SECTIONS:
            raise AlertsFileError(f"{where}: unknown section {section!r}; expected one of {', '.join(_SECTIONS)}")
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise AlertsFileError(f"{where}: {section} is {_shown(body)}, expected a mapping of its keys")
        for key, value in body.items():
            name = f"{section}.{key}"
            if name not in EXPECTED:
                keys = ", ".join(k.split(".")[1] for k in EXPECTED if k.startswith(section + "."))
                raise AlertsFileError(f"{where}: unknown key {name}; {section} takes {keys}")
            if not _valid(name, value):
                raise AlertsFileError(f"{where}: {name} is {_shown(value)}, expected {EXPECTED[name]}")
        values[section] = body
    rules = msgspec.convert({**values, "path": path}, AlertRules)
    _fits(rules, where)
    return rules


def _valid(name: str, value: Any) -> bool:
    if name == "security.critical_events":
        return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
    expected = EXPECTED[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    if expected == _SHARE:
        return 0 <= value <= 1
    if expected == _SECONDS:
        return value > 0
    if expected == _COUNT:
        return isinstance(value, int) and value >= 1
    return isinstance(value, int) and value >= 0


def _fits(rules: AlertRules, where: str) -> None:
    """Every window within the minutes the monitor keeps."""
    q, p = rules.quality, rules.performance
    limit = MINUTES_KEPT * 60
    if q.window_seconds + q.baseline_seconds > limit:
        raise AlertsFileError(f"{where}: quality.window_seconds + quality.baseline_seconds is "
                              f"{q.window_seconds + q.baseline_seconds:g}, expected at most {limit} "
                              f"(the monitor keeps {MINUTES_KEPT} minutes)")
    if p.window_seconds > limit:
        raise AlertsFileError(f"{where}: performance.window_seconds is {p.window_seconds:g}, expected at most "
                              f"{limit} (the monitor keeps {MINUTES_KEPT} minutes)")


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _yaml_problem(text: str) -> str:
    """PyYAML's last problem and where it is, on one line: "did not find expected ',' or ']' (line 2, column 1)"."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) >= 2 and lines[-1].startswith("in "):
        return f"{lines[-2]} ({lines[-1].split(', ', 1)[-1]})"
    return " ".join(lines)
