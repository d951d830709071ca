"""The database tool on a real SQLite file and the machine's PostgreSQL (127.0.0.1:5432, database
`test`): read-only refused twice (by the parser, and by the engine when the parser is bypassed),
one statement at a time, parameters, the row cap and the statement timeout, each with the
sentence the user reads. PostgreSQL tests use a schema of their own, dropped afterwards."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import tools._database
from tools import DatabaseRules, QueryResult, ToolError, query, read_only_refusal

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
WRITABLE = DatabaseRules(writable=True)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    path = tmp_path / "data.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items (name) VALUES (?)", [(f"item{n}",) for n in range(10)])
    conn.close()
    return f"sqlite:{path}"


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    schema = f"tools_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.items (id serial PRIMARY KEY, name text);"
                           f"INSERT INTO {schema}.items (name) SELECT 'item' || n FROM generate_series(0, 9) n")
        yield schema
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


async def refused(target: str, sql: str, params: tuple[Any, ...] = (), rules: DatabaseRules | None = None,
                  ) -> ToolError:
    with pytest.raises(ToolError) as caught:
        await query(target, sql, params, rules=rules)
    return caught.value


@pytest.fixture
def no_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parser miss: every statement looks read-only, so only the engine stands in the way."""
    monkeypatch.setattr(tools._database, "read_only_refusal", lambda sql, dialect: None)


# -- the parser ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "SELECT 1", "select * from t where a = ?", "WITH x AS (SELECT 1) SELECT * FROM x", "SELECT 1 UNION SELECT 2",
    "EXPLAIN SELECT * FROM t", "EXPLAIN QUERY PLAN SELECT 1", "EXPLAIN (ANALYZE, BUFFERS) SELECT 1", "SELECT 1;",
])
def test_queries_are_read_only(sql: str) -> None:
    assert read_only_refusal(sql, "postgres" if "(" in sql else "sqlite") is None


@pytest.mark.parametrize(("sql", "reason"), [
    ("INSERT INTO t VALUES (1)", "INSERT is not allowed in read-only mode; only SELECT, WITH … SELECT and EXPLAIN"),
    ("DELETE FROM t", "DELETE is not allowed in read-only mode; only SELECT, WITH … SELECT and EXPLAIN"),
    ("DROP TABLE t", "DROP is not allowed in read-only mode; only SELECT, WITH … SELECT and EXPLAIN"),
    ("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a",
     "INSERT is not allowed in read-only mode; only SELECT, WITH … SELECT and EXPLAIN"),
    ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
     "DELETE is not allowed in read-only mode, even inside a query"),
    ("SELECT * INTO copy FROM t", "SELECT … INTO is not allowed in read-only mode, even inside a query"),
    ("SELECT * FROM t FOR UPDATE", "SELECT … FOR UPDATE/SHARE is not allowed in read-only mode, even inside a query"),
    ("EXPLAIN ANALYZE DELETE FROM t",
     "DELETE is not allowed in read-only mode; only SELECT, WITH … SELECT and EXPLAIN"),
    ("SELECT 1; DELETE FROM t", "only one statement at a time"),
    ("SELECT 1; SELECT 2", "only one statement at a time"),
])
def test_writes_and_several_statements_are_refused_by_the_parser(sql: str, reason: str) -> None:
    assert read_only_refusal(sql, "postgres") == reason


# -- SQLite --------------------------------------------------------------------------------------


async def test_sqlite_query_with_parameters(sqlite_db: str) -> None:
    result = await query(sqlite_db, "SELECT id, name FROM items WHERE name = ?", ("item3",))
    assert result == QueryResult(("id", "name"), [(4, "item3")], truncated=False)


async def test_sqlite_write_in_read_only_mode_is_refused_by_the_parser(sqlite_db: str) -> None:
    error = await refused(sqlite_db, "DELETE FROM items")
    assert (error.kind, str(error)) == (
        "refused", "database: DELETE is not allowed in read-only mode; only SELECT, WITH … SELECT and EXPLAIN")


@pytest.mark.usefixtures("no_parser")
@pytest.mark.parametrize("sql", ["DELETE FROM items", "ATTACH DATABASE 'other.db' AS other",
                                 "PRAGMA query_only = OFF"])
async def test_sqlite_write_is_refused_by_the_engine_when_the_parser_misses(sqlite_db: str, sql: str) -> None:
    error = await refused(sqlite_db, sql)
    assert (error.kind, str(error)) == ("refused", "database: the database refused a write, it is open read-only "
                                                   "(not authorized)")
    assert (await query(sqlite_db, "SELECT count(*) FROM items")).rows == [(10,)]


@pytest.mark.usefixtures("no_parser")
async def test_sqlite_is_opened_read_only_even_without_the_authorizer(
        sqlite_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools._database, "_sqlite_authorizer", lambda *args: sqlite3.SQLITE_OK)
    error = await refused(sqlite_db, "DELETE FROM items")
    assert (error.kind, str(error)) == ("refused", "database: the database refused a write, it is open read-only "
                                                   "(attempt to write a readonly database)")
    assert (await query(sqlite_db, "SELECT count(*) FROM items")).rows == [(10,)]


