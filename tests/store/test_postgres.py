"""PostgreSQL store specifics: several nodes on one schema, schema versions, wake-ups, leases,
retention, lost connections. Against the real PostgreSQL (``JGHUB_TEST_PG_DSN``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import orjson
import psycopg
import pytest
import yaml

from hub.config import load_config
from hub.errors import ConfigError, StoreSchemaError, StoreUnavailable
from hub.jobs import prune_once
from hub.store import Outcome
from hub.store.postgres import SCHEMA_VERSION, PostgresStore, migrate, schema_version
from tests.conftest import PG_DSN, Clock
from tests.store.test_store_contract import msg

JGHUB = str(Path(sys.executable).parent / "jghub")


@pytest.fixture
async def nodes(pg_schema: str, clock: Clock) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one schema: what two hub nodes see."""
    await migrate(PG_DSN, pg_schema)
    a = PostgresStore(PG_DSN, schema=pg_schema, clock=clock)
    b = PostgresStore(PG_DSN, schema=pg_schema, clock=clock)
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_open_refuses_an_unmigrated_or_newer_schema(pg_schema: str) -> None:
    with pytest.raises(StoreSchemaError) as exc:
        await PostgresStore(PG_DSN, schema=pg_schema).open()
    assert exc.value.code == "E_STORE_SCHEMA" and "jghub migrate" in exc.value.message
    assert exc.value.field == "store.schema"
    assert await migrate(PG_DSN, pg_schema) == (0, SCHEMA_VERSION)
    assert await migrate(PG_DSN, pg_schema) == (SCHEMA_VERSION, SCHEMA_VERSION)  # idempotent
    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
        await conn.execute(
            f"INSERT INTO {pg_schema}.jghub_schema (version, applied_at) VALUES (99, 0)"
        )
    assert await schema_version(PG_DSN, pg_schema) == 99
    with pytest.raises(StoreSchemaError, match=r"version 99.*newer jghub"):
        await PostgresStore(PG_DSN, schema=pg_schema).open()
    with pytest.raises(StoreSchemaError, match="version 99"):
        await migrate(PG_DSN, pg_schema)


async def test_unreachable_database_is_e_store() -> None:
    s = PostgresStore("postgresql://postgres@127.0.0.1:1/test", timeout=1)
    with pytest.raises(StoreUnavailable) as exc:
        await s.open()
    assert exc.value.code == "E_STORE" and exc.value.status == 503
    with pytest.raises(StoreUnavailable):
        await s.enqueue([msg(1)])  # not open: refused, never queued


