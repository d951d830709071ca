"""The prose evidence the scorer reads: content words and their overlap, refusals, answers that
repeat what they were given, and answers cut off mid-sentence.

Words are compared by a crude stem, the first six letters of the lower-cased word once a plural
`s` is dropped (`latencies` and `latency` share `latenc`): enough to see that two texts talk of
the same things, without a language model or a stemming library.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["content_keys", "cut_off", "matched", "ranked_keys", "refusal", "repeated_share", "word_count"]

_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_PART = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_STEM = 6

# Words that carry no subject: function words, and the verbs and nouns every task asks with.
_STOPWORD_TEXT = """
a about above after again all also an and any are as at be because been before being below between both but by
can could did do does doing done down during each either else etc every few for from further had has have
having here how i if in into is it its itself just least less let like may me might more most much must my
no nor not now of off on once only or other our out over own per same shall she should so some such than that
the their them then there these they this those through thus to too under until up upon us use used using very
via was way we were what when where whether which while who whom whose why will with within without would yet
you your e g ie eg one two three four five six
write implement create make build give given return returns provide produce show explain describe please
function functions class method code review summarise summarize summary analyse analyze analysis document
documentation design test tests research answer task following new simple say each several call
python java javascript typescript golang rust sql bash shell pytest junit kotlin ruby
article report notes text sentence sentences paragraph paragraphs material bullet points correctness quality
leadership audience reader readers
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# Refusals open the answer: an apology or "as an AI" followed by an inability.
_REFUSAL = re.compile(
    r"^\W*(?:(?:i'?m|i am)\s+(?:so\s+|very\s+)?sorry|sorry|unfortunately|as an ai(?: language model)?)\b[^.\n]{0,80}?"
    r"\b(?:can(?:no|')t|unable|not able|won'?t|will not)\b"
    r"|^\W*i\s+(?:can(?:no|')t|am unable to|'m unable to|am not able to|won'?t)\s+(?:help|assist|do|provide|comply|"
    r"write|review|complete|fulfil|fulfill|answer)",
    re.I,
)
_REFUSAL_SPAN = 600  # characters: a longer answer that opens with an apology went on to answer

# The last word of a sentence cut off mid-way: a function word that must be followed by more.
_DANGLING_TEXT = """
a an the and or but nor of to in on at by for with from into onto than that which who whose because as if
when while where whether is are was were be been being has have had will would can could should may might must
its their his her our your my this these those such so very not"""
_DANGLING = frozenset(_DANGLING_TEXT.split())
_END = re.compile(r"[.!?:;)\]}\"'`*|>]\s*$")


def word_count(text: str) -> int:
    return len(_TOKEN.findall(text))


def _keys(text: str) -> list[str]:
    """Every word's stem, in order; an identifier also gives the stems of its parts."""
    out: list[str] = []
    for token in _TOKEN.findall(text):
        parts = [p for chunk in token.split("_") for p in _PART.findall(chunk)]
        words = dict.fromkeys([token.lower(), *(p.lower() for p in parts)]) if len(parts) > 1 else (token.lower(),)
        for word in words:
            if word not in _STOPWORDS and len(word) > 1 and not word.isdigit():
                out.append(_stem(word))
    return out


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word[:_STEM]


def content_keys(text: str) -> set[str]:
    """The stems of the text's content words."""
    return set(_keys(text))


def matched(want: set[str] | list[str], have: set[str]) -> list[str]:
    """The stems of `want` found in `have`, a stem also matching one it begins or that begins it
    (four letters at least: `lower` and `lowerc`, `limit` and `limite`)."""
    prefixes = {h[:i] for h in have for i in range(4, len(h) + 1)}
    return [k for k in want if k in have or k in prefixes
            or any(k[:i] in have for i in range(4, len(k)))]


def ranked_keys(text: str, most: int) -> list[str]:
    """The text's `most` most frequent content stems, ties in order of first appearance."""
    counts = Counter(_keys(text))
    order = {k: i for i, k in reversed(list(enumerate(_keys(text))))}
    return sorted(counts, key=lambda k: (-counts[k], order[k]))[:most]


def refusal(text: str) -> str | None:
    """The refusal the answer opens with, if it is one (an answer that apologises and then
    answers at length is not)."""
    stripped = text.strip()
    if len(stripped) > _REFUSAL_SPAN:
        return None
    match = _REFUSAL.search(stripped)
    return match.group(0).strip() if match else None


def _shingles(text: str) -> list[tuple[str, ...]]:
    words = [w.lower() for w in _TOKEN.findall(text)]
    return [tuple(words[i:i + 3]) for i in range(len(words) - 2)]


def repeated_share(answer: str, source: str) -> float:
    """The share of the answer's word triples that also occur in `source` (0 for an answer of
    fewer than three words)."""
    own = _shingles(answer)
    if not own:
        return 0.0
    theirs = set(_shingles(source))
    return sum(s in theirs for s in own) / len(own)


def cut_off(prose: str) -> str | None:
    """Why the prose looks cut off mid-sentence, or None: its last line ends in a comma, a
    hyphen, an open bracket or a word that must be followed by more ("... allows an attacker to")."""
    lines = [line.strip() for line in prose.strip().splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1]
    if last.startswith(("#", "|")) or _END.search(last):
        return None
    words = _TOKEN.findall(last)
    if last.endswith((",", "-", "(", "[", "{")) or (words and last[-1].isalnum() and words[-1].lower() in _DANGLING):
        tail = " ".join(last.split()[-4:])
        return f"ends mid-sentence: '...{tail}'"
    return None
