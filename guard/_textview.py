"""The text the detectors read: what a reader sees, not how it was written.

An attack hides from patterns with invisible characters (zero-width spaces, bidi controls,
soft hyphens; Unicode tag characters even carry whole ASCII sentences invisibly), with
look-alike letters (Cyrillic U+0430 for Latin 'a', fullwidth U+FF49, mathematical bold U+1D422), with
combining marks over each letter, or encoded (base64, percent-encoding). A `View` undoes the
first three: each character is decomposed (NFKD), marks and invisible characters dropped, tag
characters turned back into the ASCII they carry, and every remaining non-ASCII character
that the Unicode confusables table (confusable-homoglyphs' copy of it) maps to ASCII replaced
by that ASCII. The view keeps, for each of its characters, the offset it came from, so a
finding names the span of the text the caller passed. `encoded_runs` finds the encoded parts,
which the sanitiser decodes and scans again.

ASCII text (most input) passes through untouched and costs one `str.isascii`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from urllib.parse import unquote

__all__ = ["INVISIBLE", "View", "confusable_ascii", "encoded_runs", "hot_windows", "strip_invisible"]

# Format and other invisible characters a renderer shows as nothing: zero-width space, joiner
# and non-joiner, word joiner, bidi embeddings/overrides/isolates, BOM, soft hyphen, Mongolian
# vowel separator, combining grapheme joiner, invisible math operators, Hangul fillers and
# variation selectors. Tag characters (U+E0000 block) are handled apart: they carry ASCII.
INVISIBLE = frozenset(
    [chr(c) for c in (0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0)]
    + [chr(c) for c in range(0x200B, 0x2010)]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2060, 0x2070)]
    + [chr(c) for c in range(0xFE00, 0xFE10)]
    + [chr(c) for c in range(0xE0100, 0xE01F0)]
)
_TAGS = range(0xE0000, 0xE0080)
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_INVISIBLE_TABLE = {ord(c): None for c in INVISIBLE} | {c: None for c in _TAGS}


@functools.cache
def _confusables() -> dict[str, str]:
    """Non-ASCII character -> the ASCII it is confusable with (Unicode's confusables.txt,
    as shipped by confusable-homoglyphs). Loaded on the first non-ASCII text."""
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    table: dict[str, str] = {}
    for char, glyphs in data.items():
        if len(char) == 1 and not char.isascii():
            ascii_forms = [g["c"] for g in glyphs if g["c"].isascii() and g["c"].strip()]
            if ascii_forms:
                table[char] = (_named_letter(char) if ascii_forms[0] == "l" else None) or ascii_forms[0]
    return table


def _named_letter(char: str) -> str | None:
    """'I' or 'i' for a look-alike of the table's prototype 'l' that is named an I (U+0406
    CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I, U+03B9 GREEK SMALL LETTER IOTA): the table
    folds I, 1 and l into 'l', which reads "ignore" as "lgnore"."""
    name = unicodedata.name(char, "")
    if "LETTER" not in name or name.rsplit(" ", 1)[-1] not in ("I", "IOTA"):
        return None
    return "I" if "CAPITAL" in name else "i"


def confusable_ascii(char: str) -> str | None:
    """The ASCII a non-ASCII character is confusable with, or None."""
    return _confusables().get(char)


@functools.lru_cache(maxsize=8192)
def _fold(char: str) -> str:
    """What one non-ASCII character reads as: '' for invisible ones."""
    code = ord(char)
    if code in _TAGS:
        return chr(code - 0xE0000) if 0xE0020 <= code <= 0xE007E else ""
    if char in INVISIBLE:
        return ""
    out = []
    for part in unicodedata.normalize("NFKD", char):
        if unicodedata.category(part) in ("Mn", "Me", "Cf"):
            continue
        out.append(part if part.isascii() else (_confusables().get(part) or part))
    return "".join(out)


@dataclass(frozen=True, slots=True)
class View:
    """Normalised text and, per character, its offset in the source (None: the same text)."""

    text: str
    origin: list[int] | None
    source_length: int

    @classmethod
    def of(cls, source: str) -> View:
        if source.isascii():
            return cls(source, None, len(source))
        pieces: list[str] = []
        origin: list[int] = []
        at = 0
        for run in _NON_ASCII.finditer(source):
            pieces.append(source[at:run.start()])
            origin.extend(range(at, run.start()))
            for offset in range(run.start(), run.end()):
                folded = _fold(source[offset])
                pieces.append(folded)
                origin.extend([offset] * len(folded))
            at = run.end()
        pieces.append(source[at:])
        origin.extend(range(at, len(source)))
        return cls("".join(pieces), origin, len(source))

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the source that `text[start:end]` was read from."""
        if self.origin is None:
            return start, end
        if not self.origin:
            return 0, 0
        first = self.origin[min(start, len(self.origin) - 1)]
        last = self.origin[min(max(end - 1, start), len(self.origin) - 1)]
        if end >= len(self.origin):  # include invisible characters trailing the finding
            return first, self.source_length
        return first, max(last + 1, first)


