"""What every report's text shares (`ymera report KIND`): times, periods, indented tables; and
`--hours N`, read as store.check_hours reads it (the reports themselves: store/_reports.py)."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from datetime import UTC, datetime

from store import HOURS_RULE, check_hours

from ._models import _table

__all__ = ["clock", "hours_argument", "indented", "period"]


def hours_argument(text: str) -> float:
    try:
        return check_hours(float(text))
    except ValueError:  # not a number, or InvalidHours
        raise argparse.ArgumentTypeError(f"{text!r} is not {HOURS_RULE}") from None


def period(hours: float) -> str:
    return "the last hour" if hours == 1 else f"the last {hours:g} hours"


def clock(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def indented(header: list[str], rows: list[list[str]], right: Collection[int] = ()) -> list[str]:
    return ["  " + line for line in _table(header, rows, right=list(right))]