async def test_sqlite_writes_when_granted(sqlite_db: str) -> None:
    assert (await query(sqlite_db, "DELETE FROM items WHERE id > ?", (5,), rules=WRITABLE)).rows == []
    assert (await query(sqlite_db, "SELECT count(*) FROM items")).rows == [(5,)]


async def test_sqlite_several_statements_are_refused_even_when_writable(sqlite_db: str) -> None:
    error = await refused(sqlite_db, "SELECT 1; DROP TABLE items", rules=WRITABLE)
    assert (error.kind, str(error)) == ("refused", "database: only one statement at a time")


async def test_sqlite_rows_stop_at_the_cap(sqlite_db: str) -> None:
    result = await query(sqlite_db, "SELECT name FROM items ORDER BY id", rules=DatabaseRules(max_rows=3))
    assert result == QueryResult(("name",), [("item0",), ("item1",), ("item2",)], truncated=True)


async def test_sqlite_statement_timeout(sqlite_db: str) -> None:
    forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    error = await refused(sqlite_db, forever, rules=DatabaseRules(timeout=0.3))
    assert (error.kind, str(error)) == ("limit", "database: the query ran longer than 0.3 s and was stopped")


async def test_sqlite_missing_file_is_not_created(tmp_path: Path) -> None:
    error = await refused(f"sqlite:{tmp_path / 'nope.db'}", "SELECT 1", rules=WRITABLE)
    assert (error.kind, str(error)) == (
        "failed", f"database: could not open SQLite database '{tmp_path / 'nope.db'}': no such file")
    assert not (tmp_path / "nope.db").exists()


async def test_an_unknown_target_is_a_bad_request() -> None:
    error = await refused("mysql://x", "SELECT 1")
    assert (error.kind, str(error)) == (
        "bad_request", "database: database target must be 'sqlite:<path>' or a 'postgresql://' DSN")


# -- PostgreSQL ----------------------------------------------------------------------------------


async def test_postgres_query_with_parameters(pg_schema: str) -> None:
    result = await query(PG_DSN, f"SELECT id, name FROM {pg_schema}.items WHERE name = $1", ("item3",))
    assert result == QueryResult(("id", "name"), [(4, "item3")], truncated=False)


async def test_postgres_write_in_read_only_mode_is_refused_by_the_parser(pg_schema: str) -> None:
    error = await refused(PG_DSN, f"UPDATE {pg_schema}.items SET name = 'x'")
    assert (error.kind, str(error)) == (
        "refused", "database: UPDATE is not allowed in read-only mode; only SELECT, WITH … SELECT and EXPLAIN")


@pytest.mark.usefixtures("no_parser")
@pytest.mark.parametrize(("sql", "verb"), [
    ("DELETE FROM {s}.items", "DELETE"),
    ("WITH gone AS (DELETE FROM {s}.items RETURNING id) SELECT count(*) FROM gone", "SELECT"),
    ("CREATE TABLE {s}.more (id int)", "CREATE TABLE"),
])
async def test_postgres_write_is_refused_by_the_engine_when_the_parser_misses(
        pg_schema: str, sql: str, verb: str) -> None:
    error = await refused(PG_DSN, sql.format(s=pg_schema))
    assert (error.kind, str(error)) == ("refused", "database: the database refused a write, the transaction is "
                                                   f"read-only (cannot execute {verb} in a read-only transaction)")
    assert (await query(PG_DSN, f"SELECT count(*) FROM {pg_schema}.items")).rows == [(10,)]


async def test_postgres_writes_when_granted(pg_schema: str) -> None:
    inserted = await query(PG_DSN, f"INSERT INTO {pg_schema}.items (name) VALUES ($1) RETURNING id", ("new",),
                           rules=WRITABLE)
    assert inserted == QueryResult(("id",), [(11,)], truncated=False)
    assert (await query(PG_DSN, f"DELETE FROM {pg_schema}.items", rules=WRITABLE)).rows == []
    assert (await query(PG_DSN, f"SELECT count(*) FROM {pg_schema}.items")).rows == [(0,)]


async def test_postgres_several_statements_are_refused(pg_schema: str) -> None:
    for rules in (None, WRITABLE):
        error = await refused(PG_DSN, f"SELECT 1; DROP SCHEMA {pg_schema} CASCADE", rules=rules)
        assert (error.kind, str(error)) == ("refused", "database: only one statement at a time")


async def test_postgres_rows_stop_at_the_cap(pg_schema: str) -> None:
    result = await query(PG_DSN, "SELECT n FROM generate_series(1, 1000000) n", rules=DatabaseRules(max_rows=3))
    assert result == QueryResult(("n",), [(1,), (2,), (3,)], truncated=True)


async def test_postgres_statement_timeout(pg_schema: str) -> None:
    error = await refused(PG_DSN, "SELECT pg_sleep(10)", rules=DatabaseRules(timeout=0.3))
    assert (error.kind, str(error)) == ("limit", "database: the query ran longer than 0.3 s and was stopped")


async def test_postgres_sql_errors_are_one_line(pg_schema: str) -> None:
    error = await refused(PG_DSN, f"SELECT nope FROM {pg_schema}.items")
    assert (error.kind, str(error)) == ("failed", 'database: PostgreSQL: column "nope" does not exist '
                                                  '(hint: Perhaps you meant to reference the column "items.name".)')
