"""`ymera report KIND [--hours N] [--json]`: reports over the last hours of the event log.

A report is a fold of some event types over a window of the log (the rows whose `ts` falls in
it) into one dict, for JSON and a text summary. Each kind is a `Report` in `REPORTS`, a reader
and a renderer, so one command and one window serve them all. `security` counts what the
security actor, the executor's scans, the store writer and the monitor said: findings in
submissions, in untrusted content bound for a prompt and in outputs, tool calls refused or
stopped at a limit, rejected (forged or malformed) messages, refusals, alerts and the writer's
signed checkpoints. It holds no output text, and a finding's reason never quotes a secret
(guard/ makes them so).
"""

from __future__ import annotations

import argparse
import math
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

import events
import store
from actors import Settings
from events import (
    AlertRaised,
    ChainCheckpoint,
    EdgeFlagged,
    InputFlagged,
    MessageRejected,
    OutputFlagged,
    ToolRefused,
    WorkflowRefused,
    YmeraError,
)

from ._models import _table

__all__ = ["REPORTS", "SECURITY_ALERTS", "InvalidHours", "Report", "add_report_command", "check_hours", "cmd_report",
           "security_report", "security_text"]

HOURS_RULE = "a positive number of hours"
# The monitor's alerts about security (actors/monitor/_alerts.py); the others are about quality and load.
SECURITY_ALERTS = frozenset({"injection_attempt", "secret_leak", "harmful_content", "security_events"})
_SECURITY_TYPES = ("InputFlagged", "EdgeFlagged", "OutputFlagged", "ToolRefused", "MessageRejected",
                   "WorkflowRefused", "ChainCheckpoint", "AlertRaised")
RECENT_FINDINGS = 20
TOP_REASONS = 10
REASON_CHARS = 60
_SEVERITIES = ("critical", "high", "medium", "low")


class InvalidHours(YmeraError, ValueError):
    """A window that is not a positive, finite number of hours (a ValueError too, for Python callers)."""

    def __init__(self, value: object) -> None:
        super().__init__(f"hours {value!r} is not {HOURS_RULE}")
        self.value = value


def check_hours(value: object) -> float:
    """`value` as a window's length in hours, or `InvalidHours`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidHours(value)
    hours = float(value)
    if not math.isfinite(hours) or hours <= 0:
        raise InvalidHours(value)
    return hours


def _hours_argument(text: str) -> float:
    try:
        return check_hours(float(text))
    except ValueError:  # not a number, or InvalidHours
        raise argparse.ArgumentTypeError(f"{text!r} is not {HOURS_RULE}") from None


# ---- the window ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    hours: float
    since: datetime
    until: datetime

    @classmethod
    def ending(cls, hours: float, now: datetime | None) -> Window:
        until = events.now() if now is None else now
        return cls(hours, until - timedelta(hours=hours), until)

    def header(self) -> dict[str, Any]:
        return {"hours": self.hours, "since": self.since.isoformat(), "until": self.until.isoformat()}


async def _rows(log: store.EventLog, types: Collection[str], window: Window,
                earlier: Collection[str] = ()) -> AsyncIterator[tuple[float, events.Event]]:
    """(ts, event) of the rows of `types` in the window, in log order; and of the `earlier` types
    before it too (what a report needs to know of what led up to the window)."""
    since, until = window.since.timestamp(), window.until.timestamp()
    async for chunk in log.scan("ts, type, data", types=types):
        for ts, kind, data in chunk:
            if ts <= until and (ts >= since or kind in earlier):
                yield ts, events.decode(data)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


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
            case AlertRaised() if event.alert in SECURITY_ALERTS:
                self.alerts.append({"ts": _iso(ts), "alert": event.alert, "severity": event.severity,
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
            recent += [{"ts": _iso(ts), "workflow_id": event.workflow_id, "run_id": _run(event),
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
    async for ts, event in _rows(log, _SECURITY_TYPES, window, earlier=("InputFlagged",)):
        fold.add(ts, event, ts >= since)
    return fold.as_dict(window)


# ---- what is shown ---------------------------------------------------------------------------


def _plural(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _period(hours: float) -> str:
    return "the last hour" if hours == 1 else f"the last {hours:g} hours"


def _clock(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in counts.items()) or "-"


def security_text(report: dict[str, Any]) -> str:
    """`security_report`'s dict as a person reads it at a terminal."""
    findings, rejected, refusals = report["findings"], report["rejected_messages"], report["refusals"]
    period = _period(report["hours"])
    tools = report["tools"]
    if not (findings["total"] or rejected["total"] or refusals["total"] or report["alerts"] or tools["by_tool"]):
        return f"no security events in {period}"
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
        ("tool calls", f"{tools['refused']} refused, {tools['limit']} stopped at a limit"
                       + (f" ({_counts(tools['by_tool'])})" if tools["by_tool"] else "")),
        ("checkpoints", f"{checkpoints['count']} signed, the latest at seq {checkpoints['latest_seq']}"
                        if checkpoints["count"] else "none signed"),
    ]
    out = [f"security in {period} ({_clock(report['since'])} to {_clock(report['until'])} UTC)", ""]
    out += [f"{label:<19}{value}" for label, value in summary]
    if rejected["by_reason"]:
        out += ["", "rejected messages by reason",
                *_indented(["count", "reason"], [[str(n), r] for r, n in rejected["by_reason"].items()], right=(0,))]
    if report["alerts"]:
        out += ["", "alerts", *_indented(["time", "alert", "severity", "message"],
                                         [[_clock(a["ts"]), a["alert"], a["severity"], a["message"]]
                                          for a in report["alerts"]])]
    if report["recent"]:
        out += ["", "recent findings (newest first)",
                *_indented(["time", "workflow", "run", "task", "stage", "type", "severity", "field", "reason"],
                           [[_clock(f["ts"]), f["workflow_id"], f["run_id"][:8] or "-", f["task_id"] or "-",
                             f["stage"], f["type"], f["severity"], f["field"], f["reason"]]
                            for f in report["recent"]])]
    return "\n".join(out)


def _indented(header: list[str], rows: list[list[str]], right: Collection[int] = ()) -> list[str]:
    return ["  " + line for line in _table(header, rows, right=list(right))]


# ---- the command -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """One kind of report: what `ymera report KIND` reads, and how it shows it."""

    help: str
    read: Callable[[store.EventLog, float], Awaitable[dict[str, Any]]]
    text: Callable[[dict[str, Any]], str]


REPORTS: dict[str, Report] = {
    "security": Report(help="findings in submissions and outputs, rejected (forged or malformed) messages, "
                            "refusals, security alerts and signed checkpoints",
                       read=security_report, text=security_text),
}


def add_report_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = sub.add_parser("report", help="a report over the last hours of the event log: "
                                           f"{', '.join(sorted(REPORTS))}")
    kinds = report.add_subparsers(dest="report", required=True, metavar="KIND")
    for name, kind in REPORTS.items():
        one = kinds.add_parser(name, help=kind.help)
        one.add_argument("--hours", type=_hours_argument, default=24.0, metavar="N",
                         help="the last N hours (default 24)")
        one.add_argument("--json", action="store_true", help="one JSON object, for machines")
        one.set_defaults(fn=cmd_report)


async def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    kind = REPORTS[args.report]
    async with store.SqliteEventLog(settings.log_path, readonly=True) as log:
        report = await kind.read(log, args.hours)
    print(msgspec.json.format(msgspec.json.encode(report), indent=2).decode() if args.json else kind.text(report))
    return 0
