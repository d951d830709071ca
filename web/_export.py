"""`ymera metrics export [--out FILE] [--hours N]`: the dashboard as JSON, from the log alone.

What it writes is the body of `GET /dashboard` (web/_dashboard.py) over a view rebuilt from the
event log in the data dir (`View.offline`): no server, no NATS, nothing written but FILE. Two
exports of the same log, or an export and a server that folded the same events, give the same JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import msgspec

from actors import Settings
from events import YmeraError
from store import HOURS_RULE, check_hours

__all__ = ["add_metrics_command", "cmd_metrics_export", "hours_argument"]


def hours_argument(text: str) -> float:
    """`--hours`: a positive number of hours, refused with `store.check_hours`' words."""
    try:
        return check_hours(float(text))
    except ValueError:  # not a number, or store.InvalidHours
        raise argparse.ArgumentTypeError(f"{text!r} is not {HOURS_RULE}") from None


def add_metrics_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    metrics = sub.add_parser("metrics", help="metrics of the event log")
    verbs = metrics.add_subparsers(dest="metrics_command", required=True, metavar="COMMAND")
    export = verbs.add_parser("export", help="write the dashboard as JSON (the body of GET /dashboard), rebuilt from "
                                             "the event log in the data dir")
    export.add_argument("--out", type=Path, metavar="FILE", help="write it to FILE (default: standard output)")
    export.add_argument("--hours", type=hours_argument, default=24.0, metavar="N",
                        help="the windowed sections cover the last N hours (default 24)")
    export.set_defaults(fn=cmd_metrics_export)


async def cmd_metrics_export(settings: Settings, args: argparse.Namespace) -> int:
    out: Path | None = args.out
    if out is not None:
        _check_writable(out)
    if not settings.log_path.exists():
        raise YmeraError(f"no event log at {settings.log_path}: start the engine first (`ymera up`), or set "
                         f"YMERA_DATA_DIR to the deployment's data dir")
    from ._dashboard import dashboard  # the server's modules: only when the command runs, not at every `ymera`
    from ._view import View

    async with View.offline(settings, extra=[]) as view:
        body = await dashboard(view, args.hours)
    text = msgspec.json.format(msgspec.json.encode(body), indent=2) + b"\n"
    if out is None:
        sys.stdout.buffer.write(text)
    else:
        _write(out, text)
        print(f"wrote the dashboard ({len(text):,} bytes, as of seq {view.last_seq}) to {out}", file=sys.stderr)
    return 0


def _write(out: Path, text: bytes) -> None:
    try:
        out.write_bytes(text)
    except OSError as exc:
        raise YmeraError(f"cannot write {out}: {exc.strerror or exc}") from None


def _check_writable(out: Path) -> None:
    """Refuse a FILE that cannot be written before the log is read (it is written at the end)."""
    if out.is_dir():
        raise YmeraError(f"cannot write {out}: it is a directory")
    parent = out.parent
    if not parent.is_dir():
        raise YmeraError(f"cannot write {out}: no directory {parent}")
    if not os.access(out if out.exists() else parent, os.W_OK):
        raise YmeraError(f"cannot write {out}: permission denied")
