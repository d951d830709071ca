"""Output scanning: what a task's output holds that should not flow on (issue 10).

`scan_output(text)` is a pure function over text. It finds:

- secrets (`_scan_secrets.py`: detect-secrets' plugins, the LLM providers' key formats, high-
  entropy strings), alert `secret_leak`;
- personal data (`_scan_pii.py`: emails, phone numbers, Luhn-valid cards, mod-97-valid IBANs),
  alert `pii_exposure`;
- harmful passages (`_scan_harmful.py`: a lexical screen for weapons, self-harm and malware),
  alert `harmful_content`.

`ScanResult.redacted` is the text with each secret and personal-data span replaced by
`[REDACTED:<type>]`; harmful passages are reported and left in place. Where spans overlap, one
finding stands for them: a named secret format before a high-entropy string, a secret before
personal data, a card or IBAN before an email before a phone number, then the earlier and
longer span.

Bounded: at most `limit` characters are scanned (1,000,000 unless told; the cut falls on a
line end when one is near). Past it the result is `truncated`, not `clean`, and `redacted`
carries `[UNSCANNED:<n> chars]` in place of the rest, so nothing unread flows on.
"""

from __future__ import annotations

import bisect

import msgspec

from ._scan_finding import ALERTS, Finding, Kind, Severity
from ._scan_harmful import find_harmful
from ._scan_pii import find_pii

__all__ = ["ALERTS", "MAX_SCAN_CHARS", "Finding", "Kind", "ScanResult", "Severity", "scan_output"]

MAX_SCAN_CHARS = 1_000_000
_CUT_REACH = 4096  # how far before the limit a line end is looked for, to cut between lines

# Which finding stands for overlapping spans: the lower tier, then the earlier, then the longer.
_TIERS = {"high_entropy": 1, "card": 2, "iban": 2, "email": 3, "phone": 4}
_SECRET_TIER = 0


class ScanResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one scan found, in text order, and the text as it may flow on."""

    findings: tuple[Finding, ...]
    redacted: str
    truncated: bool = False  # longer than the scan limit: the rest was not read (nor passed on)

    @property
    def clean(self) -> bool:
        """Nothing found, and everything read."""
        return not self.findings and not self.truncated

    @property
    def alerts(self) -> tuple[str, ...]:
        """The alerts this output counts for, each once, sorted."""
        return tuple(sorted({f.alert for f in self.findings}))


def scan_output(text: str, *, limit: int = MAX_SCAN_CHARS) -> ScanResult:
    """Scan one task output for secrets, personal data and harmful passages."""
    # detect-secrets and its plugins take ~0.2 s to import: loaded by the first scan (an
    # executor's), not by every `ymera` command that imports guard for its keys.
    from ._scan_secrets import find_secrets

    scanned, rest = _cut(text, max(0, limit))
    redactable = _resolve(find_secrets(scanned) + find_pii(scanned))
    findings = sorted(redactable + find_harmful(scanned), key=lambda f: (f.span, f.kind))
    redacted = _redact(scanned, redactable)
    if rest:
        redacted += f"[UNSCANNED:{rest} chars]"
    return ScanResult(findings=tuple(findings), redacted=redacted, truncated=rest > 0)


def _cut(text: str, limit: int) -> tuple[str, int]:
    if len(text) <= limit:
        return text, 0
    line_end = text.rfind("\n", max(0, limit - _CUT_REACH), limit)
    cut = line_end + 1 if line_end >= 0 else limit
    return text[:cut], len(text) - cut


def _tier(finding: Finding) -> int:
    return _TIERS.get(finding.type, _SECRET_TIER)


def _resolve(candidates: list[Finding]) -> list[Finding]:
    """One finding per overlapping group, by tier; the kept spans sorted and disjoint."""
    kept: list[Finding] = []
    starts: list[int] = []
    for tier in sorted({_tier(f) for f in candidates}):
        chosen: list[Finding] = []
        last_end = -1
        for finding in sorted((f for f in candidates if _tier(f) == tier),
                              key=lambda f: (f.span[0], -f.span[1])):
            start, end = finding.span
            if start >= end or start < last_end or _overlaps(kept, starts, start, end):
                continue
            chosen.append(finding)
            last_end = end
        kept = sorted(kept + chosen, key=lambda f: f.span)
        starts = [f.span[0] for f in kept]
    return kept


def _overlaps(kept: list[Finding], starts: list[int], start: int, end: int) -> bool:
    i = bisect.bisect_right(starts, start)
    if i > 0 and kept[i - 1].span[1] > start:
        return True
    return i < len(kept) and kept[i].span[0] < end


def _redact(text: str, kept: list[Finding]) -> str:
    parts: list[str] = []
    at = 0
    for finding in kept:
        start, end = finding.span
        parts.append(text[at:start])
        parts.append(f"[REDACTED:{finding.type}]")
        at = end
    parts.append(text[at:])
    return "".join(parts)
