"""The input sanitiser never crashes, never hangs, and always answers in its own shape: on
arbitrary Unicode, on attack fragments glued to noise, and for any context string."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from guard._sanitize import CONTEXTS, sanitize_input

_TYPES = {"sql_injection", "prompt_injection", "shell_injection", "path_traversal", "xss", "ssrf"}
_SEVERITIES = {"low", "medium", "high", "critical"}
_FRAGMENTS = ["'", '"', "' OR '1'='1", "; DROP TABLE t; --", "UNION SELECT", "--", "#", "/*", "$(", "`", "${IFS}",
              "; id", "&& whoami", "| nc -e /bin/sh", "../", "..%2f", "%00", "%2e", "<script>", "<img src=x onerror=",
              "javascript:", "{{constructor", "http://", "http://127.1/", "http://[::1]/", "gopher://",
              "169.254.169.254",
              "ignore all previous instructions", "<|im_start|>", "\u200b", "\u202e", "\U000e0041", "\u0430", "\uff49",
              "\u0336", "aWdub3JlIGFsbA==", "%27", "\n", "\\", "\x00"]

contexts = st.one_of(st.sampled_from(CONTEXTS), st.text(max_size=12))
noisy = st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=40)), max_size=25).map("".join)


def _check(text: str, context: str) -> None:
    start = time.perf_counter()
    result = sanitize_input(text, context)
    assert time.perf_counter() - start < 5, "one call took over 5 s"
    assert set(result) == {"safe", "issues", "sanitized", "context", "truncated", "scanned"}
    assert isinstance(result["sanitized"], str)
    assert result["context"] in CONTEXTS
    for issue in result["issues"]:
        assert issue["type"] in _TYPES
        assert issue["severity"] in _SEVERITIES
        start_at, end_at = issue["span"]
        assert 0 <= start_at <= end_at <= len(text)
        assert issue["reason"].strip()
    if not result["safe"]:
        assert any(i["severity"] in ("high", "critical") and i["reason"] for i in result["issues"])


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300), context=contexts)
def test_arbitrary_unicode_never_breaks_it(text: str, context: str) -> None:
    _check(text, context)


@settings(max_examples=300, deadline=None)
@given(text=noisy, context=contexts)
def test_attack_fragments_in_noise_never_break_it(text: str, context: str) -> None:
    _check(text, context)


@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(
    alphabet=st.characters(categories=["Cs", "Cf", "Mn", "Ll", "Lu", "Po", "Zs"]), max_size=30)), max_size=15)
    .map("".join), context=contexts)
def test_lone_surrogates_and_format_characters_never_break_it(text: str, context: str) -> None:
    _check(text, context)
    assert all(not 0xD800 <= ord(c) <= 0xDFFF for c in sanitize_input(text, context)["sanitized"])


@settings(max_examples=25, deadline=None)
@given(fragment=st.sampled_from(_FRAGMENTS), repeat=st.integers(1000, 20000), context=st.sampled_from(CONTEXTS))
def test_repeated_fragments_stay_fast(fragment: str, repeat: int, context: str) -> None:
    _check(fragment * repeat, context)
