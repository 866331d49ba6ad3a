"""Helpers for tests that run real ``jghub serve`` processes on the PostgreSQL store."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from tests.conftest import PG_DSN

JGHUB = str(Path(sys.executable).parent / "jghub")


def write_pg_hub(
    tmp: Path,
    schema: str,
    targets: dict[str, dict[str, Any]],
    routes: list[dict[str, Any]],
    *,
    datasets: Sequence[str] = ("inspection",),
    lease_seconds: float = 5,
    idle_poll_seconds: float = 0.5,
    store: dict[str, Any] | None = None,
) -> Path:
    """hub.yaml + systems/*.yaml for a hub on the PostgreSQL store: source ``dept-a``."""
    sysdir = tmp / "systems"
    sysdir.mkdir(parents=True, exist_ok=True)
    src = {"name": "dept-a", "adapter": "json", "inbound": {"datasets": list(datasets)}}
    (sysdir / "dept-a.yaml").write_text(yaml.safe_dump(src))
    for name, outbound in targets.items():
        doc = {
            "name": name,
            "adapter": "json",
            "outbound": {"transport": "http_json", "timeout": 2, **outbound},
            "retry": {"max_attempts": 1000, "base_delay": 0.01, "max_delay": 0.2},
            "circuit": {"failure_threshold": 20, "reset_timeout": 0.2, "max_reset_timeout": 0.5},
        }
        (sysdir / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    hub = {
        "hub": {"name": "pg-hub"},
        "store": {"kind": "postgres", "dsn": PG_DSN, "schema": schema, "timeout": 2}
        | (store or {}),
        "listen": {"host": "127.0.0.1", "port": 0},
        "dispatcher": {"lease_seconds": lease_seconds, "idle_poll_seconds": idle_poll_seconds},
        "systems": ["systems"],
        "routes": routes,
    }
    path = tmp / "hub.yaml"
    path.write_text(yaml.safe_dump(hub))
    return path


def run_migrate(cfg: Path) -> None:
    out = subprocess.run(
        [JGHUB, "migrate", "--config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr


def start_node(cfg: Path, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [JGHUB, "serve", "--config", str(cfg), "--port", str(port), *extra],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stop_node(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{url}/readyz") as r:
            return r.status == 200
    except (aiohttp.ClientError, OSError):
        return False


class BalancedSource:
    """A department behind a load balancer: each request goes to the next node; a refused
    connection or a 5xx is sent again (same Idempotency-Key) to the next node."""

    def __init__(self, urls: Sequence[str], dataset: str) -> None:
        self.urls = list(urls)
        self.dataset = dataset
        self.acked: dict[int, str] = {}
        self.statuses: list[int] = []
        self.retry_after: list[str | None] = []
        self._next = 0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BalancedSource:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def send_batch(self, first: int, records: Sequence[dict[str, Any]]) -> None:
        assert self._session is not None
        body = b"\n".join(orjson.dumps(r) for r in records)
        headers = {
            "Content-Type": "application/x-ndjson",
            "Idempotency-Key": f"{self.dataset}-{first}",
        }
        delay = 0.05
        while True:
            url = self.urls[self._next % len(self.urls)]
            self._next += 1
            endpoint = f"{url}/v1/systems/dept-a/records?dataset={self.dataset}"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                async with self._session.post(endpoint, data=body, headers=headers) as r:
                    self.statuses.append(r.status)
                    if r.status >= 500:
                        self.retry_after.append(r.headers.get("Retry-After"))
                    doc = await r.json(content_type=None)
                    if r.status in (202, 207):
                        for i, mid in zip(
                            doc.get("accepted_indexes", range(len(records))),
                            doc["ids"],
                            strict=False,
                        ):
                            self.acked[first + i] = mid
                        return
                    assert r.status >= 500, doc  # anything else is a test bug
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def push(
        self, records: Sequence[dict[str, Any]], *, batch: int, concurrency: int, start: int = 0
    ) -> None:
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                await self.send_batch(start + i, records[i : i + batch])

        await asyncio.gather(*(one(i) for i in range(0, len(records), batch)))
