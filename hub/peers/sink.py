"""A simulated target system: a real aiohttp server on 127.0.0.1 that receives records.

It behaves like a real receiving system, warts included, under the control of the test or
demo that runs it:

* de-duplicates on ``Idempotency-Key`` (a re-delivered record is answered 200 and not applied
  twice; ``redeliveries`` counts them), which is what turns at-least-once into exactly-once;
* ``fail_rate``: that share of requests answer 503 before anything is applied;
* ``lost_reply_rate``: that share of requests are applied but answered 500 (the reply "lost"),
  so the hub retries something already applied;
* ``rate_limit``: answers 429 with ``Retry-After`` when more than N requests arrive in a second;
* ``reject``: a predicate on the record; matches are refused with 422 and a reason
  (a permanent error: the hub dead-letters them);
* ``latency``: seconds added to each answer;
* ``go_down()`` / ``come_up()``: closes and reopens the listening socket (connection refused).

Endpoints: ``POST /records`` (one JSON record), ``POST /batch`` (``{"records": [...]}`` with a
per-record ``results`` array), ``GET /stats``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from hub.peers import PeerServer

__all__ = ["Sink", "SinkBehaviour"]

Record = dict[str, Any]


@dataclass
class SinkBehaviour:
    fail_rate: float = 0.0
    lost_reply_rate: float = 0.0
    latency: float = 0.0
    rate_limit: int | None = None
    reject: Callable[[Record], str | None] | None = None
    seed: int | None = None


@dataclass
class Sink(PeerServer):
    """Start with ``await sink.start()``; ``sink.url`` is the per-record endpoint."""

    name: str = "sink"
    behaviour: SinkBehaviour = field(default_factory=SinkBehaviour)
    port: int = 0
    applied: dict[str, Record] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    redeliveries: int = 0
    requests: int = 0
    failures_sent: int = 0
    rejected: int = 0
    arrivals: dict[str, float] = field(default_factory=dict)
    traceparents: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.behaviour.seed)
        self._window = (0.0, 0)
        self.down = False

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/records"

    @property
    def batch_url(self) -> str:
        return f"{self.base}/batch"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/records", self._records)
        app.router.add_post("/batch", self._batch)
        app.router.add_get("/stats", self._stats)
        return app

    # ---------------------------------------------------------------- behaviour

    def _rate_limited(self) -> bool:
        limit = self.behaviour.rate_limit
        if limit is None:
            return False
        now = int(time.monotonic())
        start, n = self._window
        if start != now:
            self._window = (now, 1)
            return False
        self._window = (start, n + 1)
        return n + 1 > limit

    def _apply(self, key: str, record: Record) -> str | None:
        """Apply once per key; return a rejection reason instead when the record is refused."""
        if key in self.applied:
            self.redeliveries += 1
            return None
        reject = self.behaviour.reject
        reason = reject(record) if reject is not None else None
        if reason:
            self.rejected += 1
            return reason
        self.applied[key] = record
        self.order.append(key)
        self.arrivals[key] = time.time()
        return None

    async def _common(self, request: web.Request) -> web.Response | None:
        if self.down and request.transport is not None:
            request.transport.close()  # a request already on the wire when we went down
            return web.Response(status=503)  # never reaches the client: the socket is gone
        self.requests += 1
        b = self.behaviour
        if b.latency:
            await asyncio.sleep(b.latency)
        if self._rate_limited():
            return web.json_response(
                {"error": "rate limited"}, status=429, headers={"Retry-After": "1"}
            )
        if b.fail_rate and self._rng.random() < b.fail_rate:
            self.failures_sent += 1
            return web.json_response({"error": "temporarily unavailable"}, status=503)
        return None

    async def _records(self, request: web.Request) -> web.Response:
        early = await self._common(request)
        if early is not None:
            return early
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.json_response({"error": "Idempotency-Key header required"}, status=400)
        try:
            record = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.json_response({"error": "invalid JSON"}, status=400)
        except ConnectionResetError:
            # the connection was cut while the body was read (this peer went down like a
            # vanished host, or the client gave up): nothing applied, nothing to answer
            return web.Response(status=503)
        if tp := request.headers.get("traceparent"):
            self.traceparents[key] = tp
        reason = self._apply(key, record)
        if reason:
            return web.json_response({"error": reason}, status=422)
        if self.behaviour.lost_reply_rate and self._rng.random() < self.behaviour.lost_reply_rate:
            self.failures_sent += 1
            return web.json_response({"error": "reply lost"}, status=500)
        return web.json_response({"ok": True}, headers={"X-Receipt-Id": f"{self.name}-{key}"})

    async def _batch(self, request: web.Request) -> web.Response:
        early = await self._common(request)
        if early is not None:
            return early
        try:
            doc = orjson.loads(await request.read())
            items = doc["records"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return web.json_response({"error": "expected {records: [...]}"}, status=400)
        except ConnectionResetError:  # cut while reading: nothing applied (see _records)
            return web.Response(status=503)
        results = []
        for item in items:
            reason = self._apply(str(item["idempotency_key"]), item["data"])
            results.append(
                {"ok": True} if not reason else {"ok": False, "status": 422, "error": reason}
            )
        return web.json_response({"results": results})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    def stats(self) -> dict[str, Any]:
        return {
            "applied": len(self.applied),
            "redeliveries": self.redeliveries,
            "requests": self.requests,
            "failures_sent": self.failures_sent,
            "rejected": self.rejected,
        }
