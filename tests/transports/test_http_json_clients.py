"""``http_json`` on both HTTP clients (aiohttp in the event loop, reqwest through pyreqwest)
against a real aiohttp server on 127.0.0.1: the same bytes and headers arrive, and every kind
of answer (2xx with receipt, 4xx, 5xx/429 with Retry-After, slowness, a closed port, per-record
batch results, RFC 9421 signatures) is classified the same way by both."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from hub.errors import ConfigError
from hub.runtime import Hub
from hub.specs import OutboundItem, SendResult
from hub.transports.http_json import HttpJsonOptions, HttpJsonTransport
from security.httpsig import verify_request
from security.keystore import Keystore, ManagedKey
from security.signing import generate_key
from tests.conftest import free_port
from tests.helpers import config

ENGINES = ["aiohttp", "reqwest"]


@dataclass
class Peer:
    """A target that answers by path: ``/ok``, ``/reject``, ``/busy``, ``/later``, ``/slow``,
    ``/batch``, ``/signed``; it keeps what it received."""

    keys: Keystore | None = None
    received: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{kind}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        body = await request.read()
        self.received.append((kind, body, dict(request.headers)))
        if kind == "ok":
            return web.Response(status=202, headers={"X-Receipt-Id": "r-" + body.decode()[:8]})
        if kind == "reject":
            return web.json_response({"code": "E_FIELD", "field": "inspection_no"}, status=422)
        if kind == "busy":
            return web.Response(status=503, text="maintenance", headers={"Retry-After": "7"})
        if kind == "later":
            when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
            return web.Response(status=429, headers={"Retry-After": format_datetime(when, True)})
        if kind == "slow":
            await asyncio.sleep(2)
            return web.Response(status=202)
        if kind == "batch":
            records = orjson.loads(body)["records"]
            results = [
                {"ok": True}
                if r["data"]["n"] % 2 == 0
                else {"ok": False, "status": 422, "error": f"odd {r['data']['n']}"}
                for r in records
            ]
            return web.Response(
                body=orjson.dumps({"results": results}),
                content_type="application/json",
                charset="utf-8",
            )
        if kind == "signed":
            assert self.keys is not None
            try:
                verify_request(
                    "POST", str(request.url), request.headers, body, keys=self.keys, now=time.time()
                )
            except Exception as exc:
                return web.Response(status=401, text=str(exc))
            return web.Response(status=202)
        return web.Response(status=404)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = Peer()
    await p.start()
    yield p
    await p.stop()


async def _send(engine: str, url: str, items: list[OutboundItem], **opts: Any) -> list[SendResult]:
    t = HttpJsonTransport("t", HttpJsonOptions(url=url, client=engine, **opts))  # type: ignore[arg-type]
    await t.start()
    try:
        return await t.send(items)
    finally:
        await t.close()


def _item(n: int, **kw: Any) -> OutboundItem:
    return OutboundItem(n, f"m-{n}", "inspection", {"n": n, "名称": "检查"}, 2, **kw)


@pytest.mark.parametrize("engine", ENGINES)
async def test_record_arrives_as_sent_with_its_headers_and_receipt(engine: str, peer: Peer) -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    [res] = await _send(engine, f"{peer.url}/ok", [_item(1, traceparent=tp)])
    assert res.ok and res.status == 202 and not res.permanent
    [(_, body, headers)] = peer.received
    # the client that sent (reqwest names no User-Agent unless told)
    assert ("aiohttp" in headers.get("User-Agent", "")) == (engine == "aiohttp")
    assert orjson.loads(body) == {"n": 1, "名称": "检查"}
    assert res.receipt == "r-" + body.decode()[:8]
    assert headers["Idempotency-Key"] == "m-1"
    assert headers["X-Jghub-Dataset"] == "inspection"
    assert headers["X-Jghub-Attempt"] == "2"
    assert headers["traceparent"] == tp
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("engine", ENGINES)
async def test_answers_are_classified_alike(engine: str, peer: Peer) -> None:
    [rejected] = await _send(engine, f"{peer.url}/reject", [_item(1)])
    assert not rejected.ok and rejected.permanent and rejected.status == 422
    assert "inspection_no" in rejected.detail  # the target's words are kept for the DLQ
    [busy] = await _send(engine, f"{peer.url}/busy", [_item(2)])
    assert (busy.ok, busy.permanent, busy.status) == (False, False, 503)
    assert busy.retry_after == 7.0 and busy.detail == "maintenance"
    [later] = await _send(engine, f"{peer.url}/later", [_item(3)])
    assert later.status == 429 and not later.permanent
    assert later.retry_after is not None and 100 < later.retry_after <= 120
    [missing] = await _send(engine, f"{peer.url}/nowhere", [_item(4)])
    assert missing.status == 404 and missing.permanent


@pytest.mark.parametrize("engine", ENGINES)
async def test_slowness_and_a_closed_port_are_transient(engine: str, peer: Peer) -> None:
    t0 = time.monotonic()
    [slow] = await _send(engine, f"{peer.url}/slow", [_item(1)], timeout=0.3)
    assert time.monotonic() - t0 < 1.5  # the timeout cut it, not the peer's 2 s
    assert not slow.ok and not slow.permanent and slow.status is None
    assert slow.detail == "timeout after 0.3s"
    [closed] = await _send(engine, f"http://127.0.0.1:{free_port()}/ok", [_item(2)])
    assert not closed.ok and not closed.permanent and closed.status is None
    assert closed.detail  # the client's error, for the trace and the dead letter


@pytest.mark.parametrize("engine", ENGINES)
async def test_batch_results_are_honoured_record_by_record(engine: str, peer: Peer) -> None:
    items = [_item(n) for n in range(4)]
    results = await _send(engine, f"{peer.url}/batch", items, batch_size=4)
    assert [r.ok for r in results] == [True, False, True, False]
    assert [r.permanent for r in results] == [False, True, False, True]
    assert results[1].detail == "odd 1" and results[1].status == 422
    [(_, body, headers)] = peer.received
    assert [r["idempotency_key"] for r in orjson.loads(body)["records"]] == [
        "m-0",
        "m-1",
        "m-2",
        "m-3",
    ]
    assert headers["Idempotency-Key"] == "m-0+3"


@pytest.mark.parametrize("engine", ENGINES)
async def test_signed_requests_verify_at_the_target(engine: str, peer: Peer) -> None:
    key = generate_key("ed25519", "hub-2026")
    peer.keys = Keystore([ManagedKey(key)])
    t = HttpJsonTransport(
        "t",
        HttpJsonOptions(url=f"{peer.url}/signed", client=engine, sign=True),  # type: ignore[arg-type]
    )
    t.set_signer(lambda: key)
    await t.start()
    try:
        [good] = await t.send([_item(1)])
        assert good.ok, good.detail
        forger = generate_key("ed25519", "hub-2026")  # same key id, another key
        t.set_signer(lambda: forger)
        [bad] = await t.send([_item(2)])
        assert bad.status == 401 and bad.permanent
    finally:
        await t.close()


def test_client_choice(tmp_path: Path) -> None:
    """``auto`` takes reqwest unless a ``tls:`` section asks for an exact trust store; asking
    for reqwest with ``tls:`` is a config error naming the field."""
    assert HttpJsonOptions(url="http://127.0.0.1:1/x").engine() == "reqwest"  # type: ignore[arg-type]
    tls = {"ca": ["ca.pem"]}
    assert HttpJsonOptions(url="https://127.0.0.1:1/x", tls=tls).engine() == "aiohttp"  # type: ignore[arg-type]
    assert (
        HttpJsonOptions(url="http://127.0.0.1:1/x", client="aiohttp").engine() == "aiohttp"  # type: ignore[arg-type]
    )
    target = {"transport": "http_json", "url": "https://127.0.0.1:1/x", "client": "reqwest"}
    with pytest.raises(
        ConfigError, match=r"outbound\.client: .*client: reqwest cannot take a tls: section"
    ):
        Hub(config(tmp_path, {"sink": {**target, "tls": tls}}))
    with pytest.raises(ConfigError, match=r"outbound\.client"):
        Hub(config(tmp_path, {"sink": {**target, "client": "curl"}}))
