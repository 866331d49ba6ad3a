"""A simulated department WebService (SOAP 1.1 and 1.2): a real aiohttp server on 127.0.0.1.

It is the kind of service older department systems expose, in their own namespace and pinyin
element names:

* ``JsJcxx`` (接收检查信息, one record) and ``PlJsJcxx`` (批量接收, several ``jcxx`` elements)
  at ``POST /services/JcxxService``; each ``jcxx`` carries its message id in ``xxid`` (信息ID)
  and the service applies a record once per ``xxid`` (a re-sent one is answered as success);
* answers ``<JsJcxxResponse><fhdm>0</fhdm><fhxx>成功</fhxx><hzbh>HZ-...</hzbh>`` (返回代码,
  返回信息, 回执编号); the batch answer has one ``jg`` (结果) per record;
* the WSDL at ``GET /services/JcxxService?wsdl`` (a SOAP 1.1 and a 1.2 port);
* a WS-Security UsernameToken is checked when ``username`` is set (text or digest password);
* warts on demand: ``reject`` (a predicate on the record: a ``soap:Client`` fault, or
  ``fhdm=1`` in a batch), ``fail_next(n, kind)`` with kind ``server_fault`` (a
  ``soap:Server``/``env:Receiver`` fault), ``503``, ``busy`` (``fhdm=9``, 系统忙) or ``slow``
  (answers after ``slow_seconds``); a wrong SOAPAction is a client fault.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from lxml import etree

from hub.errors import HubError
from hub.peers import bound_port
from hub.transports.soap_xml import SoapAdapter, SoapAdapterOptions, build_envelope
from transforms.xmljson import parse_xml

__all__ = ["SoapService"]

NS = "http://dept-b.example.gov.cn/jcxx"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_OPS = {"JsJcxx": False, "PlJsJcxx": True}  # operation -> batch


@dataclass
class SoapService:
    """Start with ``await svc.start()``; ``svc.url`` is the endpoint, ``svc.wsdl_url`` its WSDL."""

    name: str = "dept-b"
    username: str | None = None
    password: str | None = None
    reject: Callable[[dict[str, Any]], str | None] | None = None
    slow_seconds: float = 5.0
    port: int = 0
    #: applied records by xxid, in arrival order
    received: dict[str, dict[str, Any]] = field(default_factory=dict)
    redeliveries: int = 0
    requests: int = 0
    #: (version, SOAPAction / action) of every request
    calls: list[tuple[str, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._fail: list[str] = []
        self._runner: web.AppRunner | None = None
        # The service reads requests as the hub's soap adapter does (same safe parser and
        # conventions); each operation is one adapter configuration.
        self._readers = {
            op: SoapAdapter(
                self.name,
                SoapAdapterOptions(
                    operation=op,
                    namespace=NS,
                    soap_action=f"{NS}/{op}",
                    record_element="jcxx",
                    force_list=["inspectors"],
                ),
            )
            for op in _OPS
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/JcxxService"

    @property
    def wsdl_url(self) -> str:
        return f"{self.url}?wsdl"

    def fail_next(self, n: int, kind: str = "server_fault") -> None:
        """The next ``n`` requests fail: ``server_fault``, ``503``, ``busy`` or ``slow``."""
        self._fail.extend([kind] * n)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/services/JcxxService", self._post)
        app.router.add_get("/services/JcxxService", self._wsdl)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if self.port == 0:
            self.port = bound_port(site)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---------------------------------------------------------------- handlers

    async def _wsdl(self, request: web.Request) -> web.Response:
        if "wsdl" not in {k.lower() for k in request.query}:
            return web.Response(status=405)
        # one WSDL for both operations: the single-record one plus the batch one
        base = self._readers["JsJcxx"].describe(self.url)
        batch = self._readers["PlJsJcxx"].describe(self.url)
        assert base is not None and batch is not None
        return web.Response(body=_merge_wsdl(base[0], batch[0]), content_type="text/xml")

    def _answer(self, version: str, body: dict[str, Any], status: int = 200) -> web.Response:
        ctype = "text/xml" if version == "1.1" else "application/soap+xml"
        data = build_envelope("1.1" if version == "1.1" else "1.2", body)
        return web.Response(body=data, status=status, content_type=ctype, charset="utf-8")

    def _fault(self, version: str, client: bool, message: str) -> web.Response:
        if version == "1.1":
            fault: dict[str, Any] = {
                "faultcode": "soap:Client" if client else "soap:Server",
                "faultstring": message,
            }
            return self._answer(version, {"soap:Fault": fault}, 500)
        fault = {
            "soap:Code": {"soap:Value": "soap:Sender" if client else "soap:Receiver"},
            "soap:Reason": {"soap:Text": {"@xml:lang": "zh", "#text": message}},
        }
        return self._answer(version, {"soap:Fault": fault}, 400 if client else 500)

    async def _post(self, request: web.Request) -> web.Response:
        self.requests += 1
        version = SoapAdapter.version_of(request.headers)
        body = await request.read()
        kind = self._fail.pop(0) if self._fail else None
        if kind == "503":
            return web.Response(status=503, text="<html>Service Unavailable</html>")
        if kind == "slow":
            await asyncio.sleep(self.slow_seconds)
        if kind == "server_fault":
            return self._fault(version, False, "数据库连接失败")
        try:
            root = parse_xml(body)
        except HubError as exc:
            return self._fault(version, True, f"报文无法解析: {exc}")
        op = _operation(root)
        reader = self._readers.get(op or "")
        action = reader.action_of(request.headers, version) if reader else None
        self.calls.append((version, action))
        if reader is None:
            return self._fault(version, True, f"未知操作 {op}")
        problem = self._check_security(root)
        if problem:
            return self._fault(version, True, problem)
        try:
            records = reader.decode(body, request.content_type, request.headers)
        except HubError as exc:
            return self._fault(version, True, f"{exc.code}: {exc.message}")
        results = []
        for rec in records:
            xxid = str(rec.pop("xxid", "") or "")
            if not xxid:
                return self._fault(version, True, "缺少信息ID (xxid)")
            code, text = "0", "成功"
            if xxid in self.received:
                self.redeliveries += 1
            elif kind == "busy":
                code, text = "9", "系统忙"
            else:
                reason = self.reject(rec) if self.reject is not None else None
                if reason:
                    if not _OPS[op or ""]:
                        return self._fault(version, True, reason)
                    code, text = "1", reason
                else:
                    self.received[xxid] = rec
            results.append({"xxid": xxid, "fhdm": code, "fhxx": text, "hzbh": f"HZ-{xxid}"})
        if _OPS[op or ""]:
            answer: dict[str, Any] = {"@xmlns": NS, "jg": results}
        else:
            answer = {"@xmlns": NS, **{k: v for k, v in results[0].items() if k != "xxid"}}
        return self._answer(version, {f"{op}Response": answer})

    def _check_security(self, root: etree._Element) -> str | None:
        if self.username is None:
            return None
        token = root.find(f".//{{{WSSE}}}UsernameToken")
        if token is None:
            return "缺少WS-Security用户令牌"
        user = token.findtext(f"{{{WSSE}}}Username")
        pw = token.find(f"{{{WSSE}}}Password")
        if user != self.username or pw is None or self.password is None:
            return "认证失败: 用户名"
        if (pw.get("Type") or "").endswith("#PasswordDigest"):
            nonce = base64.b64decode(token.findtext(f"{{{WSSE}}}Nonce") or "")
            created = token.findtext(f"{{{WSU}}}Created") or ""
            want = hashlib.sha1(nonce + created.encode() + self.password.encode()).digest()
            ok = pw.text == base64.b64encode(want).decode()
        else:
            ok = pw.text == self.password
        return None if ok else "认证失败: 密码"


def _operation(root: etree._Element) -> str | None:
    for body in root:
        if isinstance(body.tag, str) and etree.QName(body).localname == "Body":
            for el in body:
                if isinstance(el.tag, str):
                    return str(etree.QName(el).localname)
    return None


def _merge_wsdl(first: bytes, second: bytes) -> bytes:
    """Put the second WSDL's types, messages, port type and bindings into the first one's
    (the ports of a binding go into the first service)."""
    a = etree.fromstring(first)
    b = etree.fromstring(second)
    wsdl = "http://schemas.xmlsoap.org/wsdl/"
    schema_a = a.find(f"{{{wsdl}}}types")[0]  # type: ignore[index]
    for el in b.find(f"{{{wsdl}}}types")[0]:  # type: ignore[index]
        schema_a.append(el)
    service_a = a.find(f"{{{wsdl}}}service")
    assert service_a is not None
    for kind in ("message", "portType", "binding"):
        for el in b.findall(f"{{{wsdl}}}{kind}"):
            service_a.addprevious(el)
    service_b = b.find(f"{{{wsdl}}}service")
    assert service_b is not None
    for port in service_b:
        service_a.append(port)
    return bytes(etree.tostring(a, xml_declaration=True, encoding="utf-8"))
