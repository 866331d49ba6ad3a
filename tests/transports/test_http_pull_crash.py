"""Crash test: SIGKILL a real ``jghub serve`` while its ``http_pull`` source collects, restart
it, and prove every record of the department API was stored exactly once."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from hub.peers.dept_api import DeptApi
from tests.conftest import free_port
from tests.helpers import wait_until, write_config
from tests.transports.crashkit import message_counts, ready, start_hub
from tests.transports.test_http_pull import rec, source

pytestmark = pytest.mark.slow

N = 1500


async def test_sigkill_while_polling_loses_and_doubles_nothing(tmp_path: Path) -> None:
    api = DeptApi(latency=0.01, max_page=100)
    await api.start()
    for i in range(N):
        api.put(rec(i, i // 7))  # seven records share each timestamp
    port = free_port()
    cfg = write_config(
        tmp_path,
        {},
        store={"kind": "sqlite", "path": "data/hub.db", "durability": "full"},
        port=port,
        source_extra=source(api.url, page_size=25),
    )
    db = tmp_path / "data" / "hub.db"
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "hub.log"
    hub = start_hub(cfg, log)
    try:
        await wait_until(lambda: ready(url), timeout=30, what="hub ready")
        await wait_until(
            lambda: message_counts(db)[0] >= 300, timeout=60, what="300 records collected"
        )
        hub.send_signal(signal.SIGKILL)
        hub.wait(timeout=10)
        killed_at = message_counts(db)[0]
        assert 300 <= killed_at < N, "the kill must happen while the source is collecting"
        hub = start_hub(cfg, log)
        await wait_until(lambda: message_counts(db)[0] >= N, timeout=120, what="every record")
        await wait_until(lambda: ready(url), timeout=30, what="hub ready again")
        requests = api.requests
        # more polls after it caught up: nothing new, nothing doubled
        await wait_until(lambda: api.requests > requests + 2, what="polls after catching up")
        assert message_counts(db) == (N, N)
        con = sqlite3.connect(db)
        keys = {k for (k,) in con.execute("SELECT idem_key FROM messages")}
        con.close()
        assert keys == {f"{r['inspection_no']}@{r['submitted_at']}" for r in api.records().values()}
    finally:
        if hub.poll() is None:
            hub.send_signal(signal.SIGTERM)
            try:
                hub.wait(timeout=15)
            except subprocess.TimeoutExpired:
                hub.kill()
        await api.stop()
    assert hub.returncode == 0, log.read_text()[-3000:]
