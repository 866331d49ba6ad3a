"""A simulated provincial public credit platform (公共信用信息平台 / 信用中国 node): a real
aiohttp server on 127.0.0.1 that behaves like a strict platform, so the adapter is tested
against something that refuses.

It speaks its own schema, the field names of the 双公示 templates (``XK_XDR_MC`` 行政相对人名称,
``XK_WSH`` 文书号, ``CF_WSH`` 行政处罚决定书文号, ``CF_JDRQ`` 处罚决定日期 …, dates written
``yyyy/MM/dd``, 相对人类别 as text, 证件类型 as its own codes 01–05), and:

* **requires signatures**: every POST must carry an RFC 9421 signature
  (:func:`security.httpsig.verify_request`) by a key of ``keys`` (the hub's public key) with a
  fresh nonce; otherwise 401 ``XY4010``;
* **双公示**: ``POST /xyzg/api/v1/sgs/xzxk`` (行政许可) and ``/sgs/xzcf`` (行政处罚) take one
  record each and answer ``{"code": "00000", "hzbh": receipt}`` (also as ``X-Receipt-Id``), or
  422 with its own code and the field: ``XY4001`` a required field is missing, ``XY4002`` a
  format or code is wrong (dates, 统一社会信用代码 / 身份证 check characters, code tables),
  ``XY4003`` a logic rule is broken (dates), ``XY4004`` 更正/撤销 of a record it does not hold,
  ``XY4091`` a version older than the one it holds. The same record again answers ``XY0002``
  (重复) with the first receipt; ``CZLX`` (I 新增 / U 更正 / D 撤销) and ``GXSJ`` (更新时间)
  version a record;
* **lists** (红黑名单, 严重违法失信名单, 经营异常名录): :meth:`CreditSimulator.publish` adds an
  entry to its feed (``GET /xyzg/api/v1/md/entries?page_token=`` with its bearer token,
  for a hub that pulls) and, with ``push_url`` set, pushes it signed with the platform's own
  key to the hub;
* **联合奖惩反馈**: ``POST /xyzg/api/v1/lhjc/feedback`` takes a department's feedback on a
  list entry it published (unknown entry: 422 ``XY4041``);
* **faults on demand** (:class:`CreditBehaviour`): maintenance (503 ``XY5030`` until cleared),
  the next N requests 503 or 429 with ``Retry-After``, hung requests, a delay on every request;
  a real outage with :meth:`go_down` (connection refused) and :meth:`come_up`.

Everything it accepted or refused is kept in attributes so tests can compare.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from contracts.validators import id_card_error, uscc_error
from hub.errors import HubError
from hub.peers import ClientPeer, ThrottledFaults
from hub.peers.signing import AnswerMemory, RequestVerifier, post_signed
from hub.specs import Signer
from security.signing import KeyResolver

__all__ = [
    "LICENCE_REQUIRED",
    "LIST_TYPES",
    "PENALTY_REQUIRED",
    "CreditBehaviour",
    "CreditSimulator",
]

ROOT = "/xyzg/api/v1"

#: required fields of a 行政许可 record (2021 双公示 template)
LICENCE_REQUIRED = (
    "XK_XDR_MC", "XK_XDR_LB", "XK_XKWS", "XK_WSH", "XK_XKLB", "XK_NR", "XK_JDRQ", "XK_YXQZ",
    "XK_YXQZI", "XK_XKJG", "XK_XKJGDM", "XK_ZT", "XK_LYDW", "XK_LYDWDM", "CZLX", "GXSJ",
)  # fmt: skip

#: required fields of a 行政处罚 record
PENALTY_REQUIRED = (
    "CF_XDR_MC", "CF_XDR_LB", "CF_WSH", "CF_WFXW", "CF_SY", "CF_YJ", "CF_CFLB", "CF_NR",
    "CF_JDRQ", "CF_YXQ", "CF_CFJG", "CF_CFJGDM", "CF_SJLY", "CF_SJLYDM", "CZLX", "GXSJ",
)  # fmt: skip

_FEEDBACK_REQUIRED = ("FKBH", "MDBH", "ZTMC", "CSLX", "CSNR", "FKBM", "FKBMDM", "SSRQ")

#: the platform's 名单类型 codes
LIST_TYPES = ("HONGMD", "HEIMD", "YZSX", "JYYC")
_CATEGORIES = ("法人及非法人组织", "自然人", "个体工商户")
_CERT_TYPES = ("01", "02", "03", "04", "05")
_LICENCE_TYPES = ("01", "02", "03", "04", "05", "06")
_PENALTY_TYPES = frozenset(
    (
        "警告", "通报批评", "罚款", "没收违法所得", "没收非法财物", "暂扣许可证件",
        "降低资质等级", "吊销许可证件", "限制开展生产经营活动", "责令停产停业", "责令关闭",
        "限制从业", "行政拘留", "其他",
    )
)  # fmt: skip
_DAY = re.compile(r"^\d{4}/\d{2}/\d{2}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")

_KINDS: dict[str, dict[str, Any]] = {
    "xzxk": {
        "required": LICENCE_REQUIRED,
        "key": "XK_WSH",
        "p": "XK_",
        "days": ("XK_JDRQ", "XK_YXQZ", "XK_YXQZI"),
        "codes": ("XK_XKJGDM", "XK_LYDWDM"),
    },
    "xzcf": {
        "required": PENALTY_REQUIRED,
        "key": "CF_WSH",
        "p": "CF_",
        "days": ("CF_JDRQ", "CF_YXQ"),
        "codes": ("CF_CFJGDM", "CF_SJLYDM"),
    },
}


@dataclass
class CreditBehaviour(ThrottledFaults):
    """How the platform misbehaves; tests change the fields while it runs. Counters count
    requests down to zero. ``fail_next``: 503 ``XY5000``; ``throttle``: 429 ``XY4290``."""

    #: every request answered 503 XY5030 until set back to False (维护中)
    maintenance: bool = False
    #: the next N requests hang ``hang`` seconds first (client timeouts)
    timeout_next: int = 0
    hang: float = 5.0
    #: seconds every request waits before it is handled (a slow platform)
    delay: float = 0.0


@dataclass
class CreditSimulator(ClientPeer):
    """Start with ``await sim.start()``; ``sim.base_url`` is the API root. ``go_down()`` /
    ``come_up()`` (:class:`hub.peers.PeerServer`) make it vanish (connection refused) and come
    back on the same port."""

    #: keys that verify the hub's requests (a :class:`security.keystore.Keystore`)
    keys: KeyResolver
    #: the platform's own key: signs pushes to ``push_url``
    signer: Signer | None = None
    push_url: str | None = None
    #: bearer token it presents with its pushes (the hub's token for the credit system)
    push_token: str | None = None
    #: bearer token of the list feed (GET), for a hub that pulls
    feed_token: str = "credit-feed-token"
    behaviour: CreditBehaviour = field(default_factory=CreditBehaviour)
    port: int = 0
    clock: Callable[[], float] = time.time
    #: what it holds: kind (xzxk / xzcf) -> 文书号 -> {"record", "version", "op", "receipt"}
    disclosures: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"xzxk": {}, "xzcf": {}}
    )
    #: every accepted version in order: (kind, 文书号, CZLX, GXSJ)
    disclosure_log: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: refused records: (kind, key, code, field)
    rejected: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: list entries published, in feed order
    entries: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    #: pushes made: (MDBH, HTTP status or None for a network error)
    pushes: list[tuple[str, int | None]] = field(default_factory=list)
    #: (clock time, method, path, status) of every request
    requests: list[tuple[float, str, str, int]] = field(default_factory=list)
    #: error codes of requests refused for their signature
    refused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.down = False
        self._verifier = RequestVerifier()
        self._answers = AnswerMemory()
        self._seq = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{ROOT}"

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=[self._guard])
        r = app.router
        r.add_post(ROOT + "/sgs/{kind}", self._disclose)
        r.add_post(ROOT + "/lhjc/feedback", self._feedback)
        r.add_get(ROOT + "/md/entries", self._feed)
        return app

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
        return web.json_response({"code": code, "message": message, **extra}, status=status)

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        """Faults on demand, then the credentials (signature or feed token), then the handler."""
        b = self.behaviour
        status = 0
        try:
            if b.delay > 0:
                await asyncio.sleep(b.delay)
            if b.take("timeout_next"):
                await asyncio.sleep(b.hang)
            resp: web.StreamResponse
            if b.maintenance:
                resp = self._error(503, "XY5030", "平台维护中 (platform down for maintenance)")
            elif b.take("fail_next"):
                resp = self._error(503, "XY5000", "系统繁忙 (temporarily unavailable)")
            elif b.take("throttle"):
                resp = web.json_response(
                    {"code": "XY4290", "message": "请求过于频繁"},
                    status=429,
                    headers={"Retry-After": b.retry_after},
                )
            elif request.method == "GET":
                given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                if given != self.feed_token:
                    resp = self._error(401, "XY4011", "令牌无效 (bad feed token)")
                else:
                    resp = await handler(request)
            else:
                body = await request.read()
                try:
                    await self._verify(request, body)
                except HubError as err:
                    self.refused.append(err.code)
                    resp = self._error(401, "XY4010", f"签名无效: {err.message}", field=err.field)
                else:
                    resp = await handler(request)
            status = resp.status
            return resp
        finally:
            self.requests.append((self.clock(), request.method, request.path, status))

    async def _verify(self, request: web.Request, body: bytes) -> None:
        await self._verifier.verify(
            request, body, keys=self.keys, now=self.clock(), window=self.behaviour.tolerance
        )

    def _remembered(self, request: web.Request) -> web.Response | None:
        return self._answers.again(request)

    def _answer(self, request: web.Request, doc: dict[str, Any], status: int = 200) -> web.Response:
        body = orjson.dumps(doc)
        if status < 300:  # a refused request changed nothing: a re-send is judged again
            self._answers.keep(request, status, body)
        headers = {"X-Receipt-Id": str(doc["hzbh"])} if doc.get("hzbh") else None
        return web.Response(
            body=body, status=status, content_type="application/json", headers=headers
        )

    def _receipt(self) -> str:
        self._seq += 1
        return f"XYHZ{self._seq:010d}"

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            doc = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._error(400, "XY4000", "请求体不是 JSON", field="(body)")
        if not isinstance(doc, dict):
            return self._error(400, "XY4000", "请求体必须是 JSON 对象", field="(body)")
        return doc

    # ------------------------------------------------------------------ 双公示

    def _check(self, kind: str, rec: dict[str, Any]) -> tuple[str, str, str] | None:
        """(code, field, message) of the first rule ``rec`` breaks, or None."""
        k = _KINDS[kind]
        p = k["p"]
        for name in k["required"]:
            if rec.get(name) in (None, "", []):
                return ("XY4001", name, f"必填项缺失: {name}")
        for name in k["days"]:
            if not _DAY.match(str(rec[name])):
                return ("XY4002", name, f"日期格式须为 yyyy/MM/dd: {rec[name]!r}")
        if not _TIME.match(str(rec["GXSJ"])):
            return ("XY4002", "GXSJ", "更新时间格式须为 yyyy-MM-dd HH:mm:ss")
        if rec["CZLX"] not in ("I", "U", "D"):
            return ("XY4002", "CZLX", f"操作类型须为 I/U/D: {rec['CZLX']!r}")
        if rec[f"{p}XDR_LB"] not in _CATEGORIES:
            return ("XY4002", f"{p}XDR_LB", f"相对人类别不在代码表中: {rec[f'{p}XDR_LB']!r}")
        for name in (*k["codes"], f"{p}XDR_SHXYM"):
            value = rec.get(name)
            if value not in (None, "") and uscc_error(str(value)) is not None:
                return ("XY4002", name, f"统一社会信用代码校验失败: {uscc_error(str(value))}")
        category, uscc = rec[f"{p}XDR_LB"], rec.get(f"{p}XDR_SHXYM")
        # an organisation needs its USCC; an 个体工商户 its USCC or its 工商注册号
        if (
            category != "自然人"
            and not uscc
            and (category == "法人及非法人组织" or not rec.get(f"{p}XDR_GSZC"))
        ):
            return ("XY4001", f"{p}XDR_SHXYM", "法人及非法人组织须填统一社会信用代码")
        for t, n in ((f"{p}XDR_ZJLX", f"{p}XDR_ZJHM"), (f"{p}FR_ZJLX", f"{p}FR_ZJHM")):
            if rec.get(t) not in (None, "") and rec[t] not in _CERT_TYPES:
                return ("XY4002", t, f"证件类型不在代码表中: {rec[t]!r}")
            if rec.get(t) == "01" and id_card_error(str(rec.get(n, ""))) is not None:
                return ("XY4002", n, f"身份证号码校验失败: {id_card_error(str(rec.get(n, '')))}")
        if rec[f"{p}XDR_LB"] == "自然人" and not rec.get(f"{p}XDR_ZJHM"):
            return ("XY4001", f"{p}XDR_ZJHM", "自然人须填证件号码")
        if kind == "xzxk":
            if rec["XK_XKLB"] not in _LICENCE_TYPES:
                return ("XY4002", "XK_XKLB", f"许可类别不在代码表中: {rec['XK_XKLB']!r}")
            if str(rec["XK_YXQZI"]) < str(rec["XK_YXQZ"]):
                return ("XY4003", "XK_YXQZI", "有效期至早于有效期自")
        else:
            parts = [x for x in str(rec["CF_CFLB"]).split(";") if x]
            if not parts or any(x not in _PENALTY_TYPES for x in parts):
                return ("XY4002", "CF_CFLB", f"处罚类别不在代码表中: {rec['CF_CFLB']!r}")
            if str(rec["CF_YXQ"]) < str(rec["CF_JDRQ"]):
                return ("XY4003", "CF_YXQ", "处罚有效期早于处罚决定日期")
        return None

    async def _disclose(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in _KINDS:
            return self._error(404, "XY4040", f"未知资源 {kind}", field="kind")
        again = self._remembered(request)
        if again is not None:
            return again
        rec = await self._body(request)
        if isinstance(rec, web.Response):
            return rec
        key = str(rec.get(_KINDS[kind]["key"]) or "")
        problem = self._check(kind, rec)
        held = self.disclosures[kind].get(key)
        if problem is None:
            if rec["CZLX"] in ("U", "D") and held is None:
                problem = ("XY4004", "CZLX", f"更正/撤销的记录不存在: {key}")
            elif held is not None and str(rec["GXSJ"]) < held["version"]:
                problem = ("XY4091", "GXSJ", f"版本过旧: 已有 {held['version']}")
        if problem is not None:
            code, fname, message = problem
            self.rejected.append((kind, key, code, fname))
            return self._answer(request, {"code": code, "field": fname, "message": message}, 422)
        assert held is None or isinstance(held, dict)
        if held is not None and held["record"] == rec:
            return self._answer(
                request, {"code": "XY0002", "message": "重复上报", "hzbh": held["receipt"]}
            )
        receipt = self._receipt()
        self.disclosures[kind][key] = {
            "record": rec,
            "version": str(rec["GXSJ"]),
            "op": rec["CZLX"],
            "receipt": receipt,
        }
        self.disclosure_log.append((kind, key, str(rec["CZLX"]), str(rec["GXSJ"])))
        return self._answer(request, {"code": "00000", "message": "成功", "hzbh": receipt})

    # ------------------------------------------------------------------ lists

    async def publish(
        self,
        *,
        list_type: str,
        name: str,
        uscc: str = "",
        id_no: str = "",
        category: str = "法人及非法人组织",
        reason: str = "",
        basis: str = "",
        decided_by: str = "省信用办",
        decided_by_code: str = "",
        listed_on: str = "",
        valid_until: str = "",
        measures: list[str] | None = None,
        entry_id: str | None = None,
        remove: bool = False,
    ) -> dict[str, Any]:
        """Publish a list entry (列入; ``entry_id`` or a new 名单记录编号), or with ``remove``
        the removal (移出) of entry ``entry_id``; add it to the feed and push it to
        ``push_url`` if set. Returns it as the platform sends it."""
        if remove and not entry_id:
            raise ValueError("remove needs the entry_id of the entry to remove")
        if list_type not in LIST_TYPES:
            raise ValueError(f"list_type must be one of {LIST_TYPES}")
        now = dt.datetime.fromtimestamp(self.clock(), dt.timezone(dt.timedelta(hours=8)))
        seq = len(self.entries) + 1
        today = now.strftime("%Y/%m/%d")
        entry: dict[str, Any] = {
            "XH": seq,
            "MDBH": entry_id or f"MD{now:%Y%m%d}{seq:06d}",
            "MDLX": list_type,
            "CZ": "YC" if remove else "LR",
            "ZTMC": name,
            "ZTLB": category,
            "TYSHXYDM": uscc,
            "SFZH": id_no,
            "LRSY": reason or ("移出" if remove else "列入"),
            "RDYJ": basis or "《失信行为纠正后的信用信息修复管理办法》",
            "RDBM": decided_by,
            "RDBMDM": decided_by_code,
            "LRRQ": listed_on or today,
            "YXQZ": valid_until,
            "YCRQ": today if remove else "",
            "CJCS": measures or [],
            "GXSJ": now.strftime("%Y-%m-%d %H:%M:%S"),
        }
        self.entries.append(entry)
        if self.push_url is not None:
            await self.push([entry])
        return entry

    async def push(self, entries: list[dict[str, Any]]) -> int | None:
        """POST entries, signed with the platform's key, to ``push_url``; the status or None."""
        assert self._session is not None and self.push_url is not None and self.signer
        body = orjson.dumps(entries)
        key = f"{entries[0]['MDBH']}#{entries[0]['XH']}"  # one key per published version
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if self.push_token:
            headers["Authorization"] = f"Bearer {self.push_token}"
        posted = await post_signed(self._session, self.push_url, body, headers, signer=self.signer)
        status = posted.status
        for e in entries:
            self.pushes.append((e["MDBH"], status))
        return status

    async def _feed(self, request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("page_token") or "0")
            limit = min(int(request.query.get("limit", "100")), 1000)
        except ValueError:
            return self._error(400, "XY4002", "page_token/limit 须为整数", field="page_token")
        items = [e for e in self.entries if e["XH"] > after][:limit]
        nxt = str(items[-1]["XH"]) if items else str(after)
        return web.json_response({"code": "00000", "data": items, "next_page_token": nxt})

    # ------------------------------------------------------------------ 联合奖惩反馈

    async def _feedback(self, request: web.Request) -> web.Response:
        again = self._remembered(request)
        if again is not None:
            return again
        doc = await self._body(request)
        if isinstance(doc, web.Response):
            return doc
        problem: tuple[str, str, str] | None = None
        for name in _FEEDBACK_REQUIRED:
            if doc.get(name) in (None, ""):
                problem = ("XY4001", name, f"必填项缺失: {name}")
                break
        if problem is None and doc["MDBH"] not in {e["MDBH"] for e in self.entries}:
            problem = ("XY4041", "MDBH", f"名单记录不存在: {doc['MDBH']}")
        if problem is None and doc["CSLX"] not in ("JL", "CJ"):
            problem = ("XY4002", "CSLX", f"措施类型须为 JL/CJ: {doc['CSLX']!r}")
        if problem is None and not (doc.get("TYSHXYDM") or doc.get("SFZH")):
            problem = ("XY4001", "TYSHXYDM", "主体代码缺失 (TYSHXYDM 或 SFZH)")
        if problem is not None:
            code, fname, message = problem
            self.rejected.append(("lhjc", str(doc.get("FKBH", "")), code, fname))
            return self._answer(request, {"code": code, "field": fname, "message": message}, 422)
        if any(f["FKBH"] == doc["FKBH"] for f in self.feedback):
            first = next(f for f in self.feedback if f["FKBH"] == doc["FKBH"])
            return self._answer(
                request, {"code": "XY0002", "message": "重复上报", "hzbh": first["_hzbh"]}
            )
        receipt = self._receipt()
        self.feedback.append({**doc, "_hzbh": receipt})
        return self._answer(request, {"code": "00000", "message": "成功", "hzbh": receipt})
