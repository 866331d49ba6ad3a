"""A simulated national 互联网+监管 system: a real aiohttp server on 127.0.0.1 that behaves
like a strict national endpoint, so the connector is tested against something that refuses.

It speaks its own schema (pinyin field abbreviations such as ``sxbm`` 事项编码, ``jcsj``
检查时间, not our canonical names), and:

* **requires signatures**: every request must carry an RFC 9421 signature
  (:func:`security.httpsig.verify_request`) by a key of ``keys`` (the province's public key),
  with a fresh nonce; otherwise 401 ``GJ4010``;
* **catalog** (监管事项目录清单): ``POST /gjjk/v1/catalog/items`` takes one versioned update
  (``bbh`` version, ``jbbbh`` the version it builds on, ``bglx`` 1 新增 / 2 变更 / 3 废止) and
  refuses with 409 ``GJ4090`` and ``dqbbh`` (its current version) unless ``jbbbh`` is current;
  ``GET /gjjk/v1/catalog/items[/{sxbm}]`` reads its view; ``POST /gjjk/v1/catalog/resync``
  replaces items wholesale (a full resync);
* **监管行为 batches**: ``POST /gjjk/v1/behaviour/{jcxw|xzcf|xtjg}`` takes up to
  ``max_batch`` records ``{"records": [{"jlid": id, "sj": {...}}]}`` and answers per record:
  accepted with a receipt id (``hzbh``), or rejected with a national code (``GJ4001`` missing,
  ``GJ4002`` format, ``GJ4003`` logic) and the field;
* **rate limits and faults on demand** (:class:`NationalBehaviour`): 429 with ``Retry-After``,
  503, a hung request (timeout), an applied update whose reply is lost (500), records accepted
  with a receipt and then lost (for reconciliation);
* **issuing** (下发): :meth:`NationalSimulator.issue` adds a risk warning (风险预警), clue
  (投诉举报) or task (联合惩戒 / 协同监管任务) to a feed read with ``GET /gjjk/v1/issued?cursor=``
  and acknowledged with ``POST /gjjk/v1/issued/ack``; with ``push_url`` set it is also pushed,
  signed with the nation's own key, to the province's webhook; feedback on an issued item
  arrives on ``POST /gjjk/v1/issued/{xfbh}/feedback``;
* **reconciliation** (对账): ``GET /gjjk/v1/reconcile?date=`` returns the count and digest per
  dataset for a day, ``GET /gjjk/v1/reconcile/{dataset}?date=`` the record ids and digests.

Everything it accepted is kept in attributes so tests can compare.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from hub.errors import HubError
from hub.peers import ThrottledFaults, bound_port
from hub.peers.signing import AnswerMemory, RequestVerifier, post_signed
from hub.specs import Signer
from security.signing import KeyResolver

__all__ = [
    "BEHAVIOUR_SCHEMAS",
    "CATALOG_REQUIRED",
    "ISSUED_KINDS",
    "NationalBehaviour",
    "NationalSimulator",
    "day_digest",
    "record_digest",
]

#: Required fields of a national catalog update.
CATALOG_REQUIRED = (
    "sxbm", "bbh", "jbbbh", "bglx", "sxrq", "xzqh", "jgbm", "jgbmdm", "zxmc", "zixmc",
    "jgfs", "jgcs", "jgdx", "sdyj", "jglc", "jgjg", "jgcj",
)  # fmt: skip

#: National 监管行为 datasets: required fields and the field that names the record's day.
BEHAVIOUR_SCHEMAS: dict[str, dict[str, Any]] = {
    "jcxw": {  # 行政检查行为
        "required": (
            "jcxwbh", "sxbm", "jcssqdbm", "jcxwmc", "jgdx", "xdrmc", "xdrxz", "zjlx", "xdrbm",
            "xzqh", "jcxs", "jclb", "jcjg", "jcsj", "jcry", "bssj",
        ),
        "day": "jcsj",
    },
    "xzcf": {  # 行政处罚
        "required": (
            "cfjdswh", "sxbm", "xzqh", "xdrmc", "xdrlb", "wfxwlx", "wfss", "cfyj", "cflb",
            "cfnr", "cfjdrq", "cfyxq", "cfjg", "cfjgdm", "sjly", "sjlydm",
        ),
        "day": "cfjdrq",
    },
    "xtjg": {  # 协同监管过程和结果
        "required": (
            "xtrwbh", "hjxh", "jd", "sxmc", "sxbm", "xzqh", "bsbm", "bsbmdm", "xtbm", "hjnr",
            "fssj",
        ),
        "day": "fssj",
    },
}  # fmt: skip

#: Kinds of issued items (下发数据): 风险预警, 投诉举报线索, 联合惩戒任务, 协同监管任务.
ISSUED_KINDS = ("FXYJ", "TSJB", "LHCJ", "XTRW")

_REGION = re.compile(r"^[1-9]\d{5}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def record_digest(data: Any) -> str:
    """SHA-256 (hex) of a record's JSON with sorted keys: both sides of 对账 compute it."""
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def day_digest(entries: dict[str, str]) -> str:
    """The digest of one dataset's day: SHA-256 over ``record_id:record_digest`` lines in
    record-id order (``entries`` maps record id to record digest)."""
    h = hashlib.sha256()
    for rid in sorted(entries):
        h.update(f"{rid}:{entries[rid]}\n".encode())
    return h.hexdigest()


