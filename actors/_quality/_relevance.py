"""Does an answer address its task: the lexical estimate, the seam for a judge, and agreement
with the outputs of the tasks it depends on.

Lexical relevance is the share of the task's content words (its description and text
parameters, instruction words such as "write" or "review" left out) that the answer uses,
compared by stem (`_text`); using 60% of them counts as fully relevant. A judge's verdict
(`events.Verdict`, in the `TaskSucceeded`), when there is one, replaces it.

Agreement, per dependency: for code given, the mean of the shares of its functions and classes
and of all the names it defines (parameters, attributes, assigned names too) that the answer
mentions, 0.8 of it counting as full agreement; for prose given, the share of its 20 most
frequent content words the answer uses, half of them counting as full agreement.
"""

from __future__ import annotations

import re

from ._code import CodeBlock, code_blocks, defined_names, prose_of
from ._text import content_keys, matched, ranked_keys

__all__ = ["agreement", "faithfulness", "lexical_relevance"]

FULL_COVERAGE = 0.6  # of the task's content words
FULL_PROSE_AGREEMENT = 0.5  # of a dependency's main words
FULL_CODE_AGREEMENT = 0.8  # of its code's names (the mean of the two shares)
SOURCE_WORDS = 20
_UNNAMED = 0.25  # the most an answer that uses none of the identifiers its task names gets


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


_IDENTIFIER = re.compile(r"\b([A-Za-z_]\w*)\(|\b([a-z]+_\w+|[a-z]+[A-Z]\w*|[A-Z][a-z0-9]+[A-Z]\w*)\b")


def lexical_relevance(request: str, answer: str) -> tuple[float, list[str]]:
    """The share of the task's content words the answer uses; when the task names identifiers
    (`slugify(text)`, `parse_duration`, `TokenBucket`), at least 0.5 plus half the share of them
    the answer uses, and at most 0.25 if it uses none."""
    want = content_keys(request)
    if not want:
        return 1.0, ["the task names no subject to check the answer against"]
    have = content_keys(answer)
    shared = sorted(matched(want, have))
    missing = sorted(want - set(shared))
    coverage = len(shared) / len(want)
    value = _clamp(coverage / FULL_COVERAGE)
    reasons = [f"uses {len(shared)} of the task's {len(want)} content words ({coverage:.0%})"
               + (f"; not: {', '.join(missing[:6])}" if missing else "")]
    named = list(dict.fromkeys(a or b for a, b in _IDENTIFIER.findall(request)))
    if named:
        used = [n for n in named if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", answer)]
        reasons.append(f"names {len(used)} of the {len(named)} identifiers the task names ({', '.join(named[:4])})")
        if used:
            value = max(value, 0.5 + 0.5 * len(used) / len(named))
        elif value > _UNNAMED:
            value = _UNNAMED
            reasons.append(f"at most {_UNNAMED}: none of them")
    return value, reasons


def faithfulness(answer: str, sources: list[str]) -> tuple[float, str]:
    """The share of the answer's content words found in what it was given (and asked): a
    summary should say only what its source says."""
    own = content_keys(answer)
    if not own:
        return 1.0, "no content words"
    found = matched(own, content_keys("\n".join(sources)))
    share = len(found) / len(own)
    unsupported = sorted(own - set(found))
    return share, f"{len(found)} of its {len(own)} content words are in what it summarises ({share:.0%})" + (
        f"; not: {', '.join(unsupported[:6])}" if unsupported else "")


def agreement(answer: str, given: dict[str, str]) -> tuple[float, list[str]]:
    """The mean agreement of the answer with each dependency output it was given."""
    scores: list[float] = []
    reasons: list[str] = []
    answer_keys = content_keys(answer)
    for task_id, text in given.items():
        blocks = [b for b in code_blocks(text) if b.language]
        if blocks:
            share, what = _names_share(answer, blocks, task_id)
            full = FULL_CODE_AGREEMENT
        else:
            words = ranked_keys(prose_of(text), SOURCE_WORDS)
            if not words:
                continue
            used = matched(words, answer_keys)
            share = len(used) / len(words)
            what = f"{len(used)} of the {len(words)} main words of task {task_id}'s output"
            full = FULL_PROSE_AGREEMENT
        scores.append(_clamp(share / full))
        reasons.append(f"mentions {what}")
    if not scores:
        return 1.0, ["the dependency outputs hold nothing to agree with"]
    return sum(scores) / len(scores), reasons


def _names_share(answer: str, blocks: list[CodeBlock], task_id: str) -> tuple[float, str]:
    """The mean of the shares of the code's functions and classes, and of all its names, that
    the answer mentions: naming the function reviewed counts more than naming a parameter."""
    found = [defined_names(b) for b in blocks]
    names = list(dict.fromkeys(n for _, all_names in found for n in all_names))
    if not names:
        return 1.0, f"the code of task {task_id}, which defines no names"
    definitions = list(dict.fromkeys(n for defs, _ in found for n in defs)) or names
    used = [n for n in names if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", answer)]
    share = (sum(n in used for n in definitions) / len(definitions) + len(used) / len(names)) / 2
    listed = ", ".join(used[:5]) if used else "none"
    return share, (f"{len(used)} of the {len(names)} names in task {task_id}'s code ({listed}), "
                   f"{sum(n in used for n in definitions)} of its {len(definitions)} functions and classes")
