"""``jghub serve --workers 2`` on the PostgreSQL store: the node process and its ingest-only
process both accept and commit; records from both are delivered, and the node's dispatcher is
woken by LISTEN/NOTIFY (the SQLite doorbell is not used), not by its idle poll."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg
import pytest

from contracts.samples import sample_inspection
from hub.peers.sink import Sink
from tests.conftest import PG_DSN, free_port
from tests.helpers import wait_until
from tests.pgnodes import ready, run_migrate, start_node, stop_node, write_pg_hub

pytestmark = pytest.mark.slow

BATCH = 10


async def _post_on_one_connection(
    url: str, first: int, *, only: str | None = None
) -> tuple[str, list[str]]:
    """Ask ``/readyz`` which process holds a new connection, then post a batch on that same
    connection; ``only``: post only when that process holds it. Returns (role, ids)."""
    opened: list[object] = []
    trace = aiohttp.TraceConfig()

    async def on_create(*_: object) -> None:
        opened.append(_)

    trace.on_connection_create_end.append(on_create)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as s:
        async with s.get(f"{url}/readyz") as r:
            role = str((await r.json())["role"])
        if only is not None and role != only:
            return role, []
        body = b"\n".join(orjson.dumps(sample_inspection(first + i)) for i in range(BATCH))
        async with s.post(
            f"{url}/v1/systems/dept-a/records?dataset=inspection",
            data=body,
            headers={"Content-Type": "application/x-ndjson", "Idempotency-Key": f"w-{first}"},
        ) as r:
            doc: dict[str, Any] = await r.json(content_type=None)
            assert r.status == 202, doc
        # one keep-alive connection carried both requests: the same process answered both
        assert len(opened) == 1, "the batch went over another connection"
        return role, [str(i) for i in doc["ids"]]


async def test_serve_workers_on_postgres_delivers_from_both_processes(
    tmp_path: Path, pg_schema: str
) -> None:
    sink = Sink("national")
    await sink.start()
    # an idle poll of ten minutes: only a NOTIFY can wake the node within the test
    cfg = write_pg_hub(
        tmp_path,
        pg_schema,
        {"national": {"url": sink.url, "concurrency": 4}},
        [{"name": "out", "source": "dept-a", "dataset": "inspection", "targets": ["national"]}],
        lease_seconds=30,
        idle_poll_seconds=600,
    )
    run_migrate(cfg)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "node.log"
    node = start_node(cfg, port, log, "--workers", "2")
    try:
        await wait_until(lambda: ready(url), timeout=60, what="node ready")
        by_role: dict[str, list[str]] = {"node": [], "ingest": []}
        n = 0
        # phase 1: new connections until both processes have accepted several batches
        while min(len(v) for v in by_role.values()) < 5 * BATCH:
            assert n < 400 * BATCH, f"the kernel never spread connections: {by_role}"
            role, ids = await _post_on_one_connection(url, n)
            by_role[role].extend(ids)
            n += BATCH
        acked = {i for ids in by_role.values() for i in ids}
        await wait_until(
            lambda: acked <= set(sink.applied), timeout=60, what="both processes' records"
        )
        # phase 2: the node is idle; records only the ingest process accepts are delivered at
        # once: its commits NOTIFY the node (its idle poll is ten minutes away)
        late: list[str] = []
        while len(late) < 3 * BATCH:
            assert n < 800 * BATCH, "no connection reached the ingest process"
            _, ids = await _post_on_one_connection(url, n, only="ingest")
            late.extend(ids)
            n += BATCH
        await wait_until(lambda: set(late) <= set(sink.applied), timeout=30, what="woken by NOTIFY")
        everything = acked | set(late)
        assert len(sink.order) == len(set(sink.order)) == len(everything)
        assert set(sink.applied) == everything
        async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
            cur = await conn.execute(f"SELECT count(*) FROM {pg_schema}.messages")
            row = await cur.fetchone()
            assert row is not None and row[0] == len(everything)
            # one LISTEN connection: the node's; the ingest process only commits
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                "AND query ILIKE 'LISTEN%%'",
                (f"jghub-{pg_schema}"[:63],),
            )
            row = await cur.fetchone()
            assert row is not None and row[0] == 1
    finally:
        stop_node(node)
        await sink.stop()
    assert node.returncode == 0, log.read_text()[-3000:]
