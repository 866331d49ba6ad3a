"""A simulated market supervision platform (市场监管平台): a real aiohttp server on 127.0.0.1
that behaves like the provincial platform's open interface, so the adapter is tested against
something that refuses.

It speaks its own schema (upper-case pinyin initials: ``TYSHXYDM`` 统一社会信用代码, ``QYMC``
企业名称, ``FDDBR`` 法定代表人, ``DJZT`` 登记状态 ...), its own codes (``DJZT`` ``1`` 存续 ...,
``SCZTLX`` 市场主体类型 codes, dates as ``yyyyMMdd``) and its own error codes (``SC....``):

* **signed requests**: every request must carry an RFC 9421 signature
  (:func:`security.httpsig.verify_request`) by a key of ``keys`` (the hub's public key) with a
  fresh nonce, else 401 ``SC4010``;
* **signed answers**: every answer carries ``X-Scjg-Signature``, a detached signature
  (:func:`security.httpsig.sign_detached`) of the body bytes by the platform's own key;
* **incremental feeds** ``GET /scjg/open/v1/feed/{topic}?cursor=&pageSize=``: ``ztxx`` 主体信息
  (entity registrations and changes), ``sjrw`` 双随机任务 (inspection tasks), ``jyyc``
  经营异常名录 (entries and removals). Every change gets the next 变更序号 ``BGXH`` of its
  topic; a page holds the changes after ``cursor`` in order, ``nextCursor`` and ``hasMore``;
* **results** ``POST /scjg/open/v1/sjrw/jcjg``: a batch ``{"records": [...]}`` of 检查结果,
  answered record by record: ``ZT`` ``1`` with a receipt (``HZBH``) or ``0`` with the
  platform's code (``SC4001`` missing, ``SC4002`` format/code table, ``SC4003`` logic,
  ``SC4041`` unknown task, ``SC4031`` object not in the task) and field (``CWZD``); a record
  re-sent with the same ``JLBS`` gets its first receipt again;
* **misbehaviour on demand** (:class:`MarketBehaviour`): 429 with ``Retry-After``, 503
  (``SC5030`` 系统维护), slowness, a malformed page, a page whose signature does not verify;
  ``go_down()`` / ``come_up()`` for an outage (connection refused).

What it accepted is kept in attributes so tests can compare.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from aiohttp import web

from hub.errors import HubError
from hub.peers import PeerServer, ThrottledFaults
from hub.peers.signing import RequestVerifier, signed_response
from hub.specs import Signer
from security.signing import KeyResolver

__all__ = [
    "ABNORMAL_REASON_CODES",
    "ENTITY_STATUS_CODES",
    "ENTITY_TYPE_CODES",
    "RESULT_CODES",
    "RESULT_REQUIRED",
    "SIGNATURE_HEADER",
    "TOPICS",
    "MarketBehaviour",
    "MarketSimulator",
]

#: the header carrying the platform's detached signature of an answer's body
SIGNATURE_HEADER = "X-Scjg-Signature"
#: feed topics: 主体信息, 双随机任务, 经营异常名录
TOPICS = ("ztxx", "sjrw", "jyyc")
#: 登记状态 codes of the platform
ENTITY_STATUS_CODES = {
    "1": "存续", "2": "在业", "3": "吊销", "4": "注销", "5": "迁出", "6": "撤销",
}  # fmt: skip
#: 市场主体类型 codes of the platform
ENTITY_TYPE_CODES = {
    "1100": "有限责任公司", "1200": "股份有限公司", "4000": "合伙企业", "4500": "个人独资企业",
    "9600": "个体工商户", "9100": "农民专业合作社", "2100": "分公司", "9900": "其他",
}  # fmt: skip
#: 列入经营异常名录 reason codes
ABNORMAL_REASON_CODES = {
    "01": "未按规定期限公示年度报告",
    "02": "公示企业信息隐瞒真实情况、弄虚作假",
    "03": "通过登记的住所或者经营场所无法联系",
    "04": "未在责令的期限内公示有关企业信息",
}
#: 检查结果 codes of the platform's 双随机 results
RESULT_CODES = {
    "01": "未发现问题", "02": "发现问题已责令整改", "03": "发现问题已立案查处",
    "04": "未发现开展本次抽查涉及的经营活动/查无下落", "05": "其他",
}  # fmt: skip
#: required fields of one 检查结果 record
RESULT_REQUIRED = (
    "JLBS", "RWBH", "DXTYSHXYDM", "DXMC", "JCJG", "JCJGSM", "JCRQ", "JCBM", "JCBMDM", "ZFRY",
    "TBSJ",
)  # fmt: skip

_CST = timezone(timedelta(hours=8))
_DAY = re.compile(r"^\d{8}$")


@dataclass
class MarketBehaviour(ThrottledFaults):
    """How the platform misbehaves; tests change the fields while it runs. Counters count
    requests down to zero. ``fail_next``: 503 ``SC5030`` (系统维护); ``throttle``: 429
    ``SC4290``."""

    #: seconds added before every answer (a slow platform)
    latency: float = 0.0
    #: the next N feed pages are sent truncated (not JSON)
    malformed_next: int = 0
    #: the next N feed pages are sent with a record list that is not a list
    wrong_shape_next: int = 0
    #: the next N feed pages are signed over different bytes (the signature fails)
    bad_signature_next: int = 0
    #: the next N answers to result uploads are signed over different bytes (the results are
    #: kept: the hub must not trust the answer, and its re-send gets the same receipts)
    bad_result_signature_next: int = 0
    #: largest page and batch
    max_page: int = 500
    max_batch: int = 200


@dataclass
class MarketSimulator(PeerServer):
    """Start with ``await sim.start()``; ``sim.base_url`` is the open interface's root."""

    #: keys that verify the hub's requests (a :class:`security.keystore.Keystore`)
    keys: KeyResolver | None = None
    #: the platform's own key: signs every answer
    signer: Signer | None = None
    behaviour: MarketBehaviour = field(default_factory=MarketBehaviour)
    port: int = 0
    clock: Callable[[], float] = time.time
    #: feed changes by topic, in 变更序号 order
    feeds: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {t: [] for t in TOPICS})
    #: the platform's own view: USCC -> current entity record
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    abnormal: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: accepted 检查结果: JLBS -> {"data", "receipt"}
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: refused 检查结果: (JLBS, code, field)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)
    #: (time, method, path + query, status) of every request
    requests: list[tuple[float, str, str, int]] = field(default_factory=list)
    #: error codes of requests refused for their signature
    refused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._verifier = RequestVerifier()
        self._receipts = 0
        self.down = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/scjg/open/v1"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024, middlewares=[self._guard])
        app.router.add_get("/scjg/open/v1/feed/{topic}", self._feed)
        app.router.add_post("/scjg/open/v1/sjrw/jcjg", self._results)
        return app

    # ------------------------------------------------------------------ plumbing

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), _CST).strftime("%Y-%m-%d %H:%M:%S")

    def _signed(
        self, doc: Any, status: int = 200, *, tamper: bool = False, **headers: str
    ) -> web.Response:
        """A JSON answer with the platform's detached signature of its bytes."""
        return self._signed_bytes(orjson.dumps(doc), status, tamper=tamper, **headers)

    def _signed_bytes(
        self, body: bytes, status: int = 200, *, tamper: bool = False, **headers: str
    ) -> web.Response:
        """``tamper``: sign other bytes than those sent (the signature will not verify)."""
        return signed_response(
            body,
            signer=self.signer,
            header=SIGNATURE_HEADER,
            created=self.clock(),
            status=status,
            headers=headers,
            tamper=tamper,
        )

    def _error(self, status: int, code: str, msg: str, **extra: Any) -> web.Response:
        return self._signed({"code": code, "msg": msg, **extra}, status)

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        b = self.behaviour
        status = 0
        try:
            if b.latency > 0:
                await asyncio.sleep(b.latency)
            if b.take("throttle"):
                resp: web.StreamResponse = self._error(
                    429, "SC4290", "请求过于频繁", **{"retryAfter": b.retry_after}
                )
                resp.headers["Retry-After"] = b.retry_after
            elif b.take("fail_next"):
                resp = self._error(503, "SC5030", "系统维护中，请稍后重试")
            else:
                body = await request.read()
                try:
                    await self._verify(request, body)
                except HubError as err:
                    self.refused.append(err.code)
                    resp = self._error(401, "SC4010", f"签名验证失败: {err.message}")
                else:
                    resp = await handler(request)
            status = resp.status
            return resp
        finally:
            self.requests.append((self.clock(), request.method, request.path_qs, status))

    async def _verify(self, request: web.Request, body: bytes) -> None:
        if self.keys is None:
            return
        await self._verifier.verify(
            request, body, keys=self.keys, now=self.clock(), window=self.behaviour.tolerance
        )

    def _append(self, topic: str, record: dict[str, Any]) -> dict[str, Any]:
        seq = len(self.feeds[topic]) + 1
        change = {**record, "BGXH": seq}
        self.feeds[topic].append(change)
        return change

    # ------------------------------------------------------------------ what happens

    def register_entity(
        self,
        uscc: str,
        name: str,
        *,
        legal_rep: str = "张伟",
        type_code: str = "1100",
        status: str = "1",
        address: str = "杭州市上城区解放路1号",
        region: str = "330102",
        established: str = "20180301",
    ) -> dict[str, Any]:
        """A new registration (设立登记); returns the change as the feed sends it."""
        record = {
            "TYSHXYDM": uscc,
            "QYMC": name,
            "FDDBR": legal_rep,
            "SCZTLX": type_code,
            "DJZT": status,
            "ZS": address,
            "XZQHDM": region,
            "CLRQ": established,
            "DJJG": "杭州市上城区市场监督管理局",
            "BGSJ": self._now(),
        }
        self.entities[uscc] = record
        return self._append("ztxx", record)

    def change_entity(self, uscc: str, **changes: str) -> dict[str, Any]:
        """A change (变更登记 / 吊销 / 注销): platform field names, e.g. ``QYMC=...``,
        ``DJZT="4"``. Returns the change as the feed sends it."""
        current = self.entities[uscc]
        unknown = set(changes) - set(current)
        if unknown:
            raise ValueError(f"unknown platform fields {sorted(unknown)}")
        record = {**current, **changes, "BGSJ": self._now()}
        self.entities[uscc] = record
        return self._append("ztxx", record)

    def issue_task(
        self,
        task_no: str,
        *,
        objects: list[str],
        inspectors: list[tuple[str, str]],
        department: str,
        department_code: str,
        region: str = "330102",
        items: tuple[str, ...] = ("营业执照（登记证）规范使用情况的检查", "年度报告公示信息的检查"),
        plan_no: str = "JH2026001",
        plan_name: str = "2026年度上城区市场监管领域部门联合双随机抽查计划",
        deadline: str = "20261231",
    ) -> dict[str, Any]:
        """Issue a 双随机 task to ``department`` over registered ``objects`` (USCCs) with the
        drawn ``inspectors`` (name, 执法证号)."""
        record = {
            "RWBH": task_no,
            "JHBH": plan_no,
            "JHMC": plan_name,
            "SSBM": department,
            "SSBMDM": department_code,
            "XZQHDM": region,
            "CCSX": "|".join(items),
            "JCDX": [
                {
                    "TYSHXYDM": u,
                    "QYMC": self.entities[u]["QYMC"],
                    "ZS": self.entities[u]["ZS"],
                }
                for u in objects
            ],
            "ZFRY": [{"XM": n, "ZFZH": c} for n, c in inspectors],
            "XFSJ": self._now(),
            "WCQX": deadline,
        }
        self.tasks[task_no] = record
        return self._append("sjrw", record)

    def list_abnormal(
        self,
        entry_id: str,
        uscc: str,
        *,
        reason: str = "01",
        decided: str = "20260701",
        decision_no: str = "杭上市监异〔2026〕1号",
        authority: str = "杭州市上城区市场监督管理局",
        authority_code: str | None = None,
    ) -> dict[str, Any]:
        """列入经营异常名录."""
        record = {
            "YCMLBH": entry_id,
            "TYSHXYDM": uscc,
            "QYMC": self.entities[uscc]["QYMC"],
            "CZLX": "LR",
            "LRYY": reason,
            "YYSM": ABNORMAL_REASON_CODES[reason],
            "JDRQ": decided,
            "LRRQ": decided,
            "JDSWH": decision_no,
            "JDJG": authority,
            "JDJGDM": authority_code or "",
            "BGSJ": self._now(),
        }
        self.abnormal[entry_id] = record
        return self._append("jyyc", record)

    def remove_abnormal(
        self,
        entry_id: str,
        *,
        decided: str = "20260801",
        decision_no: str = "杭上市监移〔2026〕1号",
        reason_text: str = "已补报年度报告并公示",
    ) -> dict[str, Any]:
        """移出经营异常名录 (the same 名录记录编号, a newer change)."""
        current = self.abnormal[entry_id]
        record = {
            **current,
            "CZLX": "YC",
            "YYSM": reason_text,
            "JDRQ": decided,
            "JDSWH": decision_no,
            "BGSJ": self._now(),
        }
        self.abnormal[entry_id] = record
        return self._append("jyyc", record)

    # ------------------------------------------------------------------ feeds

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        topic = request.match_info["topic"]
        if topic not in self.feeds:
            return self._error(404, "SC4040", f"未知主题 {topic}", field="topic")
        try:
            cursor = int(request.query.get("cursor", "0") or 0)
            size = int(request.query.get("pageSize", "100"))
        except ValueError:
            return self._error(400, "SC4002", "cursor/pageSize 必须是整数", field="cursor")
        if cursor < 0 or not 1 <= size <= self.behaviour.max_page:
            return self._error(
                400, "SC4002", f"pageSize 须在 1..{self.behaviour.max_page}", field="pageSize"
            )
        changes = self.feeds[topic]
        page = changes[cursor : cursor + size]  # BGXH n is changes[n - 1]
        nxt = page[-1]["BGXH"] if page else cursor
        data: dict[str, Any] = {"records": page, "nextCursor": nxt, "hasMore": nxt < len(changes)}
        doc = {"code": "00000", "msg": "成功", "data": data}
        b = self.behaviour
        if b.malformed_next > 0:  # a broken page, signed as sent (the bug is upstream)
            b.malformed_next -= 1
            body = orjson.dumps(doc)
            return self._signed_bytes(body[: len(body) // 2])
        if b.take("wrong_shape_next"):
            data["records"] = {"error": "内部错误"}
        tamper = b.bad_signature_next > 0
        if tamper:
            b.bad_signature_next -= 1
        return self._signed(doc, tamper=tamper)

    # ------------------------------------------------------------------ results

    def _check_result(self, rec: Any) -> tuple[str, str, str] | None:
        """(code, field, message) of the first rule ``rec`` breaks, or None."""
        if not isinstance(rec, dict):
            return ("SC4002", "records", "记录必须是对象")
        for name in RESULT_REQUIRED:
            if rec.get(name) in (None, "", []):
                return ("SC4001", name, f"必填项缺失: {name}")
        task = self.tasks.get(str(rec["RWBH"]))
        if task is None:
            return ("SC4041", "RWBH", f"任务不存在: {rec['RWBH']}")
        if rec["DXTYSHXYDM"] not in {o["TYSHXYDM"] for o in task["JCDX"]}:
            return ("SC4031", "DXTYSHXYDM", "检查对象不属于该任务")
        if rec["JCJG"] not in RESULT_CODES:
            return ("SC4002", "JCJG", f"检查结果代码无效: {rec['JCJG']}")
        if not _DAY.match(str(rec["JCRQ"])):
            return ("SC4002", "JCRQ", "JCRQ 格式须为 yyyyMMdd")
        if str(rec["JCRQ"]) < task["XFSJ"][:10].replace("-", ""):
            return ("SC4003", "JCRQ", "检查日期早于任务下发日期")
        if not isinstance(rec["ZFRY"], list) or len(rec["ZFRY"]) < 2:
            return ("SC4003", "ZFRY", "执法检查人员不少于两人")
        return None

    async def _results(self, request: web.Request) -> web.StreamResponse:
        try:
            doc = orjson.loads(await request.read())
            records = doc["records"]
            if not isinstance(records, list):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return self._error(400, "SC4000", '请求体须为 {"records": [...]}', field="records")
        if len(records) > self.behaviour.max_batch:
            return self._error(
                413, "SC4130", f"单批最多 {self.behaviour.max_batch} 条", field="records"
            )
        out: list[dict[str, Any]] = []
        for rec in records:
            rid = str(rec.get("JLBS", "")) if isinstance(rec, dict) else ""
            if rid and rid in self.results:  # re-sent: its first receipt
                out.append({"JLBS": rid, "ZT": "1", "HZBH": self.results[rid]["receipt"]})
                continue
            problem = self._check_result(rec)
            if problem is not None:
                code, fname, msg = problem
                self.rejected.append((rid, code, fname))
                out.append({"JLBS": rid, "ZT": "0", "CWDM": code, "CWZD": fname, "CWXX": msg})
                continue
            self._receipts += 1
            receipt = f"SCHZ{self._receipts:010d}"
            self.results[rid] = {"data": rec, "receipt": receipt}
            out.append({"JLBS": rid, "ZT": "1", "HZBH": receipt})
        tamper = self.behaviour.bad_result_signature_next > 0
        if tamper:
            self.behaviour.bad_result_signature_next -= 1
        return self._signed(
            {"code": "00000", "msg": "成功", "data": {"results": out}}, tamper=tamper
        )
