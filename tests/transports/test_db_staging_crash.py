"""SIGKILL a real ``jghub serve`` while it takes rows from a staging table (status mode);
after the restart every row is stored exactly once and marked taken."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import orjson
import pytest

from contracts.samples import sample_inspection
from tests.conftest import free_port
from tests.helpers import wait_until, write_config
from tests.transports.crashkit import message_counts, message_keys, start_hub, stop_hub

pytestmark = pytest.mark.slow

N = 20_000
FIELDS = sorted({f for i in range(8) for f in sample_inspection(i)})


def _fill(path: Path) -> None:
    conn = sqlite3.connect(path)
    cols = ", ".join(f"{f} TEXT" for f in FIELDS)
    conn.execute(
        f"CREATE TABLE inspections (id INTEGER PRIMARY KEY, status TEXT NOT NULL DEFAULT 'N', "
        f"{cols})"
    )
    marks = ", ".join("?" for _ in FIELDS)
    rows = []
    for i in range(N):
        rec = sample_inspection(i)
        rec["inspectors"] = orjson.dumps(rec["inspectors"]).decode()
        rows.append((i + 1, *(rec.get(f) for f in FIELDS)))
    conn.executemany(f"INSERT INTO inspections (id, {', '.join(FIELDS)}) VALUES (?, {marks})", rows)
    conn.commit()
    conn.close()


def _taken(path: Path) -> int:
    conn = sqlite3.connect(path, timeout=30)
    try:
        (n,) = conn.execute("SELECT count(*) FROM inspections WHERE status = 'Y'").fetchone()
        return int(n)
    finally:
        conn.close()


async def test_sigkill_while_taking_rows_then_restart_stores_each_row_once(
    tmp_path: Path,
) -> None:
    staging = tmp_path / "staging.db"
    _fill(staging)
    source = {
        "kind": "db_staging",
        "url": f"sqlite://{staging}",
        "table": "inspections",
        "mode": "status",
        "batch_size": 250,
        "poll_interval": 0.05,
        "columns": {
            **{f: f for f in FIELDS},
            "inspectors": {"field": "inspectors", "type": "json"},
        },
    }
    cfg = write_config(
        tmp_path,
        {},
        store={"kind": "sqlite", "path": "data/hub.db", "durability": "full"},
        port=free_port(),
        source_extra={"inbound": {"source": source}},
    )
    db = tmp_path / "data" / "hub.db"
    log = tmp_path / "hub.log"
    proc = start_hub(cfg, log)
    try:
        await wait_until(lambda: message_counts(db)[0] >= 1000, timeout=60, what="ingest")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = message_counts(db)[0]
        assert 0 < killed_at < N, "the kill must land while rows are being taken"
        assert _taken(staging) <= killed_at  # marked only after the commit
        proc = start_hub(cfg, log)
        await wait_until(lambda: _taken(staging) == N, timeout=120, what="every row taken")
    finally:
        code = stop_hub(proc)
    assert code == 0, log.read_text()[-3000:]
    assert message_counts(db) == (N, N)
    assert set(message_keys(db)) == {f"inspections:{i}" for i in range(1, N + 1)}