def strip_invisible(text: str) -> str:
    """`text` without invisible characters and tag characters."""
    return text.translate(_INVISIBLE_TABLE)


_MAX_SPOTS = 256


def hot_windows(lowered: str, triggers: tuple[str, ...], back: int = 400, forward: int = 600,
                within: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """The stretches of `lowered` (merged, in order) around each occurrence of a trigger word
    (in `within`, a (start, end) range, if given): where a phrase pattern that contains one of
    them can match. Finding the words is C-speed (`str.find`), so a pattern runs over the whole
    text only when its words are everywhere."""
    low, high = within if within is not None else (0, len(lowered))
    spots: list[int] = []
    for trigger in triggers:
        at = lowered.find(trigger, low, high)
        while at >= 0:
            spots.append(at)
            if len(spots) > _MAX_SPOTS:
                return [(low, high)]
            at = lowered.find(trigger, at + 1, high)
    windows: list[tuple[int, int]] = []
    for at in sorted(spots):
        start, end = max(low, at - back), min(high, at + forward)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(windows[-1][1], end))
        else:
            windows.append((start, end))
    return windows


# Base64 runs long enough to carry a sentence (16 characters = 12 bytes); standard and
# URL-safe alphabets. The lookbehind makes each run start once: linear time.
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{16,}={0,2}")
# A whitespace-free token holding a percent-escape; anchored at token starts (linear time).
_PERCENT = re.compile(r"(?<!\S)[^\s%]*%[0-9A-Fa-f]{2}\S*")
_MAX_RUNS = 32


def encoded_runs(text: str) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, decoded text, encoding) for each base64 or percent-encoded run of `text`
    that decodes to readable text different from itself; at most 32 of each kind."""
    found = 0
    for run in _BASE64.finditer(text):
        decoded = _base64_text(run.group())
        if decoded is not None:
            yield run.start(), run.end(), decoded, "base64"
            found += 1
            if found >= _MAX_RUNS:
                break
    if "%" not in text:
        return
    found = 0
    for run in _PERCENT.finditer(text):
        token = run.group()
        decoded = unquote(token, errors="replace")
        if "%" in decoded:  # double encoding (%252e): one more round
            decoded = unquote(decoded, errors="replace")
        if decoded != token:
            yield run.start(), run.end(), decoded, "percent-encoding"
            found += 1
            if found >= _MAX_RUNS:
                break


def _base64_text(run: str) -> str | None:
    """The text a base64 run decodes to, when it is mostly printable text; else None."""
    if not (any(c.isdigit() or c in "+/_-=" for c in run) or (run != run.lower() and run != run.upper())):
        return None  # a plain word (e.g. a long identifier) is not base64 worth decoding
    body = run.rstrip("=")
    body += "=" * (-len(body) % 4)
    try:
        raw = base64.urlsafe_b64decode(body.replace("+", "-").replace("/", "_"))
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    # Random bytes (a hash, a key) are seldom UTF-8, and almost never all printable.
    if len(decoded.strip()) < 6 or sum(1 for c in decoded if c.isprintable() or c in "\n\r\t") < 0.95 * len(decoded):
        return None
    return decoded
