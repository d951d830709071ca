"""Prompt injection and jailbreaks: text that speaks to the model instead of about the task.

There is no parser for this, so these are phrase patterns, written for the shapes attacks
take (OWASP LLM01, the published DAN / developer-mode jailbreaks, system-prompt extraction,
fake chat-role markers, exfiltration through links) and kept narrow where ordinary text
uses the same words ("ignore the previous email" is not an attack; "ignore all previous
instructions" is). They run on the normalised view (no invisible characters, look-alikes
mapped to ASCII), with digits and symbols read as the letters they imitate ("1gn0r3"), and
again on letter-spaced runs collapsed ("i g n o r e  a l l ..."). Each pattern is linear:
alternatives of words joined by bounded separators.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ._issue import MAX_ISSUES, Issue, Severity
from ._textview import hot_windows

__all__ = ["find_prompt_injection"]

_S = r"[\s_*~.\-]{1,6}"  # between words: spaces, or the punctuation used to split them

_STRONG = (r"(?:all|any|every|previous|prior|above|earlier|preceding|foregoing|initial|original|system|"
           r"developer|your|safety|default|existing|hidden|former)")
_FILLER = r"(?:the|of|my|these|those|other|given|current|old|and|or|that|its|their|such)"
_RULES = (r"(?:instructions?|prompts?|rules|directives?|directions|guidelines|guardrails|constraints|"
          r"restrictions|commands|programming|polic(?:y|ies)|context|messages?|filters?|training|limitations|"
          r"boundaries|ethics|content\s+polic(?:y|ies)|safeguards)")
_IGNORE = (r"(?:ignore|ignoring|disregard|disregarding|forget|forgetting|override|overriding|bypass|bypassing|"
           r"abandon|discard|neglect|set\s+aside|throw\s+away|do\s+not\s+follow|don't\s+follow|stop\s+following)")


class _Rule(NamedTuple):
    pattern: re.Pattern[str]
    reason: str
    severity: Severity
    triggers: tuple[str, ...]  # words (lower case) every match holds one of: the rule runs only around them
    back: int = 150  # how far before a trigger word a match can start
    forward: int = 350  # and how far after it a match can end


_VERBS = ("ignor", "disregard", "forget", "overrid", "bypass", "abandon", "discard", "neglect", "aside", "throw away",
          "follow")
_PATTERNS: list[_Rule] = [
    _Rule(re.compile(rf"\b{_IGNORE}(?:{_S}{_FILLER}){{0,2}}{_S}{_STRONG}(?:{_S}(?:{_FILLER}|{_STRONG})){{0,3}}{_S}"
                     rf"{_RULES}\b", re.I),
     "tells the model to ignore its instructions", "high", _VERBS),
    _Rule(re.compile(rf"\b{_IGNORE}(?:{_S}{_FILLER}){{0,2}}{_S}{_RULES}{_S}(?:above|before|earlier|so{_S}far|"
                     rf"(?:you(?:'ve|{_S}were|{_S}have){_S}(?:been{_S})?)?given(?:{_S}(?:to{_S}you|before|earlier))?|"
                     rf"from{_S}(?:the{_S})?(?:system|developers?|operator))\b", re.I),
     "tells the model to ignore its instructions", "high", _VERBS),
    _Rule(re.compile(r"\b(?:ignore[zr]?|oublie[zr]?)\s+(?:toutes\s+)?(?:les|vos|tes)\s+(?:instructions|consignes|"
                     r"r[eè]gles)\s+(?:pr[eé]c[eé]dentes|ant[eé]rieures)|\bignora(?:r)?\s+(?:todas\s+)?(?:las|tus)\s+"
                     r"(?:instrucciones|reglas)\s+(?:anteriores|previas)|\bignorier(?:e|en)?\s+(?:alle\s+)?(?:vorherigen|"
                     r"bisherigen|obigen)\s+(?:Anweisungen|Instruktionen|Regeln)|\bигнорируй(?:те)?\s+(?:все\s+)?"
                     r"(?:предыдущие|прежние)\s+(?:инструкции|указания)", re.I),
     "tells the model to ignore its instructions", "high", ("ignor", "oublie", "игнор")),
    _Rule(re.compile(rf"\b(?:forget|disregard|ignore){_S}(?:about{_S})?(?:everything|all|anything){_S}(?:you(?:'ve|{_S}"
                     rf"(?:were|have{_S}been|was)){_S}(?:told|taught|given|instructed)|(?:that{_S}(?:came|was){_S})?"
                     r"(?:above|before|prior|so\s+far|until\s+now))", re.I),
     "tells the model to forget what it was told", "high", ("forget", "disregard", "ignore")),
    _Rule(re.compile(rf"\b{_IGNORE}{_S}(?:all{_S}(?:of{_S})?)?(?:the|everything){_S}(?:above|preceding|foregoing)"
                     rf"(?=\s*(?:[.,;:!]|and\b|then\b|instead\b|$)|{_S}(?:text|messages?|content|prompts?|"
                     r"instructions|context)\b)", re.I),
     "tells the model to ignore what came before", "high", _VERBS),
    _Rule(re.compile(rf"\b(?:your|the){_S}(?:previous|prior|old|original|initial){_S}{_RULES}{_S}(?:are|is){_S}"
                     rf"(?:now{_S})?(?:void|cancell?ed|revoked|obsolete|no{_S}longer{_S}(?:valid|apply|applicable|in{_S}"
                     r"effect)|overridden|replaced|suspended|null)", re.I),
     "declares the model's instructions void", "high", ("void", "cancel", "revoked", "obsolete", "no longer",
                                                         "overridden", "replaced", "suspended", "null")),
    _Rule(re.compile(r"\bdo\s+anything\s+now\b|\bDAN\s+(?:mode|prompt|jailbreak)\b|\b(?:you\s+are|act\s+as|"
                     r"become|be|pretend\s+to\s+be|you're)\s+(?:now\s+)?(?:a\s+|an\s+|the\s+)?(?:DAN|STAN|DUDE|AIM|"
                     r"Mongo\s+Tom|jailbroken|unchained|liberated|unfiltered|uncensored|unrestricted|unaligned|"
                     r"amoral|evil\s+(?:ai|assistant|bot|model)|an?\s+(?:ai|assistant|model|chatbot|llm)\s+"
                     r"(?:without|with\s+no|free\s+(?:of|from))\s+(?:any\s+)?(?:restrictions|rules|limits|"
                     r"limitations|filters|guidelines|ethics|morals))\b", re.I),
     "jailbreak: asks the model to become an unrestricted persona", "high",
     ("anything now", "dan", "stan", "dude", "aim", "mongo", "jailbr", "unchained", "liberated", "unfiltered",
      "uncensored", "unrestricted", "unaligned", "amoral", "evil", "without", "with no", "free of", "free from")),
    _Rule(re.compile(r"\bdeveloper\s+mode\s+(?:enabled|output|response|activated)\b|\b(?:enable|activate|enter|"
                     r"switch\s+(?:to|into)|turn\s+on|unlock)\s+(?:the\s+)?(?:god|sudo|jailbreak|dan|evil|chaos|"
                     r"unrestricted|unfiltered|opposite|no[\s-]?limits?)\s+mode\b|\b(?:chatgpt|gpt|claude|gemini|llama|"
                     r"assistant|model)\b[^.\n]{0,40}\bdeveloper\s+mode\b", re.I),
     "jailbreak: asks the model to switch to an unrestricted mode", "high", ("mode",)),
    _Rule(re.compile(r"\b(?:you(?:'re|\s+are)\s+(?:now\s+)?(?:in|operating\s+in|running\s+in)|now\s+in)\s+"
                     r"(?:god|sudo|jailbreak|jailbroken|dan|evil|chaos|unrestricted|unfiltered|uncensored|opposite|"
                     r"no[\s-]?limits?)\s+mode\b", re.I),
     "jailbreak: tells the model it is in an unrestricted mode", "high", ("mode",)),
    _Rule(re.compile(r"\b(?:you|ai|assistant|model)\b[^.\n]{0,60}\b(?:without|no|free\s+of|beyond)\s+(?:any\s+|your\s+)?"
                     r"(?:guardrails|safeguards|safety\s+(?:filters|rules|guidelines|measures|training))|\bnone\s+of\s+"
                     r"(?:the|your)\s+(?:\w+\s+)?(?:policies|rules|guidelines|restrictions|filters|guardrails)\s+"
                     r"apply\b|\b(?:policies|rules|guidelines|restrictions|filters|guardrails)\s+(?:don't|do\s+not|"
                     r"no\s+longer|doesn't|won't)\s+apply\s+(?:to\s+you|here|anymore|in\s+this)", re.I),
     "jailbreak: tells the model its safety rules do not apply", "high", ("guardrail", "safeguard", "safety", "apply")),
    _Rule(re.compile(r"\b(?:you|ai|assistant|model|chatbot|bot)\b[^.\n]{0,80}\b(?:no|without(?:\s+any)?|free\s+"
                     r"(?:of|from)|not\s+(?:bound|restricted|limited)\s+by|unbound\s+by|released\s+from|beyond)\s+"
                     r"(?:\w+\s+){0,2}(?:ethical|moral|content|safety|openai|anthropic|google|meta|usage)\s+"
                     r"(?:guidelines|restrictions|filters|polic(?:y|ies)|rules|boundaries|limitations|principles|"
                     r"constraints|standards)|\byou(?:'re|\s+are)\s+(?:now\s+)?(?:freed|free|released|liberated|unbound)\s+"
                     r"from\s+(?:all\s+|any\s+|your\s+|the\s+)?(?:restrictions|rules|limitations|guidelines|"
                     r"constraints|filters|programming)", re.I),
     "jailbreak: tells the model its safety rules do not apply", "high",
     ("ethical", "moral", "content", "safety", "openai", "anthropic", "google", "meta", "usage", "freed", "free",
      "released", "liberated", "unbound")),
    _Rule(re.compile(r"\b(?:you|ai|assistant|model)\b[^.\n]{0,60}\b(?:without\s+(?:any\s+)?(?:censorship|censoring|"
                     r"morals?|ethics|moral\s+compass)|no\s+(?:ethical|moral)\s+(?:guidelines|principles|limits))|"
                     r"\byou(?:\s+\w+){0,3}\s+(?:never|not|don't|do\s+not|must\s+not|cannot|can't|won't)\s+(?:ever\s+)?"
                     r"refuse|\b(?:never|don't|do\s+not)\s+(?:say|tell\s+me)\s+(?:that\s+)?you\s+can't", re.I),
     "jailbreak: tells the model never to refuse", "high", ("refuse", "censor", "moral", "ethic", "you can't")),
    _Rule(re.compile(r"\b(?:reveal|show|print|output|repeat|display|tell|give|leak|dump|disclose|share|write\s+out|"
                     r"recite|spell\s+out|paste|return|list|translate|summari[sz]e|encode)\s+(?:me\s+|us\s+)?(?:all\s+)?"
                     r"(?:of\s+)?(?:your|the\s+(?:above|previous|preceding|hidden|secret|initial|original|full|entire|exact))"
                     r"\s+(?:\w+\s+){0,2}(?:system\s+(?:prompt|message|instructions?)|initial\s+(?:prompt|"
                     r"instructions?)|hidden\s+(?:prompt|instructions?)|pre-?prompt|developer\s+(?:message|prompt|"
                     r"instructions?)|instructions\s+(?:above|verbatim|you\s+were\s+given)|(?:text|words|prompt)\s+"
                     r"above)\b|\bwhat\s+(?:is|are|was|were)\s+your\s+(?:\w+\s+){0,2}(?:system\s+prompt|"
                     r"instructions|initial\s+prompt|rules)\b|\brepeat\s+(?:the\s+|all\s+)?(?:words|text|everything)\s+"
                     r"(?:above|before|starting\s+with)\b|\b(?:output|print|repeat|show|display|return|write\s+out|paste|copy)\s+"
                     r"(?:all\s+(?:of\s+)?)?(?:the|your)\s+(?:text|words|content|prompt|instructions|messages?)\s+(?:above|before"
                     r"\s+this)\b|(?:^|[.!?:]|\n)[ \t]*(?:please[ \t]+|now[ \t]+)?(?:reveal|show|print|"
                     r"output|repeat|display|leak|dump|disclose)\s+(?:me\s+|us\s+)?the\s+(?:system\s+prompt|"
                     r"instructions\s+you\s+were\s+given)\b", re.I),
     "asks the model to reveal its system prompt", "high",
     ("prompt", "instruction", "above", "before", "system message", "developer message", "verbatim", "starting with",
      "rules"), 200, 120),
    _Rule(re.compile(r"\b(?:reveal|show|print|output|repeat|display|leak|dump|disclose|list|return|write\s+out|"
                     r"spell\s+out|recite)\s+(?:me\s+|us\s+)?(?:all\s+(?:of\s+)?)?(?:your\s+(?:\w+\s+){0,2}"
                     r"(?:instructions|rules|guidelines|directives|configuration|context(?:\s+window)?|memory)|"
                     r"everything\s+(?:in|from)\s+your\s+(?:context|memory|prompt|instructions))\b", re.I),
     "asks the model to reveal its instructions", "high", ("your",), 80, 120),
    _Rule(re.compile(r"<\|(?:im_start|im_end|system|assistant|endoftext|begin_of_text|start_header_id|eot_id)\|>|"
                     r"\[/?INST\]|<<\s*/?SYS\s*>>|</?(?:system|sys_prompt|system_prompt|instructions)>|"
                     r"(?:^|\n)[ \t]*(?:(?:\[|<|#{1,4}|\*\*)[ \t]*)?"
                     r"(?:system|admin|administrator|developer|root|operator)[ \t]*"
                     r"(?:override|instructions?|prompt|message|note|update|command|directive)s?[ \t]*"
                     r"(?:(?:\]|>|\*\*)[ \t]*)?:|"
                     r"(?:^|\n)[ \t]*(?:#{1,4}[ \t]*)?(?:your\s+)?(?:new|updated|revised|real|actual|true|override)\s+"
                     r"(?:instructions|task|prompt|rules|system\s+prompt)\s*:|\bend\s+of\s+(?:the\s+)?(?:user\s+input|"
                     r"user\s+prompt|previous\s+instructions|system\s+prompt|context|document)\b", re.I),
     "fake chat-role or instruction marker tries to speak as the system", "high",
     ("<|", "inst]", "<<", "sys", "admin", "developer", "root", "operator", "instruction", "task", "prompt", "rules",
      "end of")),
    _Rule(re.compile(r"\b(?:send|post|upload|forward|exfiltrate|transmit|leak|e-?mail|submit|beacon)\s+(?:[\w'-]+\s+){0,5}"
                     r"(?:conversation|chat(?:\s+history)?|context|system\s+prompt|api[\s_-]?keys?|secrets?|credentials|"
                     r"passwords?|tokens?|env(?:ironment)?(?:\s+variables)?|private\s+keys?|\.env|session|cookies?|"
                     r"user\s+data|history)\b[^\n]{0,80}?(?:https?://|\bto\s+[^\s@]{1,64}@\S|webhook)", re.I),
     "asks the model to send data to an outside address", "high", ("http", "@", "webhook"), 400, 60),
    _Rule(re.compile(r"!\[[^\]\n]{0,100}\]\(\s*https?://[^)\s]{1,300}[?&][^)\s=]{1,40}=(?:\{|\$|%7B|\[|<)", re.I),
     "a Markdown image whose URL would carry data out when rendered", "high", ("![",)),
    _Rule(re.compile(r"https?://\S{1,300}\s[^\n]{0,120}?\b(?:append|add|include|attach|put|insert|encode)\s+"
                     r"(?:[\w'-]+\s+){0,4}(?:api[\s_-]?keys?|secrets?|passwords?|tokens?|credentials|cookies?|"
                     r"conversation|chat\s+history|system\s+prompt)\b", re.I),
     "asks the model to send data to an outside address", "high", ("http",), 1, 500),
    _Rule(re.compile(r"\b(?:deceased|late|dead|departed)\s+(?:grandm(?:a|other)|granny|grandpa|grandfather)\b[^\n]{0,200}"
                     r"\bused\s+to\s+(?:tell|read|recite|say|sing|explain|give)", re.I),
     "jailbreak: role-play framing (\"my late grandmother used to...\") to extract refused content", "high",
     ("grand",)),
    _Rule(re.compile(r"\b(?:stay|remain)\s+in\s+character\b[^\n]{0,120}\b(?:no\s+matter|whatever|even\s+if|"
                     r"never\s+break)|\bnever\s+break\s+character\b", re.I),
     "jailbreak: tells the model to stay in a role whatever it is asked", "high", ("character",)),
]

# Digits and symbols read as the letters they imitate; one for one, so offsets stay.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
# A letter next to a digit or symbol that imitates one: where a leet word is; the word around
# it is then taken whole.
_LEET_HIT = re.compile(r"[A-Za-z][013457@$!]|[013457@$!][A-Za-z]")
_LEET_WORD = re.compile(r"[A-Za-z0-9@$!]{1,64}")
_LEET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@$!")
# Single letters separated by one to three spaces or dots: "i g n o r e" (linear: letters and
# separators do not overlap). Word gaps are wider than letter gaps.
_SPACED = re.compile(r"(?<![A-Za-z])(?:[A-Za-z][ ._\-*]{1,3}){5,}[A-Za-z](?![A-Za-z])")
_LETTER_GAP = re.compile(r"(?<=[A-Za-z])[ ._\-*](?=[A-Za-z])")
_WORD_GAP = re.compile(r"[ ._\-*]{2,}")


def find_prompt_injection(text: str, context: str) -> list[Issue]:
    """Prompt-injection and jailbreak phrases in `text` (a normalised view)."""
    boost = context == "prompt"
    issues: list[Issue] = []
    seen: list[tuple[int, int]] = []
    leet, zones = _leet(text)
    lowered_leet = leet.lower() if zones else ""
    # The text as written, then its leet reading only around the words that differ.
    passes = [(text, text.lower(), None), *((leet, lowered_leet, zone) for zone in zones)]
    for variant, lowered, within in passes:
        for rule in _PATTERNS:
            for start, end in hot_windows(lowered, rule.triggers, rule.back, rule.forward, within):
                for match in rule.pattern.finditer(variant, start, end):
                    span = match.span()
                    if any(s <= span[0] < e for s, e in seen):
                        continue
                    seen.append(span)
                    issues.append(_issue(span, rule.reason, rule.severity, boost))
                    if len(issues) >= MAX_ISSUES:
                        return issues
    for count, run in enumerate(_SPACED.finditer(text)):
        if count >= 256:
            break
        collapsed = _WORD_GAP.sub(" ", _LETTER_GAP.sub("", run.group())).translate(_LEET)
        for rule in _PATTERNS:
            if rule.pattern.search(collapsed) and not any(s <= run.start() < e for s, e in seen):
                seen.append(run.span())
                issues.append(_issue(run.span(), f"{rule.reason} (written letter by letter)", rule.severity, boost))
                break
    return issues


def _leet(text: str) -> tuple[str, list[tuple[int, int]]]:
    """`text` with each word that mixes letters and leet digits or symbols ("1gn0r3") read as
    letters, and the stretches around those words where the reading differs. A version
    number ending a word ("python3", "sha256") is not leet."""
    spans: list[tuple[int, int]] = []
    for tried, hit in enumerate(_LEET_HIT.finditer(text)):
        if tried >= 2048 or len(spans) >= 256:
            break  # a text this full of letter-digit mixes is not prose; what was read is enough
        if spans and hit.start() < spans[-1][1]:
            continue
        start = hit.start()
        while start > 0 and start > hit.start() - 64 and text[start - 1] in _LEET_CHARS:
            start -= 1
        word = _LEET_WORD.match(text, start)
        if word and _is_leet(word.group()):
            spans.append(word.span())
    if not spans:
        return text, []
    pieces, at = [], 0
    zones: list[tuple[int, int]] = []
    for start, end in spans:
        pieces += [text[at:start], text[start:end].translate(_LEET)]
        at = end
        zone = (max(0, start - 200), end + 200)  # as far as the phrases reach around a word
        if zones and zone[0] <= zones[-1][1]:
            zones[-1] = (zones[-1][0], zone[1])
        else:
            zones.append(zone)
    pieces.append(text[at:])
    return "".join(pieces), zones


def _is_leet(word: str) -> bool:
    """A word written in leet ("1gn0r3", "4ll", "p@ss"), not a version ("python3"), an id or a
    hash (long, or holding digits no letter is imitated by), or an address."""
    core = word.rstrip("0123456789")
    if "@" in word and re.search(r"^@|[A-Za-z0-9]{2}@[A-Za-z0-9]{2}", word):
        return False  # an address, a handle or a decorator: alice@example, @job
    return (len(word) <= 24 and not any(c in "2689" for c in word) and sum(c.isalpha() for c in word) >= 2
            and any(c in "013457@$!" for c in core))


def _issue(span: tuple[int, int], reason: str, severity: Severity, boost: bool) -> Issue:
    if boost and severity == "high":
        severity = "critical"
    return Issue("prompt_injection", severity, span, f"prompt injection: {reason}")
