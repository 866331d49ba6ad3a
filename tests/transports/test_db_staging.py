"""``db_staging`` (前置库) against real databases: a SQLite file, PostgreSQL and MariaDB.

Rows are read by increasing key or by status column and marked only after the commit; rows
read again are duplicates by key; delivered records are inserted once per message id; names
from config are validated and values are always parameters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from contracts.samples import sample_inspection
from hub.errors import ConfigError
from hub.runtime import Hub
from hub.specs import OutboundItem
from hub.transports.db_staging import DbStagingOutOptions, DbStagingTransport
from tests.helpers import config, wait_until
from tests.transports.staging_dbs import KINDS, StagingDatabase, open_database

SOURCE = "dept-a"
#: the department's column names (拼音 abbreviations, as staging tables often have) → fields
RENAMED = {"jcxwbh": "inspection_no", "jcxwmc": "inspection_name", "xdrmc": "counterpart_name"}
FIELDS = [
    "catalog_code",
    "implementation_code",
    "supervised_object",
    "counterpart_nature",
    "counterpart_cert_type",
    "counterpart_code",
    "region_code",
    "inspection_form",
    "inspection_category",
    "inspection_result",
    "inspection_time",
    "inspectors",
]


@pytest.fixture(params=KINDS)
def staging(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StagingDatabase]:
    db = open_database(request.param, tmp_path)
    try:
        yield db
    finally:
        db.cleanup()


def make_inbound_table(db: StagingDatabase, with_version: bool = False) -> str:
    table = db.new_table("jcxw")
    cols = [f"{c} {db.text}" for c in [*RENAMED, *FIELDS]]
    extra = ", ver INTEGER NOT NULL DEFAULT 1" if with_version else ""
    db.execute(
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, status VARCHAR(2) NOT NULL "
        f"DEFAULT 'N'{extra}, {', '.join(cols)})"
    )
    return table


def row(i: int, **over: Any) -> dict[str, Any]:
    rec = sample_inspection(i)
    out: dict[str, Any] = {"id": i + 1}
    for col, f in RENAMED.items():
        out[col] = rec[f]
    for f in FIELDS:
        out[f] = orjson.dumps(rec[f]).decode() if f == "inspectors" else rec[f]
    out.update(over)
    return out


def columns() -> dict[str, Any]:
    cols: dict[str, Any] = {c: f for c, f in RENAMED.items()}
    cols.update({f: f for f in FIELDS})
    cols["inspectors"] = {"field": "inspectors", "type": "json"}
    return cols


def source_cfg(tmp: Path, db: StagingDatabase, table: str, **opts: Any) -> Any:
    source = {
        "kind": "db_staging",
        "url": db.url,
        "table": table,
        "columns": columns(),
        "poll_interval": 0.02,
        **opts,
    }
    return config(tmp, {}, source_extra={"inbound": {"source": source}})


async def stored(hub: Hub, key: str) -> dict[str, Any]:
    mid = await hub.store.lookup_idempotency(SOURCE, key)
    assert mid is not None, f"nothing stored under {key}"
    trace = await hub.store.trace(mid)
    assert trace is not None
    got: dict[str, Any] = orjson.loads(trace.payload)
    return got


async def test_increasing_key_reads_new_rows_and_saves_the_cursor_after_commit(
    staging: StagingDatabase, tmp_path: Path
) -> None:
    table = make_inbound_table(staging)
    for i in range(7):
        staging.insert(table, row(i, region_code="99") if i == 3 else row(i))
    cfg = source_cfg(tmp_path, staging, table, mode="increasing_key", batch_size=3)

    async def cursor_is(v: str) -> bool:
        return await hub.store.get_state(f"source:{SOURCE}", "cursor") == v

    async with Hub(cfg) as hub:
        await wait_until(lambda: cursor_is("7"), what="cursor at 7")
        assert (await hub.store.counts())["messages"] == 6
        [q] = await hub.store.quarantined(SOURCE)
        assert q.key == f"{table}:4" and q.code == "E_SCHEMA" and table in q.origin
        got = await stored(hub, f"{table}:1")
        assert got["inspection_no"] == sample_inspection(0)["inspection_no"]
        assert got["inspectors"] == sample_inspection(0)["inspectors"]
        for i in range(7, 10):  # the department adds rows later
            staging.insert(table, row(i))
        await wait_until(lambda: cursor_is("10"), what="cursor at 10")
        assert (await hub.store.counts())["messages"] == 9


async def test_status_mode_marks_rows_after_commit_and_a_new_version_is_a_new_record(
    staging: StagingDatabase, tmp_path: Path
) -> None:
    table = make_inbound_table(staging, with_version=True)
    for i in range(5):
        staging.insert(table, row(i, region_code="99") if i == 2 else row(i))
    cfg = source_cfg(
        tmp_path,
        staging,
        table,
        mode="status",
        version_column="ver",
        status_taken="Y",
        status_rejected="E",
    )

    def statuses() -> dict[int, str]:
        return {int(i): s for i, s in staging.execute(f"SELECT id, status FROM {table}")}

    async with Hub(cfg) as hub:
        await wait_until(lambda: "N" not in statuses().values(), what="rows taken")
        assert statuses() == {1: "Y", 2: "Y", 3: "E", 4: "Y", 5: "Y"}
        assert (await hub.store.counts())["messages"] == 4
        assert await stored(hub, f"{table}:1:1")
        # the department corrects row 1: a new version, status back to N
        mark = staging.mark
        staging.execute(
            f"UPDATE {table} SET ver = 2, status = 'N', xdrmc = {mark} WHERE id = 1",
            ["某某餐饮有限公司（更正）"],
        )
        await wait_until(lambda: statuses()[1] == "Y", what="new version taken")
        assert (await hub.store.counts())["messages"] == 5
        assert (await stored(hub, f"{table}:1:2"))["counterpart_name"] == "某某餐饮有限公司（更正）"


async def test_rows_committed_but_not_marked_are_duplicates_when_read_again(
    tmp_path: Path,
) -> None:
    """A crash after the commit and before the status update: the rows are read again, found
    to be duplicates by key, and then marked — nothing is stored twice."""
    staging = open_database("sqlite", tmp_path)
    table = make_inbound_table(staging)
    for i in range(4):
        staging.insert(table, row(i))
    cfg = source_cfg(tmp_path, staging, table, mode="status")
    hub = Hub(cfg)
    await hub.start(sources=False)
    try:
        recs = [sample_inspection(i) for i in range(4)]
        res = await hub._sources[0].ctx.ingest(recs, keys=[f"{table}:{i + 1}" for i in range(4)])
        assert len(res.ids) == 4
    finally:
        await hub.stop()
    async with Hub(cfg) as hub:
        await wait_until(
            lambda: staging.execute(f"SELECT count(*) FROM {table} WHERE status = 'Y'")[0][0] == 4,
            what="rows marked",
        )
        assert (await hub.store.counts())["messages"] == 4


async def test_sql_injection_in_values_is_data_and_in_config_names_is_refused(
    staging: StagingDatabase, tmp_path: Path
) -> None:
    table = make_inbound_table(staging)
    victim = staging.new_table("victim")
    staging.execute(f"CREATE TABLE {victim} (id INTEGER)")
    evil = f"x'); DROP TABLE {victim}; --"
    staging.insert(table, row(0, jcxwmc=evil, xdrmc="' OR '1'='1"))
    cfg = source_cfg(tmp_path, staging, table, mode="status")
    async with Hub(cfg) as hub:
        await wait_until(
            lambda: staging.execute(f"SELECT status FROM {table}")[0][0] == "Y", what="taken"
        )
        got = await stored(hub, f"{table}:1")
        assert got["inspection_name"] == evil and got["counterpart_name"] == "' OR '1'='1"
    assert staging.execute(f"SELECT count(*) FROM {victim}") == [(0,)]  # still there
    for bad in (
        {"table": f"{table}; DROP TABLE {victim}"},
        {"table": table, "key_column": "id) OR (1=1"},
        {"table": table, "columns": {'a" FROM x; --': "inspection_name"}},
        {"table": table, "schema": "public; --"},
    ):
        source = {"kind": "db_staging", "url": staging.url, **bad}
        cfg = config(tmp_path, {}, source_extra={"inbound": {"source": source}})
        with pytest.raises(ConfigError, match="not a plain SQL name") as info:
            Hub(cfg)
        assert info.value.code == "E_CONFIG"


# --------------------------------------------------------------------------- outbound


def make_outbound_table(db: StagingDatabase) -> str:
    table = db.new_table("out")
    t = db.text
    db.execute(
        f"CREATE TABLE {table} (msg_id VARCHAR(64) NOT NULL UNIQUE, dataset {t}, "
        f"jcxwbh {t} NOT NULL, xdrmc {t}, jcry {t}, region {t})"
    )
    return table


def out_options(db: StagingDatabase, table: str, **kw: Any) -> DbStagingOutOptions:
    return DbStagingOutOptions.model_validate(
        {
            "url": db.url,
            "table": table,
            "dataset_column": "dataset",
            "columns": {
                "jcxwbh": "inspection_no",
                "xdrmc": "counterpart_name",
                "jcry": "inspectors",
                "region": "region_code",
            },
            **kw,
        }
    )


def item(i: int, body: dict[str, Any] | None = None) -> OutboundItem:
    return OutboundItem(i, f"msg-{i:04d}", "inspection", body or sample_inspection(i), 1)


async def test_outbound_inserts_once_per_message_id_in_one_transaction(
    staging: StagingDatabase,
) -> None:
    table = make_outbound_table(staging)
    t = DbStagingTransport("dept-db", out_options(staging, table))
    await t.start()
    try:
        batch = [item(i) for i in range(5)]
        assert all(r.ok for r in await t.send(batch))
        assert all(r.ok for r in await t.send([*batch[2:], item(5)]))  # a retried batch + one
        rows = staging.execute(f"SELECT msg_id, jcxwbh, jcry, dataset FROM {table} ORDER BY msg_id")
        assert [r[0] for r in rows] == [f"msg-{i:04d}" for i in range(6)]
        assert rows[1][1] == sample_inspection(1)["inspection_no"]
        assert orjson.loads(rows[1][2]) == sample_inspection(1)["inspectors"]
        assert rows[1][3] == "inspection"
    finally:
        await t.close()


async def test_outbound_a_bad_row_is_dead_lettered_and_the_rest_inserted(
    staging: StagingDatabase,
) -> None:
    table = make_outbound_table(staging)
    t = DbStagingTransport("dept-db", out_options(staging, table))
    await t.start()
    try:
        bad = sample_inspection(1)
        del bad["inspection_no"]  # the NOT NULL column gets no value
        evil = sample_inspection(2)
        evil["counterpart_name"] = f"'); DELETE FROM {table}; --"
        res = await t.send([item(0), item(1, bad), item(2, evil)])
        assert [r.ok for r in res] == [True, False, True]
        assert res[1].permanent and "null" in res[1].detail.lower()
        rows = staging.execute(f"SELECT msg_id, xdrmc FROM {table} ORDER BY msg_id")
        assert rows == [
            ("msg-0000", sample_inspection(0)["counterpart_name"]),
            ("msg-0002", f"'); DELETE FROM {table}; --"),
        ]
    finally:
        await t.close()


async def test_outbound_database_down_is_transient(tmp_path: Path) -> None:
    for url in (
        "postgresql://postgres@127.0.0.1:9/test",
        "mysql://root@127.0.0.1:9/test",
        f"sqlite://{tmp_path}/missing.db",
    ):
        opts = DbStagingOutOptions(url=url, table="t", columns={"a": "inspection_no"})
        t = DbStagingTransport("down", opts)
        await t.start()
        try:
            [res] = await t.send([item(1)])
        finally:
            await t.close()
        assert not res.ok and not res.permanent, (url, res)


async def test_staging_in_to_staging_out_through_a_hub(tmp_path: Path) -> None:
    """End to end on SQLite: rows in a department's staging table reach another
    department's staging table through the hub, each once."""
    staging = open_database("sqlite", tmp_path)
    src = make_inbound_table(staging)
    dst = make_outbound_table(staging)
    for i in range(12):
        staging.insert(src, row(i))
    outbound = {
        "transport": "db_staging",
        "url": staging.url,
        "table": dst,
        "columns": {"jcxwbh": "inspection_no", "xdrmc": "counterpart_name"},
        "batch_size": 5,
    }
    source = {
        "kind": "db_staging",
        "url": staging.url,
        "table": src,
        "columns": columns(),
        "mode": "status",
        "poll_interval": 0.02,
    }
    cfg = config(tmp_path, {"dept-b": outbound}, source_extra={"inbound": {"source": source}})
    async with Hub(cfg):
        await wait_until(
            lambda: staging.execute(f"SELECT count(*) FROM {dst}")[0][0] == 12,
            what="rows delivered",
        )
    got = staging.execute(f"SELECT jcxwbh FROM {dst} ORDER BY jcxwbh")
    assert sorted(g for (g,) in got) == sorted(
        sample_inspection(i)["inspection_no"] for i in range(12)
    )


async def test_outbound_reconnects_after_postgresql_drops_the_connection(tmp_path: Path) -> None:
    staging = open_database("postgresql", tmp_path)
    try:
        table = make_outbound_table(staging)
        app = f"jghub_{table}"
        staging.url = f"{staging.url}?application_name={app}"
        t = DbStagingTransport("dept-pg", out_options(staging, table))
        await t.start()
        try:
            assert (await t.send([item(0)]))[0].ok
            staging.execute(  # the server ends our session (a restart, a failover)
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                [app],
            )
            [lost] = await t.send([item(1)])
            assert not lost.ok and not lost.permanent
            [again] = await t.send([item(1)])  # the dispatcher's retry
            assert again.ok
        finally:
            await t.close()
        assert staging.execute(f"SELECT count(*) FROM {table}") == [(2,)]
    finally:
        staging.cleanup()
