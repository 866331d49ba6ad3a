"""``http_json``: POST JSON to a target URL, one record per request or in batches.

Per-record mode posts the record itself with the message id as ``Idempotency-Key`` (targets
de-duplicate on it, which makes at-least-once delivery exactly-once in effect). Batch mode posts
``{"records": [{"idempotency_key", "dataset", "data"}, ...]}``; a 2xx answer acknowledges all,
unless its JSON carries ``"results": [{"ok": bool, "status": int, "error": str}, ...]`` with one
entry per record, which is then honoured record by record.

Status classification: 2xx delivered; 408, 425, 429 and 5xx transient (``Retry-After`` kept);
other 4xx permanent (dead letter at once); network errors and timeouts transient.

Two HTTP clients can send (``client:``): aiohttp's, in the event loop, and reqwest's (Rust,
through ``pyreqwest``), whose connections, HTTP framing and timers run on its own thread outside
the GIL — about half the event loop's CPU per request, which a per-record target at thousands of
records a second feels. ``auto`` (the default) takes reqwest for targets without a ``tls:``
section: reqwest *adds* a private CA to the system's roots rather than trusting it alone, so a
target with its own CA or mutual TLS keeps aiohttp with its exact SSL context.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from hub.specs import OutboundItem, SendResult, Signer, TransportSpec
from hub.transports import SignsWithHubKey

__all__ = [
    "HttpJsonOptions",
    "HttpJsonTransport",
    "classify_status",
    "parse_retry_after",
    "post_once",
    "spec",
]

TRANSIENT_4XX = frozenset({408, 425, 429})


def _check_tls(v: dict[str, Any] | None) -> dict[str, Any] | None:
    if v is not None:
        from security.tls import TlsClientSettings

        TlsClientSettings.model_validate(v)  # a wrong key or type fails at config load
    return v


class HttpJsonOptions(BaseModel):
    """Options of the ``http_json`` transport (the ``outbound:`` section of a system file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl
    batch_size: int = Field(1, ge=1, le=10_000, description="records per request; 1 = per record")
    concurrency: int = Field(8, ge=1, le=512, description="requests in flight to this target")
    timeout: float = Field(10.0, gt=0, description="seconds for one request, connect included")
    headers: dict[str, str] = Field(default_factory=dict, description="static extra headers")
    token: str | None = Field(None, description="bearer token for the target (use ${ENV_VAR})")
    sign: bool = Field(
        False,
        description="sign every request (RFC 9421 + Content-Digest) with the hub's own key "
        "from the keys: section",
    )
    tls: dict[str, Any] | None = Field(
        None,
        description="ca, cert, key, passphrase_env, check_hostname: trusted CAs of the "
        "target's certificate and our client certificate (mutual TLS); paths relative to the "
        "working directory",
    )

    client: Literal["auto", "aiohttp", "reqwest"] = Field(
        "auto",
        description="the HTTP client: aiohttp (in the event loop) or reqwest (pyreqwest: "
        "connections on its own thread, less CPU per request); auto = reqwest unless a tls: "
        "section is set",
    )

    _tls_valid = field_validator("tls")(_check_tls)

    def engine(self) -> Literal["aiohttp", "reqwest"]:
        """The client that sends: ``auto`` resolved (reqwest only when pyreqwest imports)."""
        if self.client != "auto":
            return self.client
        if self.tls is not None:
            return "aiohttp"
        try:
            import pyreqwest.client  # noqa: F401
        except ImportError:  # pragma: no cover - a dependency; absent only in odd installs
            return "aiohttp"
        return "reqwest"

    @field_validator("client")
    @classmethod
    def _reqwest_without_tls(cls, v: str, info: ValidationInfo) -> str:
        if v == "reqwest" and info.data.get("tls") is not None:  # (tls is validated before)
            raise ValueError(
                "client: reqwest cannot take a tls: section (it would trust the CA in addition "
                "to the system's roots); use client: aiohttp or auto"
            )
        return v


def _sign(url: str, headers: dict[str, str], body: bytes, signer: Signer | None) -> None:
    """Sign the request last (RFC 9421 over the final headers: ``@method``,
    ``@target-uri``, ``Content-Digest``) when there is a signer."""
    if signer is not None:
        from security.httpsig import sign_request

        sign_request("POST", url, headers, body, signer=signer)


def _answered(
    t0: float,
    status: int,
    text: bytes,
    json_body: bool,
    retry_after: str | None,
    receipt: str | None,
) -> tuple[SendResult, Any]:
    """The :class:`SendResult` of an answer (either client) and its JSON when a 2xx carried
    some (``json_body``: its content type is ``application/json``)."""
    ms = (time.perf_counter() - t0) * 1000
    ok, permanent = classify_status(status)
    detail = "" if ok else text[:300].decode("utf-8", "replace")
    parsed: Any = None
    if ok and text and json_body:
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
    return (
        SendResult(ok, status, permanent, detail, parse_retry_after(retry_after), ms, receipt),
        parsed,
    )


def _unanswered(t0: float, detail: str) -> tuple[SendResult, None]:
    """A request without an answer (timeout, network error): transient."""
    ms = (time.perf_counter() - t0) * 1000
    return SendResult(False, None, False, detail[:300], latency_ms=ms), None


async def post_once(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    signer: Signer | None = None,
) -> tuple[SendResult, Any]:
    """POST one body and classify the answer (shared by the HTTP transports): a
    :class:`SendResult` (``X-Receipt-Id`` as receipt, ``Retry-After`` kept) and the answer's
    JSON when a 2xx carried some. With ``signer`` the request is signed last (RFC 9421 over
    the final headers: ``@method``, ``@target-uri``, ``Content-Digest``). Never raises for
    the target's errors: network errors and timeouts are transient results."""
    _sign(url, headers, body, signer)
    t0 = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            text = await resp.read()
            return _answered(
                t0,
                resp.status,
                text,
                resp.content_type == "application/json",
                resp.headers.get("Retry-After"),
                resp.headers.get("X-Receipt-Id"),
            )
    except TimeoutError:
        return _unanswered(t0, f"timeout after {timeout}s")
    except aiohttp.ClientError as exc:
        return _unanswered(t0, f"{type(exc).__name__}: {exc}")


class ReqwestPoster:
    """:func:`post_once` on a ``pyreqwest`` client: the same classification and results.

    reqwest keeps the connections (``max_connections`` requests in flight, keep-alive) and the
    total ``timeout`` on its own Tokio thread; the event loop only hands over the request and
    gets the answer. Environment proxies are ignored, as aiohttp does by default."""

    def __init__(self, concurrency: int, timeout: float) -> None:
        from pyreqwest.client import ClientBuilder
        from pyreqwest.exceptions import RequestError, RequestTimeoutError

        self._errors = (RequestTimeoutError, RequestError)  # (imported once, not per request)
        self.timeout = timeout
        self.client = (
            ClientBuilder()
            .max_connections(concurrency)
            .timeout(dt.timedelta(seconds=timeout))
            .no_proxy()
            .build()
        )

    async def close(self) -> None:
        await self.client.close()

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], *, signer: Signer | None = None
    ) -> tuple[SendResult, Any]:
        RequestTimeoutError, RequestError = self._errors
        _sign(url, headers, body, signer)
        t0 = time.perf_counter()
        try:
            # build(): the answer's body is read in full before send() returns
            resp = await self.client.post(url).headers(headers).body_bytes(body).build().send()
            text = bytes(await resp.bytes())
        except RequestTimeoutError:
            return _unanswered(t0, f"timeout after {self.timeout}s")
        except RequestError as exc:
            return _unanswered(t0, f"{type(exc).__name__}: {exc}")
        ctype = resp.get_header("content-type") or ""
        return _answered(
            t0,
            resp.status,
            text,
            ctype.split(";", 1)[0].strip().lower() == "application/json",
            resp.get_header("retry-after"),
            resp.get_header("x-receipt-id"),
        )


