"""Simulated systems of the supervising departments (行业监督部门) that receive award results
(中标结果) from the hub: a real aiohttp server on 127.0.0.1 per department, each with its own
JSON schema, as 住房和城乡建设局's 建筑市场监管系统 or 财政局's 政府采购监管系统 would have.

A department's system:

* requires the hub's RFC 9421 signature (:func:`security.httpsig.verify_request`, keys that
  know the hub's public key) with a fresh nonce; otherwise 401 with its own code ``BM401``;
* checks its own required fields (``required``), refusing with 422 ``BM422`` and the field;
* fetches every attachment by reference from the URI in the record, signing that request with
  its own key (the trading platform checks who reads), and checks size and SHA-256: a
  mismatch is refused with 422 ``BM423`` naming the attachment; an attachment it cannot fetch
  now (the platform down) is 503 ``BM503``, so the hub retries;
* de-duplicates on ``Idempotency-Key`` (the hub's message id): a redelivery is answered with
  the first receipt and not applied twice;
* answers 200 with its receipt number (回执编号) in ``X-Receipt-Id`` and the JSON body;
* misbehaves on demand: ``fail_next`` (503), ``latency``, ``go_down()`` / ``come_up()``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from hub.errors import HubError
from hub.peers import ClientPeer
from hub.peers.signing import RequestVerifier
from hub.specs import Signer
from security.signing import KeyResolver

__all__ = ["AttachmentFields", "SupervisingDepartment"]


@dataclass(frozen=True)
class AttachmentFields:
    """Where a department's schema keeps attachment references: the list field and the
    names of address, digest and size in each element."""

    list_field: str
    uri: str
    sha256: str
    size: str


@dataclass
class SupervisingDepartment(ClientPeer):
    """Start with ``await dept.start()``; ``dept.url`` is where the hub posts award results."""

    #: seconds one attachment download may take
    client_timeout = 5.0

    name: str = "dept"
    title: str = ""
    #: its own required fields (its schema, not ours)
    required: Sequence[str] = ()
    attachments: AttachmentFields | None = None
    #: keys that verify the hub's signature (None: unsigned requests are accepted)
    keys: KeyResolver | None = None
    #: its own key, to sign attachment downloads from the trading platform
    signer: Signer | None = None
    port: int = 0
    latency: float = 0.0
    fail_next: int = 0
    clock: Callable[[], float] = time.time
    #: applied records by the hub's message id, in arrival order
    received: dict[str, dict[str, Any]] = field(default_factory=dict)
    receipts: dict[str, str] = field(default_factory=dict)
    redeliveries: int = 0
    requests: int = 0
    #: (its code, detail) of every refused request
    refused: list[tuple[str, str]] = field(default_factory=list)
    #: attachments fetched and verified: uri -> sha256
    verified_attachments: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._verifier = RequestVerifier()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/zbjg"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/zbjg", self._receive)
        return app

    def _refuse(self, status: int, code: str, detail: str) -> web.Response:
        self.refused.append((code, detail))
        body = orjson.dumps({"code": code, "message": detail})
        return web.Response(body=body, status=status, content_type="application/json")

    async def _receive(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.fail_next > 0:
            self.fail_next -= 1
            return self._refuse(503, "BM503", "系统维护中")
        body = await request.read()
        if self.keys is not None:
            try:
                await self._verifier.verify(
                    request, body, keys=self.keys, now=self.clock(), url=self.url
                )
            except HubError as exc:
                return self._refuse(401, "BM401", f"签名无效: {exc.code} {exc.message}")
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            return self._refuse(400, "BM400", "缺少 Idempotency-Key")
        if key in self.receipts:
            self.redeliveries += 1
            return self._ok(self.receipts[key])
        try:
            record = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._refuse(400, "BM400", "报文不是 JSON")
        if not isinstance(record, dict):
            return self._refuse(400, "BM400", "报文不是 JSON 对象")
        for name in self.required:
            if record.get(name) in (None, "", []):
                return self._refuse(422, "BM422", f"缺少必填字段 {name}")
        problem = await self._check_attachments(record)
        if problem is not None:
            return problem
        receipt = f"HZ-{self.name}-{len(self.receipts) + 1:06d}"
        self.received[key] = record
        self.receipts[key] = receipt
        return self._ok(receipt)

    def _ok(self, receipt: str) -> web.Response:
        resp = web.json_response({"code": "0", "hzbh": receipt})
        resp.headers["X-Receipt-Id"] = receipt
        return resp

    async def _check_attachments(self, record: dict[str, Any]) -> web.Response | None:
        spec = self.attachments
        if spec is None:
            return None
        items = record.get(spec.list_field) or []
        if not isinstance(items, list):
            return self._refuse(422, "BM422", f"{spec.list_field} 不是列表")
        for i, item in enumerate(items):
            where = f"{spec.list_field}[{i}]"
            uri, digest, size = item.get(spec.uri), item.get(spec.sha256), item.get(spec.size)
            if not uri or not digest or size in (None, ""):
                return self._refuse(422, "BM422", f"{where}: 附件缺少地址、摘要或大小")
            try:
                content = await self._fetch(str(uri))
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                return self._refuse(503, "BM503", f"{where}: 附件暂时无法下载 ({exc})")
            if content is None:
                return self._refuse(422, "BM423", f"{where}: 附件不存在 {uri}")
            got = hashlib.sha256(content).hexdigest()
            if got != digest or len(content) != int(size):
                return self._refuse(
                    422,
                    "BM423",
                    f"{where}: 附件摘要或大小不符 (sha256 {got}, {len(content)} bytes)",
                )
            self.verified_attachments[str(uri)] = got
        return None

    async def _fetch(self, uri: str) -> bytes | None:
        """The attachment's bytes (None for a 404); raises for a platform that is down."""
        headers: dict[str, str] = {}
        if self.signer is not None:
            from security.httpsig import sign_request

            sign_request("GET", uri, headers, b"", signer=self.signer, created=self.clock())
        async with self.client().get(uri, headers=headers) as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise aiohttp.ClientResponseError(
                    resp.request_info, (), status=resp.status, message="attachment download"
                )
            return await resp.read()
