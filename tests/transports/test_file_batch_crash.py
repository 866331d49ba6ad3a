"""SIGKILL a real ``jghub serve`` while it ingests a 20,000-record batch file; after the
restart every record is stored exactly once and the file ends in ``done/``."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import orjson
import pytest

from contracts.samples import sample_inspection
from tests.conftest import free_port
from tests.helpers import wait_until, write_config
from tests.transports.crashkit import message_counts, message_keys, start_hub, stop_hub

pytestmark = pytest.mark.slow

N = 20_000


async def test_sigkill_mid_file_then_restart_stores_each_record_once(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    data = b"".join(orjson.dumps(sample_inspection(i)) + b"\n" for i in range(N))
    digest = hashlib.sha256(data).hexdigest()
    (drop / "big.jsonl").write_bytes(data)
    manifest = {"file": "big.jsonl", "records": N, "sha256": digest}
    (drop / "big.jsonl.manifest.json").write_bytes(orjson.dumps(manifest))
    source = {
        "kind": "file_batch",
        "directory": str(drop),
        "poll_interval": 0.05,
        "chunk_records": 250,
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
        await wait_until(lambda: message_counts(db)[0] >= 1000, timeout=60, what="ingest under way")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = message_counts(db)[0]
        assert 0 < killed_at < N, "the kill must land in the middle of the file"
        assert (drop / "big.jsonl").exists()  # not moved: the file was not finished
        proc = start_hub(cfg, log)
        await wait_until(
            lambda: (drop / "done" / "big.jsonl.manifest.json").exists(),
            timeout=120,
            what="file finished after the restart",
        )
    finally:
        code = stop_hub(proc)
    assert code == 0, log.read_text()[-3000:]
    assert message_counts(db) == (N, N)
    assert set(message_keys(db)) == {f"sha256:{digest}:{n}" for n in range(1, N + 1)}
    report = orjson.loads((drop / "done" / "big.jsonl.report.json").read_bytes())
    assert report["committed"] + report["duplicates"] == N and report["rejected"] == []
    assert report["duplicates"] >= killed_at  # what was committed before the kill
    assert not (drop / "big.jsonl").exists()
