"""Output scanning (guard/_scan.py): one real-shaped secret per type, personal data with its
look-alikes, harmful passages with their refusals, redaction, reasons, alerts and bounds.

Key-shaped strings are assembled here at test time from a prefix and a seeded random body, so
this file holds nothing a secret scanner would take for a real key.
"""

from __future__ import annotations

import base64
import json
import random
import string
import time
from collections.abc import Callable

import pytest

from guard._scan import ALERTS, MAX_SCAN_CHARS, scan_output

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


def _random(n: int, alphabet: str = ALNUM, *, seed: int = 7) -> str:
    rnd = random.Random(f"{seed}-{n}-{alphabet}")
    return "".join(rnd.choice(alphabet) for _ in range(n))


def _b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def _jwt() -> str:
    return ".".join([_b64url({"alg": "HS256", "typ": "JWT"}), _b64url({"sub": "1234567890", "name": "Ada"}),
                     _random(43, ALNUM + "_-")])


def _private_key() -> str:
    body = "\n".join(_random(64, ALNUM + "+/", seed=i) for i in range(6))
    return "-----BEGIN " + "RSA PRIVATE" + " KEY-----\n" + body + "\n-----END " + "RSA PRIVATE" + " KEY-----"


# type -> the secret, built at test time.
SECRETS: dict[str, Callable[[], str]] = {
    "openai_api_key": lambda: "sk-" + _random(48),
    "anthropic_api_key": lambda: "sk-ant-" + "api03-" + _random(93, ALNUM + "_-") + "AA",
    "openrouter_api_key": lambda: "sk-or-" + "v1-" + _random(64, HEX),
    "deepseek_api_key": lambda: "sk-" + _random(32, HEX),
    "google_api_key": lambda: "AI" + "za" + _random(35, ALNUM + "_-"),
    "groq_api_key": lambda: "gsk" + "_" + _random(52),
    "xai_api_key": lambda: "xai" + "-" + _random(80),
    "huggingface_token": lambda: "hf" + "_" + _random(34, string.ascii_letters),
    "together_api_key": lambda: "tgp_" + "v1_" + _random(43, ALNUM + "_-"),
    "fireworks_api_key": lambda: "fw" + "_" + _random(24),
    "cerebras_api_key": lambda: "csk" + "-" + _random(48, string.ascii_lowercase + string.digits),
    "npm_token": lambda: "npm" + "_" + _random(36),
    "aws_access_key_id": lambda: "AK" + "IA" + _random(16, string.ascii_uppercase + string.digits),
    "github_token": lambda: "gh" + "p_" + _random(36),
    "gitlab_token": lambda: "gl" + "pat-" + _random(20, ALNUM + "_-"),
    "slack_token": lambda: "xo" + "xb-" + _random(11, string.digits) + "-" + _random(13, string.digits) + "-"
    + _random(24, string.ascii_lowercase + string.digits),
    "stripe_key": lambda: "sk" + "_live_" + _random(24),
    "sendgrid_api_key": lambda: "SG" + "." + _random(22, ALNUM + "_-") + "." + _random(43, ALNUM + "_-"),
    "jwt": _jwt,
    "private_key": _private_key,
    "high_entropy": lambda: _random(40, ALNUM + "+/"),
}


@pytest.mark.parametrize("type_", sorted(SECRETS))
def test_each_secret_type_is_found_redacted_exactly_and_never_repeated_in_its_reason(type_: str) -> None:
    secret = SECRETS[type_]()
    text = f"Here is the value: {secret}\nUse it wisely."
    result = scan_output(text)
    assert [(f.kind, f.type) for f in result.findings] == [("secret", type_)]
    finding = result.findings[0]
    start = text.index(secret)
    assert finding.span == (start, start + len(secret))
    assert result.redacted == f"Here is the value: [REDACTED:{type_}]\nUse it wisely."
    assert secret not in finding.reason
    shown = finding.reason.split("…")[0].split("(")[-1] if "…" in finding.reason else ""
    assert secret.startswith(shown)  # the public prefix of the format, at most
    private = secret[len(shown):]
    for i in range(len(private) - 5):  # and not 6 characters of the rest
        assert private[i:i + 6] not in finding.reason
    assert finding.alert == "secret_leak"
    assert not result.clean


def test_an_sk_key_with_openais_marker_is_openais() -> None:
    key = "sk-" + _random(20) + "T3Blbk" + "FJ" + _random(20)
    (finding,) = scan_output(f"key={key}").findings
    assert finding.type == "openai_api_key"
    assert finding.reason == "an OpenAI API key (sk-…, 51 chars)"


