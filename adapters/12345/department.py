"""A simulated department system (承办单位) on the 12345 flow: a real aiohttp server that
receives work orders and events from the hub, and a client that sends its handling back.

Receiving (``POST /gd``, one canonical record per request, as the hub's ``http_json``
transport delivers it): de-duplicates on ``Idempotency-Key``; fetches every attachment by its
reference and checks size and SHA-256 (:func:`.contracts.verify_attachment`) before it takes
an order; a mismatch is refused 422 ``E_ATTACHMENT_CHECKSUM`` (a permanent error: the hub
dead-letters the delivery for an operator, nothing is lost). Sending: :meth:`act` posts a
``work_order_event`` (签收, 办理, 回复, 延期申请, 退回, 办结) to the hub with its bearer token
and the event id as ``Idempotency-Key``, resending on 5xx and network errors like
:class:`hub.peers.department.DepartmentSource` does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from hub.errors import HubError
from hub.peers import ClientPeer

from .contracts import verify_attachment
from .errors import AttachmentChecksumError

__all__ = ["HotlineDepartment"]

CST = dt.timezone(dt.timedelta(hours=8))


@dataclass
class HotlineDepartment(ClientPeer):
    """Start with ``await dept.start()``; ``dept.url`` is its inbox (the system's
    ``outbound.url``); set :attr:`hub_url` before :meth:`act`."""

    system: str = "dept-scjg"
    title: str = "上城区市场监督管理局"
    code: str = "SCJG330102"
    token: str | None = None
    hub_url: str = ""
    port: int = 0
    #: work orders taken, by order number
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: events received from the hub (督办, 发回重办 ...), in arrival order
    events: list[dict[str, Any]] = field(default_factory=list)
    #: deliveries refused: (order number, code, detail)
    refused: list[tuple[str, str, str]] = field(default_factory=list)
    redeliveries: int = 0
    #: what the hub answered to each event sent: event id -> (status, answer)
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._seen: set[str] = set()
        self._seq = itertools.count(1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/gd"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/gd", self._receive)
        return app

    # ------------------------------------------------------------------ receiving

    async def _receive(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        if key and key in self._seen:
            self.redeliveries += 1
            return web.json_response({"ok": True, "duplicate": True})
        try:
            rec = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.json_response({"code": "E_JSON", "detail": "not JSON"}, status=400)
        dataset = request.headers.get("X-Jghub-Dataset", "")
        if dataset == "work_order":
            try:
                await self._check_attachments(rec)
            except HubError as err:
                self.refused.append((str(rec.get("order_no")), err.code, err.message))
                return web.json_response(
                    {"code": err.code, "detail": err.message, "field": err.field}, status=422
                )
            self.orders[rec["order_no"]] = rec
        else:
            self.events.append(rec)
        if key:
            self._seen.add(key)
        return web.json_response({"ok": True}, headers={"X-Receipt-Id": f"{self.code}-{key}"})

    async def _check_attachments(self, rec: dict[str, Any]) -> None:
        assert self._session is not None
        for att in rec.get("attachments") or []:
            async with self._session.get(att["url"]) as resp:
                if resp.status != 200:
                    raise AttachmentChecksumError(
                        f"attachment {att['name']!r} cannot be fetched: HTTP {resp.status}",
                        field="attachments.url",
                    )
                data = await resp.read()
            verify_attachment(data, att["sha256"], att["size"], name=att["name"])

    # ------------------------------------------------------------------ sending

    def event(self, order_no: str, event: str, **fields: Any) -> dict[str, Any]:
        """A canonical work-order event of this department."""
        at = fields.pop("occurred_at", None) or dt.datetime.now(CST).replace(microsecond=0)
        return {
            "event_id": f"{self.code}-{order_no}-{next(self._seq):04d}",
            "order_no": order_no,
            "event": event,
            "occurred_at": at.isoformat() if isinstance(at, dt.datetime) else at,
            "actor": self.title,
            "department": self.title,
            "department_code": self.code,
            **fields,
        }

    async def act(self, order_no: str, event: str, **fields: Any) -> tuple[int, Any]:
        """Send one event to the hub; resend on 5xx / network errors; return (status, answer)."""
        rec = self.event(order_no, event, **fields)
        return await self.send(rec)

    async def send(self, rec: dict[str, Any]) -> tuple[int, Any]:
        assert self._session is not None and self.hub_url
        url = f"{self.hub_url}/v1/systems/{self.system}/records?dataset=work_order_event"
        headers = {"Content-Type": "application/json", "Idempotency-Key": rec["event_id"]}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        delay = 0.05
        for _ in range(50):
            try:
                async with self._session.post(url, data=orjson.dumps(rec), headers=headers) as r:
                    doc = await r.json(content_type=None)
                    if r.status < 500:
                        self.answers[rec["event_id"]] = (r.status, doc)
                        return r.status, doc
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise TimeoutError(f"{self.system}: the hub did not take event {rec['event_id']}")
