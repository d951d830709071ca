"""`ymera report KIND [--hours N] [--json]`: reports over the last hours of the event log.

A report is a fold of some event types over a window of the log (the rows whose `ts` falls in
it) into one dict, for JSON and a text summary. Each kind is a `Report` in `REPORTS`, a reader
and a renderer, so one command and one window serve them all (`quality` and `monitoring`:
ymera/_report_monitor.py). `security` counts what the
security actor, the executor's scans, the store writer and the monitor said: findings in
submissions, in untrusted content bound for a prompt and in outputs, tool calls refused or
stopped at a limit, rejected (forged or malformed) messages, refusals, alerts and the writer's
signed checkpoints. It holds no output text, and a finding's reason never quotes a secret
(guard/ makes them so).
"""

from __future__ import annotations

import argparse
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

import events
import store
from actors import Settings
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

from ._report_monitor import monitoring_report, monitoring_text, quality_report, quality_text
from ._report_window import InvalidHours, Window, check_hours, clock, hours_argument, indented, iso, period, rows

__all__ = ["REPORTS", "SECURITY_ALERTS", "InvalidHours", "Report", "add_report_command", "check_hours", "cmd_report",
           "security_report", "security_text"]

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


# ---- security --------------------------------------------------------------------------------


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


async def security_report(log: store.EventLog, hours: float, *, now: datetime | None = None) -> dict[str, Any]:
    """What the log says about security in the `hours` up to `now` (default: now): findings in
    submissions and outputs, rejected messages, refusals, security alerts, signed checkpoints."""
    window = Window.ending(check_hours(hours), now)
    fold = _SecurityFold()
    since = window.since.timestamp()
    async for ts, event in rows(log, _SECURITY_TYPES, window, earlier=("InputFlagged",)):
        fold.add(ts, event, ts >= since)
    return fold.as_dict(window)


# ---- what is shown ---------------------------------------------------------------------------


def _plural(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in counts.items()) or "-"


def security_text(report: dict[str, Any]) -> str:
    """`security_report`'s dict as a person reads it at a terminal."""
    findings, rejected, refusals = report["findings"], report["rejected_messages"], report["refusals"]
    when = period(report["hours"])
    tools = report["tools"]
    cancels = report["cancels_refused"]
    if not (findings["total"] or rejected["total"] or refusals["total"] or report["alerts"] or tools["by_tool"]
            or cancels["total"]):
        return f"no security events in {when}"
    inputs, outputs, checkpoints = report["inputs"], report["outputs"], report["checkpoints"]
    severities = ", ".join(f"{n} {severity}" for severity, n in findings["by_severity"].items())
    summary = [
        ("findings", f"{findings['total']}: {severities}" if findings["total"] else "none"),
        ("  by alert", _counts(findings["by_alert"])),
        ("  by type", _counts(findings["by_type"])),
        ("inputs", f"{_plural(inputs['flagged_submissions'], 'submission')} flagged, {inputs['refused']} refused"),
        ("outputs", f"{_plural(outputs['flagged_attempts'], 'attempt')} flagged, {outputs['redacted']} redacted"),
        ("rejected messages", f"{rejected['total']}: {rejected['forged']} forged, {rejected['malformed']} malformed"),
        ("refusals", f"{_plural(refusals['total'], 'workflow')} refused, {refusals['for_input']} for their input"),
        *([("cancels", f"{cancels['total']} refused (asked by {_counts(cancels['by_principal'])})")]
          if cancels["total"] else []),
        ("tool calls", f"{tools['refused']} refused, {tools['limit']} stopped at a limit"
                       + (f" ({_counts(tools['by_tool'])})" if tools["by_tool"] else "")),
        ("checkpoints", f"{checkpoints['count']} signed, the latest at seq {checkpoints['latest_seq']}"
                        if checkpoints["count"] else "none signed"),
    ]
    out = [f"security in {when} ({clock(report['since'])} to {clock(report['until'])} UTC)", ""]
    out += [f"{label:<19}{value}" for label, value in summary]
    if rejected["by_reason"]:
        out += ["", "rejected messages by reason",
                *indented(["count", "reason"], [[str(n), r] for r, n in rejected["by_reason"].items()], right=(0,))]
    if report["alerts"]:
        out += ["", "alerts", *indented(["time", "alert", "severity", "message"],
                                         [[clock(a["ts"]), a["alert"], a["severity"], a["message"]]
                                          for a in report["alerts"]])]
    if report["recent"]:
        out += ["", "recent findings (newest first)",
                *indented(["time", "workflow", "run", "task", "stage", "type", "severity", "field", "reason"],
                           [[clock(f["ts"]), f["workflow_id"], f["run_id"][:8] or "-", f["task_id"] or "-",
                             f["stage"], f["type"], f["severity"], f["field"], f["reason"]]
                            for f in report["recent"]])]
    return "\n".join(out)


# ---- the command -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """One kind of report: what `ymera report KIND` reads, and how it shows it."""

    help: str
    read: Callable[[store.EventLog, float, Settings], Awaitable[dict[str, Any]]]
    text: Callable[[dict[str, Any]], str]


REPORTS: dict[str, Report] = {
    "security": Report(help="findings in submissions and outputs, rejected (forged or malformed) messages, "
                            "refusals, security alerts and signed checkpoints",
                       read=lambda log, hours, _: security_report(log, hours), text=security_text),
    "quality": Report(help="quality scores (five dimensions and overall) per model, task type and agent, per hour, "
                           "and quality alerts",
                      read=lambda log, hours, _: quality_report(log, hours), text=quality_text),
    "monitoring": Report(help="the monitor's view from the log: totals, the last window per workflow, agent, task "
                              "type, model and provider, each hour, open and recent alerts",
                         read=lambda log, hours, settings: monitoring_report(
                             log, hours, settings.alerts, active=settings.enable_continuous_monitoring),
                         text=monitoring_text),
}


def add_report_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = sub.add_parser("report", help="a report over the last hours of the event log: "
                                           f"{', '.join(sorted(REPORTS))}")
    kinds = report.add_subparsers(dest="report", required=True, metavar="KIND")
    for name, kind in REPORTS.items():
        one = kinds.add_parser(name, help=kind.help)
        one.add_argument("--hours", type=hours_argument, default=24.0, metavar="N",
                         help="the last N hours (default 24)")
        one.add_argument("--json", action="store_true", help="one JSON object, for machines")
        one.set_defaults(fn=cmd_report)


async def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    kind = REPORTS[args.report]
    async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
        report = await kind.read(log, args.hours, settings)
    print(msgspec.json.format(msgspec.json.encode(report), indent=2).decode() if args.json else kind.text(report))
    return 0
