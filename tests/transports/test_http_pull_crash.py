"""Crash test: SIGKILL a real ``jghub serve`` while its ``http_pull`` source collects, restart
it, and prove every record of the department API was stored exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from hub.peers.dept_api import DeptApi
from tests.conftest import free_port
from tests.helpers import wait_until, write_config
from tests.transports.test_http_pull import rec, source

pytestmark = pytest.mark.slow

JGHUB = str(Path(sys.executable).parent / "jghub")
N = 1500


def _start(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [JGHUB, "serve", "--config", str(cfg)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{url}/readyz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


def _count(db: Path) -> tuple[int, int]:
    """(messages, distinct idempotency keys) committed in the hub's SQLite file."""
    if not db.exists():
        return 0, 0
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*), count(DISTINCT idem_key) FROM messages").fetchone()
    except sqlite3.OperationalError:  # the schema is not created yet
        return 0, 0
    finally:
        con.close()


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
    hub = _start(cfg, log)
    try:
        await wait_until(lambda: _ready(url), timeout=30, what="hub ready")
        await wait_until(lambda: _count(db)[0] >= 300, timeout=60, what="300 records collected")
        hub.send_signal(signal.SIGKILL)
        hub.wait(timeout=10)
        killed_at = _count(db)[0]
        assert 300 <= killed_at < N, "the kill must happen while the source is collecting"
        hub = _start(cfg, log)
        await wait_until(lambda: _count(db)[0] >= N, timeout=120, what="every record")
        await wait_until(lambda: _ready(url), timeout=30, what="hub ready again")
        requests = api.requests
        # more polls after it caught up: nothing new, nothing doubled
        await wait_until(lambda: api.requests > requests + 2, what="polls after catching up")
        assert _count(db) == (N, N)
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
