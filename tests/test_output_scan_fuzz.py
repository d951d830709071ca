"""Output scanning never crashes, whatever the text: its findings always describe the text they
came from, and its redaction replaces exactly their spans (hypothesis)."""

from __future__ import annotations

import string

from hypothesis import example, given, settings
from hypothesis import strategies as st

from guard._scan import ScanResult, scan_output

# The pieces the detectors key on, so that random text reaches their deeper branches.
FRAGMENTS = [
    "sk-", "sk-ant-api03-", "sk-or-v1-", "sk-proj-", "AIza", "gsk_", "xai-", "hf_", "tgp_v1_", "fw_", "csk-",
    "npm_", "pypi-", "AKIA", "ghp_", "glpat-", "xoxb-1-", "sk_live_", "SG.", "eyJ", "T3BlbkFJ", ".", "=", "@",
    "+", "+1 ", "(", ")", "-", " ", "\n", "://", "user:pass@", "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----", "PuTTY-User-Key-File-2", "4111", "1111 ", "GB82", "WEST", "sha256:",
    "how to make a bomb", "kill yourself", "victim's files", "ransomware", "I can't ", "\u0130", "\u2028",
    "\udcff", "aws key '",
]
TEXT = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet=string.ascii_letters + string.digits,
                                                             max_size=40)), max_size=40).map("".join),
)


def _assert_consistent(text: str, result: ScanResult) -> None:
    redactable = [f for f in result.findings if f.kind != "harmful"]
    rebuilt, at = [], 0
    for finding in redactable:
        start, end = finding.span
        assert 0 <= at <= start < end <= len(text)  # in the text, non-empty, in order, disjoint
        rebuilt += [text[at:start], f"[REDACTED:{finding.type}]"]
        at = end
    rebuilt.append(text[at:])
    assert result.redacted == "".join(rebuilt)
    for finding in result.findings:
        assert 0 <= finding.span[0] < finding.span[1] <= len(text)
        assert finding.alert in ("secret_leak", "pii_exposure", "harmful_content")
        found = text[finding.span[0]:finding.span[1]]
        if finding.kind != "harmful" and len(found) >= 6:
            assert found not in finding.reason
    assert result.clean == (not result.findings)
    assert [f.span for f in result.findings] == sorted(f.span for f in result.findings)


@settings(max_examples=400, deadline=None)
@given(TEXT)
@example("https://a:b@c")
@example("-----BEGIN PRIVATE KEY-----")
@example("eyJ.eyJ.")
def test_any_text_scans_without_error_into_a_consistent_result(text: str) -> None:
    _assert_consistent(text, scan_output(text))


@settings(max_examples=200, deadline=None)
@given(TEXT, st.integers(min_value=0, max_value=200))
def test_any_limit_reads_no_further_and_says_so(text: str, limit: int) -> None:
    result = scan_output(text, limit=limit)
    assert result.truncated == (len(text) > limit)
    if result.truncated:
        marker = result.redacted.rsplit("[UNSCANNED:", 1)[1]
        assert marker.endswith(" chars]")
        assert not result.clean
    for finding in result.findings:
        assert finding.span[1] <= limit


def _luhn_check_digit(payload: str) -> str:
    total = 0
    for i, c in enumerate(reversed(payload)):
        d = int(c)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str(-total % 10)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=15, max_size=15), st.integers(min_value=1, max_value=9))
def test_a_visa_number_is_flagged_exactly_when_it_passes_luhn(payload: str, offset: int) -> None:
    good = "4" + payload[:14] + _luhn_check_digit("4" + payload[:14])
    bad = good[:-1] + str((int(good[-1]) + offset) % 10)
    assert [f.type for f in scan_output(f"card {good} on file").findings] == ["card"]
    assert scan_output(f"card {bad} on file").findings == ()
