"""SQL injection: text that, put where a query expects a value, changes the query.

The test is the one a parser makes possible (the parse-tree comparison of SQLGuard, Buehrer
et al. 2005): put the suspect fragment where a value goes, `SELECT a FROM t WHERE c = '<it>'`
or `... WHERE c = <it>` for a number, and parse that with sqlglot. A harmless value leaves
one comparison of a column with one literal; an injection leaves more: a second statement,
a UNION, a condition of its own (`OR '1'='1'`), a function call (`SLEEP(5)`), a subquery, a
clause (`ORDER BY 3`), a comment that swallows the rest of the query. Only fragments that
start with a quote break (a quote followed by SQL syntax) or a number followed by SQL syntax
are tried, at most 12 a text, so ordinary prose costs one regex pass; a fragment runs to the
end of its line (300 characters at most).

Where sqlglot cannot parse a dialect's construct (T-SQL's `WAITFOR DELAY`, a stacked
`SHUTDOWN`), a few unmistakable signatures after the quote break decide instead.

Context "sql" (the text is a value for a query): every quote break that parses into more
than a value is high, a condition with columns included; elsewhere that one is medium
(`'alice' OR name = 'bob'` is how tutorials write queries).
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from ._issue import Issue, Severity

__all__ = ["find_sql_injection"]

_BREAK = re.compile(r"(?P<q>['\"])(?=[ \t]*(?:\)+[ \t]*)?(?:;|--|\#|/\*|\|\||&&|\b(?:or|and|xor|union|order[ \t]+by|"
                    r"group[ \t]+by|having|waitfor|procedure|into[ \t]+(?:out|dump)file|limit|rlike|regexp|div)\b|"
                    r"[+|][ \t]*(?:\([ \t]*)?select\b))", re.I)
# A number only where it is the whole value: at a line start or right after '=' (`id=1 UNION ...`).
_NUMBER = re.compile(r"(?:^|(?<=\n)|(?<==))[ \t]*-?\d+(?=[ \t]*(?:\)+[ \t]*)?(?:;[ \t]*(?:drop|delete|insert|"
                     r"update|select|exec|execute|shutdown|truncate|alter|create|waitfor|declare|grant)\b|"
                     r"(?:or|and|xor)[ \t]+(?:\d|'|\"|true|"
                     r"not\b|\(|\w+[ \t]*\()|union\b|order[ \t]+by\b|--|\#|/\*))", re.I)
_CLOSING = re.compile(r"['\"]?[ \t]*(?:-?\d+[ \t]*)?(\)*)")
_MAX_CANDIDATES = 12
_MAX_FRAGMENT = 300
_SWAP_QUOTES = str.maketrans({"'": '"', '"': "'"})

_DANGEROUS_WORDS = frozenset({"SHUTDOWN", "WAITFOR", "EXEC", "EXECUTE", "DECLARE", "CALL", "COPY", "LOAD", "KILL",
                              "DROP", "DELETE", "INSERT", "UPDATE", "TRUNCATE", "ALTER", "CREATE", "GRANT", "REVOKE",
                              "SELECT", "REPLACE", "MERGE", "ATTACH", "HANDLER", "RENAME", "SET", "BACKUP", "RESTORE"})
_TIMING = frozenset({"SLEEP", "BENCHMARK", "PG_SLEEP", "WAITFOR", "RANDOMBLOB", "DBMS_PIPE.RECEIVE_MESSAGE",
                     "DBMS_LOCK.SLEEP"})
_SIGNATURES: list[tuple[re.Pattern[str], Severity, str]] = [
    (re.compile(r"^[ \t]*(?:\)+[ \t]*)?;[ \t]*(?P<what>(?:drop|delete|insert|update|truncate|alter|create|exec(?:ute)?|"
                r"shutdown|waitfor[ \t]+delay|declare|grant|revoke)\b[^;\n]{0,40})", re.I),
     "critical", "a second statement follows: {what}"),
    (re.compile(r"\bunion(?:[ \t]+all|[ \t]+distinct)?[ \t]+\(?[ \t]*select\b", re.I),
     "critical", "UNION SELECT appends a query of its own"),
    (re.compile(r"\b(?P<what>sleep|benchmark|pg_sleep|waitfor[ \t]+delay|dbms_pipe\.receive_message)\b", re.I),
     "high", "calls {what}, a timing probe"),
    (re.compile(r"^[ \t]*(?:\)+[ \t]*)?(?:--|\#|/\*)[ \t+-]{0,3}$"), "high",
     "a comment cuts off the rest of the query"),
]


class _CommandFallbackFilter(logging.Filter):
    """sqlglot logs a warning for each statement it keeps as an opaque command or whose syntax
    it does not support; parsing attacker text, that is expected and would flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "Falling back to parsing as a 'Command'" not in message and not message.startswith("Unsupported ")


