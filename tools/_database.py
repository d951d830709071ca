"""Queries against SQLite (aiosqlite) and PostgreSQL (asyncpg), read-only unless the grant says
otherwise, with parameters passed apart from the SQL, a row cap and a statement timeout.

Read-only is enforced twice, so one miss is not a write: sqlglot parses the statement and
refuses anything but a query (`read_only_refusal`), and the engine is opened so it cannot write
(SQLite: `mode=ro` plus an authorizer that allows reading only; PostgreSQL: a read-only
transaction in a session whose default is read-only). Errors of both drivers are translated
into `ToolError` here.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiosqlite
import asyncpg
import sqlglot
from sqlglot import exp

from ._errors import ToolError, ToolErrorKind

__all__ = ["DatabaseRules", "QueryResult", "query", "read_only_refusal"]

TOOL = "database"
# Anything that writes, changes the session or runs text sqlglot could not parse.
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Command,
           exp.Into, exp.Lock, exp.Pragma, exp.Set, exp.Copy, exp.Grant, exp.TruncateTable)
# EXPLAIN's options in PostgreSQL and SQLite; what follows is the statement explained.
_EXPLAIN = re.compile(r"^\s*EXPLAIN\b(\s+QUERY\s+PLAN\b)?(\s*\([^)]*\))?((\s+(ANALYZE|VERBOSE)\b))*",
                      re.IGNORECASE)
# What a SQLite query may do in read-only mode (sqlite3 authorizer action codes); all else is denied.
_SQLITE_READS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                           sqlite3.SQLITE_RECURSIVE})
_SQLITE_TICKS = 1000  # VM instructions between two looks at the clock


@dataclass(frozen=True)
class DatabaseRules:
    """What a task's database grant allows."""

    writable: bool = False
    max_rows: int = 1000
    timeout: float = 10.0  # one statement, seconds
    connect_timeout: float = 10.0