@pytest.mark.parametrize(("text", "reason"), [
    ("sk-" + _random(48), "an OpenAI API key (sk-…, 51 chars)"),
    ("sk-" + "proj-" + _random(156, ALNUM + "_-"), "an OpenAI API key (sk-proj-…, 164 chars)"),
    ("AK" + "IA" + _random(16, string.ascii_uppercase), "an AWS access key id (AKIA…, 20 chars)"),
    ("postgres://app:" + _random(12) + "@db.internal:5432/prod", "a password in a URL (12 chars)"),
    (_private_key(), "a private key block (RSA, 451 chars)"),
    ("'" + _random(40, ALNUM + "+/") + "'", "a high-entropy base64 string (40 chars)"),
    ("Card: 4111 1111 1111 1111.", "a payment card number (Visa, 16 digits, Luhn-valid)"),
    ("IBAN GB82 WEST 1234 5698 7654 32", "an IBAN (GB, 22 chars, checksum valid)"),
    ("write to jane.doe@example.org", "an email address (20 chars)"),
    ("call +44 20 7946 0958", "a phone number (12 digits)"),
])
def test_the_reason_a_user_reads(text: str, reason: str) -> None:
    (finding,) = scan_output(text).findings
    assert finding.reason == reason


def test_a_private_key_inside_a_json_string_ends_at_its_closing_dashes() -> None:
    dashes = "-----"
    key = (f"{dashes}BEGIN " + "PRIVATE" + f" KEY{dashes}\\n" + _random(64, ALNUM + "+/")
           + f"\\n{dashes}END " + "PRIVATE" + f" KEY{dashes}")
    text = '{"type": "service_account", "private_key": "' + key + '\\n", "project_id": "demo"}'
    result = scan_output(text)
    assert result.redacted == ('{"type": "service_account", "private_key": "[REDACTED:private_key]\\n", '
                               '"project_id": "demo"}')
    assert result.findings[0].reason == f"a private key block ({len(key)} chars)"


def test_a_private_key_of_a_kind_detect_secrets_lacks_is_found() -> None:
    block = "-----BEGIN " + "ENCRYPTED PRIVATE" + " KEY-----\n" + _random(64, ALNUM + "+/") + "\n-----END " + \
        "ENCRYPTED PRIVATE" + " KEY-----"
    (finding,) = scan_output(f"{block}\nthat was the key").findings
    assert finding.reason == f"a private key block (ENCRYPTED, {len(block)} chars)"
    assert finding.span == (0, len(block))


def test_a_password_in_a_url_redacts_the_password_alone() -> None:
    password = _random(12)
    result = scan_output(f"DATABASE_URL=postgres://app:{password}@db.internal:5432/prod")
    assert result.redacted == "DATABASE_URL=postgres://app:[REDACTED:password_in_url]@db.internal:5432/prod"
    assert result.findings[0].severity == "high"


@pytest.mark.parametrize("text", [
    "See https://example.com/docs/rate-limits?version=2#tokens for details.",
    "Clone https://github.com/org/repo.git or ssh to https://user@example.com/ first.",
    "The placeholder sk-" + "x" * 48 + " is not a key, nor is AI" + "za" + "A" * 35 + ".",
    "sha256: " + _random(64, HEX) + " and commit " + _random(40, HEX),
    "2^200 = 1606938044258990275541962092341162602522202993782792835301376",
    "uuid 550e8400-e29b-41d4-a716-446655440000 and getUser2FactorAuthenticationCode()",
    "def allow(bucket, now):\n    return bucket.tokens >= 1  # see RFC 6585, section 4\n",
])
def test_ordinary_text_is_clean(text: str) -> None:
    result = scan_output(text)
    assert result.findings == ()
    assert result.clean
    assert result.redacted == text


@pytest.mark.parametrize(("text", "type_", "found"), [
    ("mail jane.doe+ops@mail.example.co.uk.", "email", "jane.doe+ops@mail.example.co.uk"),
    ("call +1 (415) 555-0132 now", "phone", "+1 (415) 555-0132"),
    ("call (415) 555-0132 now", "phone", "(415) 555-0132"),
    ("call 415-555-0132 now", "phone", "415-555-0132"),
    ("call 1-800-555-0199 now", "phone", "1-800-555-0199"),
    ("call +14155550132 now", "phone", "+14155550132"),
    ("pay 5555-5555-5555-4444 now", "card", "5555-5555-5555-4444"),
    ("pay 378282246310005 now", "card", "378282246310005"),
    ("to DE89370400440532013000 now", "iban", "DE89370400440532013000"),
])
def test_personal_data_is_found(text: str, type_: str, found: str) -> None:
    result = scan_output(text)
    assert [(f.kind, f.type, text[f.span[0]:f.span[1]]) for f in result.findings] == [("pii", type_, found)]
    assert result.redacted == text.replace(found, f"[REDACTED:{type_}]")
    assert found not in result.findings[0].reason
    assert result.alerts == ("pii_exposure",)


