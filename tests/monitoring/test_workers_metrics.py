"""``jghub serve --workers 2`` (a real node process and a real ingest worker on one port):
/metrics counts what every process accepted and rejected, whichever process the kernel hands
the scrape to, and a killed worker's counts are not lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson

from contracts.samples import sample_inspection
from hub.peers.sink import Sink
from tests.conftest import free_port
from tests.helpers import wait_until, write_config
from tests.monitoring.helpers import samples, value

JGHUB = str(Path(sys.executable).with_name("jghub"))


def _serve(cfg: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [JGHUB, "serve", "--config", str(cfg), *extra],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def _get(url: str) -> tuple[int, str, str]:
    """One request on a new connection (which the kernel may give either process)."""
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, r.headers.get("Jghub-Answered-By", ""), await r.text()


async def _post(url: str, body: bytes, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as s, s.post(url, data=body, headers=headers) as r:
        await r.read()
        return r.status


async def test_metrics_are_complete_with_two_processes(tmp_path: Path) -> None:
    sink = Sink("national")
    await sink.start()
    port = free_port()
    cfg = write_config(tmp_path, {"national": {"url": sink.url}}, token="s3cret", port=port)
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "hub.log"
    proc = _serve(cfg, log, "--workers", "2")
    try:

        async def workers_joined() -> bool:
            try:
                status, _, text = await _get(f"{url}/metrics")
            except aiohttp.ClientError:
                return False
            return status == 200 and value(samples(text), "jghub_ingest_workers") == 1

        await wait_until(workers_joined, timeout=30, what="the worker joined the relay")
        roles: set[str] = set()

        async def both_roles() -> bool:
            async with aiohttp.ClientSession() as s, s.get(f"{url}/readyz") as r:
                roles.add((await r.json())["role"])
            return roles == {"node", "ingest"}

        await wait_until(both_roles, timeout=30, what="both processes answering")

        records = f"{url}/v1/systems/dept-a/records"
        for i in range(40):  # a new connection each: the kernel spreads them over both
            body = orjson.dumps([sample_inspection(i * 5 + k) for k in range(5)])
            assert await _post(records, body, "s3cret") == 202
        for _ in range(10):
            assert await _post(records, b"[]", "wrong") == 401

        answered: set[str] = set()

        async def every_scrape_complete() -> bool:
            status, by, text = await _get(f"{url}/metrics")
            assert status == 200, text
            got = samples(text)
            # whichever process answered, the counts are those of both processes
            assert (
                value(got, "jghub_records_accepted_total", system="dept-a", dataset="inspection")
                == 200
            ), text
            assert (
                value(
                    got, "jghub_records_rejected_total", system="dept-a", dataset="", code="E_AUTH"
                )
                == 10
            )
            answered.add(by)
            return answered == {"node", "node via ingest worker"}

        await wait_until(every_scrape_complete, timeout=30, what="scrapes of both processes")

        # the overview (jghub top, the dashboard) is complete too, from either process
        for _ in range(6):
            async with aiohttp.ClientSession() as s, s.get(f"{url}/dashboard/api/overview") as r:
                data = await r.json()
            [dept] = [x for x in data["systems"] if x["name"] == "dept-a"]
            assert dept["accepted"] == 200 and dept["rejected"] == 10

        # a worker killed outright: the node starts another; its counts stay in the totals
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        [child] = [int(p) for p in children.read_text().split()]
        os.kill(child, signal.SIGKILL)
        await wait_until(
            lambda: children.read_text().split() not in ([], [str(child)]),
            timeout=30,
            what="a new worker",
        )
        await wait_until(workers_joined, timeout=30, what="the new worker joined")
        _, _, text = await _get(f"{url}/metrics")
        got = samples(text)
        assert (
            value(got, "jghub_records_accepted_total", system="dept-a", dataset="inspection") == 200
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        await sink.stop()
    assert proc.returncode == 0, log.read_text()[-3000:]
