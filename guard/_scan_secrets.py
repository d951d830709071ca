"""Secrets in a task's output: credentials a model or a tool may echo, found by shape.

Which detector finds what, and whose it is:

- detect-secrets 1.5 (`detect_secrets.plugins`, their own patterns): AWS access key ids and
  secret keys (AWSKeyDetector), Azure storage keys, Discord bot tokens, GitHub and GitLab
  tokens, Mailchimp and SendGrid keys, Slack tokens and webhooks, Square OAuth secrets, Stripe
  live keys, Telegram bot tokens, Twilio keys, private key headers (PrivateKeyDetector, and ours
  for the kinds it lacks, such as ENCRYPTED; the finding runs to the block's END line) and
  passwords in URLs (BasicAuthDetector: the password alone). Their checks: JWTs must pass
  JwtTokenDetector (each part base64, the first two JSON), PyPI tokens PypiTokenDetector, `sk-`
  keys carrying OpenAI's `T3BlbkFJ` marker are OpenAI's (OpenAIDetector). High-entropy strings
  use its entropy measure and limits (Base64HighEntropyString > 4.5 bits, HexHighEntropyString
  > 3.0) and its sequential-string and UUID heuristics.
- ours, for what it lacks: the LLM providers' key formats — OpenAI `sk-proj-`/`sk-svcacct-`/
  `sk-admin-` and legacy `sk-` + 48, Anthropic `sk-ant-api03-…`, OpenRouter `sk-or-v1-` + 64
  hex, DeepSeek-style `sk-` + 32 hex, any other long `sk-` key, Google/Gemini `AIza` + 35,
  Groq `gsk_`, xAI `xai-`, Hugging Face `hf_` + 34, Together `tgp_v1_`, Fireworks `fw_`,
  Cerebras `csk-`, npm `npm_` — and the candidates: the token boundaries, the JWT and PyPI
  shapes handed to detect-secrets' checks, the 20..256-char runs handed to its entropy measure.
  Keys without a prefix are left to the entropy check: it catches 98% of random 40-character
  ones (Cohere's shape) but only 64% of 32-character ones (Mistral's), as detect-secrets' 4.5-bit
  limit is near what 32 random characters reach; SambaNova's UUID-shaped keys look like any
  other id and are not flagged.

Left out of detect-secrets' set: KeywordDetector (flags every `password = "…"` in sample
code), ArtifactoryDetector (flags upper-case words such as `APACHEHTTPD`), IPPublicDetector
(an address is not a secret), the Cloudant/IBM/SoftLayer assignment patterns (the entropy check
covers them), NpmDetector (its `//.+/` is quadratic on a long line; `npm_` tokens are ours).
Plugins are called directly, never through `analyze_line`: that one reads detect-secrets'
global settings and, when they ask for it, verifies a secret over the network.

Placeholders are not secrets: a provider-format body with fewer than 10 distinct characters
(`sk-xxxx…`) or a sequential one is skipped. Long hex digests (32..128 hex digits) right after
a word such as sha256, md5, hash, digest or commit are skipped too, and so are numbers.

Bounded and fast: our patterns open with their literal prefix and look behind it for the token
boundary (so the regex engine skips from prefix to prefix), repeats are bounded, and candidates
never overlap, so a scan is linear in the text; detect-secrets' patterns that open with a
character class or ignore case run only once a keyword or a cheap gate regex has matched.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from typing import NamedTuple

from detect_secrets.filters.heuristic import is_potential_uuid, is_sequential_string
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from ._scan_finding import Finding, Severity

__all__ = ["find_secrets"]

_TOKEN = "A-Za-z0-9_\\-"
_END = f"(?![{_TOKEN}])"
_MIN_DISTINCT = 10  # distinct characters a key body needs; fewer is a placeholder
_PRIVATE_KEY_REACH = 16_384  # chars after a private key header searched for its END line


class _Format(NamedTuple):
    """A key format of ours: its literal prefix at a token boundary, then its body."""

    type: str
    label: str
    pattern: re.Pattern[str]
    body_from: int  # where the random body starts, for the placeholder check


def _format(type_: str, label: str, prefix: str, body: str) -> _Format:
    # The prefix first, the boundary looked for behind it: the engine skips to the prefix.
    literal = re.escape(prefix)
    pattern = re.compile(f"{literal}(?<![{_TOKEN}]{literal}){body}{_END}")
    return _Format(type_, label, pattern, len(prefix))


_FORMATS = (
    _format("anthropic_api_key", "an Anthropic API key", "sk-ant-", "[a-z]{3,8}[0-9]{2}-[A-Za-z0-9_-]{40,200}"),
    _format("openrouter_api_key", "an OpenRouter API key", "sk-or-v1-", "[0-9a-f]{64}"),
    # Every other sk- key; _sk_type tells OpenAI's from DeepSeek's shape and the rest.
    _format("api_key", "an API key", "sk-", "(?!ant-|or-v1-)[A-Za-z0-9_-]{32,300}"),
    _format("google_api_key", "a Google (Gemini) API key", "AIza", "[A-Za-z0-9_-]{35}"),
    _format("groq_api_key", "a Groq API key", "gsk_", "[A-Za-z0-9]{48,56}"),
    _format("xai_api_key", "an xAI API key", "xai-", "[A-Za-z0-9_]{48,120}"),
    _format("huggingface_token", "a Hugging Face token", "hf_", "(?=[A-Za-z0-9]*[a-z])(?=[A-Za-z0-9]*[A-Z])"
            "[A-Za-z0-9]{34,40}"),
    _format("together_api_key", "a Together AI API key", "tgp_v1_", "[A-Za-z0-9_-]{40,64}"),
    _format("fireworks_api_key", "a Fireworks AI API key", "fw_", "[A-Za-z0-9]{20,64}"),
    _format("cerebras_api_key", "a Cerebras API key", "csk-", "[A-Za-z0-9]{40,64}"),
    _format("npm_token", "an npm token", "npm_", "[A-Za-z0-9]{36}"),
)
_OPENAI_KINDS = ("proj-", "svcacct-", "service-", "admin-")
_LABELS = {
    "openai_api_key": "an OpenAI API key",
    "deepseek_api_key": "a DeepSeek-style API key",
    "jwt": "a JSON Web Token",
    "pypi_token": "a PyPI token",
}


class _Plugin(NamedTuple):
    """A detect-secrets plugin run over the whole text with its own patterns.

    Plugins whose patterns open with a character class or ignore case are slow to run over
    text that holds none of their secrets, so they wait for a keyword (lower-case, any of) or
    a gate (a fast regex of a part every match has) to occur first.
    """

    plugin: RegexBasedDetector
    type: str
    label: str
    keywords: tuple[str, ...] = ()
    gate: re.Pattern[str] | None = None
    secret_group: bool = False  # the secret is the pattern's first group, not the whole match
    severity: Severity = "critical"


_PLUGINS = (
    _Plugin(AWSKeyDetector(), "aws_access_key_id", "an AWS access key id",
            ("akia", "asia", "abia", "acca", "a3t", "aws"), secret_group=True),
    _Plugin(AzureStorageKeyDetector(), "azure_storage_key", "an Azure storage account key"),
    _Plugin(DiscordBotTokenDetector(), "discord_bot_token", "a Discord bot token",
            gate=re.compile(r"\.[A-Za-z0-9_-]{6}\.")),
    _Plugin(GitHubTokenDetector(), "github_token", "a GitHub token"),
    _Plugin(GitLabTokenDetector(), "gitlab_token", "a GitLab token",
            ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "gr1348941", "glcbt-", "glimt-", "glptt-",
             "glagent-", "gloas-")),
    _Plugin(MailchimpDetector(), "mailchimp_api_key", "a Mailchimp API key", ("-us",)),
    _Plugin(SendGridDetector(), "sendgrid_api_key", "a SendGrid API key"),
    _Plugin(SlackDetector(), "slack_token", "a Slack token", ("xox", "hooks.slack.com")),
    _Plugin(SquareOAuthDetector(), "square_oauth_secret", "a Square OAuth secret"),
    _Plugin(StripeDetector(), "stripe_key", "a Stripe live key", gate=re.compile("k_live_")),
    _Plugin(TelegramBotTokenDetector(), "telegram_bot_token", "a Telegram bot token",
            gate=re.compile(r":(?<=[0-9]{8}:)")),
    _Plugin(TwilioKeyDetector(), "twilio_key", "a Twilio key"),
    _Plugin(BasicAuthDetector(), "password_in_url", "a password in a URL", secret_group=True, severity="high"),
)
# Formats with no public prefix: their reason shows the length alone.
_UNPREFIXED = frozenset({"password_in_url", "aws_secret_access_key", "azure_storage_key", "discord_bot_token",
                         "mailchimp_api_key", "telegram_bot_token", "twilio_key"})
_AWS_KEY_ID = re.compile("(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)")
_OPENAI = OpenAIDetector()
_JWT = JwtTokenDetector()
# Segments without '=' so that candidates never overlap (each character is read once or twice).
_JWT_SHAPE = re.compile(r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{2,8192}+\.[A-Za-z0-9_-]{2,8192}+"
                        r"(?:\.[A-Za-z0-9_+/=-]{0,8192}+)?")
_PYPI = PypiTokenDetector()
_PYPI_SHAPE = re.compile(f"pypi-(?<![{_TOKEN}]pypi-)[A-Za-z0-9_-]{{70,1024}}{_END}")
_PRIVATE_KEY = PrivateKeyDetector()
# The kinds PrivateKeyDetector has no line for (ENCRYPTED PRIVATE KEY, PKCS#8 encrypted keys).
_ANY_PRIVATE_KEY = re.compile(r"BEGIN (?:[A-Z0-9]+ ){0,4}PRIVATE KEY(?: BLOCK)?-----")
_PRIVATE_KEY_KIND = re.compile(r"BEGIN ([A-Z0-9 ]*?) ?PRIVATE KEY")

_BASE64 = Base64HighEntropyString()
_HEX = HexHighEntropyString()
# Greedy from a run's first character, so a match is always a whole run.
_RUN = re.compile(r"[A-Za-z0-9+/_-]{20,}={0,2}")
_MAX_RUN = 256  # longer runs are payloads (an embedded image), not keys
_HEX_DIGITS = frozenset(string.hexdigits)
_DIGEST_LENGTHS = frozenset({32, 40, 56, 64, 96, 128})
_DIGEST_WORDS = re.compile(r"sha|md5|hash|digest|commit|checksum|blake|etag|oid", re.IGNORECASE)

# Shown in a reason: a format's public prefix, never any of the random part.
_PUBLIC_PREFIX = re.compile(
    r"sk-ant-[a-z]{3,8}[0-9]{2}-|sk-or-v1-|sk-(?:proj|svcacct|service|admin)-|sk-|AIza|gsk_|xai-|hf_|tgp_v1_"
    r"|fw_|csk-|npm_|pypi-|gh[pousr]_|gl[a-z]{2,6}-|xox[a-z]-|[rs]k_live_|sq0csp-|SG\.|eyJ"
    r"|AKIA|ASIA|ABIA|ACCA|https://hooks\.slack\.com/",
)


def find_secrets(text: str) -> list[Finding]:
    """Every secret-shaped span of `text`; spans may overlap (the caller keeps the best)."""
    lowered = text.lower()
    found: list[Finding] = []
    found.extend(_provider_keys(text))
    found.extend(_plugin_hits(text, lowered))
    found.extend(_checked(text, _JWT_SHAPE, _JWT, "jwt", "high"))
    found.extend(_checked(text, _PYPI_SHAPE, _PYPI, "pypi_token", "critical"))
    if "PRIVATE KEY" in text or "PuTTY-User-Key-File" in text:
        found.extend(_private_keys(text))
    found.extend(_high_entropy(text))
    return found


def _reason(label: str, value: str, *, prefixed: bool = True) -> str:
    """'an OpenAI API key (sk-…, 51 chars)': what it is, its public prefix, its length."""
    length = f"{len(value)} char{'' if len(value) == 1 else 's'}"
    match = _PUBLIC_PREFIX.match(value) if prefixed else None
    if match and match.end() < len(value):
        return f"{label} ({match.group()}…, {length})"
    return f"{label} ({length})"


def _secret(type_: str, label: str, severity: Severity, span: tuple[int, int], value: str,
            *, prefixed: bool = True) -> Finding:
    return Finding(kind="secret", type=type_, severity=severity, span=span,
                   reason=_reason(label, value, prefixed=prefixed))


def _random_enough(body: str) -> bool:
    return len(set(body)) >= min(_MIN_DISTINCT, len(body)) and not is_sequential_string(body)


def _provider_keys(text: str) -> Iterator[Finding]:
    for fmt in _FORMATS:
        for match in fmt.pattern.finditer(text):
            value = match.group()
            if not _random_enough(value[fmt.body_from:]):
                continue
            type_ = _sk_type(value) if fmt.type == "api_key" else fmt.type
            label = _LABELS.get(type_, fmt.label)
            yield _secret(type_, label, "critical", match.span(), value)


def _sk_type(value: str) -> str:
    body = value[3:]
    if body.startswith(_OPENAI_KINDS) or (len(body) == 48 and body.isalnum()) or any(_OPENAI.analyze_string(value)):
        return "openai_api_key"
    if len(body) == 32 and all(c in "0123456789abcdef" for c in body):
        return "deepseek_api_key"
    return "api_key"


def _plugin_hits(text: str, lowered: str) -> Iterator[Finding]:
    for entry in _PLUGINS:
        if entry.keywords and not any(k in lowered for k in entry.keywords):
            continue
        if entry.gate and not entry.gate.search(text):
            continue
        for pattern in entry.plugin.denylist:
            for match in pattern.finditer(text):
                group = 1 if entry.secret_group and match.lastindex else 0
                value = match.group(group)
                if not value:
                    continue
                type_, label = _refine(entry, value)
                yield _secret(type_, label, entry.severity, match.span(group), value,
                              prefixed=type_ not in _UNPREFIXED)


def _refine(entry: _Plugin, value: str) -> tuple[str, str]:
    if entry.type == "aws_access_key_id" and not _AWS_KEY_ID.match(value):
        return "aws_secret_access_key", "an AWS secret access key"
    if entry.type == "slack_token" and value.lower().startswith("https://"):
        return "slack_webhook", "a Slack webhook URL"
    return entry.type, entry.label


def _checked(text: str, shape: re.Pattern[str], plugin: RegexBasedDetector, type_: str,
             severity: Severity) -> Iterator[Finding]:
    """Our linear candidates, kept when detect-secrets' plugin finds its secret in them."""
    for match in shape.finditer(text):
        value = match.group()
        if any(plugin.analyze_string(value)):
            yield _secret(type_, _LABELS[type_], severity, match.span(), value)


