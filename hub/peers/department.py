"""A simulated department supervision system that pushes records into the hub.

It behaves like a careful real source: every record (or batch) carries an ``Idempotency-Key``
derived from its own record number, so when the hub's answer does not arrive (timeout, reset,
5xx) it sends the same request again and the hub recognises it; it keeps the message ids the hub
returned, and the rejections with their codes. It also runs its own small aiohttp server
(``GET /status``) like a real department system would expose.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from hub.peers import bound_port

__all__ = ["DepartmentSource"]


@dataclass
class DepartmentSource:
    name: str
    hub_url: str
    token: str | None = None
    dataset: str | None = None
    acked: dict[int, str] = field(default_factory=dict)
    rejected: dict[int, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    resends: int = 0
    requests: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def endpoint(self) -> str:
        q = f"?dataset={self.dataset}" if self.dataset else ""
        return f"{self.hub_url}/v1/systems/{self.name}/records{q}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/status", self._status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = bound_port(site)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "system": self.name,
                "acked": len(self.acked),
                "rejected": len(self.rejected),
                "duplicates_recognised": self.duplicates,
                "resends": self.resends,
            }
        )

    def _headers(self, key: str, ndjson: bool) -> dict[str, str]:
        h = {
            "Idempotency-Key": key,
            "Content-Type": "application/x-ndjson" if ndjson else "application/json",
        }
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        """POST until the hub answers with something other than 5xx / a network error."""
        assert self._session is not None
        delay = 0.05
        while True:
            self.requests += 1
            try:
                async with self._session.post(self.endpoint, data=body, headers=headers) as r:
                    doc = await r.json(content_type=None)
                    if r.status < 500:
                        return r.status, doc
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.resends += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def send_one(self, index: int, record: dict[str, Any]) -> None:
        status, doc = await self._post(orjson.dumps(record), self._headers(f"rec-{index}", False))
        if status == 202:
            self.acked[index] = doc["id"]
            self.duplicates += bool(doc.get("duplicates"))
        else:
            self.rejected[index] = doc

    async def send_batch(self, first: int, records: Sequence[dict[str, Any]]) -> None:
        body = b"\n".join(orjson.dumps(r) for r in records)
        status, doc = await self._post(body, self._headers(f"batch-{first}", True))
        if status in (202, 207):
            for i, mid in zip(
                doc.get("accepted_indexes", range(len(records))), doc["ids"], strict=False
            ):
                self.acked[first + i] = mid
            self.duplicates += len(doc.get("duplicates", []))
            for rej in doc.get("rejected", []):
                self.rejected[first + rej["index"]] = rej
        else:
            for rej in doc.get("rejected", [doc]):
                self.rejected[first + rej.get("index", 0)] = rej

    async def push(
        self,
        records: Sequence[dict[str, Any]],
        *,
        batch_size: int = 1,
        concurrency: int = 8,
        start: int = 0,
        rate: float | None = None,
    ) -> None:
        """Send ``records`` (numbered from ``start``), ``concurrency`` requests at a time,
        at most ``rate`` records per second when given (a department pushes over time)."""
        sem = asyncio.Semaphore(concurrency)
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def one(i: int) -> None:
            if rate:
                await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
            async with sem:
                if batch_size == 1:
                    await self.send_one(start + i, records[i])
                else:
                    await self.send_batch(start + i, records[i : i + batch_size])

        await asyncio.gather(*(one(i) for i in range(0, len(records), batch_size)))
