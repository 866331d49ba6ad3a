"""A simulated public resource trading platform (公共资源交易平台): a real aiohttp server on
127.0.0.1 that behaves like the platform, so the adapter is tested against something with its
own schema, signatures, errors and bad days.

* **Its own schema**: XML documents in namespace ``jy`` (``xsd/jy.xsd``) with attachment
  references in ``fj`` (``xsd/fj.xsd``), pinyin element names: 交易项目 ``JYXM``, 招标公告
  ``ZBGG``, 开标记录 ``KBJL``, 中标结果 ``ZBJG``. :func:`project_document` and its siblings
  build them; every document it publishes validates against its own XSD first.
* **Pushes, signed**: :meth:`TradingPlatform.publish` POSTs a document to the hub
  (``push_url?dataset=...``, ``Content-Type: application/xml``, ``Idempotency-Key`` = 文件编号
  ``wjbh``) with an RFC 9421 signature by the platform's key (:func:`security.httpsig.
  sign_request`). A push that fails (hub down, 5xx, timeout) stays in its outbox and is sent
  again, with the same key, by :meth:`TradingPlatform.flush`: like the real platform, it
  never drops a document the hub did not acknowledge.
* **Serves, and checks who asks**: ``GET /ggzy/v1/wj`` (its document feed, ``?cursor=``),
  ``GET /ggzy/v1/wj/{wjbh}`` (one document) and ``GET /ggzy/v1/fj/{fjid}`` (an attachment's
  bytes) require an RFC 9421 signature by a key it knows (the hub's, a department's) with a
  fresh nonce; answers carry a detached signature of the body in ``X-JY-Signature``.
* **Its own error codes**, as an XML ``CWXX`` (错误信息) document: ``JY4010`` unsigned or bad
  signature, ``JY4011`` replayed nonce, ``JY4040`` unknown document or attachment, ``JY4290``
  throttled (``Retry-After``), ``JY5030`` 系统维护 (503).
* **Bad days on demand** (:class:`PlatformBehaviour`): slow answers, 503s, throttling,
  ``go_down()``/``come_up()`` (the listener closes); and :func:`hostile_document` makes the
  malformed and hostile documents a real sender might produce (XXE, entity bombs, XInclude,
  wrong namespace, a USCC with a wrong check character, an attachment without checksum ...).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web
from lxml import etree

from adapters.trading.documents import NS_FJ, NS_JY, validate_document
from contracts.samples import make_uscc
from contracts.validators import USCC_ALPHABET
from hub.errors import HubError
from hub.peers import ClientPeer, ThrottledFaults
from hub.peers.signing import RequestVerifier, post_signed, signed_response
from hub.specs import Signer
from security.signing import KeyResolver
from transforms.xmljson import dict_to_xml, parse_xml

__all__ = [
    "HOSTILE_KINDS",
    "PROJECT_TYPES",
    "PlatformBehaviour",
    "Push",
    "TradingPlatform",
    "announcement_document",
    "award_document",
    "bid_opening_document",
    "hostile_document",
    "project_document",
]

#: the platform's 项目类型 codes -> their Chinese names
PROJECT_TYPES = {
    "GC": "工程建设",
    "CG": "政府采购",
    "TD": "土地使用权",
    "CQ": "国有产权",
    "KY": "矿业权",
    "QT": "其他",
}
_NSMAP: dict[str | None, str] = {"jy": NS_JY, "fj": NS_FJ}
#: root element -> the dataset the hub is told (``?dataset=``)
_DATASET_OF = {
    "JYXM": "trading_project",
    "ZBGG": "trading_announcement",
    "KBJL": "trading_bid_opening",
    "ZBJG": "trading_award",
}
_REGION = "330106"  # 杭州市西湖区


def _party(prefix: str, n: int, name: str) -> dict[str, Any]:
    return {"jy:MC": name, "jy:TYDM": make_uscc(prefix, _REGION, n)}


def _document(root: str, wjbh: str, content: dict[str, Any], bbh: int | None) -> bytes:
    body: dict[str, Any] = {"@wjbh": wjbh}
    if bbh is not None:
        body["@bbh"] = str(bbh)
    body.update(content)
    raw = dict_to_xml(body, root=f"jy:{root}", nsmap=_NSMAP)
    # one element a line, as the platform writes them (errors then name useful lines)
    tree = parse_xml(raw)
    return bytes(etree.tostring(tree, pretty_print=True, xml_declaration=True, encoding="utf-8"))


def _attachments(refs: list[dict[str, Any]]) -> dict[str, Any]:
    items = [
        {
            "fj:MC": r["name"],
            "fj:URI": r["uri"],
            "fj:SHA256": r["sha256"],
            "fj:DX": str(r["size"]),
            **({"fj:LX": r["media_type"]} if r.get("media_type") else {}),
        }
        for r in refs
    ]
    return {"jy:FJLB": {"fj:FJ": items} if items else None}


def project_code(i: int) -> str:
    """项目编号 of project ``i``."""
    return f"JY-330106-2024-{i:04d}"


def project_document(
    i: int,
    xmlx: str = "GC",
    *,
    attachments: list[dict[str, Any]] | None = None,
    bbh: int | None = None,
) -> bytes:
    """交易项目 ``i`` (a valid document)."""
    content: dict[str, Any] = {
        "jy:XMBH": project_code(i),
        "jy:XMMC": f"西湖区{PROJECT_TYPES[xmlx]}项目{i:04d}",
        "jy:XMLX": xmlx,
        "jy:ZBR": _party("11", 500 + i, f"杭州市西湖区招标单位{i:04d}"),
        "jy:ZBDL": _party("91", 700 + i, "浙江某招标代理有限公司"),
        "jy:XZQH": _REGION,
        "jy:YSJE": str(Decimal(1200 + i) + Decimal("0.5")),
        "jy:DJSJ": "2024-05-06T09:00:00+08:00",
        **_attachments(attachments or []),
    }
    return _document("JYXM", f"WJ-XM-{i:06d}-{bbh or 1}", content, bbh)


def announcement_document(
    i: int, xmlx: str = "GC", *, attachments: list[dict[str, Any]] | None = None
) -> bytes:
    """招标公告 of project ``i``."""
    content: dict[str, Any] = {
        "jy:GGBH": f"GG-330106-2024-{i:04d}",
        "jy:XMBH": project_code(i),
        "jy:XMLX": xmlx,
        "jy:GGBT": f"西湖区{PROJECT_TYPES[xmlx]}项目{i:04d}招标公告",
        "jy:GGNR": "招标范围：施工总承包；资格要求：具有相应资质的独立法人。",
        "jy:FBSJ": "2024-05-08T10:00:00+08:00",
        "jy:TBJZSJ": "2024-05-28T09:30:00+08:00",
        "jy:KBSJ": "2024-05-28T09:30:00+08:00",
        **_attachments(attachments or []),
    }
    return _document("ZBGG", f"WJ-GG-{i:06d}", content, None)


def bidders(i: int, n: int = 3) -> list[dict[str, Any]]:
    """The bidders of project ``i`` (platform elements)."""
    return [
        {
            "jy:MC": f"浙江投标企业{i:04d}-{k}有限公司",
            "jy:TYDM": make_uscc("91", _REGION, 9000 + 10 * i + k),
            "jy:TBBJ": str(Decimal(1100 + i) + Decimal(k) * Decimal("12.25")),
            "jy:GQ": str(180 + k * 10),
        }
        for k in range(n)
    ]


def bid_opening_document(
    i: int,
    xmlx: str = "GC",
    *,
    n_bidders: int = 3,
    attachments: list[dict[str, Any]] | None = None,
) -> bytes:
    """开标记录 of project ``i``."""
    content: dict[str, Any] = {
        "jy:KBJLBH": f"KB-330106-2024-{i:04d}",
        "jy:XMBH": project_code(i),
        "jy:XMLX": xmlx,
        "jy:BDBH": f"BD-{i:04d}-01",
        "jy:KBSJ": "2024-05-28T09:30:00+08:00",
        "jy:KBDD": "杭州市公共资源交易中心第3开标室",
        "jy:TBRLB": {"jy:TBR": bidders(i, n_bidders)},
        **_attachments(attachments or []),
    }
    return _document("KBJL", f"WJ-KB-{i:06d}", content, None)


def award_document(
    i: int,
    xmlx: str = "GC",
    *,
    gslx: str = "2",
    attachments: list[dict[str, Any]] | None = None,
    bbh: int | None = None,
) -> bytes:
    """中标结果 (``gslx`` 2) or 中标候选人公示 (1) of project ``i``; the winner is bidder 0."""
    bs = bidders(i)
    content: dict[str, Any] = {
        "jy:JGBH": f"JG-330106-2024-{i:04d}",
        "jy:XMBH": project_code(i),
        "jy:XMMC": f"西湖区{PROJECT_TYPES[xmlx]}项目{i:04d}",
        "jy:XMLX": xmlx,
        "jy:GSLX": gslx,
        "jy:ZBR": _party("11", 500 + i, f"杭州市西湖区招标单位{i:04d}"),
        "jy:ZBDW": {"jy:MC": bs[0]["jy:MC"], "jy:TYDM": bs[0]["jy:TYDM"]},
        "jy:ZBJE": bs[0]["jy:TBBJ"],
        "jy:ZBRQ": "2024-06-03",
        "jy:XZQH": _REGION,
        "jy:GSQSRQ": "2024-05-30",
        "jy:GSJZRQ": "2024-06-02",
        "jy:HXRLB": {
            "jy:HXR": [
                {
                    "jy:PM": str(k + 1),
                    "jy:MC": b["jy:MC"],
                    "jy:TYDM": b["jy:TYDM"],
                    "jy:TBBJ": b["jy:TBBJ"],
                }
                for k, b in enumerate(bs)
            ]
        },
        **_attachments(attachments or []),
    }
    return _document("ZBJG", f"WJ-JG-{i:06d}-{bbh or 1}", content, bbh)


# --------------------------------------------------------------------------- hostile documents

#: what :func:`hostile_document` can make, and the hub code each must be refused with
HOSTILE_KINDS = {
    "xxe": "E_XML_UNSAFE",  # an external entity reading a local file
    "billion_laughs": "E_XML_UNSAFE",  # nested entity expansion
    "xinclude": "E_XML_UNSAFE",  # an XInclude pulling in a file
    "malformed": "E_XML",  # not well-formed (a tag left open)
    "wrong_namespace": "E_XML_NAMESPACE",  # the right elements in another namespace
    "no_namespace": "E_XML_NAMESPACE",  # no namespace at all
    "bad_element": "E_XSD",  # an element the XSD does not allow
    "missing_checksum": "E_XSD",  # an attachment without its SHA-256
    "bad_checksum_format": "E_XSD",  # an attachment whose SHA-256 is not 64 hex digits
    "bad_uscc": "E_SCHEMA",  # a USCC of the right shape whose check character is wrong
    "too_deep": "E_TOO_DEEP",  # nesting beyond the limit
}


def _bad_check_char(uscc: str) -> str:
    """The same USCC with another (wrong) check character."""
    a = USCC_ALPHABET
    return uscc[:17] + a[(a.index(uscc[17]) + 1) % len(a)]


def hostile_document(kind: str, i: int = 1) -> bytes:
    """A malformed or hostile award document (``kind`` from :data:`HOSTILE_KINDS`)."""
    good = award_document(i, attachments=[_sample_ref()])
    # its own 文件编号, so it never collides with the valid document of the same project
    text = good.decode().replace(f'wjbh="WJ-JG-{i:06d}-1"', f'wjbh="WJ-BAD-{kind}-{i}"', 1)
    decl = "<?xml version='1.0' encoding='utf-8'?>"
    body = text[len(decl) :].lstrip() if text.startswith(decl) else text
    if kind == "xxe":
        return (
            f'{decl}\n<!DOCTYPE jy:ZBJG [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
            + body.replace("<jy:XMMC>", "<jy:XMMC>&xxe;", 1)
        ).encode()
    if kind == "billion_laughs":
        ents = '<!ENTITY a0 "ha">' + "".join(
            f'<!ENTITY a{n} "{f"&a{n - 1};" * 10}">' for n in range(1, 10)
        )
        return (
            f"{decl}\n<!DOCTYPE jy:ZBJG [{ents}]>\n" + body.replace("<jy:XMMC>", "<jy:XMMC>&a9;", 1)
        ).encode()
    if kind == "xinclude":
        inc = '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"/>'
        return text.replace("</jy:ZBJG>", inc + "</jy:ZBJG>").encode()
    if kind == "malformed":
        return text.replace("</jy:ZBJG>", "").encode()
    if kind == "wrong_namespace":
        return text.replace(NS_JY, "http://ggzy.example.gov.cn/schema/jy/0.9").encode()
    if kind == "no_namespace":
        return _no_namespace(text)
    if kind == "bad_element":
        return text.replace("<jy:ZBRQ>", "<jy:BZ>备注</jy:BZ><jy:ZBRQ>", 1).encode()
    if kind == "missing_checksum":
        start = text.index("<fj:SHA256>")
        end = text.index("</fj:SHA256>") + len("</fj:SHA256>")
        return (text[:start] + text[end:]).encode()
    if kind == "bad_checksum_format":
        start = text.index("<fj:SHA256>") + len("<fj:SHA256>")
        return (text[:start] + "md5:" + text[start + 4 :]).encode()
    if kind == "bad_uscc":
        winner = bidders(i)[0]["jy:TYDM"]
        return text.replace(winner, _bad_check_char(winner)).encode()
    if kind == "too_deep":
        deep = "<jy:GGNR>" * 80 + "</jy:GGNR>" * 80
        return text.replace("</jy:ZBJG>", deep + "</jy:ZBJG>").encode()
    raise ValueError(f"unknown hostile document kind {kind!r}; known: {', '.join(HOSTILE_KINDS)}")


def _no_namespace(text: str) -> bytes:
    out = text.replace(f' xmlns:jy="{NS_JY}"', "").replace("<jy:", "<").replace("</jy:", "</")
    return out.encode()


def _sample_ref() -> dict[str, Any]:
    content = b"%PDF-1.4 sample attachment\n"
    return {
        "name": "中标通知书.pdf",
        "uri": "http://127.0.0.1:9/ggzy/v1/fj/sample",
        "sha256": hashlib.sha256(content).hexdigest(),
        "size": len(content),
        "media_type": "application/pdf",
    }


# --------------------------------------------------------------------------- the platform


@dataclass
class PlatformBehaviour(ThrottledFaults):
    """How the platform misbehaves on its own endpoints; tests change the fields while it runs.
    Counters count requests down to zero. ``fail_next``: 503 ``JY5030`` (系统维护); ``throttle``:
    429 ``JY4290``."""

    #: seconds added to every answer (a slow platform)
    latency: float = 0.0


@dataclass
class Push:
    """One attempt to push a document to the hub."""

    wjbh: str
    dataset: str
    status: int | None
    answer: Any = None
    error: str = ""


@dataclass
class TradingPlatform(ClientPeer):
    """Start with ``await platform.start()``; ``platform.base_url`` is its API root."""

    #: the platform's own key: signs its pushes and its answers
    signer: Signer | None = None
    #: keys that verify who reads its documents and attachments (the hub, departments)
    keys: KeyResolver | None = None
    #: the hub's records endpoint for this platform (``.../v1/systems/trading/records``)
    push_url: str | None = None
    #: bearer token for the hub, if the hub requires one
    token: str | None = None
    behaviour: PlatformBehaviour = field(default_factory=PlatformBehaviour)
    port: int = 0
    clock: Callable[[], float] = time.time
    timeout: float = 5.0
    #: every document published, in order: wjbh -> (dataset, bytes)
    documents: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    #: documents not yet acknowledged by the hub, in order
    outbox: list[str] = field(default_factory=list)
    #: the hub's message id per acknowledged document
    acknowledged: dict[str, str] = field(default_factory=dict)
    #: documents the hub refused: wjbh -> the hub's error codes
    refused_by_hub: dict[str, list[str]] = field(default_factory=dict)
    pushes: list[Push] = field(default_factory=list)
    #: attachments it serves: id -> (bytes, media type)
    attachments: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    #: (method, path, status, key id or None) of every request to it
    requests: list[tuple[str, str, int, str | None]] = field(default_factory=list)
    #: its own error codes answered to requests it refused
    refusals: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._verifier = RequestVerifier()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ggzy/v1"

    @property
    def client_timeout(self) -> float:  # type: ignore[override]
        """Seconds one push may take (:attr:`timeout`)."""
        return self.timeout

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/ggzy/v1/wj", self._feed)
        app.router.add_get("/ggzy/v1/wj/{wjbh}", self._document)
        app.router.add_get("/ggzy/v1/fj/{fjid}", self._attachment)
        return app

    # ------------------------------------------------------------------ attachments

    def add_attachment(
        self, fjid: str, content: bytes, name: str, media_type: str = "application/pdf"
    ) -> dict[str, Any]:
        """Serve ``content`` at ``/ggzy/v1/fj/{fjid}``; return its reference (name, uri,
        sha256, size, media_type) for a document."""
        self.attachments[fjid] = (content, media_type)
        return {
            "name": name,
            "uri": f"{self.base_url}/fj/{fjid}",
            "sha256": hashlib.sha256(content).hexdigest(),
            "size": len(content),
            "media_type": media_type,
        }

    # ------------------------------------------------------------------ pushing

    async def publish(self, document: bytes, *, check: bool = True) -> Push:
        """Publish one document: keep it, put it in the outbox and push it to the hub.
        ``check=False`` skips its own XSD check (to send malformed documents on purpose)."""
        wjbh, dataset = _identify(document, check)
        self.documents[wjbh] = (dataset, document)
        if wjbh not in self.outbox and wjbh not in self.acknowledged:
            self.outbox.append(wjbh)
        return await self._push(wjbh)

    async def flush(self) -> int:
        """Push again every document the hub has not acknowledged (same Idempotency-Key);
        return how many are still waiting."""
        for wjbh in list(self.outbox):
            await self._push(wjbh)
        return len(self.outbox)

    async def _push(self, wjbh: str) -> Push:
        if self.push_url is None:
            raise RuntimeError("push_url is not set")
        dataset, body = self.documents[wjbh]
        url = f"{self.push_url}?dataset={dataset}"
        headers = {"Content-Type": "application/xml", "Idempotency-Key": wjbh}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        posted = await post_signed(
            self.client(), url, body, headers, signer=self.signer, created=self.clock()
        )
        if posted.error is not None:
            exc = posted.error
            push = Push(wjbh, dataset, None, error=f"{type(exc).__name__}: {exc}")
        else:
            text = posted.body
            try:
                answer = orjson.loads(text) if text else None
            except orjson.JSONDecodeError:
                answer = text.decode("utf-8", "replace")
            push = Push(wjbh, dataset, posted.status, answer)
        self.pushes.append(push)
        self._settle(push)
        return push

    def _settle(self, push: Push) -> None:
        """A 2xx or a 4xx is final (acknowledged or refused with reasons); anything else
        leaves the document in the outbox."""
        status = push.status
        if status is None or status >= 500 or status in (408, 429):
            return
        if push.wjbh in self.outbox:
            self.outbox.remove(push.wjbh)
        answer = push.answer if isinstance(push.answer, dict) else {}
        ids = answer.get("ids") or []
        if 200 <= status < 300 and ids:
            self.acknowledged[push.wjbh] = str(ids[0])
        codes = [str(r.get("code")) for r in answer.get("rejected") or [] if isinstance(r, dict)]
        if not (200 <= status < 300 and ids):
            codes = codes or [str(answer.get("code") or status)]
            self.refused_by_hub[push.wjbh] = codes

    # ------------------------------------------------------------------ serving

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        b = self.behaviour
        if b.latency:
            await asyncio.sleep(b.latency)
        key_id: str | None = None
        if b.take("fail_next"):
            resp = self._error(503, "JY5030", "系统维护中，请稍后再试")
        elif b.take("throttle"):
            resp = self._error(429, "JY4290", "请求过于频繁")
            resp.headers["Retry-After"] = b.retry_after
        else:
            key_id, resp_or_none = await self._check_signature(request)
            resp = resp_or_none if resp_or_none is not None else await handler(request)
        self.requests.append((request.method, request.path, resp.status, key_id))
        return resp

    async def _check_signature(
        self, request: web.Request
    ) -> tuple[str | None, web.Response | None]:
        if self.keys is None:
            return None, self._error(401, "JY4010", "平台未配置可信密钥")
        body = await request.read()
        url = f"http://127.0.0.1:{self.port}{request.path_qs}"
        window = self.behaviour.tolerance
        try:
            sig = self._verifier.check_signature(
                request, body, keys=self.keys, now=self.clock(), window=window, url=url
            )
        except HubError as exc:
            return None, self._error(401, "JY4010", f"签名验证失败: {exc.message}")
        try:
            await self._verifier.check_nonce(sig, window)
        except HubError as exc:
            return sig.key_id, self._error(401, "JY4011", f"重复请求: {exc.message}")
        return sig.key_id, None

    def _signed(self, body: bytes, content_type: str, status: int = 200) -> web.Response:
        return signed_response(
            body,
            signer=self.signer,
            header="X-JY-Signature",
            created=self.clock(),
            status=status,
            content_type=content_type,
        )

    def _error(self, status: int, code: str, message: str) -> web.Response:
        self.refusals.append(code)
        doc = dict_to_xml(
            {"jy:CWDM": code, "jy:CWMS": message}, root="jy:CWXX", nsmap={"jy": NS_JY}
        )
        return self._signed(doc, "application/xml", status)

    async def _feed(self, request: web.Request) -> web.Response:
        try:
            cursor = int(request.query.get("cursor", "0"))
            limit = min(int(request.query.get("limit", "50")), 500)
        except ValueError:
            return self._error(400, "JY4000", "cursor 或 limit 不是整数")
        ids = list(self.documents)[cursor : cursor + limit]
        items = [{"jy:WJBH": w, "jy:SJJ": self.documents[w][0]} for w in ids]
        doc = dict_to_xml(
            {"jy:XYGB": str(cursor + len(ids)), "jy:WJ": items},
            root="jy:WJLB",
            nsmap={"jy": NS_JY},
        )
        return self._signed(doc, "application/xml")

    async def _document(self, request: web.Request) -> web.Response:
        found = self.documents.get(request.match_info["wjbh"])
        if found is None:
            return self._error(404, "JY4040", "文件不存在")
        return self._signed(found[1], "application/xml")

    async def _attachment(self, request: web.Request) -> web.Response:
        found = self.attachments.get(request.match_info["fjid"])
        if found is None:
            return self._error(404, "JY4040", "附件不存在")
        return self._signed(found[0], found[1])


def _identify(document: bytes, check: bool) -> tuple[str, str]:
    """(wjbh, dataset) of a document; with ``check`` it must pass the platform's own XSD."""
    if check:
        root = parse_xml(document)
        validate_document(root, origin="platform document")
        return str(root.get("wjbh")), _DATASET_OF[str(root.tag).rsplit("}", 1)[-1]]
    # a malformed document on purpose: find what can be found, without trusting it
    text = document.decode("utf-8", "replace")
    wjbh = "bad-" + hashlib.sha256(document).hexdigest()[:16]
    marker = 'wjbh="'
    if marker in text:
        start = text.index(marker) + len(marker)
        wjbh = text[start : text.index('"', start)] or wjbh
    dataset = next((ds for root, ds in _DATASET_OF.items() if f"{root} " in text), "trading_award")
    return wjbh, dataset
