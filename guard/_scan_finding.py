"""What an output scan reports: one `Finding` per secret, piece of personal data or harmful
passage, and the alert each one counts for. Data only, shared by the scanners and `_scan.py`."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["ALERTS", "Finding", "Kind", "Severity"]

Kind = Literal["secret", "pii", "harmful"]
Severity = Literal["low", "medium", "high", "critical"]

# The monitor's alert names: which alert a finding of each kind counts for.
ALERTS: dict[str, str] = {
    "secret": "secret_leak",
    "pii": "pii_exposure",
    "harmful": "harmful_content",
}


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One thing found in an output.

    `type` names the shape (`openai_api_key`, `private_key`, `email`, `harmful:weapons`, …);
    `span` is (start, end) in the scanned text, end exclusive; `reason` is what a person reads,
    and never holds the secret or the personal data itself, only its kind, a public prefix
    (`sk-`, `AKIA`) and its length.
    """

    kind: Kind
    type: str
    severity: Severity
    span: tuple[int, int]
    reason: str

    @property
    def alert(self) -> str:
        """The alert this finding counts for: secret_leak, pii_exposure or harmful_content."""
        return ALERTS[self.kind]
