"""`ymera report KIND [--hours N] [--json]`: reports over the last hours of the event log.

A report is a fold of some event types over a window of the log into one dict (store/_reports.py,
store/_reports_security.py), printed as JSON or as text. Each kind is a `Report` in `REPORTS`, a
reader and a renderer, so one command and one window serve them all. Here: the security report's
text (the text of `quality` and `monitoring`: ymera/_report_monitor.py) and the command.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

import store
from actors import Settings
from store import monitoring_report, quality_report, security_report

from ._report_monitor import monitoring_text, quality_text
from ._report_text import clock, hours_argument, indented, period

__all__ = ["REPORTS", "Report", "add_report_command", "cmd_report", "security_text"]


# ---- what is shown ---------------------------------------------------------------------------


def _plural(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in counts.items()) or "-"


def security_text(report: dict[str, Any]) -> str:
    """`store.security_report`'s dict as a person reads it at a terminal."""
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