def classify_status(status: int) -> tuple[bool, bool]:
    """Return (ok, permanent) for an HTTP status."""
    if 200 <= status < 300:
        return True, False
    if status in TRANSIENT_4XX or status >= 500:
        return False, False
    return False, 400 <= status < 500


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit() and len(value) < 12:
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class HttpJsonTransport(SignsWithHubKey):
    """One HTTP client per target (an ``aiohttp.ClientSession`` or a :class:`ReqwestPoster`,
    by ``options.engine()``), opened in :meth:`start`."""

    #: ``OutboundItem.body`` may be an ``orjson.Fragment`` (stored JSON sent as it is).
    accepts_raw_json = True

    def __init__(self, target: str, options: HttpJsonOptions) -> None:
        self.target = target
        self.options = options
        self.url = str(options.url)
        self.max_batch = options.batch_size
        self.concurrency = options.concurrency
        self._session: aiohttp.ClientSession | None = None
        self._reqwest: ReqwestPoster | None = None
        self._static = {"Content-Type": "application/json", **options.headers}
        if options.token:
            self._static["Authorization"] = f"Bearer {options.token}"

    async def start(self) -> None:
        if self.options.engine() == "reqwest":
            self._reqwest = ReqwestPoster(self.concurrency, self.options.timeout)
            return
        ssl_context = None
        if self.options.tls is not None:
            from security.tls import TlsClientSettings, client_context

            ssl_context = client_context(TlsClientSettings.model_validate(self.options.tls))
        connector = aiohttp.TCPConnector(
            limit=self.concurrency, ttl_dns_cache=300, ssl=ssl_context if ssl_context else True
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.options.timeout),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._reqwest is not None:
            await self._reqwest.close()
            self._reqwest = None

    async def send(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        if self.max_batch == 1:
            if len(items) == 1:  # the dispatcher's per-record unit: no task to gather
                return [await self._send_one(items[0])]
            return list(await asyncio.gather(*(self._send_one(i) for i in items)))
        return await self._send_batch(items)

    def _headers(self, item: OutboundItem) -> dict[str, str]:
        h = dict(self._static)
        h["Idempotency-Key"] = item.message_id
        h["X-Jghub-Dataset"] = item.dataset
        h["X-Jghub-Attempt"] = str(item.attempt)
        if item.traceparent:
            h["traceparent"] = item.traceparent
        h.update(item.headers)
        return h

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[SendResult, Any]:
        return await self.post_to(self.url, body, headers)

    async def post_to(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[SendResult, Any]:
        """POST ``body`` to ``url`` with this target's client (signed when ``sign: true``)."""
        signer = self._signer() if self._signer is not None else None
        if self._reqwest is not None:
            return await self._reqwest.post(url, body, headers, signer=signer)
        assert self._session is not None, "transport not started"
        return await post_once(
            self._session, url, body, headers, timeout=self.options.timeout, signer=signer
        )

    async def _send_one(self, item: OutboundItem) -> SendResult:
        res, _ = await self._post(orjson.dumps(item.body), self._headers(item))
        return res

    async def _send_batch(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        body = orjson.dumps(
            {
                "records": [
                    {"idempotency_key": i.message_id, "dataset": i.dataset, "data": i.body}
                    for i in items
                ]
            }
        )
        headers = dict(self._static)
        headers["Idempotency-Key"] = items[0].message_id + f"+{len(items) - 1}"
        if items[0].traceparent:
            headers["traceparent"] = items[0].traceparent
        res, parsed = await self._post(body, headers)
        per_item = parsed.get("results") if isinstance(parsed, dict) else None
        if not res.ok or not isinstance(per_item, list) or len(per_item) != len(items):
            return [res] * len(items)
        out = []
        for r in per_item:
            if not isinstance(r, dict):  # an answer we cannot read is no receipt
                out.append(
                    SendResult(
                        False,
                        res.status,
                        False,
                        f"unreadable result {r!r}"[:300],
                        latency_ms=res.latency_ms,
                    )
                )
                continue
            if r.get("ok") is True:
                out.append(res)
                continue
            raw_status = r.get("status")
            status = raw_status if type(raw_status) is int and 100 <= raw_status < 600 else 422
            ok, permanent = classify_status(status)
            out.append(
                SendResult(
                    ok, status, permanent, str(r.get("error", ""))[:300], latency_ms=res.latency_ms
                )
            )
        return out


def _factory(target: str, options: HttpJsonOptions) -> HttpJsonTransport:
    return HttpJsonTransport(target, options)


spec = TransportSpec(
    name="http_json",
    factory=_factory,
    config_model=HttpJsonOptions,
    description="POST JSON (one record or batches) to a URL; Idempotency-Key = message id",
)
