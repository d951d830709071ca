"""Harmful passages in a task's output: a lexical screen, not a model.

Three categories, each a short list of phrases that, in an answer, read as doing the harm rather
than discussing it: how-to and synthesis phrasing around a named weapon, explosive or chemical
agent (`harmful:weapons`); phrases urging a reader to hurt or kill themselves, or ranking ways
to (`harmful:self_harm`); code or steps for ransomware, keyloggers, credential stealers and
their evasion (`harmful:malware`).

What this is and is not: a regex over words, case-insensitive, each pattern tried only when one
of its keywords occurs. It misses anything paraphrased, misspelt, encoded or in another language,
and it will flag a quotation or a story that uses the phrase. It is kept conservative, because
a finding raises an alert: discussion ("ransomware is …") does not match, and a match with a
refusal or a negation before it in its sentence ("I can't explain how to make a bomb", "never
tell someone to hurt yourself") is dropped. Harmful findings are reported, never redacted: the
passage is evidence for whoever reviews the alert.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ._scan_finding import Finding

__all__ = ["CATEGORIES", "find_harmful"]


class _Category(NamedTuple):
    type: str
    reason: str
    keywords: tuple[str, ...]  # lower-case; one must occur before the pattern is tried
    pattern: re.Pattern[str]


def _category(name: str, reason: str, keywords: tuple[str, ...], *phrases: str) -> _Category:
    pattern = re.compile("|".join(f"(?:{p})" for p in phrases), re.IGNORECASE)
    return _Category(f"harmful:{name}", reason, keywords, pattern)


_WEAPON = (r"(?:pipe ?bomb|bomb|explosive(?:s| device)?|ied|molotov(?: cocktail)?|napalm|detonator|grenade"
           r"|ghost gun|silencer|suppressor|nerve agent|sarin|ricin|mustard gas|chlorine gas)")
_HOW = (r"(?:how to|steps? to|instructions? (?:for|to)|guide to|recipe for|here[’']?s how (?:to|you)|you can"
        r"|tutorial (?:on|for))")
_MAKE = r"(?:make|build|assemble|construct|manufacture|produce|rig|wire)"
_SELF = r"(?:kill|hang|hurt|harm|poison|starve)"
_MALWARE = r"(?:ransomware|keylogger|key logger|credential stealer|infostealer|info-stealer|rootkit|botnet|worm)"

CATEGORIES: tuple[_Category, ...] = (
    _category(
        "weapons", "instructions for a weapon, an explosive or a chemical agent",
        ("bomb", "explosive", "ied", "molotov", "napalm", "detonator", "grenade", "gun", "silencer",
         "suppressor", "nerve", "sarin", "ricin", "gas", "synthes", "ammonium nitrate"),
        rf"\b{_HOW}\s+{_MAKE}\s+(?:a |an |the |your own )?(?:homemade |working |functional )?{_WEAPON}\b",
        r"\bsynthesi[sz](?:e|es|ing)\s+(?:the\s+)?(?:sarin|tabun|soman|vx|ricin|tatp|hmtd|nitroglycerin|petn|rdx)\b",
        r"\b(?:mix|combine|soak)(?:es|ed|ing)?\s+(?:the\s+)?ammonium nitrate\s+(?:with|and|in)\s+(?:fuel oil|diesel)\b",
    ),
    _category(
        "self_harm", "encouragement of self-harm or suicide",
        ("yourself", "suicide", "your life", "your own life", "deserve to die", "better off"),
        rf"\b(?:you should|you ought to|you deserve to|why don[’']?t you|go)\s+(?:just\s+|go\s+)?{_SELF}\s+yourself\b",
        r"\b(?:the\s+)?(?:best|easiest|quickest|fastest|surest|most painless|painless)\s+(?:way|ways|method|methods)"
        r"\s+to\s+(?:kill yourself|commit suicide|end your (?:own )?life|die by suicide)\b",
        r"\byou deserve to die\b",
        r"\b(?:everyone|the world) would be better off (?:without you|if you were dead)\b",
    ),
    _category(
        "malware", "code or steps for malware",
        ("ransom", "keylog", "key logger", "stealer", "rootkit", "botnet", "worm", "victim"),
        rf"\b(?:here(?:[’']s| is) (?:a |the )?|below is (?:a |the )?)(?:working |complete |full |functional )?"
        rf"(?:code|script|program|source code|implementation)\s+(?:for|of) (?:a |an |the )?{_MALWARE}\b",
        r"\bencrypt(?:s|ing)?\s+(?:all\s+)?(?:of\s+)?(?:the\s+)?victim[’']?s?[’']?\s+files\b",
        rf"\b(?:so|to|and) (?:evade|bypass|disable) (?:the\s+)?(?:antivirus|anti-virus|edr|windows defender)\b"
        rf"[^.\n]{{0,80}}\b{_MALWARE}\b",
        rf"\b{_MALWARE}\b[^.\n]{{0,80}}\b(?:evades?|bypass(?:es)?|disables?) (?:the\s+)?"
        r"(?:antivirus|anti-virus|edr|windows defender)\b",
    ),
)


# Looked for in the sentence before a match, up to _NEGATION_REACH characters back.
_NEGATION = re.compile(r"\b(?:not|never|cannot|refuse|unable|avoid|(?:don|doesn|won|can|shouldn)[’']?t)\b",
                       re.IGNORECASE)
_NEGATION_REACH = 60


def find_harmful(text: str) -> list[Finding]:
    """Every passage of `text` that matches a category's phrases, with the category named."""
    lowered = text.lower()
    found: list[Finding] = []
    for category in CATEGORIES:
        if not any(k in lowered for k in category.keywords):
            continue
        for match in category.pattern.finditer(text):
            if match.end() > match.start() and not _negated(text, match.start()):
                found.append(Finding(kind="harmful", type=category.type, severity="high", span=match.span(),
                                     reason=f"{category.reason} (lexical screen)"))
    return found


def _negated(text: str, start: int) -> bool:
    reach = max(0, start - _NEGATION_REACH)
    sentence = max(text.rfind(".", reach, start), text.rfind("\n", reach, start), text.rfind("!", reach, start),
                   text.rfind("?", reach, start))
    return _NEGATION.search(text, max(reach, sentence + 1), start) is not None
