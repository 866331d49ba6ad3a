"""``to_sql`` selects exactly the rows ``evaluate`` accepts, in real SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings

from hub.sharing.filterlang import Expr, compile_predicate, parse, to_sql
from tests.conftest import PG_DSN
from tests.sharing.strategies import exprs, sample_records

RECORDS = sample_records(300)


def _expected(expr: Expr) -> set[int]:
    pred = compile_predicate(expr)
    return {i for i, r in enumerate(RECORDS) if pred(r)}


@pytest.fixture(scope="module")
def lite() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    db.executemany(
        "INSERT INTO records VALUES (?, ?)",
        [(i, orjson.dumps(r).decode()) for i, r in enumerate(RECORDS)],
    )
    yield db
    db.close()


@pytest.fixture(scope="module")
def pg() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE records (id int PRIMARY KEY, payload jsonb NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO records VALUES (%s, %s::jsonb)",
                [(i, orjson.dumps(r).decode()) for i, r in enumerate(RECORDS)],
            )
        yield conn


def _lite_ids(db: sqlite3.Connection, expr: Expr) -> set[int]:
    sql, params = to_sql(expr, "sqlite")
    return {row[0] for row in db.execute(f"SELECT id FROM records WHERE {sql}", params)}


def _pg_ids(conn: psycopg.Connection[Any], expr: Expr) -> set[int]:
    sql, params = to_sql(expr, "postgres")
    return {row[0] for row in conn.execute(f"SELECT id FROM records WHERE {sql}", params)}


EXAMPLES = [
    "a = 'a%'",
    "a like 'a\\%'",
    "a like '[x]'",
    "a like '%*%' or b like '_?'",
    "a < 'b' and a >= ''",
    "a > 0.5 or b <= -1.5",
    "a = 2 or a = 1e16",
    "a = true or b != false",
    "a is null and not b is null",
    "a not in ('a', 1, false)",
    "o.x = '张丰' or o.x like '张%'",
    "o is not null and o != 'x'",
    "missing != 1 or not (missing = 1 or a is null)",
    "a not like '%' and b not like ''",
    "a in ('[1]', '1', 'true', 'a%') or b = '{\"x\":1}' or c != '[x]'",
    "o = '{\"x\":1}' or o in ('{\"x\":true}', 'b_') or a = '1' or b = 1",
    "a = 'x''; DROP TABLE records; --'",
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_examples_select_the_same_rows_everywhere(
    text: str, lite: sqlite3.Connection, pg: psycopg.Connection[Any]
) -> None:
    expr = parse(text)
    want = _expected(expr)
    assert _lite_ids(lite, expr) == want
    assert _pg_ids(pg, expr) == want


def test_the_examples_are_not_trivial() -> None:
    """Each example selects some rows and leaves some (else the comparison proves little)."""
    sizes = {t: len(_expected(parse(t))) for t in EXAMPLES[:-1]}
    assert all(0 < n < len(RECORDS) for n in sizes.values()), sizes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=exprs())
def test_random_filters_select_the_same_rows_in_sqlite_and_postgres(
    expr: Expr, lite: sqlite3.Connection, pg: psycopg.Connection[Any]
) -> None:
    want = _expected(expr)
    assert _lite_ids(lite, expr) == want
    assert _pg_ids(pg, expr) == want


def test_payloads_stored_as_text_or_bytes(pg: psycopg.Connection[Any]) -> None:
    """The hub's message store keeps payloads as bytes (BLOB / bytea): same rows."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
    db.executemany(
        "INSERT INTO m VALUES (?, ?)", [(i, orjson.dumps(r)) for i, r in enumerate(RECORDS)]
    )
    pg.execute("CREATE TEMP TABLE IF NOT EXISTS m (id int, b bytea, t text)")
    with pg.cursor() as cur:
        cur.executemany(
            "INSERT INTO m VALUES (%s, %s, %s)",
            [(i, orjson.dumps(r), orjson.dumps(r).decode()) for i, r in enumerate(RECORDS)],
        )
    for text in EXAMPLES:
        expr = parse(text)
        want = _expected(expr)
        sql, params = to_sql(expr, "sqlite", "payload", stored_as="bytes")
        assert {i for (i,) in db.execute(f"SELECT id FROM m WHERE {sql}", params)} == want
        for column, stored_as in (("b", "bytes"), ("t", "text")):
            sql, params = to_sql(expr, "postgres", column, stored_as=stored_as)  # type: ignore[arg-type]
            assert {i for (i,) in pg.execute(f"SELECT id FROM m WHERE {sql}", params)} == want
    with pytest.raises(ValueError, match="unknown column storage"):
        to_sql(parse("a = 1"), "sqlite", stored_as="xml")  # type: ignore[arg-type]


def test_nothing_of_the_value_reaches_the_sql_text() -> None:
    expr = parse("a = 'x'') or 1=1 --' and o.x like '%secret%'")
    for dialect in ("sqlite", "postgres"):
        sql, params = to_sql(expr, dialect)  # type: ignore[arg-type]
        assert "secret" not in sql and "1=1" not in sql and '"a"' not in sql
        assert "x') or 1=1 --" in params and any("secret" in str(p) for p in params)


def test_unsafe_column_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unsafe column"):
        to_sql(parse("a = 1"), "sqlite", column="payload); DROP TABLE x; --")
    with pytest.raises(ValueError, match="unknown SQL dialect"):
        to_sql(parse("a = 1"), "mysql")  # type: ignore[arg-type]