async def test_two_nodes_never_claim_the_same_delivery(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    results = await a.enqueue([msg(i) for i in range(400)])
    got: list[int] = []

    async def drain(s: PostgresStore, owner: str) -> None:
        while batch := await s.claim("t1", 25, 30, owner):
            got.extend(c.delivery_id for c in batch)

    await asyncio.gather(drain(a, "a"), drain(b, "b"), drain(a, "a2"), drain(b, "b2"))
    assert len(got) == len(set(got)) == len(results) == 400


async def test_concurrent_enqueues_are_group_committed(pg_schema: str) -> None:
    await migrate(PG_DSN, pg_schema)
    s = PostgresStore(PG_DSN, schema=pg_schema)
    await s.open()
    try:
        results = await asyncio.gather(*(s.enqueue([msg(i)]) for i in range(300)))
        assert len({r[0].message_id for r in results}) == 300
        commits, calls = s.group_commit_stats
        assert calls == 300 and commits < 30  # 300 callers shared a few transactions
        assert (await s.counts())["messages"] == 300
    finally:
        await s.close()


async def test_same_key_from_two_nodes_is_stored_once(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    """Two nodes commit the same Idempotency-Key at the same moment: one stores it, the other
    finds it (the losing transaction runs again after the unique violation)."""
    a, b = nodes
    for round_ in range(10):
        ra, rb = await asyncio.gather(
            a.enqueue([msg(1, key=f"k{round_}")]), b.enqueue([msg(1, key=f"k{round_}")])
        )
        assert ra[0].message_id == rb[0].message_id
        assert sorted([ra[0].duplicate, rb[0].duplicate]) == [False, True]
    assert (await a.counts())["messages"] == 10


async def test_one_failing_caller_does_not_fail_its_group(pg_schema: str) -> None:
    await migrate(PG_DSN, pg_schema)
    s = PostgresStore(PG_DSN, schema=pg_schema)
    await s.open()
    try:
        bad = msg(1)
        bad.envelope.payload = None  # type: ignore[assignment]  # violates NOT NULL
        results = await asyncio.gather(
            s.enqueue([bad]), *(s.enqueue([msg(i)]) for i in range(20)), return_exceptions=True
        )
        assert isinstance(results[0], Exception)
        assert all(not isinstance(r, Exception) for r in results[1:])
        assert (await s.counts())["messages"] == 20
    finally:
        await s.close()


async def test_commits_of_one_node_wake_the_other(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    woken: asyncio.Queue[Sequence[str] | None] = asyncio.Queue()
    b.on_work(woken.put_nowait)
    # the listener connects in the background; it first reports "anything" (None)
    assert await asyncio.wait_for(woken.get(), 10) is None
    await a.enqueue([msg(1, targets=("t1", "t2"))])
    assert await asyncio.wait_for(woken.get(), 10) == ["t1", "t2"]
    [c] = await a.claim("t1", 1, 30, "a")
    await a.settle([Outcome(c.delivery_id, "dead", 0.0, 1, 500, "x")])
    assert await a.replay([c.delivery_id], 0.0) == 1  # a replay wakes every node too
    assert await asyncio.wait_for(woken.get(), 10) == ["t1"]


async def test_job_lease_is_held_by_one_node_until_it_expires(
    nodes: tuple[PostgresStore, PostgresStore], clock: Clock
) -> None:
    a, b = nodes
    assert await a.acquire_lease("job:retention", "node-a", 30)
    assert not await b.acquire_lease("job:retention", "node-b", 30)
    assert await a.acquire_lease("job:retention", "node-a", 30)  # renewed
    clock.advance(31)  # node-a died: its lease ran out
    assert await b.acquire_lease("job:retention", "node-b", 30)
    assert not await a.acquire_lease("job:retention", "node-a", 30)
    await b.release_lease("job:retention", "node-b")  # node-b stops: hands over at once
    assert await a.acquire_lease("job:retention", "node-a", 30)


async def test_retention_prunes_delivered_messages_only(
    nodes: tuple[PostgresStore, PostgresStore], clock: Clock, tmp_path: Path
) -> None:
    from hub.config import RetentionSettings

    s, _ = nodes
    old = await s.enqueue([msg(i) for i in range(5)])
    claimed = await s.claim("t1", 10, 10 * 86400, "n")  # a long lease: stays inflight
    await s.settle(
        [Outcome(c.delivery_id, "ack", clock(), 1, 200) for c in claimed[:3]]
        + [Outcome(claimed[3].delivery_id, "dead", clock(), 1, 400, "bad")]
    )  # 3 delivered, 1 dead letter, 1 still inflight
    clock.advance(3 * 86400)
    [recent] = await s.enqueue([msg(9)])
    [c] = await s.claim("t1", 10, 30, "n")
    await s.settle([Outcome(c.delivery_id, "ack", clock(), 1, 200)])
    settings = RetentionSettings(trace_days=2, batch=2)
    n = await prune_once(s, settings, tmp_path / "archive", clock)
    assert n == 3
    for r in old[:3]:
        assert await s.trace(r.message_id) is None
    assert await s.trace(old[3].message_id) is not None  # dead letters are never pruned
    assert await s.trace(old[4].message_id) is not None  # nor pending work
    assert await s.trace(recent.message_id) is not None  # nor anything younger
    [archived] = list((tmp_path / "archive").glob("pruned-*.ndjson"))
    lines = [orjson.loads(x) for x in archived.read_bytes().splitlines()]
    assert sorted(x["message_id"] for x in lines) == sorted(r.message_id for r in old[:3])
    assert all(x["delivered"] == 1 for x in lines)
    assert await prune_once(s, settings, None, clock) == 0


async def test_lost_connections_are_e_store_then_recovered(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    """The database drops the node's connections (as in a restart): the request in flight is
    refused with E_STORE (nothing acknowledged), the pool reconnects and the next one works."""
    s, _ = nodes
    await s.enqueue([msg(1)])
    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (s.application_name,),
        )
        assert len(await cur.fetchall()) >= 2  # the pooled connections (at least two a node)
    outcomes: list[str] = []
    for i in range(6):  # each broken pooled connection fails one call, then is replaced
        try:
            await s.enqueue([msg(i, key=f"after-{i}")])
            outcomes.append("ok")
        except StoreUnavailable as exc:
            assert exc.code == "E_STORE"
            outcomes.append("E_STORE")
    assert outcomes[-1] == "ok"
    assert (await s.counts())["messages"] == 1 + outcomes.count("ok")


def test_config_needs_a_dsn_for_postgres(tmp_path: Path) -> None:
    (tmp_path / "hub.yaml").write_text(yaml.safe_dump({"store": {"kind": "postgres"}}))
    with pytest.raises(ConfigError, match=r"store\.dsn"):
        load_config(tmp_path / "hub.yaml")
    (tmp_path / "hub.yaml").write_text(
        yaml.safe_dump(
            {
                "store": {"kind": "postgres", "dsn": PG_DSN, "schema": "jg_prov"},
                "retention": {"trace_days": 30, "archive_dir": "archive"},
            }
        )
    )
    cfg = load_config(tmp_path / "hub.yaml")
    assert cfg.store.db_schema == "jg_prov" and cfg.retention.trace_days == 30


def test_jghub_migrate_command(tmp_path: Path, pg_schema: str) -> None:
    (tmp_path / "hub.yaml").write_text(
        yaml.safe_dump({"store": {"kind": "postgres", "dsn": PG_DSN, "schema": pg_schema}})
    )
    cmd = [JGHUB, "migrate", "--config", str(tmp_path / "hub.yaml")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert f"migrated from version 0 to {SCHEMA_VERSION}" in first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "nothing to do" in again.stdout


@pytest.mark.parametrize("settle_sync", ["relaxed", "full"])
async def test_settle_sync_sets_synchronous_commit_of_settles(
    pg_schema: str, settle_sync: str
) -> None:
    """Claims always, and settles with ``relaxed``, run with ``synchronous_commit = off`` (a
    server crash can only make a delivery go out again); ingest and operator replays/discards
    stay ``on``, and the setting never leaks into the next transaction on the pooled connection.
    A trigger on ``deliveries`` records the setting each statement ran with."""
    await migrate(PG_DSN, pg_schema)
    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
        await conn.execute(
            f"""
            CREATE TABLE {pg_schema}.sync_seen (
                n serial PRIMARY KEY, op text, state int, setting text);
            CREATE FUNCTION {pg_schema}.note_sync() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              INSERT INTO {pg_schema}.sync_seen (op, state, setting)
              VALUES (TG_OP, NEW.state, current_setting('synchronous_commit'));
              RETURN NEW;
            END $$;
            CREATE TRIGGER note_sync AFTER INSERT OR UPDATE ON {pg_schema}.deliveries
              FOR EACH ROW EXECUTE FUNCTION {pg_schema}.note_sync();
            """
        )
    s = PostgresStore(PG_DSN, schema=pg_schema, settle_sync=settle_sync, pool_size=1)
    await s.open()
    try:
        await s.enqueue([msg(1), msg(2)])  # INSERT, state 0
        a, b = await s.claim("t1", 10, 30, "n")  # UPDATE, state 1
        await s.settle(
            [
                Outcome(a.delivery_id, "ack", 2.0, 1, 200),  # state 2
                Outcome(b.delivery_id, "dead", 2.0, 1, 422, "refused"),  # state 3
            ]
        )
        await s.replay([b.delivery_id], 3.0)  # operator: UPDATE, state 0
        await s.enqueue([msg(3)])  # ingest again, on the same pooled connection
        async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
            cur = await conn.execute(
                f"SELECT op, state, setting FROM {pg_schema}.sync_seen ORDER BY n"
            )
            seen = [tuple(r) for r in await cur.fetchall()]
    finally:
        await s.close()
    relaxed = "off" if settle_sync == "relaxed" else "on"
    assert seen == [
        ("INSERT", 0, "on"),
        ("INSERT", 0, "on"),
        ("UPDATE", 1, "off"),  # claims never wait for the flush
        ("UPDATE", 1, "off"),
        ("UPDATE", 2, relaxed),
        ("UPDATE", 3, relaxed),
        ("UPDATE", 0, "on"),
        ("INSERT", 0, "on"),
    ]
