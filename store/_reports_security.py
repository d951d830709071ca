"""The security report over the last hours of the log (store/_reports.py has the window).

It counts what the security actor, the executor's scans, the store writer and the monitor said:
findings in submissions, in untrusted content bound for a prompt and in outputs, tool calls
refused or stopped at a limit, rejected (forged or malformed) messages, refusals, alerts and the
writer's signed checkpoints. It holds no output text, and a finding's reason never quotes a
secret (guard/ makes them so).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import events
from events import (
    AlertRaised,
    CancelRefused,
    ChainCheckpoint,
    EdgeFlagged,
    InputFlagged,
    MessageRejected,
    OutputFlagged,
    ToolRefused,
    WorkflowRefused,
)

from ._log import EventLog
from ._metrics_report import iso
from ._reports import Window, check_hours, rows

__all__ = ["SECURITY_ALERTS", "security_report"]

# The monitor's alerts about security (config.SecurityRules, docs/quality.md "Alerts"); the others
# are about quality and load.
SECURITY_ALERTS = frozenset({"injection_attempt", "secret_leak", "harmful_content", "security_events"})
_SECURITY_TYPES = ("InputFlagged", "EdgeFlagged", "OutputFlagged", "ToolRefused", "MessageRejected",
                   "WorkflowRefused", "CancelRefused", "ChainCheckpoint", "AlertRaised")
RECENT_FINDINGS = 20
TOP_REASONS = 10
REASON_CHARS = 60
_SEVERITIES = ("critical", "high", "medium", "low")


def _ranked(counts: Counter[str], order: Collection[str] = ()) -> dict[str, int]:
    """Most first, ties by name; or in `order`'s order."""
    if order:
        return {k: counts[k] for k in order if counts[k]}
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class _SecurityFold:
    by_alert: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)
    by_severity: Counter[str] = field(default_factory=Counter)
    # The last flagged events, enough for the last RECENT_FINDINGS findings (each has one at least).
    flagged: deque[tuple[float, InputFlagged | EdgeFlagged | OutputFlagged]] = field(
        default_factory=lambda: deque(maxlen=RECENT_FINDINGS))
    inputs: int = 0
    inputs_refused: int = 0
    refused_runs: set[str] = field(default_factory=set)  # runs refused for their input, before the window too
    outputs: int = 0
    outputs_redacted: int = 0
    tool_calls: Counter[str] = field(default_factory=Counter)  # "refused" / "limit" -> count
    tools: Counter[str] = field(default_factory=Counter)  # tool -> calls refused or stopped
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> count
    forged: int = 0
    refusals: list[str] = field(default_factory=list)  # the refused runs
    cancels_refused: Counter[str] = field(default_factory=Counter)  # who asked -> cancels of others' runs refused
    alerts: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: int = 0
    latest_checkpoint: int | None = None

    def add(self, ts: float, event: events.Event, in_window: bool) -> None:
        if isinstance(event, InputFlagged) and event.refused:
            self.refused_runs.add(_run(event))
        if not in_window:
            return
        match event:
            case InputFlagged():
                self._flagged(ts, event)
                self.inputs += 1
                self.inputs_refused += event.refused
            case EdgeFlagged():  # untrusted content bound for a prompt: counted with the findings
                self._flagged(ts, event)
            case OutputFlagged():
                self._flagged(ts, event)
                self.outputs += 1
                self.outputs_redacted += event.redacted
            case ToolRefused():
                self.tool_calls[event.kind] += 1
                self.tools[event.tool] += 1
            case MessageRejected():
                self.rejected[event.reason] += 1
                self.forged += event.kind == "untrusted"
            case WorkflowRefused():
                self.refusals.append(event.run_id)
            case CancelRefused():
                self.cancels_refused[event.principal or "-"] += 1
            case AlertRaised() if event.alert in SECURITY_ALERTS:
                self.alerts.append({"ts": iso(ts), "alert": event.alert, "severity": event.severity,
                                    "message": event.message})
            case ChainCheckpoint():
                self.checkpoints += 1
                self.latest_checkpoint = max(self.latest_checkpoint or 0, event.head_seq)

    def _flagged(self, ts: float, event: InputFlagged | EdgeFlagged | OutputFlagged) -> None:
        self.flagged.append((ts, event))
        for f in event.findings:
            self.by_alert[f.alert] += 1
            self.by_type[f.type] += 1
            self.by_severity[f.severity] += 1

    def as_dict(self, window: Window) -> dict[str, Any]:
        reasons: Counter[str] = Counter()
        for reason, n in self.rejected.items():
            reasons[reason[:REASON_CHARS]] += n
        total = sum(self.rejected.values())
        return {
            **window.header(),
            "findings": {"total": self.by_alert.total(), "by_alert": _ranked(self.by_alert),
                         "by_type": _ranked(self.by_type), "by_severity": _ranked(self.by_severity, _SEVERITIES)},
            "inputs": {"flagged_submissions": self.inputs, "refused": self.inputs_refused},
            "outputs": {"flagged_attempts": self.outputs, "redacted": self.outputs_redacted},
            "tools": {"refused": self.tool_calls["refused"], "limit": self.tool_calls["limit"],
                      "by_tool": _ranked(self.tools)},
            "rejected_messages": {"total": total, "forged": self.forged, "malformed": total - self.forged,
                                  "by_reason": dict(list(_ranked(reasons).items())[:TOP_REASONS])},
            "refusals": {"total": len(self.refusals),
                         "for_input": sum(run in self.refused_runs for run in self.refusals)},
            "cancels_refused": {"total": self.cancels_refused.total(), "by_principal": _ranked(self.cancels_refused)},
            "alerts": self.alerts,
            "checkpoints": {"count": self.checkpoints, "latest_seq": self.latest_checkpoint},
            "recent": self._recent(),
        }

    def _recent(self) -> list[dict[str, Any]]:
        """The last findings, newest event first, each event's findings in their order."""
        recent = []
        for ts, event in reversed(self.flagged):
            stage = "input" if isinstance(event, InputFlagged) else "output" if isinstance(event, OutputFlagged) \
                else "edge"
            recent += [{"ts": iso(ts), "workflow_id": event.workflow_id, "run_id": _run(event),
                        "task_id": None if isinstance(event, InputFlagged) else event.task_id,
                        "stage": stage, "type": f.type, "severity": f.severity,
                        "field": f.field, "reason": f.reason} for f in event.findings]
        return recent[:RECENT_FINDINGS]


def _run(event: InputFlagged | EdgeFlagged | OutputFlagged) -> str:
    return event.run_id or (event.submission_id if isinstance(event, InputFlagged) else "")


async def security_report(log: EventLog, hours: float, *, now: datetime | None = None) -> dict[str, Any]:
    """What the log says about security in the `hours` up to `now` (default: now): findings in
    submissions and outputs, rejected messages, refusals, security alerts, signed checkpoints."""
    window = Window.ending(check_hours(hours), now)
    fold = _SecurityFold()
    since = window.since.timestamp()
    async for ts, event in rows(log, _SECURITY_TYPES, window, earlier=("InputFlagged",)):
        fold.add(ts, event, ts >= since)
    return fold.as_dict(window)