@dataclass
class NationalBehaviour(ThrottledFaults):
    """How the national side misbehaves; tests change the fields while it runs. Counters
    (``throttle``, ``fail_next`` ...) count requests down to zero. ``fail_next``: 503
    ``GJ5000``; ``throttle``: 429 ``GJ4290``."""

    #: the next N requests hang ``hang`` seconds before they are handled (client timeouts)
    timeout_next: int = 0
    hang: float = 5.0
    #: the next N applied requests are answered 500 (the reply is lost; the change stays)
    lost_replies: int = 0
    #: the next N accepted 监管行为 records get a receipt but are not kept (a loss to find)
    lose_next: int = 0
    #: most records in one batch (more: 413)
    max_batch: int = 500


@dataclass
class NationalSimulator:
    """Start with ``await sim.start()``; ``sim.base_url`` is the API root."""

    #: keys that verify the province's requests (a :class:`security.keystore.Keystore`)
    keys: KeyResolver
    #: the nation's own key: signs pushes to ``push_url``
    signer: Signer | None = None
    push_url: str | None = None
    behaviour: NationalBehaviour = field(default_factory=NationalBehaviour)
    port: int = 0
    clock: Callable[[], float] = time.time
    #: catalog view: sxbm -> {"version", "record", "status", "digest"}
    catalog: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: every catalog update applied, in order: (sxbm, bbh, bglx)
    catalog_log: list[tuple[str, int, str]] = field(default_factory=list)
    #: version conflicts answered: (sxbm, jbbbh sent, current version)
    conflicts: list[tuple[str, int, int]] = field(default_factory=list)
    #: 监管行为 kept: dataset -> jlid -> {"data", "digest", "day", "receipt"}
    behaviour_records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: records it rejected: (dataset, jlid, code, field)
    rejected: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: records accepted then lost on purpose (jlid)
    lost: list[str] = field(default_factory=list)
    issued: list[dict[str, Any]] = field(default_factory=list)
    acked: dict[str, float] = field(default_factory=dict)
    feedback: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: pushes made: (xfbh, HTTP status or None for a network error)
    pushes: list[tuple[str, int | None]] = field(default_factory=list)
    #: (clock time, method, path, status) of every request
    requests: list[tuple[float, str, str, int]] = field(default_factory=list)
    #: error codes of requests refused for their signature
    refused: list[str] = field(default_factory=list)
    #: most requests to one path handled at the same time (e.g. two nodes pulling at once)
    peak_concurrency: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._session: aiohttp.ClientSession | None = None
        self._verifier = RequestVerifier()
        self._answers = AnswerMemory()
        self._receipt_seq = 0
        self._inflight: dict[str, int] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/gjjk/v1"

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._guard])
        r = app.router
        r.add_post("/gjjk/v1/catalog/items", self._catalog_update)
        r.add_get("/gjjk/v1/catalog/items", self._catalog_list)
        r.add_get("/gjjk/v1/catalog/items/{sxbm}", self._catalog_get)
        r.add_post("/gjjk/v1/catalog/resync", self._catalog_resync)
        r.add_post("/gjjk/v1/behaviour/{dataset}", self._behaviour_batch)
        r.add_get("/gjjk/v1/issued", self._issued_feed)
        r.add_post("/gjjk/v1/issued/ack", self._issued_ack)
        r.add_post("/gjjk/v1/issued/{xfbh}/feedback", self._issued_feedback)
        r.add_get("/gjjk/v1/reconcile", self._reconcile)
        r.add_get("/gjjk/v1/reconcile/{dataset}", self._reconcile_ids)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        if self.port == 0:
            self.port = bound_port(self._site)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
        return web.json_response({"code": code, "message": message, **extra}, status=status)

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        """Faults on demand, then the signature check, then the handler."""
        b = self.behaviour
        status = 0
        path = request.path
        self._inflight[path] = self._inflight.get(path, 0) + 1
        self.peak_concurrency[path] = max(self.peak_concurrency.get(path, 0), self._inflight[path])
        try:
            if b.take("timeout_next"):
                await asyncio.sleep(b.hang)
            if b.take("throttle"):
                resp: web.StreamResponse = web.json_response(
                    {"code": "GJ4290", "message": "请求过于频繁 (rate limited)"},
                    status=429,
                    headers={"Retry-After": b.retry_after},
                )
            elif b.take("fail_next"):
                resp = self._error(503, "GJ5000", "系统繁忙 (temporarily unavailable)")
            else:
                body = await request.read()
                try:
                    await self._verify(request, body)
                except HubError as err:
                    self.refused.append(err.code)
                    resp = self._error(401, "GJ4010", f"签名无效: {err.message}", field=err.field)
                else:
                    resp = await handler(request)
            status = resp.status
            return resp
        finally:
            self._inflight[path] -= 1
            self.requests.append((self.clock(), request.method, request.path, status))

    async def _verify(self, request: web.Request, body: bytes) -> None:
        await self._verifier.verify(
            request, body, keys=self.keys, now=self.clock(), window=self.behaviour.tolerance
        )

    def _remembered(self, request: web.Request) -> web.Response | None:
        """The answer already given to this Idempotency-Key (a re-sent request)."""
        return self._answers.again(request)

    def _answer(self, request: web.Request, doc: dict[str, Any], status: int = 200) -> web.Response:
        body = orjson.dumps(doc)
        if status < 500:
            self._answers.keep(request, status, body)
        if self.behaviour.take("lost_replies"):
            return self._error(500, "GJ5001", "内部错误 (reply lost after the change was applied)")
        return web.Response(body=body, status=status, content_type="application/json")

    def _receipt(self) -> str:
        self._receipt_seq += 1
        return f"HZ{self._receipt_seq:010d}"

    # ------------------------------------------------------------------ catalog

    async def _catalog_update(self, request: web.Request) -> web.Response:
        again = self._remembered(request)
        if again is not None:
            return again
        try:
            doc = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._error(400, "GJ4000", "请求体不是 JSON")
        if not isinstance(doc, dict):
            return self._error(400, "GJ4000", "请求体必须是对象")
        for name in CATALOG_REQUIRED:
            if doc.get(name) in (None, "", []):
                return self._answer(
                    request,
                    {"code": "GJ4001", "message": f"必填项缺失: {name}", "field": name},
                    422,
                )
        code, version, base = str(doc["sxbm"]), doc["bbh"], doc["jbbbh"]
        if type(version) is not int or type(base) is not int or version <= base:
            return self._answer(
                request,
                {"code": "GJ4002", "message": "bbh 必须大于 jbbbh", "field": "bbh"},
                422,
            )
        if doc["bglx"] not in ("1", "2", "3"):
            return self._answer(
                request, {"code": "GJ4002", "message": "bglx 取值无效", "field": "bglx"}, 422
            )
        current = self.catalog.get(code)
        current_version = current["version"] if current else 0
        if base != current_version:
            self.conflicts.append((code, base, current_version))
            # a conflict is not remembered: once rebased, the same key may apply
            return self._error(
                409,
                "GJ4090",
                f"版本冲突: 事项 {code} 当前版本 {current_version}, 请求基于 {base}",
                field="jbbbh",
                dqbbh=current_version,
            )
        if (doc["bglx"] == "1") != (current is None):
            return self._answer(
                request,
                {"code": "GJ4003", "message": "新增只能用于新事项, 变更/废止只能用于已有事项",
                 "field": "bglx"},
                422,
            )  # fmt: skip
        self._apply_catalog(code, version, doc)
        return self._answer(request, {"code": "0", "hzbh": self._receipt(), "bbh": version})

    def _apply_catalog(self, code: str, version: int, doc: dict[str, Any]) -> None:
        record = {k: v for k, v in doc.items() if k != "jbbbh"}
        self.catalog[code] = {
            "version": version,
            "record": record,
            "status": "revoked" if doc.get("bglx") == "3" else "valid",
            "digest": record_digest(record),
        }
        self.catalog_log.append((code, version, str(doc.get("bglx", ""))))

    async def _catalog_list(self, request: web.Request) -> web.Response:
        items = [
            {"sxbm": code, "bbh": v["version"], "zt": v["status"], "zy": v["digest"]}
            for code, v in sorted(self.catalog.items())
        ]
        return web.json_response({"code": "0", "items": items})

    async def _catalog_get(self, request: web.Request) -> web.Response:
        code = request.match_info["sxbm"]
        item = self.catalog.get(code)
        if item is None:
            return self._error(404, "GJ4040", f"事项 {code} 不存在", field="sxbm")
        return web.json_response(
            {"code": "0", "bbh": item["version"], "zt": item["status"], "zy": item["digest"],
             "sj": item["record"]}
        )  # fmt: skip

    async def _catalog_resync(self, request: web.Request) -> web.Response:
        doc = orjson.loads(await request.read())
        results = []
        for rec in doc.get("items", []):
            missing = [n for n in CATALOG_REQUIRED if n != "jbbbh" and rec.get(n) in (None, "")]
            if missing:
                results.append({"sxbm": rec.get("sxbm"), "code": "GJ4001", "field": missing[0]})
                continue
            self._apply_catalog(str(rec["sxbm"]), int(rec["bbh"]), rec)
            results.append({"sxbm": rec["sxbm"], "code": "0"})
        return web.json_response({"code": "0", "results": results})

    # ------------------------------------------------------------------ 监管行为

    def _check_record(self, dataset: str, data: Any) -> tuple[str, str, str] | None:
        """(code, field, message) of the first national rule ``data`` breaks, or None."""
        if not isinstance(data, dict):
            return ("GJ4002", "sj", "记录必须是对象")
        schema = BEHAVIOUR_SCHEMAS[dataset]
        for name in schema["required"]:
            if data.get(name) in (None, "", []):
                return ("GJ4001", name, f"必填项缺失: {name}")
        if not _REGION.match(str(data["xzqh"])):
            return ("GJ4002", "xzqh", f"行政区划代码格式错误: {data['xzqh']!r}")
        if not _DATE.match(str(data[schema["day"]])):
            return ("GJ4002", schema["day"], "日期格式错误")
        if dataset == "jcxw" and str(data["bssj"]) <= str(data["jcsj"]):
            return ("GJ4003", "bssj", "报送时间必须晚于检查时间")
        return None

    async def _behaviour_batch(self, request: web.Request) -> web.Response:
        dataset = request.match_info["dataset"]
        if dataset not in BEHAVIOUR_SCHEMAS:
            return self._error(404, "GJ4040", f"未知数据集 {dataset}", field="dataset")
        again = self._remembered(request)
        if again is not None:
            return again
        try:
            doc = orjson.loads(await request.read())
            records = doc["records"]
            if not isinstance(records, list):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return self._error(400, "GJ4000", '请求体须为 {"records": [...]}')
        if len(records) > self.behaviour.max_batch:
            return self._error(
                413, "GJ4130", f"单批最多 {self.behaviour.max_batch} 条", field="records"
            )
        kept = self.behaviour_records.setdefault(dataset, {})
        results: list[dict[str, Any]] = []
        for entry in records:
            rid = str(entry.get("jlid", "")) if isinstance(entry, dict) else ""
            data = entry.get("sj") if isinstance(entry, dict) else None
            if not rid:
                results.append({"jlid": rid, "zt": "0", "code": "GJ4001", "field": "jlid",
                                "message": "必填项缺失: jlid"})  # fmt: skip
                continue
            if rid in kept:  # re-sent: the same receipt
                results.append({"jlid": rid, "zt": "1", "hzbh": kept[rid]["receipt"]})
                continue
            problem = self._check_record(dataset, data)
            if problem is not None:
                code, fname, message = problem
                self.rejected.append((dataset, rid, code, fname))
                results.append(
                    {"jlid": rid, "zt": "0", "code": code, "field": fname, "message": message}
                )
                continue
            receipt = self._receipt()
            if self.behaviour.take("lose_next"):
                self.lost.append(rid)
            else:
                assert isinstance(data, dict)
                kept[rid] = {
                    "data": data,
                    "digest": record_digest(data),
                    "day": str(data[BEHAVIOUR_SCHEMAS[dataset]["day"]])[:10],
                    "receipt": receipt,
                }
            results.append({"jlid": rid, "zt": "1", "hzbh": receipt})
        return self._answer(request, {"code": "0", "results": results})

    # ------------------------------------------------------------------ issuing

    async def issue(
        self,
        kind: str,
        *,
        region: str,
        catalog_code: str,
        title: str,
        content: str = "",
        level: str = "2",
        deadline: str | None = None,
    ) -> dict[str, Any]:
        """Issue an item (下发): add it to the feed and push it to ``push_url`` if set.
        ``kind`` is one of :data:`ISSUED_KINDS`. Returns the item as the nation sends it."""
        if kind not in ISSUED_KINDS:
            raise ValueError(f"kind must be one of {ISSUED_KINDS}")
        seq = len(self.issued) + 1
        issued_at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.clock()))
        item = {
            "xh": seq,
            "xfbh": f"GJXF{seq:08d}",
            "xflx": kind,
            "bt": title,
            "nr": content or title,
            "xzqh": region,
            "sxbm": catalog_code,
            "yjdj": level,
            "xfsj": issued_at,
            "clqx": deadline or "",
        }
        self.issued.append(item)
        if self.push_url is not None:
            await self.push([item])
        return item

    async def push(self, items: list[dict[str, Any]]) -> int | None:
        """POST items, signed with the nation's key, to ``push_url``; the status or None."""
        assert self._session is not None and self.push_url is not None and self.signer
        body = orjson.dumps(items)
        headers = {"Content-Type": "application/json", "Idempotency-Key": items[0]["xfbh"]}
        posted = await post_signed(self._session, self.push_url, body, headers, signer=self.signer)
        status = posted.status
        for item in items:
            self.pushes.append((item["xfbh"], status))
        return status

    async def _issued_feed(self, request: web.Request) -> web.Response:
        try:
            cursor = int(request.query.get("cursor", "0"))
            limit = min(int(request.query.get("limit", "100")), 1000)
        except ValueError:
            return self._error(400, "GJ4002", "cursor/limit 必须是整数", field="cursor")
        items = [i for i in self.issued if i["xh"] > cursor][:limit]
        nxt = items[-1]["xh"] if items else cursor
        return web.json_response({"code": "0", "items": items, "nextCursor": nxt})

    async def _issued_ack(self, request: web.Request) -> web.Response:
        doc = orjson.loads(await request.read())
        known = {i["xfbh"] for i in self.issued}
        ids = [str(x) for x in doc.get("ids", [])]
        unknown = [x for x in ids if x not in known]
        if unknown:
            return self._error(404, "GJ4040", f"下发编号不存在: {unknown[0]}", field="ids")
        for x in ids:
            self.acked.setdefault(x, self.clock())
        return web.json_response({"code": "0", "acked": len(ids)})

    async def _issued_feedback(self, request: web.Request) -> web.Response:
        ref = request.match_info["xfbh"]
        if ref not in {i["xfbh"] for i in self.issued}:
            return self._error(404, "GJ4040", f"下发编号不存在: {ref}", field="xfbh")
        again = self._remembered(request)
        if again is not None:
            return again
        doc = orjson.loads(await request.read())
        for name in ("fkdw", "cljg", "clzt", "fksj"):
            if not isinstance(doc, dict) or doc.get(name) in (None, ""):
                return self._answer(
                    request,
                    {"code": "GJ4001", "message": f"必填项缺失: {name}", "field": name},
                    422,
                )
        self.feedback.setdefault(ref, []).append(doc)
        return self._answer(request, {"code": "0", "hzbh": self._receipt()})

    # ------------------------------------------------------------------ 对账

    def day_summary(self, dataset: str, day: str) -> dict[str, str]:
        """Record id -> digest of what the nation holds for ``dataset`` on ``day``."""
        return {
            rid: r["digest"]
            for rid, r in self.behaviour_records.get(dataset, {}).items()
            if r["day"] == day
        }

    async def _reconcile(self, request: web.Request) -> web.Response:
        day = request.query.get("date", "")
        if not _DATE.fullmatch(day):
            return self._error(400, "GJ4002", "date 须为 YYYY-MM-DD", field="date")
        out = {}
        for dataset in BEHAVIOUR_SCHEMAS:
            entries = self.day_summary(dataset, day)
            out[dataset] = {"count": len(entries), "digest": day_digest(entries)}
        return web.json_response({"code": "0", "date": day, "datasets": out})

    async def _reconcile_ids(self, request: web.Request) -> web.Response:
        dataset = request.match_info["dataset"]
        day = request.query.get("date", "")
        if dataset not in BEHAVIOUR_SCHEMAS or not _DATE.fullmatch(day):
            return self._error(400, "GJ4002", "未知数据集或日期格式错误", field="date")
        entries = self.day_summary(dataset, day)
        return web.json_response(
            {"code": "0", "records": [{"jlid": k, "zy": v} for k, v in sorted(entries.items())]}
        )
