"""The reconciliation ledger (上报台账) in the store: one contract for the memory, SQLite and
PostgreSQL stores, several nodes on one PostgreSQL schema seeing what every node sent, and
the PostgreSQL migration from schema version 1."""

from __future__ import annotations

import psycopg
from psycopg import sql

from hub.store import LedgerEntry, Store
from hub.store.postgres import SCHEMA_VERSION, PostgresStore, Q, migrate
from tests.conftest import PG_DSN, Clock


def entry(key: str, **kw: object) -> LedgerEntry:
    base: dict[str, object] = {
        "book": "national:national",
        "dataset": "jcxw",
        "key": key,
        "day": "2024-03-01",
        "digest": f"d-{key}",
        "body": b'{"jlid": "%s"}' % key.encode(),
        "version": 0,
        "receipt": f"HZ-{key}",
        "at": 1.0,
    }
    base.update(kw)
    return LedgerEntry(**base)  # type: ignore[arg-type]


async def test_entries_by_book_dataset_and_day(store: Store) -> None:
    assert await store.ledger_put([]) == 0
    n = await store.ledger_put(
        [
            entry("b"),
            entry("a"),
            entry("c", day="2024-03-02"),
            entry("a", dataset="xzcf"),
            entry("a", book="national:other"),
        ]
    )
    assert n == 5
    day = await store.ledger_entries("national:national", "jcxw", day="2024-03-01")
    assert [e.key for e in day] == ["a", "b"]  # ordered by key; other days, books not mixed in
    assert day[0] == entry("a")  # every field comes back as written, the body as bytes
    assert isinstance(day[0].body, bytes)
    every = await store.ledger_entries("national:national", "jcxw")
    assert [e.key for e in every] == ["a", "b", "c"]
    assert await store.ledger_entries("national:national", "nope") == []


async def test_a_resend_keeps_the_first_receipt(store: Store) -> None:
    await store.ledger_put([entry("a", receipt="HZ-1")])
    # re-sent by 对账: the nation answers with another receipt; the first one stays
    assert await store.ledger_put([entry("a", receipt="HZ-2", digest="d2", at=2.0)]) == 1
    [got] = await store.ledger_entries("national:national", "jcxw")
    assert (got.receipt, got.digest, got.at) == ("HZ-1", "d2", 2.0)
    # a record first kept without a receipt takes the first one that comes
    await store.ledger_put([entry("b", receipt=None)])
    await store.ledger_put([entry("b", receipt="HZ-9")])
    [_, b] = await store.ledger_entries("national:national", "jcxw")
    assert b.receipt == "HZ-9"


async def test_versions_only_move_forward(store: Store) -> None:
    code = "33000000000000"
    item = {"dataset": "catalog", "day": "", "receipt": None}
    assert await store.ledger_put([entry(code, version=2, digest="v2", **item)]) == 1
    # a late answer for version 1 must not replace version 2
    assert await store.ledger_put([entry(code, version=1, digest="v1", **item)]) == 0
    [got] = await store.ledger_entries("national:national", "catalog")
    assert (got.version, got.digest) == (2, "v2")
    # version 3 replaces it, receipt included; within one call, the later write counts
    await store.ledger_put(
        [
            entry(code, version=3, digest="v3", **{**item, "receipt": "R3"}),
            entry(code, version=4, digest="v4", **item),
        ]
    )
    [got] = await store.ledger_entries("national:national", "catalog")
    assert (got.version, got.digest, got.receipt) == (4, "v4", None)


async def test_every_node_sees_what_every_node_sent(pg_schema: str, clock: Clock) -> None:
    """Two nodes on one PostgreSQL schema: each node's accepted records are in the ledger the
    other reconciles from (the per-node SQLite ledger could not do this)."""
    await migrate(PG_DSN, pg_schema)
    a = PostgresStore(PG_DSN, schema=pg_schema, clock=clock)
    b = PostgresStore(PG_DSN, schema=pg_schema, clock=clock)
    await a.open()
    await b.open()
    try:
        await a.ledger_put([entry(f"a{i}") for i in range(3)])
        await b.ledger_put([entry(f"b{i}") for i in range(2)])
        for node in (a, b):
            got = await node.ledger_entries("national:national", "jcxw", day="2024-03-01")
            assert [e.key for e in got] == ["a0", "a1", "a2", "b0", "b1"]
    finally:
        await a.close()
        await b.close()


async def test_a_version_1_schema_is_migrated_to_the_ledger(pg_schema: str) -> None:
    """A store created by the previous release (schema version 1) gets the ledger table from
    ``migrate_2``; its data stays."""
    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg_schema)))
        await conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg_schema)))
        await conn.execute(Q["version_table"])
        await conn.execute(Q["migrate_1"])
        await conn.execute(Q["set_version"], (1, 0.0))
        await conn.execute(Q["put_state"], ("src", "cursor", "42", 0.0))
    assert await migrate(PG_DSN, pg_schema) == (1, SCHEMA_VERSION)
    store = PostgresStore(PG_DSN, schema=pg_schema)
    await store.open()
    try:
        assert await store.get_state("src", "cursor") == "42"
        assert await store.ledger_put([entry("a")]) == 1
        assert [e.key for e in await store.ledger_entries("national:national", "jcxw")] == ["a"]
        assert await store.schema_version() == (SCHEMA_VERSION, SCHEMA_VERSION)
    finally:
        await store.close()
