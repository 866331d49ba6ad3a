"""Crash test: SIGKILL a real ``jghub serve`` process while it ingests and delivers, restart it,
and prove every acknowledged record reached the target, none twice in effect."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
from pathlib import Path

import aiohttp
import pytest

from contracts.samples import sample_inspection
from hub.peers.department import DepartmentSource
from hub.peers.sink import Sink, SinkBehaviour
from tests.conftest import free_port
from tests.helpers import wait_until, write_config
from tests.monitoring.helpers import samples, value
from tests.transports.crashkit import ready, start_hub, stop_hub

pytestmark = pytest.mark.slow


async def test_sigkill_while_delivering_loses_nothing(tmp_path: Path) -> None:
    sink = Sink("national", SinkBehaviour(latency=0.002, fail_rate=0.05, seed=11))
    await sink.start()
    port = free_port()
    cfg = write_config(
        tmp_path,
        {"national": {"url": sink.url, "concurrency": 8}},
        store={"kind": "sqlite", "path": "data/hub.db", "durability": "full"},
        dispatcher={"lease_seconds": 30, "idle_poll_seconds": 0.2},
        retry={"max_attempts": 100, "base_delay": 0.01, "max_delay": 0.1},
        port=port,
    )
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "hub.log"
    hub = start_hub(cfg, log)
    dept = DepartmentSource("dept-a", url)
    await dept.start()
    try:
        await wait_until(lambda: ready(url), timeout=30, what="hub ready")
        records = [sample_inspection(i) for i in range(3000)]
        push = asyncio.ensure_future(
            asyncio.gather(
                dept.push(records[:1000], concurrency=8),
                dept.push(records[1000:], batch_size=50, concurrency=2, start=1000),
            )
        )
        await wait_until(lambda: len(sink.applied) >= 300, timeout=60, what="deliveries")
        hub.send_signal(signal.SIGKILL)
        hub.wait(timeout=10)
        killed_at = len(sink.applied)
        assert not push.done(), "the kill must happen while the source is still pushing"
        await asyncio.sleep(0.5)  # the source keeps retrying against a dead port
        hub = start_hub(cfg, log)
        await asyncio.wait_for(push, timeout=120)
        assert len(dept.acked) == 3000 and not dept.rejected
        acked = set(dept.acked.values())
        await wait_until(
            lambda: acked <= set(sink.applied),
            timeout=120,
            what="every acknowledged record delivered after the restart",
        )
        # None twice in effect: the target applied each acknowledged message exactly once
        # and nothing that was not acknowledged (its Idempotency-Key is the message id).
        assert len(sink.order) == len(set(sink.order)) == len(acked)
        assert set(sink.applied) == acked
        assert killed_at < 3000
        # Re-sent requests after the crash were recognised, not stored twice.
        db = sqlite3.connect(tmp_path / "data" / "hub.db")
        (messages,) = db.execute("SELECT count(*) FROM messages").fetchone()
        (delivered,) = db.execute("SELECT count(*) FROM deliveries WHERE state = 2").fetchone()
        db.close()
        assert messages == 3000
        await wait_until(lambda: _all_settled(tmp_path), timeout=30, what="all settled")
        assert delivered <= 3000
    finally:
        if hub.poll() is None:
            hub.send_signal(signal.SIGTERM)
            try:
                hub.wait(timeout=15)
            except subprocess.TimeoutExpired:
                hub.kill()
        await dept.stop()
        await sink.stop()
    assert hub.returncode == 0, log.read_text()[-3000:]


def _all_settled(tmp: Path) -> bool:
    db = sqlite3.connect(tmp / "data" / "hub.db")
    try:
        (n,) = db.execute("SELECT count(*) FROM deliveries WHERE state = 2").fetchone()
        return bool(n == 3000)
    finally:
        db.close()


async def _serve_with_sink(
    tmp_path: Path, *args: str
) -> tuple[Sink, subprocess.Popen[bytes], DepartmentSource, str, Path]:
    """``jghub serve *args`` on a fixed port with one target (a sink) and a very long idle
    poll (delivery must come from the doorbell), and a department pushing to it."""
    sink = Sink("national")
    await sink.start()
    port = free_port()
    cfg = write_config(
        tmp_path,
        {"national": {"url": sink.url}},
        dispatcher={"lease_seconds": 30, "idle_poll_seconds": 600},
        port=port,
    )
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "hub.log"
    proc = start_hub(cfg, log, *args)
    dept = DepartmentSource("dept-a", url)
    await dept.start()
    return sink, proc, dept, url, log


async def test_serve_with_two_processes_delivers_through_the_doorbell(tmp_path: Path) -> None:
    """``serve --workers 2``: both processes accept; the ingest-only one rings the node's
    doorbell, so delivery does not wait for the (here very long) idle poll."""
    sink, proc, dept, url, log = await _serve_with_sink(tmp_path, "--workers", "2")
    try:
        await wait_until(lambda: ready(url), timeout=30, what="hub ready")
        roles: set[str] = set()

        async def both_roles() -> bool:
            # a new session each time: a new connection, which the kernel may give either one
            async with aiohttp.ClientSession() as s, s.get(f"{url}/readyz") as r:
                roles.add((await r.json())["role"])
            return roles == {"node", "ingest"}

        await wait_until(both_roles, timeout=30, what="both processes answering")
        records = [sample_inspection(i) for i in range(400)]
        await dept.push(records, concurrency=8)
        assert len(dept.acked) == 400
        acked = set(dept.acked.values())
        await wait_until(
            lambda: acked <= set(sink.applied),
            timeout=60,
            what="delivery without waiting for the idle poll",
        )
        assert set(sink.applied) == acked
        db = sqlite3.connect(tmp_path / "data" / "hub.db")
        (messages,) = db.execute("SELECT count(DISTINCT seq) FROM messages").fetchone()
        db.close()
        assert messages == 400
    finally:
        code = stop_hub(proc)
        await dept.stop()
        await sink.stop()
    assert code == 0, log.read_text()[-3000:]


async def test_separate_dispatcher_node_delivers_and_does_not_accept(tmp_path: Path) -> None:
    """``serve --workers 1 --separate-dispatcher``: every connection on the port reaches the
    ingest process (role ingest), while the node process, which does not accept there,
    delivers what it commits (doorbell) and answers the metrics relay."""
    sink, proc, dept, url, log = await _serve_with_sink(
        tmp_path, "--workers", "1", "--separate-dispatcher"
    )
    port = int(url.rsplit(":", 1)[1])
    try:
        await wait_until(lambda: ready(url), timeout=30, what="hub ready")
        roles = set()
        for _ in range(12):  # new connections each time: none reaches the node
            async with aiohttp.ClientSession() as s, s.get(f"{url}/readyz") as r:
                roles.add((await r.json())["role"])
        assert roles == {"ingest"}
        records = [sample_inspection(i) for i in range(200)]
        await dept.push(records, concurrency=8)
        acked = set(dept.acked.values())
        assert len(acked) == 200
        await wait_until(
            lambda: acked <= set(sink.applied), timeout=60, what="the node delivers at once"
        )
        assert set(sink.applied) == acked
        node_line = next(ln for ln in log.read_text().splitlines() if "delivers apart" in ln)
        node_port = int(node_line.rsplit(":", 1)[1].rstrip(")"))
        assert node_port != port
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{node_port}/readyz") as r:
                assert (await r.json())["role"] == "node"
            # a scrape on the port (the ingest process) is answered with the node's counters
            async with s.get(f"{url}/metrics") as r:
                got = samples(await r.text())
        delivered = value(got, "jghub_deliveries_total", target="national", outcome="succeeded")
        assert delivered == 200
    finally:
        code = stop_hub(proc)
        await dept.stop()
        await sink.stop()
    assert code == 0, log.read_text()[-3000:]


async def test_ingest_workers_die_with_a_killed_node(tmp_path: Path) -> None:
    """No orphan keeps accepting on the port after the node process is SIGKILLed."""
    port = free_port()
    cfg = write_config(tmp_path, {"national": {"url": "http://127.0.0.1:9/x"}}, port=port)
    proc = start_hub(cfg, tmp_path / "hub.log", "--workers", "2")
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until(lambda: ready(url), timeout=30, what="hub ready")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        await wait_until(
            lambda: bool(children.read_text().split()), timeout=30, what="an ingest worker"
        )
        [child] = [int(p) for p in children.read_text().split()]
        assert _alive(child)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        await wait_until(lambda: not _alive(child), timeout=15, what="the worker exits")
        assert not _alive(child)
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.split(") ")[1][0] != "Z"  # a zombie has exited
