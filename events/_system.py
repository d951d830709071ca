"""Events about the system rather than one workflow's plan: rejections and alerts."""

from __future__ import annotations

from typing import ClassVar, Literal

from ._envelope import EventBase

__all__ = ["AlertRaised", "MessageRejected"]


class MessageRejected(EventBase, frozen=True, kw_only=True):
    """A message on `ymera.>` that is not a valid event. It is acked, never retried.

    `stream_seq` is where the bad message sits in the stream; `excerpt` is its start,
    bounded, so the log shows what arrived without storing an arbitrarily large payload.
    """

    domain: ClassVar[str] = "sec"
    verb: ClassVar[str] = "rejected"

    subject: str
    reason: str
    excerpt: str
    size: int
    stream_seq: int | None = None


class AlertRaised(EventBase, frozen=True, kw_only=True):
    domain: ClassVar[str] = "alert"
    verb: ClassVar[str] = "raised"

    alert: str
    severity: Literal["info", "warning", "critical"]
    message: str
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
