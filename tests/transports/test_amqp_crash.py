"""Crash test for the ``amqp`` source: SIGKILL a real ``jghub serve`` while it consumes a real
RabbitMQ queue, restart it, and prove every message was stored exactly once: the deliveries it
held unacknowledged come back from the broker and their keys make committed ones duplicates."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
from pathlib import Path

import orjson
import pytest

from contracts.samples import sample_inspection
from tests.conftest import free_port
from tests.helpers import wait_until, write_config
from tests.transports.crashkit import message_counts, ready, start_hub
from tests.transports.rabbit import AMQP_URL, broker

pytestmark = pytest.mark.slow

TOTAL = 3000


async def test_sigkill_while_consuming_stores_each_message_once(tmp_path: Path) -> None:
    async with broker() as mq:
        queue = await mq.queue("crash")
        ids = [f"mq-{i:05d}" for i in range(TOTAL)]
        for start in range(0, TOTAL, 250):
            await asyncio.gather(
                *(
                    mq.publish(queue, orjson.dumps(sample_inspection(i)), message_id=ids[i])
                    for i in range(start, min(start + 250, TOTAL))
                )
            )
        assert await mq.ready(queue) == TOTAL
        port = free_port()
        cfg = write_config(
            tmp_path,
            {},
            store={"kind": "sqlite", "path": "data/hub.db", "durability": "full"},
            port=port,
            source_extra={
                "inbound": {
                    "source": {
                        "kind": "amqp",
                        "url": AMQP_URL,
                        "queue": queue,
                        "prefetch": 200,
                        "batch_max": 25,
                        "linger": 0.005,
                    }
                }
            },
        )
        url = f"http://127.0.0.1:{port}"
        db_path = tmp_path / "data" / "hub.db"
        log = tmp_path / "hub.log"
        hub = start_hub(cfg, log)
        try:
            await wait_until(lambda: ready(url), timeout=30, what="hub ready")
            await wait_until(
                lambda: message_counts(db_path)[0] >= 300, timeout=60, what="300 stored"
            )
            hub.send_signal(signal.SIGKILL)
            hub.wait(timeout=10)
            killed_at = message_counts(db_path)[0]
            # the kill came while the queue still held a backlog, so the consumer held a full
            # prefetch window of unacknowledged deliveries
            assert killed_at < TOTAL - 500, "the kill must happen mid-stream"
            restart_mark = log.stat().st_size
            hub = start_hub(cfg, log)
            await wait_until(
                lambda: message_counts(db_path)[0] == TOTAL,
                timeout=120,
                what="every message stored",
            )

            async def drained() -> bool:
                return await mq.ready(queue) == 0

            await wait_until(drained, timeout=30, what="the queue drained")
        finally:
            if hub.poll() is None:
                hub.send_signal(signal.SIGTERM)
                try:
                    hub.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    hub.kill()
        assert hub.returncode == 0, log.read_text()[-3000:]
        # after the clean stop nothing is left unacknowledged either
        assert await mq.ready(queue) == 0
    db = sqlite3.connect(db_path)
    keys = [k for (k,) in db.execute("SELECT idem_key FROM messages")]
    db.close()
    assert len(keys) == TOTAL and set(keys) == set(ids)  # none lost, none twice
    after_restart = log.read_bytes()[restart_mark:].decode("utf-8", "replace")
    assert "redelivered by the broker" in after_restart
