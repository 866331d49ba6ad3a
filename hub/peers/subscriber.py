"""A simulated webhook subscriber: a real aiohttp server on 127.0.0.1 that receives what the
``webhook`` transport pushes, the way a real subscriber would.

* verifies every request with :func:`hub.transports.webhook.verify_webhook` and its own
  secret(s), and/or the RFC 9421 signature with ``keys`` (a key resolver that knows the hub's
  public key, :func:`security.httpsig.verify_request`); a refused one is answered 401 with a
  problem document (``E_SIGNATURE`` or ``E_EXPIRED``), which the hub treats as permanent;
* de-duplicates on ``Idempotency-Key`` (per event ``id`` in a batch): a re-sent event is answered
  200 and not applied twice (``redeliveries`` counts them);
* ``latency``: seconds added to each answer (a slow subscriber);
* ``gone``: answers 410 Gone (the subscription was withdrawn: permanent);
* ``throttle``: the next N requests are answered 429 with ``Retry-After: retry_after``;
* ``fail_next``: the next N requests are answered 503;
* ``lost_replies``: the next N events are applied but answered 500 (the reply is "lost"), so
  the hub re-sends something already applied;
* ``go_down()`` / ``come_up()``: closes and reopens the listening socket (connection refused).

Endpoint: ``POST /hooks``; ``GET /stats``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from hub.errors import HubError
from hub.peers import PeerServer
from hub.transports.webhook import BATCH_HEADER, EVENT_HEADER, VerifiedWebhook, verify_webhook
from security.signing import KeyResolver

__all__ = ["Subscriber", "SubscriberBehaviour"]


@dataclass
class SubscriberBehaviour:
    """How the subscriber misbehaves; tests change the fields while it runs."""

    latency: float = 0.0
    gone: bool = False
    throttle: int = 0
    retry_after: str = "1"
    fail_next: int = 0
    lost_replies: int = 0
    tolerance: float = 300.0


@dataclass
class Subscriber(PeerServer):
    """Start with ``await sub.start()``; ``sub.url`` is the hook endpoint."""

    name: str = "subscriber"
    secret: str | Sequence[str] | None = "subscriber-secret-0123456789"
    #: verify RFC 9421 signatures with these keys too (None: no such check)
    keys: KeyResolver | None = None
    behaviour: SubscriberBehaviour = field(default_factory=SubscriberBehaviour)
    port: int = 0
    clock: Callable[[], float] = time.time
    #: applied events by id (the message id), in arrival order in ``order``
    received: dict[str, Any] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    traceparents: dict[str, str] = field(default_factory=dict)
    redeliveries: int = 0
    requests: int = 0
    #: error codes of the requests it refused (E_SIGNATURE, E_EXPIRED)
    refused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.down = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/hooks", self._hook)
        app.router.add_get("/stats", self._stats)
        return app

    # ---------------------------------------------------------------- behaviour

    def _apply(self, key: str, event: str, data: Any) -> bool:
        """Apply an event once; False when it was applied before."""
        if key in self.received:
            self.redeliveries += 1
            return False
        self.received[key] = data
        self.events[key] = event
        self.order.append(key)
        return True

    def _lose_reply(self) -> bool:
        if self.behaviour.lost_replies > 0:
            self.behaviour.lost_replies -= 1
            return True
        return False

    async def _hook(self, request: web.Request) -> web.Response:
        if self.down and request.transport is not None:
            request.transport.close()  # a request already on the wire when it went down
            return web.Response(status=503)
        self.requests += 1
        b = self.behaviour
        if b.latency:
            await asyncio.sleep(b.latency)
        if b.gone:
            return web.json_response({"error": "subscription withdrawn"}, status=410)
        if b.throttle > 0:
            b.throttle -= 1
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": b.retry_after}
            )
        if b.fail_next > 0:
            b.fail_next -= 1
            return web.json_response({"error": "temporarily unavailable"}, status=503)
        body = await request.read()
        try:
            seen = self._verify(request, body)
        except HubError as err:
            self.refused.append(err.code)
            return web.json_response(
                err.to_problem(), status=401, content_type="application/problem+json"
            )
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return web.json_response({"error": "invalid JSON"}, status=400)
        if tp := request.headers.get("traceparent"):
            self.traceparents.setdefault(seen.key, tp)
        if request.headers.get(BATCH_HEADER) is None:
            self._apply(seen.key, seen.event, doc)
            if self._lose_reply():
                return web.json_response({"error": "reply lost"}, status=500)
            return web.json_response({"ok": True})
        results = []
        for ev in doc.get("events", []) if isinstance(doc, dict) else []:
            self._apply(str(ev["id"]), str(ev.get("event", "")), ev.get("data"))
            results.append({"ok": True})
        if self._lose_reply():
            return web.json_response({"error": "reply lost"}, status=500)
        return web.json_response({"results": results})

    def _verify(self, request: web.Request, body: bytes) -> VerifiedWebhook:
        h = request.headers
        now = self.clock()
        if self.keys is not None:
            from security.httpsig import verify_request

            verify_request(
                "POST",
                str(request.url),
                h,
                body,
                keys=self.keys,
                now=now,
                window=self.behaviour.tolerance,
            )
        if self.secret is not None:
            return verify_webhook(h, body, self.secret, now, tolerance=self.behaviour.tolerance)
        return VerifiedWebhook(h.get("Idempotency-Key", ""), h.get(EVENT_HEADER, ""), int(now))

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "received": len(self.received),
                "redeliveries": self.redeliveries,
                "requests": self.requests,
                "refused": len(self.refused),
            }
        )
