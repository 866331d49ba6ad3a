"""Sorted, filtered paging in SQL (``Plan.query_sql``) returns the same pages as the plan's
in-memory order, in real SQLite and PostgreSQL, over values of mixed types."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.sharing.enforce import CursorCodec, GrantScope, Plan, SortKey, plan_query
from hub.sharing.filterlang import Expr
from tests.conftest import PG_DSN
from tests.sharing.strategies import exprs, sample_records

CODEC = CursorCodec(b"paging-test-cursor-secret")
ROWS = [(f"k{i:04d}", r) for i, r in enumerate(sample_records(120, seed=21))]
SCOPE = GrantScope("d", ("a", "b", "c", "o"), grant_id="g")
PAGE = 9


@pytest.fixture(scope="module")
def lite() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE records (key TEXT PRIMARY KEY, payload BLOB NOT NULL)")
    db.executemany("INSERT INTO records VALUES (?, ?)", [(k, orjson.dumps(r)) for k, r in ROWS])
    yield db
    db.close()


@pytest.fixture(scope="module")
def pg() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(
            'CREATE TEMP TABLE records (key text COLLATE "C" PRIMARY KEY, payload jsonb NOT NULL)'
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO records VALUES (%s, %s::jsonb)",
                [(k, orjson.dumps(r).decode()) for k, r in ROWS],
            )
        yield conn


def _memory_pages(plan: Plan) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        page = plan.page(ROWS, PAGE, CODEC, cursor)
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return pages


def _sql_pages(plan: Plan, run: Any, dialect: str) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    for _ in range(200):
        position = None if cursor is None else plan.decode_cursor(CODEC, cursor)
        q = plan.query_sql(
            dialect,
            "payload",
            "bytes" if dialect == "sqlite" else "json",  # type: ignore[arg-type]
            position=position,
        )
        sql = (
            f"SELECT key, payload FROM records WHERE {q.where} "
            f"ORDER BY {q.order_by} LIMIT {PAGE + 1}"
        )
        rows = [
            (k, p if isinstance(p, dict) else orjson.loads(p))
            for k, p in run(sql, [*q.params, *q.order_params])
        ]
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        pages.append([plan.project(r) for _, r in rows])
        cursor = plan.encode_cursor(CODEC, *rows[-1]) if more else None
        if cursor is None:
            return pages
    raise AssertionError("paging did not end")


sorts = st.lists(
    st.builds(SortKey, st.sampled_from(["a", "b", "c", "o", "o.x"]), st.booleans()),
    max_size=3,
    unique_by=lambda k: k.field,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sort=sorts, request_filter=st.none() | exprs(["a", "b", "c", "o.x"], max_leaves=3))
def test_sql_pages_equal_memory_pages(
    sort: list[SortKey],
    request_filter: Expr | None,
    lite: sqlite3.Connection,
    pg: psycopg.Connection[Any],
) -> None:
    plan = plan_query(SCOPE, filter=request_filter, sort=sort)
    want = _memory_pages(plan)
    assert _sql_pages(plan, lambda sql, p: lite.execute(sql, p).fetchall(), "sqlite") == want
    assert _sql_pages(plan, lambda sql, p: pg.execute(sql, p).fetchall(), "postgres") == want


def test_mixed_types_sort_the_same_way_everywhere(
    lite: sqlite3.Connection, pg: psycopg.Connection[Any]
) -> None:
    for spec in ("a", "-a", "o.x,-b", "-c,a"):
        plan = plan_query(SCOPE, sort=spec)
        want = _memory_pages(plan)
        assert len(want) > 5  # several pages, so cursors are exercised
        kinds = {type(item.get(spec.split(",")[0].lstrip("-"))) for page in want for item in page}
        assert len(kinds) >= 4 or "." in spec  # null, bool, number, text, objects ...
        assert _sql_pages(plan, lambda sql, p: lite.execute(sql, p).fetchall(), "sqlite") == want
        assert _sql_pages(plan, lambda sql, p: pg.execute(sql, p).fetchall(), "postgres") == want


def test_unsafe_key_column_is_refused() -> None:
    with pytest.raises(ValueError, match="unsafe column"):
        plan_query(SCOPE).query_sql(key_column="key; DROP TABLE records")
