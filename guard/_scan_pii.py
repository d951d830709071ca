"""Personal data in a task's output: email addresses, phone numbers, payment cards, IBANs.

Each shape is a bounded regex for the candidates and a check that rules most false ones out:

- email: local@domain.tld, a letters-only TLD of 2..24 (so `pkg@1.2.3` and `user@localhost`
  are not addresses), not right after `//` (`https://user@host` is a URL's user name).
- phone: `+` and a country code then 8..15 digits in all (E.164), spaces, dots, dashes and one
  pair of parentheses allowed; or a North American number written with separators,
  `(415) 555-0132`, `415-555-0132`, `1-800-555-0199` (area code and exchange start 2..9). A bare
  integer, a date (`2024-01-15`), a version or an address (`1.2.3.4`) is none of these. Other
  countries' national formats without `+` are not recognised.
- card: 13..19 digits starting 2..6 (the card networks' ranges), ungrouped or in groups of four
  (Amex/Diners 4-6-5 / 4-6-4) with one kind of separator, passing the Luhn check.
- IBAN: a country of the IBAN registry, its exact length, and the ISO 13616 mod-97 check.

Reasons name the kind and the length, never the data (a card's brand, an IBAN's country).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from ._scan_finding import Finding, Severity

__all__ = ["find_pii"]

# Found from the '@' (a literal the regex engine skips to), the local part read backwards.
_EMAIL_DOMAIN = re.compile(r"@(?:[A-Za-z0-9-]{1,63}+\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])")
_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_EMAIL_LOCAL_MAX = 64
# Each regex opens with a character or literal, then looks behind for the boundary: the engine
# then skips to candidates instead of trying the boundary at every position (5-50x faster).
_INTERNATIONAL = re.compile(r"\+(?<![\w+]\+)[1-9][0-9 ().-]{6,22}[0-9](?![\w])")
# Area code in parentheses (group 1) or as digits (its first digit, then group 2 and separator 3),
# exchange (group 4), line; a leading "1-" is taken in by _north_american.
_NANP = re.compile(
    r"[(0-9](?<![\w.+][(0-9])(?:(?<=\()([0-9]{3})\) ?|(?<=[0-9])([0-9]{2})([-. ]))([0-9]{3})[-. ][0-9]{4}"
    r"(?![\w-]|\.[0-9])"
)
_NANP_TRUNK = re.compile(r"1[-. ]$")
_SEPARATOR_RUN = re.compile(r"[ .-]{2}|[.-][()]|[()][.-]")
_CARD = re.compile(r"[2-6](?<![\w.-][2-6])[0-9]{3}(?:[ -]?[0-9]){9,15}(?![\w]|[.-][0-9])")
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z][0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])")

# The IBAN registry's countries and the length of their IBANs.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}
_CARD_GROUPS = ((4, 6, 5), (4, 6, 4))  # Amex, Diners; every other grouping is fours


def find_pii(text: str) -> list[Finding]:
    """Every personal-data span of `text`; spans may overlap (the caller keeps the best)."""
    found: list[Finding] = []
    found.extend(_emails(text))
    found.extend(_phones(_INTERNATIONAL.finditer(text), _international))
    found.extend(_phones(_NANP.finditer(text), _north_american))
    found.extend(_cards(text))
    found.extend(_ibans(text))
    return found


def _pii(type_: str, label: str, severity: Severity, span: tuple[int, int], detail: str) -> Finding:
    return Finding(kind="pii", type=type_, severity=severity, span=span, reason=f"{label} ({detail})")


def _emails(text: str) -> Iterator[Finding]:
    for match in _EMAIL_DOMAIN.finditer(text):
        at = match.start()
        start = at
        while start > at - _EMAIL_LOCAL_MAX and start > 0 and text[start - 1] in _EMAIL_LOCAL:
            start -= 1
        if start == at or (start > 0 and text[start - 1] in _EMAIL_LOCAL) or text[max(0, start - 2):start] == "//":
            continue  # no local part, one over 64 characters, or a URL's user name
        yield _pii("email", "an email address", "medium", (start, match.end()), f"{match.end() - start} chars")


def _phones(matches: Iterator[re.Match[str]],
            span_of: Callable[[re.Match[str]], tuple[int, int] | None]) -> Iterator[Finding]:
    for match in matches:
        span = span_of(match)
        if span is not None:
            digits = sum(c.isdigit() for c in match.string[span[0]:span[1]])
            yield _pii("phone", "a phone number", "medium", span, f"{digits} digits")


def _international(match: re.Match[str]) -> tuple[int, int] | None:
    value = match.group()
    digits = sum(c.isdigit() for c in value)
    if not 8 <= digits <= 15:
        return None
    if value.count("(") != value.count(")") or value.count("(") > 1:
        return None
    if value.count("(") and value.index("(") > value.index(")"):
        return None
    # No run of separators longer than ") " or " (": "+1 -- 2" is arithmetic, not a number.
    return None if _SEPARATOR_RUN.search(value) else match.span()


def _north_american(match: re.Match[str]) -> tuple[int, int] | None:
    text, start = match.string, match.start()
    area_first = text[start + 1] if match.group(1) else text[start]
    exchange = match.group(4)
    if match.group(3) and text[match.end(4)] != match.group(3):
        return None  # 415-555.0132 mixes separators: not written as a phone number
    if area_first in "01" or exchange[0] in "01":
        return None
    trunk = _NANP_TRUNK.search(text, max(0, start - 2), start)
    if trunk and (trunk.start() == 0 or not text[trunk.start() - 1].isalnum()):
        start = trunk.start()  # 1-800-555-0199: the trunk prefix belongs to the number
    return start, match.end()


def _cards(text: str) -> Iterator[Finding]:
    for match in _CARD.finditer(text):
        value = match.group()
        digits = "".join(c for c in value if c.isdigit())
        if not 13 <= len(digits) <= 19 or not _grouped_like_a_card(value) or not _luhn(digits):
            continue
        yield _pii("card", "a payment card number", "high", match.span(),
                   f"{_brand(digits)}, {len(digits)} digits, Luhn-valid")


def _grouped_like_a_card(value: str) -> bool:
    separators = {c for c in value if not c.isdigit()}
    if not separators:
        return True
    if len(separators) > 1:
        return False
    groups = tuple(len(g) for g in value.split(separators.pop()))
    if groups in _CARD_GROUPS:
        return True
    return all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4


def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _brand(digits: str) -> str:
    two, four = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return "Visa"
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "Mastercard"
    if two in (34, 37):
        return "American Express"
    if four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649:
        return "Discover"
    if 3528 <= four <= 3589:
        return "JCB"
    if two in (36, 38) or 300 <= int(digits[:3]) <= 305:
        return "Diners Club"
    if two == 62:
        return "UnionPay"
    return "card network unknown"


def _ibans(text: str) -> Iterator[Finding]:
    for match in _IBAN.finditer(text):
        compact = match.group().replace(" ", "")
        country = compact[:2]
        if _IBAN_LENGTHS.get(country) != len(compact) or not _mod97(compact):
            continue
        yield _pii("iban", "an IBAN", "high", match.span(), f"{country}, {len(compact)} chars, checksum valid")


def _mod97(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1