@dataclass(frozen=True)
class QueryResult:
    """The rows (at most `max_rows`; `truncated` says more were there, and were not fetched)."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    truncated: bool


def _error(kind: ToolErrorKind, reason: str) -> ToolError:
    return ToolError(TOOL, kind, reason)


def _statements(sql: str, dialect: str) -> list[exp.Expression]:
    try:
        parsed = sqlglot.parse(sql, read=dialect)
    except sqlglot.errors.SqlglotError as exc:
        first = " ".join(str(exc).split())[:200]
        raise _error("bad_request", f"could not parse the SQL: {first}") from None
    return [p for p in parsed if isinstance(p, exp.Expression)]


def read_only_refusal(sql: str, dialect: str) -> str | None:
    """Why `sql` is not one read-only query (a SELECT, a WITH … SELECT, a set operation of
    selects, or EXPLAIN of one of those), or None when it is. What cannot be parsed is refused."""
    explained = _EXPLAIN.match(sql)
    inner = sql[explained.end():] if explained and explained.end() else sql
    statements = _statements(inner, dialect)
    if len(statements) != 1:
        return "only one statement at a time" if statements else "no statement"
    statement = statements[0]
    if not isinstance(statement, exp.Select | exp.SetOperation):
        return f"{statement.key.upper()} is not allowed in read-only mode; only SELECT, WITH … SELECT and EXPLAIN"
    if (found := statement.find(*_WRITES)) is not None:
        what = "SELECT … INTO" if isinstance(found, exp.Into) else \
            "SELECT … FOR UPDATE/SHARE" if isinstance(found, exp.Lock) else found.key.upper()
        return f"{what} is not allowed in read-only mode, even inside a query"
    return None


async def query(target: str, sql: str, params: Sequence[Any] = (), *,
                rules: DatabaseRules | None = None) -> QueryResult:
    """Run one statement against `target` (`sqlite:<path>` or a `postgresql://` DSN) with
    `params` bound to its placeholders (`?` in SQLite, `$1` in PostgreSQL)."""
    rules = rules or DatabaseRules()
    if target.startswith("sqlite:"):
        dialect = "sqlite"
    elif target.startswith(("postgresql://", "postgres://")):
        dialect = "postgres"
    else:
        raise _error("bad_request", "database target must be 'sqlite:<path>' or a 'postgresql://' DSN")
    if not rules.writable:
        if why := read_only_refusal(sql, dialect):
            raise _error("refused", why)
    else:
        try:
            several = len(_statements(sql, dialect)) > 1
        except ToolError:
            several = False  # writable: the engine judges SQL sqlglot cannot read (and refuses two statements)
        if several:
            raise _error("refused", "only one statement at a time")
    if dialect == "sqlite":
        return await _sqlite(target.removeprefix("sqlite:"), sql, params, rules)
    return await _postgres(target, sql, params, rules)


# -- SQLite ------------------------------------------------------------------------------------


def _sqlite_authorizer(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _SQLITE_READS else sqlite3.SQLITE_DENY


async def _sqlite(path: str, sql: str, params: Sequence[Any], rules: DatabaseRules) -> QueryResult:
    # mode=rw rather than rwc even when writable: a typo in a path is an error, not a new database.
    uri = f"file:{urllib.parse.quote(path)}?mode={'rw' if rules.writable else 'ro'}"
    if not await asyncio.to_thread(os.path.isfile, path):
        # Said before connecting: the open would refuse it too, but aiosqlite's failed connect
        # leaves its worker thread answering a loop that may be gone.
        raise _error("failed", f"could not open SQLite database {path!r}: no such file")
    deadline = time.monotonic() + rules.timeout
    try:
        async with aiosqlite.connect(uri, uri=True, timeout=rules.connect_timeout) as conn:
            if not rules.writable:
                await conn.execute("PRAGMA query_only = ON")
                await conn.set_authorizer(_sqlite_authorizer)
            await conn.set_progress_handler(lambda: time.monotonic() > deadline, _SQLITE_TICKS)
            async with conn.execute(sql, tuple(params)) as cursor:
                rows = [tuple(r) for r in await cursor.fetchmany(rules.max_rows + 1)]
                columns = tuple(d[0] for d in cursor.description or ())
            if rules.writable:
                await conn.commit()
    except sqlite3.Error as exc:
        raise _sqlite_error(exc, path, rules) from None
    return QueryResult(columns, rows[: rules.max_rows], len(rows) > rules.max_rows)


def _sqlite_error(exc: sqlite3.Error, path: str, rules: DatabaseRules) -> ToolError:
    text = " ".join(str(exc).split())
    if text == "interrupted":
        return _error("limit", f"the query ran longer than {rules.timeout:g} s and was stopped")
    if "readonly" in text or "not authorized" in text or "query_only" in text:
        return _error("refused", f"the database refused a write, it is open read-only ({text})")
    if "one statement at a time" in text:
        return _error("refused", "only one statement at a time")
    if "unable to open" in text:
        return _error("failed", f"could not open SQLite database {path!r} ({text})")
    return _error("failed", f"SQLite: {text}")


# -- PostgreSQL --------------------------------------------------------------------------------


@asynccontextmanager
async def _postgres_session(dsn: str, rules: DatabaseRules) -> AsyncIterator[asyncpg.Connection]:
    settings = {"statement_timeout": str(int(rules.timeout * 1000)),
                "lock_timeout": str(int(rules.timeout * 1000)),
                "default_transaction_read_only": "off" if rules.writable else "on"}
    conn = await asyncpg.connect(dsn, timeout=rules.connect_timeout, server_settings=settings)
    try:
        yield conn
    finally:
        await conn.close(timeout=rules.connect_timeout)


async def _postgres(dsn: str, sql: str, params: Sequence[Any], rules: DatabaseRules) -> QueryResult:
    # The client's own deadline, a little after the server's: a server that does not honour
    # statement_timeout (or a stalled network) still ends the call.
    grace = rules.timeout + rules.connect_timeout + 1
    try:
        async with asyncio.timeout(grace), _postgres_session(dsn, rules) as conn, \
                conn.transaction(readonly=not rules.writable):
            statement = await conn.prepare(sql)
            columns = tuple(a.name for a in statement.get_attributes())
            if columns:
                cursor = await statement.cursor(*params)
                rows = [tuple(r) for r in await cursor.fetch(rules.max_rows + 1)]
            else:
                await statement.fetch(*params)
                rows = []
    except TimeoutError:
        raise _error("limit", f"the query did not finish within {grace:g} s") from None
    except asyncpg.QueryCanceledError:
        raise _error("limit", f"the query ran longer than {rules.timeout:g} s and was stopped") from None
    except asyncpg.ReadOnlySQLTransactionError as exc:
        raise _error("refused", f"the database refused a write, the transaction is read-only ({exc})") from None
    except asyncpg.PostgresSyntaxError as exc:
        raise _error("bad_request", f"PostgreSQL: {exc}") from None
    except asyncpg.PostgresError as exc:
        hint = f" (hint: {exc.hint})" if getattr(exc, "hint", None) else ""
        raise _error("failed", f"PostgreSQL: {' '.join(str(exc.args[0] if exc.args else exc).split())}{hint}") from None
    except asyncpg.InterfaceError as exc:
        raise _error("failed", f"PostgreSQL: {' '.join(str(exc).split())}") from None
    except OSError as exc:
        raise _error("failed", f"could not connect to PostgreSQL: {exc.strerror or exc}") from None
    return QueryResult(columns, rows[: rules.max_rows], len(rows) > rules.max_rows)