@functools.cache
def _sqlglot() -> Any:
    """sqlglot, imported on the first candidate (it takes ~80 ms to import)."""
    import sqlglot

    logging.getLogger("sqlglot").addFilter(_CommandFallbackFilter())
    return sqlglot


def find_sql_injection(text: str, context: str) -> list[Issue]:
    """SQL injection in `text` (a normalised view)."""
    candidates: list[tuple[int, bool]] = [(at, True) for at in _quote_breaks(text)]
    candidates += [(m.start() + len(m.group()) - len(m.group().lstrip()), False) for m in _NUMBER.finditer(text)]
    if context == "sql" and text.lstrip()[:1].isdigit():
        candidates.append((len(text) - len(text.lstrip()), False))
    issues: list[Issue] = []
    covered = 0
    for start, quoted in sorted(set(candidates))[:_MAX_CANDIDATES]:
        if start < covered:
            continue
        line_end = text.find("\n", start)
        end = min(len(text) if line_end < 0 else line_end, start + _MAX_FRAGMENT)
        finding = _judge(text[start:end], quoted, context)
        if finding is not None:
            severity, tail = finding
            lead = "a quote closes the string and " if quoted else "after the number, "
            issues.append(Issue("sql_injection", severity, (start, end), f"SQL injection: {lead}{tail}"))
            covered = end
    return issues


_DELIMITER = {q: re.compile(rf"(?<![^\W_]){q}|{q}(?![^\W_])") for q in ("'", '"')}


def _quote_breaks(text: str) -> list[int]:
    """Offsets of quote breaks that would close a literal the text did not open: after an
    even number of quotes of their kind on their line, not counting apostrophes inside words
    (`don't`, `O'Brien`). A tutorial's `WHERE name = 'DE' ORDER BY name` closes its own
    literal; `x' ORDER BY 3` does not. One pass over the text."""
    found: list[int] = []
    counts = {"'": 0, '"': 0}
    at = 0
    for match in _BREAK.finditer(text):
        start = match.start()
        newline = text.rfind("\n", at, start)
        if newline >= 0:
            counts = {"'": 0, '"': 0}
            at = newline + 1
        for quote, pattern in _DELIMITER.items():
            counts[quote] += len(pattern.findall(text, at, start))
        quote = match.group("q")
        if counts[quote] % 2 == 0:
            found.append(start)
            if len(found) >= _MAX_CANDIDATES:
                break
        counts[quote] += len(_DELIMITER[quote].findall(text, start, start + 1))
        at = start + 1
    return found


def _judge(fragment: str, quoted: bool, context: str) -> tuple[Severity, str] | None:
    """(severity, what the fragment does to the query) or None when it stays a value."""
    # As many parentheses as the fragment closes right away, the query it was written for opened:
    # `') OR ('1'='1` is aimed at `WHERE (c = '...')`.
    closing = _CLOSING.match(fragment)
    depth = len(closing.group(1)) if closing else 0
    where = f"SELECT a FROM t WHERE {'(' * depth}c = "
    if quoted:
        body = fragment[1:] if fragment[0] == "'" else fragment[1:].translate(_SWAP_QUOTES)
        attempts = [f"{where}'x'{body}'{')' * depth}", f"{where}'x'{body}"]
    else:
        attempts = [f"{where}{fragment}{')' * depth}", where + fragment]
    for dialect in (None, "mysql", "tsql"):
        for sql in attempts:
            statements = _parse(sql, dialect)
            if statements is not None:
                verdict = _verdict(statements, context)
                if verdict is not None or dialect is None:
                    return verdict if verdict is not None else _signature(fragment, quoted)
    return _signature(fragment, quoted)