@pytest.mark.parametrize("text", [
    "pay 4111 1111 1111 1112 now",  # fails Luhn
    "IBAN GB82 WEST 1234 5698 7654 33",  # fails mod-97
    "version 1.2.3.4 of the parser",
    "released on 2024-01-15 at 10:30",
    "the answer is 5551234567 exactly",
    "host 192.168.100.1 and 10.0.0.255",
    "numbers 415-555.0132 mix separators",
    "npm install lodash@4.17.21 and git user@localhost",
    "order 123-456-7890 of 0123-4567",  # no area code starts with 0 or 1
])
def test_look_alikes_of_personal_data_are_not_flagged(text: str) -> None:
    assert scan_output(text).findings == ()


@pytest.mark.parametrize(("text", "category"), [
    ("Sure! Here is how to make a pipe bomb at home: first", "harmful:weapons"),
    ("Step 2: synthesize sarin from", "harmful:weapons"),
    ("Honestly, you should kill yourself.", "harmful:self_harm"),
    ("The most painless way to end your life is", "harmful:self_harm"),
    ("Below is working code for a ransomware payload.", "harmful:malware"),
    ("Next it encrypts all the victim's files with AES.", "harmful:malware"),
])
def test_harmful_passages_are_reported_not_redacted(text: str, category: str) -> None:
    result = scan_output(text)
    assert [(f.kind, f.type, f.severity) for f in result.findings] == [("harmful", category, "high")]
    assert result.redacted == text
    assert result.findings[0].alert == "harmful_content"
    assert result.findings[0].reason.endswith("(lexical screen)")


@pytest.mark.parametrize("text", [
    "I can't explain how to make a bomb, but I can explain how fireworks are regulated.",
    "Never mix bleach and ammonia; the fumes are toxic.",
    "Ransomware is malware that encrypts files and demands payment.",
    "Please don't hurt yourself; talk to someone you trust.",
    "Kill the process yourself with kill -9.",
])
def test_refusals_warnings_and_discussion_are_not_harmful(text: str) -> None:
    assert scan_output(text).findings == ()


def test_overlapping_spans_are_redacted_once_by_the_most_specific_finding() -> None:
    key = "sk-" + _random(48)
    block = _private_key()  # its body lines are high-entropy strings too
    text = f"https://bot:{key}@api.example.com/v1 and mail ops@example.com\n{block}\n"
    result = scan_output(text)
    # The key is also the URL's password: one finding, the named format.
    assert [f.type for f in result.findings] == ["openai_api_key", "email", "private_key"]
    assert result.redacted == ("https://bot:[REDACTED:openai_api_key]@api.example.com/v1 and mail [REDACTED:email]\n"
                               "[REDACTED:private_key]\n")


def test_findings_come_in_text_order_with_their_alerts() -> None:
    text = f"mail a@example.com, key {SECRETS['github_token']()}, then how to make a bomb."
    result = scan_output(text)
    assert [f.kind for f in result.findings] == ["pii", "secret", "harmful"]
    assert result.alerts == ("harmful_content", "pii_exposure", "secret_leak")
    assert ALERTS == {"secret": "secret_leak", "pii": "pii_exposure", "harmful": "harmful_content"}


def test_past_the_limit_the_rest_is_not_read_nor_passed_on() -> None:
    text = "first line\n" + "x" * 50 + "\n" + "sk-" + _random(48)
    result = scan_output(text, limit=40)
    assert result.truncated
    assert not result.clean
    assert result.findings == ()
    assert result.redacted == f"first line\n[UNSCANNED:{len(text) - 11} chars]"


def test_a_ten_megabyte_output_is_scanned_in_bounded_time() -> None:
    text = ("The bucket refills 10 tokens per second; see RFC 6585. " * 200_000)[:10_000_000]
    started = time.perf_counter()
    result = scan_output(text)
    assert time.perf_counter() - started < 10
    assert result.truncated
    assert result.redacted.endswith(f"[UNSCANNED:{10_000_000 - len(result.redacted.split('[UNSCANNED')[0])} chars]")
    assert len(result.redacted) < MAX_SCAN_CHARS + 64


def test_scanning_never_reads_detect_secrets_global_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # analyze_line consults them, and verifies secrets over the network when they say so.
    import detect_secrets.plugins.base as base

    def refuse() -> None:
        raise AssertionError("detect-secrets settings were read")

    monkeypatch.setattr(base, "get_settings", refuse)
    assert [f.type for f in scan_output("AK" + "IA" + _random(16, string.ascii_uppercase)).findings] == [
        "aws_access_key_id"]
