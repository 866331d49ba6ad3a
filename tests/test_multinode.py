"""Several hub nodes on one PostgreSQL: three real ``jghub serve`` processes take a load of
tens of thousands of records through a load balancer; one is SIGKILLed mid-run, another is
restarted. Afterwards every acknowledged record reached every target, none twice in effect,
and ordered partitions arrived in order."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import psycopg
import pytest

from contracts.samples import sample_catalog_item, sample_inspection
from hub.peers.sink import Sink, SinkBehaviour
from tests.conftest import PG_DSN, free_port
from tests.helpers import wait_until
from tests.pgnodes import BalancedSource, ready, run_migrate, start_node, stop_node, write_pg_hub

pytestmark = pytest.mark.slow

RECORDS = 20_000
ITEMS, VERSIONS = 100, 5


async def _pg_counts(schema: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
        cur = await conn.execute(f"SELECT state, count(*) FROM {schema}.deliveries GROUP BY state")
        out = {f"state{s}": int(n) for s, n in await cur.fetchall()}
        cur = await conn.execute(f"SELECT count(*) FROM {schema}.messages")
        row = await cur.fetchone()
        out["messages"] = int(row[0]) if row else 0
        return out


async def test_three_nodes_kill_and_restart_lose_nothing(tmp_path: Path, pg_schema: str) -> None:
    national = Sink("national", SinkBehaviour(fail_rate=0.02, lost_reply_rate=0.01, seed=1))
    city = Sink("city", SinkBehaviour(fail_rate=0.02, seed=2))
    ordered = Sink("ordered", SinkBehaviour(fail_rate=0.1, seed=3))
    for s in (national, city, ordered):
        await s.start()
    cfg = write_pg_hub(
        tmp_path,
        pg_schema,
        {
            "national": {"url": national.batch_url, "batch_size": 100, "concurrency": 4},
            "city": {"url": city.batch_url, "batch_size": 100, "concurrency": 4},
            "ordered": {"url": ordered.url, "concurrency": 8},
        },
        [
            {
                "name": "inspection-out",
                "source": "dept-a",
                "dataset": "inspection",
                "targets": ["national", "city"],
            },
            {
                "name": "catalog-out",
                "source": "dept-a",
                "dataset": "catalog_item",
                "targets": ["ordered"],
                "ordered": True,
            },
        ],
        datasets=("inspection", "catalog_item"),
        lease_seconds=4,
    )
    run_migrate(cfg)
    ports = [free_port() for _ in range(3)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    logs = [tmp_path / f"node{i}.log" for i in range(3)]
    nodes = [start_node(cfg, p, log) for p, log in zip(ports, logs, strict=True)]
    try:
        for u in urls:
            await wait_until(lambda u=u: ready(u), timeout=60, what=f"{u} ready")
        records = [sample_inspection(i) for i in range(RECORDS)]
        async with (
            BalancedSource(urls, "inspection") as inspections,
            BalancedSource(urls, "catalog_item") as catalog,
        ):

            async def versions_in_order() -> None:
                # version v of every item is acknowledged before version v + 1 is sent
                for v in range(1, VERSIONS + 1):
                    await catalog.send_batch(
                        v * 1000, [sample_catalog_item(i, version=v) for i in range(ITEMS)]
                    )

            push = asyncio.ensure_future(
                asyncio.gather(
                    inspections.push(records, batch=100, concurrency=6), versions_in_order()
                )
            )
            await wait_until(lambda: len(national.applied) >= 3000, timeout=120, what="load")
            nodes[0].send_signal(signal.SIGKILL)  # node 0 dies holding leases
            nodes[0].wait(timeout=10)
            await wait_until(lambda: len(national.applied) >= 8000, timeout=120, what="more")
            stop_node(nodes[1])  # node 1 is restarted (a rolling upgrade)
            nodes[1] = start_node(cfg, ports[1], logs[1])
            assert not push.done(), "the kill and the restart must happen under load"
            await asyncio.wait_for(push, timeout=300)
            assert len(inspections.acked) == RECORDS
            assert len(catalog.acked) == ITEMS * VERSIONS
            acked = set(inspections.acked.values())
            acked_catalog = set(catalog.acked.values())
            await wait_until(
                lambda: (
                    acked <= set(national.applied)
                    and acked <= set(city.applied)
                    and acked_catalog <= set(ordered.applied)
                ),
                timeout=300,
                what="every acknowledged record delivered to every target",
            )
        # none twice in effect: each target applied each acknowledged message exactly once
        # (its Idempotency-Key is the message id) and nothing that was not acknowledged
        for sink, want in ((national, acked), (city, acked), (ordered, acked_catalog)):
            assert len(sink.order) == len(set(sink.order)) == len(want)
            assert set(sink.applied) == want
        # per-partition order held on the ordered route
        seen: dict[str, list[int]] = {}
        for key in ordered.order:
            rec = ordered.applied[key]
            seen.setdefault(rec["code"], []).append(rec["version"])
        assert len(seen) == ITEMS
        assert all(v == list(range(1, VERSIONS + 1)) for v in seen.values())
        # re-sent requests were recognised, not stored twice; everything settled
        await wait_until(
            lambda: _all_delivered(pg_schema, 2 * RECORDS + ITEMS * VERSIONS),
            timeout=60,
            what="every delivery settled",
        )
        counts = await _pg_counts(pg_schema)
        assert counts["messages"] == RECORDS + ITEMS * VERSIONS
        assert national.redeliveries + city.redeliveries + ordered.redeliveries >= 0
    finally:
        for n in nodes:
            stop_node(n)
        for s in (national, city, ordered):
            await s.stop()
    assert nodes[1].returncode == 0 and nodes[2].returncode == 0, logs[2].read_text()[-3000:]


async def _all_delivered(schema: str, want: int) -> bool:
    return (await _pg_counts(schema)).get("state2", 0) == want
