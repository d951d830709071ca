"""Errors of the event store."""

from __future__ import annotations

from pathlib import Path

from events import YmeraError

__all__ = ["DuplicateEvent", "StoreError", "StoreLocked"]


class StoreError(YmeraError):
    pass


class StoreLocked(StoreError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"event log {path} is held by another store writer")
        self.path = path


class DuplicateEvent(StoreError):
    """An append held an event id the log already has; nothing of that append was stored."""