def _parse(sql: str, dialect: str | None) -> list[Any] | None:
    sqlglot = _sqlglot()
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except Exception:  # sqlglot's ParseError / TokenError, or a recursion limit on odd input
        return None
    exp = sqlglot.exp
    statements = [s for s in statements if not isinstance(s, exp.Semicolon) or s.comments]
    if not statements or not isinstance(statements[0], exp.Query):
        return None
    return statements


def _verdict(statements: list[Any], context: str) -> tuple[Severity, str] | None:
    """What the parsed template shows beyond `c = <one literal>`."""
    exp = _sqlglot().exp
    first = statements[0]
    if not isinstance(first, exp.Select):
        return "critical", "UNION SELECT appends a query of its own"
    for extra in statements[1:]:
        words = extra.sql().split()
        keyword = words[0].upper() if words else ""
        if isinstance(extra, exp.Semicolon):
            continue
        if isinstance(extra, (exp.Query, exp.DML, exp.Drop, exp.Create, exp.Alter, exp.TruncateTable, exp.Execute,
                              exp.Grant)) or keyword in _DANGEROUS_WORDS:
            return "critical", f"a second statement follows: {_snippet(extra.sql(comments=False))}"
    clauses = [key for key, value in first.args.items() if value and key not in ("expressions", "from", "from_",
                                                                                 "where")]
    if clauses:
        clause = {"order": "ORDER BY", "group": "GROUP BY"}.get(clauses[0], clauses[0].upper())
        return "high", f"{clause} is added to the query"
    where = first.args.get("where")
    condition = where.this if where is not None else None
    if condition is None:
        return None
    if condition.find(exp.Select):
        return "high", "a subquery reads other data"
    for call in condition.find_all(exp.Func):
        if isinstance(call, (exp.Binary, exp.Connector, exp.Unary)):
            continue  # operators (OR, =, LIKE) are functions to sqlglot, not calls
        name = (call.name if isinstance(call, exp.Anonymous) else call.sql_name()).upper()
        kind = "a timing probe" if name in _TIMING else "to read or probe the database"
        return "high", f"calls {name}(), {kind}"
    for junction in condition.find_all(exp.Or, exp.And):
        right = junction.expression
        while isinstance(right, exp.Paren):
            right = right.this
        word = "OR" if isinstance(junction, exp.Or) else "AND"
        if isinstance(right, (exp.Predicate, exp.Boolean, exp.Not, exp.Is)) and not right.find(exp.Column):
            what = "an always-true condition" if word == "OR" else "a condition of its own"
            return "high", f"{what} follows: {word} {_snippet(right.sql(comments=False))}"
        severity: Severity = "high" if context == "sql" else "medium"
        return severity, f"an {word} condition widens the query: {word} {_snippet(right.sql(comments=False))}"
    comments = [c for node in first.walk() for c in (node.comments or [])]
    comments += [c for s in statements[1:] for c in (s.comments or [])]
    if comments and (context == "sql" or all(len(c.strip(" -+'\"")) <= 2 for c in comments)):
        return "high", "a comment cuts off the rest of the query"
    if context == "sql" and not (isinstance(condition, exp.EQ) and isinstance(condition.expression, exp.Literal)):
        return "high", f"the value becomes SQL: {_snippet(condition.sql(comments=False))}"
    return None


def _signature(fragment: str, quoted: bool) -> tuple[Severity, str] | None:
    """The unmistakable shapes, for what sqlglot could not parse."""
    body = fragment[1:] if quoted else re.sub(r"^-?\d+", "", fragment)
    for pattern, severity, reason in _SIGNATURES:
        match = pattern.search(body)
        if match:
            return severity, reason.format(what=" ".join(match.groupdict().get("what", "").split()).upper())
    return None


def _snippet(sql: str) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= 60 else sql[:57] + "..."