def _private_keys(text: str) -> Iterator[Finding]:
    """From the `-----BEGIN … PRIVATE KEY-----` line to its END line (or the block's end)."""
    patterns = (*_PRIVATE_KEY.denylist, _ANY_PRIVATE_KEY)
    headers = sorted((m for pattern in patterns for m in pattern.finditer(text)), key=lambda m: m.start())
    covered = 0
    for match in headers:
        start = match.start()
        if start < covered:
            continue
        while start > max(0, match.start() - 5) and text[start - 1] == "-":
            start -= 1
        end = _private_key_end(text, match.end())
        covered = end
        kind = _PRIVATE_KEY_KIND.search(match.group())
        name = "PuTTY" if match.group().startswith("PuTTY") else kind.group(1) if kind else ""
        reason = f"a private key block ({name + ', ' if name else ''}{end - start} chars)"
        yield Finding(kind="secret", type="private_key", severity="critical", span=(start, end), reason=reason)


def _private_key_end(text: str, after: int) -> int:
    """After the END line's closing dashes (a key inside a JSON string ends there too), after
    PuTTY's Private-MAC line, else at the first blank line, within _PRIVATE_KEY_REACH."""
    reach = min(len(text), after + _PRIVATE_KEY_REACH)
    end_line = text.find("-----END ", after, reach)
    if end_line >= 0:
        closing = text.find("-----", end_line + 9, reach)
        if closing >= 0:
            return closing + 5
    mac = text.find("Private-MAC:", after, reach)
    if mac >= 0:
        line_end = text.find("\n", mac, reach)
        return reach if line_end < 0 else line_end
    blank = text.find("\n\n", after, reach)
    return reach if blank < 0 else blank


def _high_entropy(text: str) -> Iterator[Finding]:
    for match in _RUN.finditer(text):
        value = match.group()
        if len(value) > _MAX_RUN or value.isdigit():
            continue
        if set(value) <= _HEX_DIGITS:
            plugin: Base64HighEntropyString | HexHighEntropyString = _HEX
            if len(value) in _DIGEST_LENGTHS and _after_digest_word(text, match.start()):
                continue
        elif _mixed(value):
            plugin = _BASE64
        else:
            continue
        if plugin.calculate_shannon_entropy(value) <= plugin.entropy_limit:
            continue
        if is_sequential_string(value) or is_potential_uuid(value):
            continue
        label = f"a high-entropy {'hex' if plugin is _HEX else 'base64'} string"
        yield _secret("high_entropy", label, "medium", match.span(), value, prefixed=False)


def _mixed(value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isupper() for c in value) and any(c.islower() for c in value)


def _after_digest_word(text: str, start: int) -> bool:
    line_start = text.rfind("\n", max(0, start - 32), start) + 1
    return bool(_DIGEST_WORDS.search(text, max(line_start, start - 32), start))

