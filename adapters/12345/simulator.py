"""A simulated provincial 12345 platform (12345政务服务便民热线平台): a real aiohttp server on
127.0.0.1 with its own schema, signatures, error codes and faults.

Its schema uses the upper-case pinyin initials of the real platforms:

=========  ==================================  =========  ===============================
field      meaning                             field      meaning
=========  ==================================  =========  ===============================
GDBH       工单编号                             SLQD       受理渠道 01 电话 … 07 其他
SQLX       诉求类型 1 咨询 … 5 建议             JJCD       紧急程度 1 危及生命财产 2 水电气暖 3 一般
BT / SQNR  标题 / 诉求内容                      XZQH       行政区划 (a number, as it stores it)
SFDZ       事发地址                             LDRXM      来电人姓名 (clear; masked by the hub)
LXDH       联系电话 (clear)                     SFBM       是否保密 0/1
FJ         附件 [{FJMC, FJDZ, SHA256, DX, LX}]  CBDW(DM)   承办单位 (代码)
SLSJ/PDSJ  受理/派单时间 yyyyMMddHHmmss         LZBH       流转记录编号
DZLX       动作类型 01 受理 … 13 发回重办        CZSJ/CZDW  操作时间 / 操作单位
CLYJ / YY  处理意见 / 原因                      MYD        满意度 1 满意 2 基本满意 3 不满意
=========  ==================================  =========  ===============================

Behaviour:

* **pushes** new work orders (:meth:`HotlineSimulator.dispatch`) and its own lifecycle events
  (回访, 评价, 发回重办: :meth:`push_event`) to the hub, signed (RFC 9421) with its key;
* **receives** the lifecycle back on ``POST /api/v1/gd/lzjl`` (one 流转记录 per request):
  verifies the hub's signature (``RX4010``), the fields (``RX4001`` missing, ``RX4002`` bad
  value), that the order exists (``RX4041``), and answers ``{"code": "0000", "hzbh": ...}``
  with ``X-Receipt-Id``; a re-delivered record (same ``LZBH``) gets its first receipt again;
* **serves attachments** by reference on ``GET /files/{id}`` (the departments fetch them);
* **faults on demand** (:class:`HotlineBehaviour`): 503 ``RX5030`` (maintenance), slowness,
  refusing the next N records; :meth:`go_down` / :meth:`come_up` for an outage.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from hub.errors import HubError
from hub.peers import ClientPeer, PeerFaults
from hub.peers.signing import RequestVerifier, post_signed
from hub.specs import Signer
from security.signing import KeyResolver

__all__ = ["ACTIONS", "HotlineBehaviour", "HotlineSimulator"]

CST = dt.timezone(dt.timedelta(hours=8))

#: 动作类型 (DZLX) codes of the platform
ACTIONS: dict[str, str] = {
    "01": "受理", "02": "派单", "03": "转办", "04": "签收", "05": "办理", "06": "回复",
    "07": "督办", "08": "延期申请", "09": "退回", "10": "办结", "11": "回访", "12": "评价",
    "13": "发回重办",
}  # fmt: skip

_REQUIRED_LZJL = ("LZBH", "GDBH", "DZLX", "CZSJ", "CZDW", "CBDWDM")


def _now_text(clock: Callable[[], float]) -> str:
    return dt.datetime.fromtimestamp(clock(), CST).strftime("%Y%m%d%H%M%S")


@dataclass
class HotlineBehaviour(PeerFaults):
    """How the platform misbehaves; tests change the fields while it runs. ``fail_next``: 503
    ``RX5030`` (系统维护)."""

    #: seconds added before each answer
    latency: float = 0.0
    #: the next N 流转记录 are refused 400 RX4002 (a strict validator's bad day)
    refuse_next: int = 0


@dataclass
class HotlineSimulator(ClientPeer):
    """Start with ``await sim.start()``; set :attr:`hub_url` (the hub's base URL) and
    :attr:`system` before pushing."""

    #: keys that verify the hub's requests (a :class:`security.keystore.Keystore`)
    keys: KeyResolver
    #: the platform's own key: signs pushes to the hub
    signer: Signer | None = None
    hub_url: str = ""
    system: str = "platform-12345"
    behaviour: HotlineBehaviour = field(default_factory=HotlineBehaviour)
    port: int = 0
    clock: Callable[[], float] = time.time
    #: work orders it created, by GDBH (clear-text personal data stays here)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: 流转记录 received from the hub, by GDBH, in arrival order
    lzjl: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: receipts given, by LZBH
    receipts: dict[str, str] = field(default_factory=dict)
    #: requests refused: (code, detail)
    refused: list[tuple[str, str]] = field(default_factory=list)
    #: pushes to the hub: (GDBH or LZBH, HTTP status or None, answer)
    pushes: list[tuple[str, int | None, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._verifier = RequestVerifier()
        self._seq = itertools.count(1)
        self._receipt_seq = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def lzjl_url(self) -> str:
        """Where the hub delivers the lifecycle (the platform system's ``outbound.url``)."""
        return f"{self.base_url}/api/v1/gd/lzjl"

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._faults])
        app.router.add_post("/api/v1/gd/lzjl", self._receive)
        app.router.add_get("/api/v1/gd/{gdbh}", self._order)
        app.router.add_get("/files/{fid}", self._file)
        return app

    # ------------------------------------------------------------------ server side

    @staticmethod
    def _error(status: int, code: str, msg: str, **extra: Any) -> web.Response:
        return web.json_response({"code": code, "msg": msg, **extra}, status=status)

    @web.middleware
    async def _faults(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        b = self.behaviour
        if b.latency:
            await asyncio.sleep(b.latency)
        if b.take("fail_next"):
            self.refused.append(("RX5030", request.path))
            return self._error(503, "RX5030", "系统维护中，请稍后重试 (maintenance)")
        resp: web.StreamResponse = await handler(request)
        return resp

    async def _verify(self, request: web.Request, body: bytes) -> None:
        await self._verifier.verify(
            request, body, keys=self.keys, now=self.clock(), window=self.behaviour.tolerance
        )

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            await self._verify(request, body)
        except HubError as err:
            self.refused.append(("RX4010", err.code))
            return self._error(401, "RX4010", f"签名验证失败: {err.message}", field=err.field)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.refused.append(("RX4002", "body"))
            return self._error(400, "RX4002", "报文不是合法的 JSON", field="body")
        if not isinstance(doc, dict):
            self.refused.append(("RX4002", "body"))
            return self._error(400, "RX4002", "报文应为一个流转记录对象", field="body")
        for name in _REQUIRED_LZJL:
            if doc.get(name) in (None, ""):
                self.refused.append(("RX4001", name))
                return self._error(400, "RX4001", f"缺少必填字段 {name}", field=name)
        if doc["DZLX"] not in ACTIONS:
            self.refused.append(("RX4002", "DZLX"))
            return self._error(400, "RX4002", f"动作类型 {doc['DZLX']} 无效", field="DZLX")
        if self.behaviour.take("refuse_next"):
            self.refused.append(("RX4002", "CZSJ"))
            return self._error(400, "RX4002", "操作时间格式错误 (refused on demand)", field="CZSJ")
        gdbh = doc["GDBH"]
        if gdbh not in self.orders:
            self.refused.append(("RX4041", gdbh))
            return self._error(404, "RX4041", f"工单 {gdbh} 不存在", field="GDBH")
        lzbh = doc["LZBH"]
        receipt = self.receipts.get(lzbh)
        if receipt is None:  # a re-delivery keeps its first receipt and is not applied twice
            receipt = f"HZ12345{next(self._receipt_seq):08d}"
            self.receipts[lzbh] = receipt
            self.lzjl.setdefault(gdbh, []).append(doc)
            self.orders[gdbh]["ZT"] = ACTIONS[doc["DZLX"]]
        return web.json_response(
            {"code": "0000", "msg": "接收成功", "hzbh": receipt},
            headers={"X-Receipt-Id": receipt},
        )

    async def _order(self, request: web.Request) -> web.Response:
        gdbh = request.match_info["gdbh"]
        order = self.orders.get(gdbh)
        if order is None:
            return self._error(404, "RX4041", f"工单 {gdbh} 不存在", field="GDBH")
        return web.json_response(
            {"GDBH": gdbh, "ZT": order.get("ZT", "已派单"), "LZJL": self.lzjl.get(gdbh, [])}
        )

    async def _file(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["fid"])
        if data is None:
            return self._error(404, "RX4044", "附件不存在", field="fid")
        return web.Response(body=data, content_type="application/octet-stream")

    # ------------------------------------------------------------------ platform side

    def actions_of(self, gdbh: str) -> list[str]:
        """The 动作类型 names received for an order, in order (签收, 办理, 办结 ...)."""
        return [ACTIONS[d["DZLX"]] for d in self.lzjl.get(gdbh, [])]

    def add_file(self, name: str, data: bytes, media_type: str = "image/jpeg") -> dict[str, Any]:
        """Keep an attachment and return its FJ entry (reference, SHA-256, size)."""
        fid = f"F{len(self.files) + 1:06d}"
        self.files[fid] = data
        return {
            "FJMC": name,
            "FJDZ": f"{self.base_url}/files/{fid}",
            "SHA256": hashlib.sha256(data).hexdigest(),
            "DX": len(data),
            "LX": media_type,
        }

    def new_order(
        self,
        *,
        sqlx: str = "3",
        jjcd: str = "3",
        cbdw: str = "上城区市场监督管理局",
        cbdwdm: str = "SCJG330102",
        xzqh: int = 330102,
        accepted: dt.datetime | None = None,
        attachments: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A work order as the platform stores it (受理 then 派单 at once)."""
        at = accepted or dt.datetime.fromtimestamp(self.clock(), CST)
        gdbh = f"ZJ12345-{at:%Y%m%d}-{next(self._seq):06d}"
        order = {
            "GDBH": gdbh,
            "SLQD": "01",
            "SQLX": sqlx,
            "JJCD": jjcd,
            "BT": "商户拒不退还预付卡余额",
            "SQNR": "来电人反映某健身房闭店，预付卡余额 3200 元无法退还，要求处理。",
            "XZQH": xzqh,
            "SFDZ": "杭州市上城区解放路 100 号",
            "LDRXM": "王小明",
            "LXDH": "13812345678",
            "SFBM": "0",
            "FJ": attachments or [],
            "CBDW": cbdw,
            "CBDWDM": cbdwdm,
            "SLSJ": at.strftime("%Y%m%d%H%M%S"),
            "PDSJ": (at + dt.timedelta(minutes=2)).strftime("%Y%m%d%H%M%S"),
            **extra,
        }
        self.orders[gdbh] = order
        return order

    async def _post(self, dataset: str, doc: dict[str, Any], key: str) -> tuple[int | None, Any]:
        assert self._session is not None and self.signer is not None and self.hub_url
        url = f"{self.hub_url}/v1/systems/{self.system}/records?dataset={dataset}"
        body = orjson.dumps(doc)
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        posted = await post_signed(self._session, url, body, headers, signer=self.signer)
        status = posted.status
        if posted.error is not None:
            answer: Any = repr(posted.error)
        else:
            answer = json.loads(posted.body) if posted.body.strip() else None
        self.pushes.append((key, status, answer))
        return status, answer

    async def dispatch(self, order: dict[str, Any]) -> tuple[int | None, Any]:
        """Push a work order (派单) to the hub, signed; returns (status, answer)."""
        return await self._post("work_order", order, f"{order['GDBH']}:{order['PDSJ']}")

    async def push_event(
        self, gdbh: str, dzlx: str, *, when: dt.datetime | None = None, **fields: Any
    ) -> tuple[int | None, Any]:
        """Push one of the platform's own 流转记录 (回访 11, 评价 12, 发回重办 13, 督办 07 ...)."""
        order = self.orders[gdbh]
        at = when or dt.datetime.fromtimestamp(self.clock(), CST)
        doc = {
            "LZBH": f"LZ{gdbh[-6:]}{next(self._seq):06d}",
            "GDBH": gdbh,
            "DZLX": dzlx,
            "CZSJ": at.strftime("%Y%m%d%H%M%S"),
            "CZDW": "12345政务服务便民热线",
            "CBDW": order["CBDW"],
            "CBDWDM": order["CBDWDM"],
            **fields,
        }
        return await self._post("work_order_event", doc, doc["LZBH"])
