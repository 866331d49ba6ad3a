"""Fault tests on the PostgreSQL store with a real ``jghub serve``: the database goes away under
load (inbound requests get 503 with Retry-After, never a 202 that is then lost; the node
reconnects by itself and drains), and a target is down for minutes while records keep arriving
(the backlog grows in the database, the node's memory stays flat, everything drains exactly
once when the target returns)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import psycopg
import pytest

from contracts.samples import sample_inspection
from hub.peers.sink import Sink, SinkBehaviour
from tests.conftest import PG_DSN, free_port
from tests.helpers import wait_until
from tests.pgnodes import BalancedSource, ready, run_migrate, start_node, stop_node, write_pg_hub

pytestmark = pytest.mark.slow


def _cluster() -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


def _pg_up() -> bool:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _pg(action: str) -> None:
    extra = ["-m", "fast"] if action == "stop" else []
    subprocess.run([*_cluster(), action, *extra], check=True, timeout=120, capture_output=True)


@pytest.fixture
def pg_restartable() -> Iterator[None]:
    """The test may stop PostgreSQL; it runs again when the test ends, pass or fail."""
    assert _pg_up(), "PostgreSQL must be running (the suite fails, never skips, without it)"
    try:
        yield
    finally:
        if not _pg_up():
            subprocess.run([*_cluster(), "start"], timeout=120, capture_output=True)
        deadline = time.monotonic() + 60
        while not _pg_up() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _pg_up(), "PostgreSQL did not come back"


def _route(*targets: str) -> list[dict[str, object]]:
    return [{"name": "out", "source": "dept-a", "dataset": "inspection", "targets": list(targets)}]


async def _post_one(url: str, i: int) -> tuple[int, str | None, dict[str, object]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s,
        s.post(
            f"{url}/v1/systems/dept-a/records",
            data=orjson.dumps(sample_inspection(i)),
            headers={"Content-Type": "application/json", "Idempotency-Key": f"probe-{i}"},
        ) as r,
    ):
        return r.status, r.headers.get("Retry-After"), await r.json(content_type=None)


async def test_postgres_restart_under_load(
    tmp_path: Path, pg_schema: str, pg_restartable: None
) -> None:
    sink = Sink("national", SinkBehaviour(seed=5))
    await sink.start()
    cfg = write_pg_hub(
        tmp_path, pg_schema, {"national": {"url": sink.url, "concurrency": 8}}, _route("national")
    )
    run_migrate(cfg)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "node.log"
    node = start_node(cfg, port, log)
    try:
        await wait_until(lambda: ready(url), timeout=60, what="node ready")
        records = [sample_inspection(i) for i in range(2400)]
        async with BalancedSource([url], "inspection") as src:
            push = asyncio.ensure_future(src.push(records, batch=4, concurrency=2))
            await wait_until(lambda: len(src.acked) >= 300, timeout=60, what="load")
            await wait_until(lambda: len(sink.applied) >= 100, timeout=60, what="deliveries")
            assert not push.done(), "the outage must happen under load"
            await asyncio.to_thread(_pg, "stop")
            try:
                # during the outage: refused with 503 + Retry-After, and not ready
                status, retry_after, doc = await _post_one(url, 1)
                assert status == 503 and doc["code"] == "E_STORE", doc
                assert retry_after is not None and int(retry_after) > 0
                assert not await ready(url)
                acked_during_outage = len(src.acked)
                await asyncio.sleep(1.0)
                assert len(src.acked) == acked_during_outage  # nothing acknowledged meanwhile
            finally:
                await asyncio.to_thread(_pg, "start")
            # the node reconnects by itself
            await wait_until(lambda: ready(url), timeout=60, what="ready again")
            await asyncio.wait_for(push, timeout=180)
            status, _, doc = await _post_one(url, 1)
            assert status == 202, doc
        assert len(src.acked) == len(records)
        # every refusal was a 503 with Retry-After: never a 500, never a lost 202
        refused = [s for s in src.statuses if s != 202]
        assert refused and set(refused) == {503}
        assert all(r is not None for r in src.retry_after)
        acked = set(src.acked.values()) | {str(doc["id"])}
        await wait_until(
            lambda: acked <= set(sink.applied), timeout=120, what="drained after the outage"
        )
        assert len(sink.order) == len(set(sink.order)) == len(acked)
    finally:
        stop_node(node)
        await sink.stop()
    assert node.returncode == 0, log.read_text()[-3000:]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _backlog(schema: str) -> tuple[int, int]:
    """(undelivered deliveries, bytes the queue tables hold on disk) in PostgreSQL."""
    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
        cur = await conn.execute(
            f"SELECT (SELECT count(*) FROM {schema}.deliveries WHERE state < 2),"
            f" pg_total_relation_size('{schema}.messages')"
            f" + pg_total_relation_size('{schema}.deliveries')"
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


#: how long the target stays down while records keep arriving (the issue: "down for minutes")
DOWN_SECONDS = 125.0


async def test_target_down_for_minutes_backlog_on_disk_memory_flat(
    tmp_path: Path, pg_schema: str
) -> None:
    """The target is down for over two minutes while a source keeps sending (a batch of 100
    every quarter second, ~40,000 records): the backlog grows in PostgreSQL (rows and bytes),
    the node's RSS stays flat (not held in memory), nothing is dead-lettered, and everything
    drains exactly once when the target returns."""
    sink = Sink("national", SinkBehaviour(seed=6))
    await sink.start()
    await sink.go_down()  # the target is down before the first record arrives
    cfg = write_pg_hub(
        tmp_path,
        pg_schema,
        {"national": {"url": sink.batch_url, "batch_size": 100, "concurrency": 4, "timeout": 1}},
        _route("national"),
    )
    run_migrate(cfg)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "node.log"
    node = start_node(cfg, port, log)
    batch = 100
    try:
        await wait_until(lambda: ready(url), timeout=60, what="node ready")
        async with BalancedSource([url], "inspection") as src:
            down_since = time.monotonic()
            sent = 0
            samples: list[tuple[int, int, int]] = []  # (backlog rows, bytes on disk, RSS KiB)
            baseline: int | None = None
            tick = 0
            while time.monotonic() - down_since < DOWN_SECONDS:
                await src.send_batch(
                    sent, [sample_inspection(i) for i in range(sent, sent + batch)]
                )
                sent += batch
                tick += 1
                if tick % 20 == 0:  # every ~5 s
                    rows, size = await _backlog(pg_schema)
                    samples.append((rows, size, _rss_kib(node.pid)))
                    if baseline is None and time.monotonic() - down_since > 20:
                        baseline = samples[-1][2]  # warmed up: pools, buffers, breaker
                        at_baseline = rows
                await asyncio.sleep(0.25)
            rows, size = await _backlog(pg_schema)
            samples.append((rows, size, _rss_kib(node.pid)))
        down_for = time.monotonic() - down_since
        assert down_for >= 120 and len(src.acked) == sent
        assert baseline is not None
        # the backlog is on disk and grew the whole time: rows and bytes
        assert [r for r, _, _ in samples] == sorted(r for r, _, _ in samples)
        assert samples[-1][0] == sent and sent >= 30_000
        assert samples[-1][1] > 2 * samples[0][1]
        # the node's memory stayed flat while the backlog grew by tens of thousands of records
        # (over 30 MB of payload alone): a bound far below what holding them would take
        grown = max(rss for _, _, rss in samples) - baseline
        assert sent - at_baseline >= 25_000
        assert grown < 24 * 1024, (baseline, samples)
        assert not sink.applied
        await sink.come_up()
        acked = set(src.acked.values())
        await wait_until(lambda: acked <= set(sink.applied), timeout=240, what="drained")
        # exactly once: every acknowledged record once, nothing dead-lettered on the way
        assert len(sink.order) == len(set(sink.order)) == sent
        states: dict[int, int] = {}

        async def all_settled() -> bool:
            # the sink applies a batch before the hub reads its answer and settles it: the
            # last settles land a moment after the last records arrive
            nonlocal states
            async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
                cur = await conn.execute(
                    f"SELECT state, count(*) FROM {pg_schema}.deliveries GROUP BY state"
                )
                states = dict(await cur.fetchall())
            return states == {2: sent}

        await wait_until(all_settled, timeout=30, what="every delivery settled")
        assert states == {2: sent}, states
        assert len(sink.order) == sent  # and nothing was sent again meanwhile
        print(f"target down {down_for:.0f} s, {sent} records; (rows, bytes, RSS KiB): {samples}")
    finally:
        stop_node(node)
        await sink.stop()
    assert node.returncode == 0, log.read_text()[-3000:]
