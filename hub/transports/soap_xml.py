"""``soap_xml``: call a department's SOAP 1.1/1.2 WebService, and serve one (adapter ``soap``).

Many older department systems only speak WebService. Both directions live here:

* **Outbound transport** ``soap_xml``: each record (or a batch of them) becomes the configured
  operation's body element, built from the (already mapped) record with
  :func:`transforms.xmljson.dict_to_xml`; the message id travels in ``message_id_element`` so
  the service can de-duplicate (exactly-once effect). SOAP 1.1 sends ``text/xml`` and a
  ``SOAPAction`` header, SOAP 1.2 ``application/soap+xml; action=...``. An optional WS-Security
  UsernameToken (text or digest password) goes in the header. The answer is parsed safely
  (:func:`transforms.xmljson.parse_xml`): a Fault with ``Client``/``Sender`` (or
  ``VersionMismatch``/``MustUnderstand``) is permanent (dead letter), ``Server``/``Receiver``
  transient (retry); HTTP 5xx, 429 and timeouts are transient, other 4xx permanent. A result
  code and a receipt id are read from the answer with small slash paths of local names
  (``JsJcxxResponse/fhdm``). Operations described by a WSDL are configured, not coded:
  ``wsdl:`` (a file or a URL) gives the endpoint, SOAPAction, namespace, body element and
  SOAP version of the named operation.
* **Inbound adapter** ``soap``: a department posts SOAP envelopes to
  ``POST /v1/systems/{system}/records``; :meth:`SoapAdapter.decode` unwraps the configured
  operation's body into records (one, or a repeated ``record_element``), answers are SOAP
  responses and every rejection a SOAP Fault carrying the hub's stable code and field
  (``<detail><code>E_SCHEMA</code><field>...</field></detail>``). ``GET ...?wsdl`` serves the
  WSDL of the endpoint, generated from the options.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp
from lxml import etree
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from hub.errors import (
    BadRequest,
    BatchRejected,
    ConfigError,
    HubError,
    SoapActionError,
    SoapError,
    UnsupportedMediaType,
)
from hub.specs import AdapterSpec, OutboundItem, SendResult, TransportSpec
from hub.transports.http_json import classify_status, parse_retry_after
from transforms.xmljson import dict_to_xml, parse_xml, xml_to_dict

__all__ = [
    "SOAP11_ENV",
    "SOAP12_ENV",
    "Fault",
    "SoapAdapter",
    "SoapAdapterOptions",
    "SoapXmlOptions",
    "SoapXmlTransport",
    "WsdlOperation",
    "adapter_spec",
    "build_envelope",
    "parse_fault",
    "read_wsdl",
    "select",
    "spec",
    "username_token",
]

SoapVersion = Literal["1.1", "1.2"]

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
_ENV_OF: dict[SoapVersion, str] = {"1.1": SOAP11_ENV, "1.2": SOAP12_ENV}
_CTYPE_OF: dict[SoapVersion, str] = {"1.1": "text/xml", "1.2": "application/soap+xml"}
_ALL_VERSIONS: list[SoapVersion] = ["1.1", "1.2"]
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
WSDL_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_TOKEN_PROFILE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
)
PASSWORD_TEXT = f"{_TOKEN_PROFILE}#PasswordText"
PASSWORD_DIGEST = f"{_TOKEN_PROFILE}#PasswordDigest"
_BASE64 = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)
#: fault codes (local part, before any ``.subcode``) a retry cannot cure
PERMANENT_FAULTS = frozenset(
    {"Client", "Sender", "VersionMismatch", "MustUnderstand", "DataEncodingUnknown"}
)


# --------------------------------------------------------------------------- envelopes


def build_envelope(
    version: SoapVersion, body: Mapping[str, Any], header: Mapping[str, Any] | None = None
) -> bytes:
    """A SOAP envelope (prefix ``soap``) around ``body`` (xmljson conventions: one key per
    body element, ``@xmlns`` to declare its namespace)."""
    content: dict[str, Any] = {}
    if header:
        content["soap:Header"] = dict(header)
    content["soap:Body"] = dict(body)
    return dict_to_xml(content, root="soap:Envelope", nsmap={"soap": _ENV_OF[version]})


def username_token(
    username: str, password: str, *, digest: bool = False, now: datetime | None = None
) -> dict[str, Any]:
    """A WS-Security ``Security`` header element with a UsernameToken (for ``soap:Header``).

    With ``digest`` the password is sent as Base64(SHA-1(nonce + created + password)) with a
    fresh nonce and the creation time, as the UsernameToken profile 1.0 defines."""
    token: dict[str, Any] = {"wsse:Username": username}
    if digest:
        nonce = os.urandom(16)
        created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        sha = hashlib.sha1(nonce + created.encode() + password.encode()).digest()
        token["wsse:Password"] = {"@Type": PASSWORD_DIGEST, "#text": base64.b64encode(sha).decode()}
        token["wsse:Nonce"] = {"@EncodingType": _BASE64, "#text": base64.b64encode(nonce).decode()}
        token["wsu:Created"] = created
    else:
        token["wsse:Password"] = {"@Type": PASSWORD_TEXT, "#text": password}
    return {
        "wsse:Security": {
            "@xmlns:wsse": WSSE_NS,
            "@xmlns:wsu": WSU_NS,
            "@soap:mustUnderstand": "1",
            "wsse:UsernameToken": token,
        }
    }


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _children(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


def select(el: etree._Element, path: str) -> list[etree._Element | str]:
    """Elements (or attribute values, for a last ``@name`` step) at a slash path of local
    names below ``el``, namespaces ignored: ``JsJcxxResponse/fhdm``, ``*/jg``, ``jg/@id``."""
    current: list[etree._Element] = [el]
    steps = [s for s in path.strip("/").split("/") if s]
    for n, step in enumerate(steps):
        if step.startswith("@") and n == len(steps) - 1:
            name = step[1:]
            return [v for c in current for k, v in c.attrib.items() if k.rsplit("}", 1)[-1] == name]
        current = [c for p in current for c in _children(p) if step in ("*", _local(c))]
    return list(current)


def _text_at(el: etree._Element, path: str) -> str | None:
    found = select(el, path)
    if not found:
        return None
    first = found[0]
    return first if isinstance(first, str) else (first.text or "").strip()


@dataclass(frozen=True, slots=True)
class Fault:
    """A SOAP Fault: ``code`` is the local part of the fault code (``Client``, ``Receiver``);
    ``subcode`` the part after a dot (1.1) or the first Subcode value (1.2); ``detail_code`` a
    ``code`` element in the detail (the hub's own faults carry its stable code there)."""

    code: str
    message: str
    subcode: str | None = None
    detail_code: str | None = None

    @property
    def permanent(self) -> bool:
        return self.code in PERMANENT_FAULTS


def parse_fault(fault: etree._Element) -> Fault:
    """Read a SOAP 1.1 or 1.2 ``Fault`` element."""
    if etree.QName(fault).namespace == SOAP12_ENV:
        value = _text_at(fault, "Code/Value") or ""
        sub = _text_at(fault, "Code/Subcode/Value")
        reason = _text_at(fault, "Reason/Text") or ""
        detail = _text_at(fault, "Detail/code")
        return Fault(
            value.rsplit(":", 1)[-1],
            reason,
            sub.rsplit(":", 1)[-1] if sub else None,
            detail,
        )
    raw = (_text_at(fault, "faultcode") or "").rsplit(":", 1)[-1]
    code, _, sub = raw.partition(".")
    return Fault(
        code, _text_at(fault, "faultstring") or "", sub or None, _text_at(fault, "detail/code")
    )


def _envelope_body(root: etree._Element) -> etree._Element | None:
    if _local(root) != "Envelope" or etree.QName(root).namespace not in (SOAP11_ENV, SOAP12_ENV):
        return None
    for c in _children(root):
        if _local(c) == "Body":
            return c
    return None


# --------------------------------------------------------------------------- WSDL


@dataclass(frozen=True, slots=True)
class WsdlOperation:
    """What a WSDL says about one operation of one port."""

    endpoint: str
    soap_action: str
    namespace: str
    body_element: str
    version: SoapVersion


def read_wsdl(
    data: bytes,
    operation: str,
    *,
    service: str | None = None,
    port: str | None = None,
    version: SoapVersion | None = None,
) -> WsdlOperation:
    """Find ``operation`` in a WSDL 1.1 document (parsed with the safe parser): its endpoint,
    SOAPAction, body element and namespace, and the SOAP version of the port's binding.

    ``service`` / ``port`` / ``version`` pick among several ports. Raises
    :class:`hub.errors.ConfigError` naming what is missing."""
    root = parse_xml(data)
    if etree.QName(root).namespace != WSDL_NS or _local(root) != "definitions":
        raise ConfigError("not a WSDL 1.1 document (wsdl:definitions)", field="wsdl")
    tns = root.get("targetNamespace") or ""

    def named(kind: str, name: str) -> etree._Element | None:
        for el in root.iterchildren(f"{{{WSDL_NS}}}{kind}"):
            if el.get("name") == name:
                return el
        return None

    def local_ref(value: str | None) -> str:
        return (value or "").rsplit(":", 1)[-1]

    for svc in root.iterchildren(f"{{{WSDL_NS}}}service"):
        if service is not None and svc.get("name") != service:
            continue
        for p in svc.iterchildren(f"{{{WSDL_NS}}}port"):
            if port is not None and p.get("name") != port:
                continue
            binding = named("binding", local_ref(p.get("binding")))
            if binding is None:
                continue
            bver: SoapVersion | None = None
            for b in binding:
                if isinstance(b.tag, str) and _local(b) == "binding":
                    ns = etree.QName(b).namespace
                    bver = "1.1" if ns == WSDL_SOAP11 else "1.2" if ns == WSDL_SOAP12 else None
            if bver is None or (version is not None and bver != version):
                continue
            bop = next(
                (
                    o
                    for o in binding.iterchildren(f"{{{WSDL_NS}}}operation")
                    if o.get("name") == operation
                ),
                None,
            )
            if bop is None:
                continue
            action = next(
                (c.get("soapAction") or "" for c in _children(bop) if _local(c) == "operation"),
                "",
            )
            address = next(
                (c.get("location") for c in _children(p) if _local(c) == "address"), None
            )
            if not address:
                raise ConfigError(
                    f"WSDL port {p.get('name')!r} has no soap:address location",
                    field="wsdl",
                )
            ns, element = _input_element(root, binding, operation, named, local_ref)
            return WsdlOperation(address, action, ns or tns, element or operation, bver)
    where = f" in service {service!r}" if service else ""
    where += f" port {port!r}" if port else ""
    where += f" (SOAP {version})" if version else ""
    raise ConfigError(
        f"the WSDL has no SOAP port offering operation {operation!r}{where}", field="operation"
    )


def _input_element(
    root: etree._Element, binding: etree._Element, operation: str, named: Any, local_ref: Any
) -> tuple[str | None, str | None]:
    """(namespace, local name) of the operation's input body element (document/literal)."""
    ptype = named("portType", local_ref(binding.get("type")))
    if ptype is None:
        return None, None
    for op in ptype.iterchildren(f"{{{WSDL_NS}}}operation"):
        if op.get("name") != operation:
            continue
        inp = op.find(f"{{{WSDL_NS}}}input")
        msg = named("message", local_ref(inp.get("message") if inp is not None else None))
        if msg is None:
            return None, None
        part = msg.find(f"{{{WSDL_NS}}}part")
        ref = part.get("element") if part is not None else None
        if not ref:
            return None, None
        prefix, _, name = ref.rpartition(":")
        return part.nsmap.get(prefix or None) if part is not None else None, name
    return None, None


# --------------------------------------------------------------------------- outbound


class SoapXmlOptions(BaseModel):
    """Options of the ``soap_xml`` transport (the ``outbound:`` section of a system file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl | None = Field(None, description="endpoint (default: the WSDL's address)")
    wsdl: str | None = Field(None, description="WSDL file path or http(s) URL")
    service: str | None = Field(None, description="WSDL service name (if several)")
    port: str | None = Field(None, description="WSDL port name (if several)")
    operation: str = Field(min_length=1)
    body_element: str | None = Field(None, description="default: the WSDL's or the operation")
    namespace: str | None = Field(None, description="namespace of the body element")
    soap_version: SoapVersion | None = Field(None, description="default: the WSDL's, else 1.1")
    soap_action: str | None = Field(None, description="default: the WSDL's, else namespace/op")
    qualified: bool = Field(True, description="record fields in the namespace (elementForm)")
    record_element: str | None = Field(
        None, description="element wrapping one record in the body (needed for batches)"
    )
    message_id_element: str | None = Field(
        "messageId", description="element carrying the message id the service de-duplicates on"
    )
    batch_size: int = Field(1, ge=1, le=1000, description="records per call; 1 = per record")
    result_code_path: str | None = Field(None, description="path below soap:Body (or an item)")
    success_codes: list[str] = Field(default_factory=lambda: ["0"])
    transient_codes: list[str] = Field(default_factory=list, description="other codes: permanent")
    receipt_path: str | None = Field(None, description="path of the receipt id (回执编号)")
    item_path: str | None = Field(None, description="batch: path of the per-record results")
    username: str | None = Field(None, description="WS-Security UsernameToken user")
    password: str | None = Field(None, description="its password (use ${ENV_VAR})")
    password_digest: bool = Field(False, description="send PasswordDigest instead of text")
    concurrency: int = Field(4, ge=1, le=256)
    timeout: float = Field(10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    max_response_bytes: int = Field(4 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _check(self) -> SoapXmlOptions:
        if self.url is None and self.wsdl is None:
            raise ValueError("give url (with namespace) or wsdl")
        if self.wsdl is None and self.namespace is None:
            raise ValueError("without wsdl, namespace is needed")
        if self.batch_size > 1 and not self.record_element:
            raise ValueError("batch_size > 1 needs record_element (one per record)")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self


class SoapXmlTransport:
    """Calls one department WebService; one ``aiohttp.ClientSession`` per target."""

    def __init__(self, target: str, options: SoapXmlOptions) -> None:
        self.target = target
        self.options = options
        self.max_batch = options.batch_size
        self.concurrency = options.concurrency
        self._session: aiohttp.ClientSession | None = None
        self._op: WsdlOperation | None = None
        self._wsdl_lock = asyncio.Lock()
        wsdl = options.wsdl
        if wsdl is None:
            self._op = self._resolve(None)
        elif not wsdl.startswith(("http://", "https://")):
            try:
                data = Path(wsdl).read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"outbound.wsdl {wsdl!r} cannot be read: {exc.strerror}", field="outbound.wsdl"
                ) from None
            self._op = self._resolve(data)

    def _resolve(self, wsdl: bytes | None) -> WsdlOperation:
        o = self.options
        found = (
            read_wsdl(wsdl, o.operation, service=o.service, port=o.port, version=o.soap_version)
            if wsdl is not None
            else None
        )
        version: SoapVersion = o.soap_version or (found.version if found else "1.1")
        namespace = o.namespace or (found.namespace if found else "")
        return WsdlOperation(
            endpoint=str(o.url) if o.url else (found.endpoint if found else ""),
            soap_action=o.soap_action
            if o.soap_action is not None
            else (found.soap_action if found else f"{namespace.rstrip('/')}/{o.operation}"),
            namespace=namespace,
            body_element=o.body_element or (found.body_element if found else o.operation),
            version=version,
        )

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=self.options.timeout),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _operation(self) -> WsdlOperation:
        """The resolved operation; a WSDL URL is fetched on first use (and again after a
        failure), so a department that is down when the hub starts only delays delivery."""
        if self._op is not None:
            return self._op
        async with self._wsdl_lock:
            if self._op is None:
                assert self._session is not None and self.options.wsdl is not None
                async with self._session.get(self.options.wsdl) as resp:
                    if resp.status != 200:
                        raise aiohttp.ClientResponseError(
                            resp.request_info, (), status=resp.status, message="WSDL not served"
                        )
                    self._op = self._resolve(await resp.read())
            return self._op

    # ---------------------------------------------------------------- building

    def _record(self, item: OutboundItem) -> dict[str, Any]:
        body = item.body
        if not isinstance(body, Mapping):
            body = {"value": body}
        mid = self.options.message_id_element
        return {mid: item.message_id, **body} if mid else dict(body)

    def envelope(self, op: WsdlOperation, items: Sequence[OutboundItem]) -> bytes:
        """The request envelope for ``items`` (one, or a batch of record elements)."""
        o = self.options
        content: dict[str, Any]
        if o.record_element:
            records = [self._record(i) for i in items]
            content = {o.record_element: records}
        else:
            content = self._record(items[0])
        if o.qualified:
            body = {op.body_element: {"@xmlns": op.namespace, **content}}
        else:
            body = {f"m:{op.body_element}": {"@xmlns:m": op.namespace, **content}}
        header = None
        if o.username is not None and o.password is not None:
            header = username_token(o.username, o.password, digest=o.password_digest)
        return build_envelope(op.version, body, header)

    def _headers(self, op: WsdlOperation, items: Sequence[OutboundItem]) -> dict[str, str]:
        h = dict(self.options.headers)
        if op.version == "1.1":
            h["Content-Type"] = "text/xml; charset=utf-8"
            h["SOAPAction"] = f'"{op.soap_action}"'
        else:
            h["Content-Type"] = f'application/soap+xml; charset=utf-8; action="{op.soap_action}"'
        h["X-Jghub-Dataset"] = items[0].dataset
        h["X-Jghub-Attempt"] = str(items[0].attempt)
        if items[0].traceparent:
            h["traceparent"] = items[0].traceparent
        return h

    # ---------------------------------------------------------------- sending

    async def send(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        if self.max_batch == 1:
            return [r[0] for r in await asyncio.gather(*(self._call([i]) for i in items))]
        out: list[SendResult] = []
        for start in range(0, len(items), self.max_batch):
            out += await self._call(items[start : start + self.max_batch])
        return out

    async def _call(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        assert self._session is not None, "transport not started"
        t0 = time.perf_counter()

        def failed(
            detail: str, status: int | None = None, permanent: bool = False
        ) -> list[SendResult]:
            ms = (time.perf_counter() - t0) * 1000
            return [SendResult(False, status, permanent, detail[:300], latency_ms=ms)] * len(items)

        try:
            op = await self._operation()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return failed(f"WSDL {self.options.wsdl} unavailable: {type(exc).__name__}: {exc}")
        except HubError as exc:  # a WSDL that does not describe the operation
            return failed(f"WSDL {self.options.wsdl}: {exc}", permanent=True)
        try:
            data = self.envelope(op, items)
        except HubError as exc:  # a record that cannot be written as XML: no retry helps
            return failed(str(exc), permanent=True)
        try:
            async with self._session.post(
                op.endpoint, data=data, headers=self._headers(op, items)
            ) as resp:
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                text = await resp.content.read(self.options.max_response_bytes + 1)
        except TimeoutError:
            return failed(f"timeout after {self.options.timeout}s")
        except aiohttp.ClientError as exc:
            return failed(f"{type(exc).__name__}: {exc}")
        ms = (time.perf_counter() - t0) * 1000
        body: etree._Element | None = None
        try:
            body = _envelope_body(parse_xml(text, max_bytes=self.options.max_response_bytes))
        except HubError:
            body = None
        first = _children(body)[0] if body is not None and _children(body) else None
        if first is not None and _local(first) == "Fault":
            f = parse_fault(first)
            detail = f"SOAP fault {f.code}: {f.message}"
            res = SendResult(False, status, f.permanent, detail[:300], retry_after, ms)
            return [res] * len(items)
        if not 200 <= status < 300:
            _, permanent = classify_status(status)
            detail = f"HTTP {status}: {text[:200].decode('utf-8', 'replace')}"
            return [SendResult(False, status, permanent, detail[:300], retry_after, ms)] * len(
                items
            )
        if body is None:
            return failed("the answer is not a SOAP envelope", status)
        return self._results(body, status, ms, len(items))

    def _results(self, body: etree._Element, status: int, ms: float, n: int) -> list[SendResult]:
        o = self.options
        if o.item_path:
            parts = [p for p in select(body, o.item_path) if not isinstance(p, str)]
            if len(parts) != n:
                detail = f"{len(parts)} results at {o.item_path!r} for {n} records"
                return [SendResult(False, status, False, detail, latency_ms=ms)] * n
            return [self._judge(p, status, ms) for p in parts]
        return [self._judge(body, status, ms)] * n

    def _judge(self, el: etree._Element, status: int, ms: float) -> SendResult:
        o = self.options
        receipt = _text_at(el, o.receipt_path) if o.receipt_path else None
        if o.result_code_path is None:
            return SendResult(True, status, latency_ms=ms, receipt=receipt)
        code = _text_at(el, o.result_code_path)
        if code is None:
            return SendResult(
                False, status, False, f"no result code at {o.result_code_path!r}", latency_ms=ms
            )
        if code in o.success_codes:
            return SendResult(True, status, latency_ms=ms, receipt=receipt)
        message = " ".join(t.strip() for t in el.itertext() if t.strip())[:250]
        return SendResult(
            False,
            status,
            code not in o.transient_codes,
            f"result code {code}: {message}",
            latency_ms=ms,
        )


# --------------------------------------------------------------------------- inbound


class SoapAdapterOptions(BaseModel):
    """Options of the ``soap`` adapter (``adapter_options:`` of a system that calls the hub)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operation: str = Field(min_length=1, description="the operation (body element) it calls")
    namespace: str = Field(min_length=1, description="namespace of the hub's service")
    soap_action: str | None = Field(None, description="expected action; default namespace/op")
    record_element: str | None = Field(
        None, description="repeated element holding one record; none: the body element is one"
    )
    force_list: list[str] = Field(default_factory=list, description="elements always lists")
    versions: list[SoapVersion] = Field(default_factory=lambda: list(_ALL_VERSIONS), min_length=1)
    max_depth: int = Field(32, ge=4, le=256)


class SoapAdapter:
    """Turns SOAP requests into records and answers in SOAP (see the module docstring)."""

    def __init__(self, system: str, options: SoapAdapterOptions) -> None:
        self.system = system
        self.options = options
        self.action = options.soap_action or f"{options.namespace.rstrip('/')}/{options.operation}"

    # ---------------------------------------------------------------- requests

    @staticmethod
    def version_of(headers: Mapping[str, str]) -> SoapVersion:
        """SOAP 1.2 for ``application/soap+xml``, else 1.1."""
        ctype = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        return "1.2" if ctype == "application/soap+xml" else "1.1"

    @staticmethod
    def action_of(headers: Mapping[str, str], version: SoapVersion) -> str | None:
        if version == "1.1":
            raw = headers.get("SOAPAction")
            return None if raw is None else raw.strip().strip('"')
        for param in headers.get("Content-Type", "").split(";")[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "action":
                return value.strip().strip('"')
        return None

    def decode(self, body: bytes, content_type: str, headers: Mapping[str, str]) -> list[Any]:
        o = self.options
        version: SoapVersion | None = next(
            (v for v, t in _CTYPE_OF.items() if t == content_type), None
        )
        if version is None or version not in o.versions:
            accepted = ", ".join(_CTYPE_OF[v] for v in o.versions)
            raise UnsupportedMediaType(
                f"Content-Type {content_type!r} is not accepted; send {accepted}",
                field="Content-Type",
            )
        root = parse_xml(body, max_bytes=len(body) + 1, max_depth=o.max_depth)
        if _local(root) != "Envelope" or etree.QName(root).namespace != _ENV_OF[version]:
            raise SoapError(
                f"the body is not a SOAP {version} Envelope ({_ENV_OF[version]})",
                field="Envelope",
            )
        soap_body = _envelope_body(root)
        if soap_body is None:
            raise SoapError("the Envelope has no Body", field="Body")
        action = self.action_of(headers, version)
        if action and action != self.action:
            raise SoapActionError(
                f"action {action!r} is not offered here; call {self.action!r}",
                field="SOAPAction" if version == "1.1" else "action",
            )
        elements = _children(soap_body)
        if len(elements) != 1 or _local(elements[0]) != o.operation:
            got = _local(elements[0]) if elements else "nothing"
            raise SoapActionError(
                f"the Body holds {got!r}; expected one {o.operation!r} element",
                field="Body",
            )
        op = elements[0]
        if o.record_element is None:
            return [self._to_record(op)]
        parts = [c for c in _children(op) if _local(c) == o.record_element]
        if not parts:
            raise BadRequest(
                f"{o.operation} holds no {o.record_element!r} element", field=o.record_element
            )
        return [self._to_record(p) for p in parts]

    def _to_record(self, el: etree._Element) -> Any:
        """Element → record (xmljson conventions) with namespaces dropped: record fields are
        plain names whatever prefixes the caller used; ``xsi:nil="true"`` is None."""
        copy = etree.fromstring(etree.tostring(el))  # our own serialisation: already checked
        for e in copy.iter():
            if not isinstance(e.tag, str):
                continue
            if e.get(XSI_NIL) in ("true", "1"):
                del e.attrib[XSI_NIL]
                e.text = None
                for c in list(e):
                    e.remove(c)
            elif XSI_NIL in e.attrib:
                del e.attrib[XSI_NIL]
            e.tag = etree.QName(e).localname
        etree.cleanup_namespaces(copy)
        doc = xml_to_dict(
            etree.tostring(copy),
            max_depth=self.options.max_depth,
            force_list=self.options.force_list,
        )
        value = next(iter(doc.values()))
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if not k.startswith("@xmlns")}
        return {} if value is None else value

    def encode(self, record: dict[str, Any]) -> Any:
        return record

    # ---------------------------------------------------------------- answers

    def respond(
        self, result: Any, single: bool, headers: Mapping[str, str]
    ) -> tuple[bytes, str, int] | None:
        """The SOAP answer to an ingest: ``<{operation}Response>`` with the message id per
        record and the rejected ones; a Fault when every record was rejected."""
        errors = result.errors
        if errors and not result.ids:
            if single:
                return self.render_error(errors[0].error, headers)
            first = errors[0].error
            batch = BatchRejected(
                f"{len(errors)} records rejected; first: {first.message}",
                field=first.field,
                rejected=[e.to_dict() for e in errors],
            )
            return self.render_error(batch, headers)
        version = self.version_of(headers)
        dup = set(result.duplicates)
        content: dict[str, Any] = {
            "@xmlns": self.options.namespace,
            "code": "E_BATCH" if errors else "0",
            "accepted": len(result.ids),
            "result": [
                {"index": i, "id": mid, "duplicate": i in dup}
                for i, mid in zip(result.indexes, result.ids, strict=True)
            ],
        }
        if errors:
            content["rejected"] = [_rejected(e.to_dict()) for e in errors]
        data = build_envelope(version, {f"{self.options.operation}Response": content})
        return data, f"{_CTYPE_OF[version]}; charset=utf-8", 200

    def render_error(self, error: HubError, headers: Mapping[str, str]) -> tuple[bytes, str, int]:
        """A SOAP Fault for a rejection: Client/Sender for 4xx errors, Server/Receiver else;
        the detail carries the stable ``code``, the ``field`` and rejected records."""
        version = self.version_of(headers)
        client = error.status < 500
        detail: dict[str, Any] = {"code": error.code}
        if error.field is not None:
            detail["field"] = error.field
        detail["message"] = error.message
        rejected = error.extra.get("rejected")
        if isinstance(rejected, list):
            detail["rejected"] = [_rejected(r) for r in rejected if isinstance(r, dict)]
        fault: dict[str, Any]
        if version == "1.1":
            fault = {
                "faultcode": "soap:Client" if client else "soap:Server",
                "faultstring": f"{error.code}: {error.message}",
                "detail": detail,
            }
            status = 500
        else:
            fault = {
                "soap:Code": {"soap:Value": "soap:Sender" if client else "soap:Receiver"},
                "soap:Reason": {
                    "soap:Text": {"@xml:lang": "zh", "#text": f"{error.code}: {error.message}"}
                },
                "soap:Detail": detail,
            }
            status = 400 if client else 500
        data = build_envelope(version, {"soap:Fault": fault})
        return data, f"{_CTYPE_OF[version]}; charset=utf-8", status

    def describe(self, endpoint: str) -> tuple[bytes, str] | None:
        """The WSDL of this system's endpoint (document/literal, a SOAP 1.1 and a 1.2 port)."""
        o = self.options
        op = o.operation
        tns = o.namespace
        if o.record_element:
            inner: dict[str, Any] = {
                "xs:element": {
                    "@name": o.record_element,
                    "@maxOccurs": "unbounded",
                    "xs:complexType": {
                        "xs:sequence": {
                            "xs:any": {"@processContents": "lax", "@maxOccurs": "unbounded"}
                        }
                    },
                }
            }
        else:
            inner = {"xs:any": {"@processContents": "lax", "@maxOccurs": "unbounded"}}
        schema = {
            "@targetNamespace": tns,
            "@elementFormDefault": "qualified",
            "xs:element": [
                {"@name": op, "xs:complexType": {"xs:sequence": inner}},
                {
                    "@name": f"{op}Response",
                    "xs:complexType": {
                        "xs:sequence": {
                            "xs:any": {"@processContents": "lax", "@maxOccurs": "unbounded"}
                        }
                    },
                },
            ],
        }
        bindings = []
        ports = []
        for version, prefix in (("1.1", "soap"), ("1.2", "soap12")):
            if version not in o.versions:
                continue
            name = f"{op}Soap{'12' if version == '1.2' else ''}"
            bindings.append(
                {
                    "@name": name,
                    "@type": f"tns:{op}PortType",
                    f"{prefix}:binding": {
                        "@style": "document",
                        "@transport": "http://schemas.xmlsoap.org/soap/http",
                    },
                    "wsdl:operation": {
                        "@name": op,
                        f"{prefix}:operation": {"@soapAction": self.action, "@style": "document"},
                        "wsdl:input": {f"{prefix}:body": {"@use": "literal"}},
                        "wsdl:output": {f"{prefix}:body": {"@use": "literal"}},
                    },
                }
            )
            ports.append(
                {
                    "@name": name,
                    "@binding": f"tns:{name}",
                    f"{prefix}:address": {"@location": endpoint},
                }
            )
        doc = {
            "@name": f"{self.system}-records",
            "@targetNamespace": tns,
            "wsdl:types": {"xs:schema": schema},
            "wsdl:message": [
                {"@name": f"{op}In", "wsdl:part": {"@name": "parameters", "@element": f"tns:{op}"}},
                {
                    "@name": f"{op}Out",
                    "wsdl:part": {"@name": "parameters", "@element": f"tns:{op}Response"},
                },
            ],
            "wsdl:portType": {
                "@name": f"{op}PortType",
                "wsdl:operation": {
                    "@name": op,
                    "wsdl:input": {"@message": f"tns:{op}In"},
                    "wsdl:output": {"@message": f"tns:{op}Out"},
                },
            },
            "wsdl:binding": bindings,
            "wsdl:service": {"@name": f"{self.system}-service", "wsdl:port": ports},
        }
        nsmap: dict[str | None, str] = {
            "wsdl": WSDL_NS,
            "soap": WSDL_SOAP11,
            "soap12": WSDL_SOAP12,
            "xs": XSD_NS,
            "tns": tns,
        }
        return dict_to_xml(doc, root="wsdl:definitions", nsmap=nsmap), "text/xml; charset=utf-8"


def _rejected(r: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: r[k] for k in ("index", "code", "field", "detail") if r.get(k) is not None}
    return out


spec = TransportSpec(
    name="soap_xml",
    factory=lambda target, options: SoapXmlTransport(target, options),
    config_model=SoapXmlOptions,
    description="call a SOAP 1.1/1.2 operation (per record or batch, WSDL-configurable)",
)

adapter_spec = AdapterSpec(
    name="soap",
    factory=lambda system, options: SoapAdapter(system, options),
    config_model=SoapAdapterOptions,
    description="departments call the hub as a SOAP 1.1/1.2 service (WSDL at ?wsdl)",
)
