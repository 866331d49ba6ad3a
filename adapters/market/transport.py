"""``market``: the outbound transport to the market supervision platform (检查结果 upload).

Deliveries arrive already mapped to the platform's schema (``mapping.outbound`` of the market
system file). They go in batches (``batch_size``) to ``{url}{results_path}`` as
``{"records": [...]}``, each record carrying our message id as its 记录标识 (``JLBS``), signed
with the hub's own key (RFC 9421). The platform answers record by record:

* ``ZT: "1"`` — accepted; its receipt number (``HZBH``) becomes the delivery's receipt (trace);
* ``ZT: "0"`` — refused with the platform's code (``CWDM``) and field (``CWZD``): the delivery
  is dead-lettered with ``E_MARKET_REJECT`` and the record is put in the quarantine of the
  department that sent it (``GET /v1/systems/{system}/quarantine``), naming the field.

The answer's detached signature (``X-Scjg-Signature``) is verified with the platform's key
before it is read; an answer that does not verify counts as not received (retried later — the
platform recognises a re-sent ``JLBS`` and answers with the first receipt). 429 / 5xx /
timeouts are retried like ``http_json``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from adapters.market.errors import MarketRejected, platform_said
from adapters.market.simulator import SIGNATURE_HEADER
from adapters.platform_transport import SignedPlatformTransport
from hub.errors import HubError
from hub.specs import OutboundItem, SendResult, Signer, TransportSpec
from hub.transports.http_json import classify_status, parse_retry_after

if TYPE_CHECKING:
    pass

__all__ = ["MarketOptions", "MarketTransport", "spec"]

log = logging.getLogger("jghub.market")


class MarketOptions(BaseModel):
    """The ``outbound:`` section of the market system file (``transport: market``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl = Field(description="the platform's open interface root (…/scjg/open/v1)")
    results_path: str = Field("/sjrw/jcjg", description="where 检查结果 batches go")
    batch_size: int = Field(50, ge=1, le=200)
    concurrency: int = Field(2, ge=1, le=32)
    timeout: float = Field(10.0, gt=0)
    record_id_field: str = Field("JLBS", description="the platform's 记录标识 field")
    verify_signatures: bool = Field(
        True, description="verify the platform's answer signature (keys.peers.<system>)"
    )


class MarketTransport(SignedPlatformTransport):
    """One client session to the platform; the market plugin calls :meth:`attach` in
    ``hub_startup`` (the store keeps the quarantine; the guard verifies answers)."""

    platform = "the market platform"
    log = log

    def __init__(self, target: str, options: MarketOptions) -> None:
        super().__init__(target, options)
        self.url = str(options.url).rstrip("/") + options.results_path

    async def send(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        assert self._session is not None, "transport not started"
        rid = self.options.record_id_field
        records = [{**dict(i.body), rid: i.message_id} for i in items]
        body = orjson.dumps({"records": records})
        key = hashlib.sha256("\n".join(sorted(i.message_id for i in items)).encode()).hexdigest()
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"batch-{key[:32]}"}
        if items[0].traceparent:
            headers["traceparent"] = items[0].traceparent
        signer = self._signer() if self._signer is not None else None
        res, text, answer_headers = await self._post(body, headers, signer)
        if not res.ok:
            return [res] * len(items)
        try:
            self._verify(text, answer_headers)
            per = orjson.loads(text)["data"]["results"]
            by_id = {str(r["JLBS"]): r for r in per}
        except (HubError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            detail = exc.message if isinstance(exc, HubError) else f"unreadable answer: {exc}"
            bad = SendResult(False, res.status, False, detail[:300], latency_ms=res.latency_ms)
            return [bad] * len(items)
        out: list[SendResult] = []
        refused: list[tuple[OutboundItem, dict[str, Any]]] = []
        for item in items:
            r = by_id.get(item.message_id)
            if r is None:
                out.append(
                    SendResult(False, res.status, False, "no result for this record in the answer")
                )
            elif r.get("ZT") == "1":
                out.append(
                    SendResult(
                        True, res.status, latency_ms=res.latency_ms, receipt=str(r.get("HZBH"))
                    )
                )
            else:
                out.append(
                    SendResult(
                        False,
                        422,
                        True,
                        f"{MarketRejected.code}: platform code {r.get('CWDM', '?')} "
                        f"(field {r.get('CWZD', '?')}): {r.get('CWXX', '')}"[:300],
                        latency_ms=res.latency_ms,
                    )
                )
                refused.append((item, r))
        if refused:
            await self._quarantine(refused)
        return out

    async def _post(
        self, body: bytes, headers: dict[str, str], signer: Signer | None
    ) -> tuple[SendResult, bytes, dict[str, str]]:
        """POST and keep the raw answer (its signature covers the exact bytes)."""
        assert self._session is not None
        if signer is not None:
            from security.httpsig import sign_request

            sign_request("POST", self.url, headers, body, signer=signer)
        t0 = time.perf_counter()
        try:
            async with self._session.post(self.url, data=body, headers=headers) as resp:
                text = await resp.read()
                got = {k.lower(): v for k, v in resp.headers.items()}
        except TimeoutError:
            ms = (time.perf_counter() - t0) * 1000
            detail = f"timeout after {self.options.timeout}s"
            return SendResult(False, None, False, detail, latency_ms=ms), b"", {}
        except aiohttp.ClientError as exc:
            ms = (time.perf_counter() - t0) * 1000
            detail = f"{type(exc).__name__}: {exc}"[:300]
            return SendResult(False, None, False, detail, latency_ms=ms), b"", {}
        ms = (time.perf_counter() - t0) * 1000
        ok, permanent = classify_status(resp.status)
        detail = "" if ok else platform_said(text)
        retry = parse_retry_after(got.get("retry-after"))
        return SendResult(ok, resp.status, permanent, detail, retry, ms), text, got

    def _verify(self, text: bytes, headers: dict[str, str]) -> None:
        if not self.options.verify_signatures or self.hub is None:
            return
        sig = headers.get(SIGNATURE_HEADER.lower())
        if not sig:
            raise MarketRejected(
                f"the platform's answer has no {SIGNATURE_HEADER}", field=SIGNATURE_HEADER
            )
        self.hub.guard.verify_detached(self.target, text, sig)

    async def _quarantine(self, refused: list[tuple[OutboundItem, dict[str, Any]]]) -> None:
        """Put records the platform refused in the quarantine of the department that sent
        them, naming the platform's field."""
        await self.quarantine_refused(
            [
                (
                    item,
                    str(info.get("CWZD", "")) or None,
                    f"platform code {info.get('CWDM', '?')}: {info.get('CWXX', '')}",
                )
                for item, info in refused
            ],
            code=MarketRejected.code,
            kind="market",
            what="upload",
        )


def _factory(target: str, options: MarketOptions) -> MarketTransport:
    return MarketTransport(target, options)


spec = TransportSpec(
    name="market",
    factory=_factory,
    config_model=MarketOptions,
    description="the market supervision platform: 检查结果 batches with per-record receipts; "
    "signed requests, signed answers verified",
)
