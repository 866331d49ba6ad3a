"""``national``: the outbound transport to the national 互联网+监管 system.

Deliveries arrive already mapped to the national schema (``mapping.outbound`` of the national
system file, see ``docs/national.md``); this transport speaks the national protocol per
dataset kind (``outbound.datasets``):

* ``catalog`` — one versioned update per request (``bbh`` our version, ``jbbbh`` the version it
  builds on = ``bbh - 1``). The route is ``ordered: true`` with the item code as partition key,
  so the versions of one item go out in order. A 409 version conflict (``GJ4090``) is resolved,
  never overwritten silently: the national item is fetched; if the nation already holds exactly
  our version (a lost reply) the update counts as delivered; if the nation is behind and
  ``on_conflict: rebase``, the update is re-sent on top of the nation's current version; in
  every other case (the nation is ahead or differs, or ``on_conflict: dead_letter``) the
  delivery is dead-lettered with ``E_VERSION_CONFLICT`` and both versions in the reason.
* ``behaviour`` — 监管行为 records in batches (``batch_size``); the answer is read record by
  record: an accepted record stores the national receipt id (in the trace and the ledger), a
  rejected one is dead-lettered and put in the quarantine of the department that sent it, with
  ``E_NATIONAL_REJECT`` and the national code and field.
* ``feedback`` — feedback on an issued item, posted to ``issued/{ref}/feedback``.

Every request is signed (RFC 9421) with the hub's own key: the national side refuses unsigned
ones. Status classes as ``http_json``: 429 / 5xx / timeouts are retried (``Retry-After`` kept).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from adapters.national.errors import NationalRejected, VersionConflict
from adapters.national.ledger import Ledger, SentRecord
from adapters.national.simulator import record_digest
from adapters.platform_transport import SignedPlatformTransport
from hub.specs import OutboundItem, SendResult, TransportSpec
from hub.transports.http_json import classify_status, parse_retry_after

if TYPE_CHECKING:
    from hub.runtime import Hub

__all__ = ["DatasetRoute", "NationalOptions", "NationalTransport", "spec"]

log = logging.getLogger("jghub.national")


class DatasetRoute(BaseModel):
    """How one canonical dataset travels to the nation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["catalog", "behaviour", "feedback"]
    path: str | None = Field(
        None, description="behaviour: the national dataset name (jcxw, xzcf, xtjg)"
    )
    day_field: str | None = Field(
        None, description="behaviour: national field whose date is the record's 对账 day"
    )
    ref_field: str = Field("xfbh", description="feedback: national field holding the 下发编号")

    @model_validator(mode="after")
    def _check(self) -> DatasetRoute:
        if self.kind == "behaviour" and not (self.path and self.day_field):
            raise ValueError("a behaviour dataset needs path and day_field")
        return self


class NationalOptions(BaseModel):
    """The ``outbound:`` section of the national system file (``transport: national``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl = Field(description="API root of the national system (…/gjjk/v1)")
    datasets: dict[str, DatasetRoute] = Field(min_length=1, description="by canonical dataset")
    batch_size: int = Field(100, ge=1, le=500, description="监管行为 records per request")
    concurrency: int = Field(4, ge=1, le=64)
    timeout: float = Field(10.0, gt=0)
    on_conflict: Literal["rebase", "dead_letter"] = Field(
        "rebase", description="a catalog version conflict: re-send on the national version, or "
        "dead-letter it"
    )  # fmt: skip
    catalog_code_field: str = "sxbm"
    catalog_version_field: str = "bbh"
    catalog_base_field: str = "jbbbh"
    catalog_change_field: str = "bglx"


class NationalTransport(SignedPlatformTransport):
    """One client session to the national API; call :meth:`attach` with the hub before use
    (the national plugin does, in ``hub_startup``)."""

    platform = "the national system"
    log = log

    def __init__(self, target: str, options: NationalOptions) -> None:
        super().__init__(target, options)
        self.options: NationalOptions = options
        self.base = str(options.url).rstrip("/")
        self.ledger: Ledger | None = None

    # ------------------------------------------------------------------ lifecycle

    def attach(self, hub: Hub) -> None:
        """Give the transport its hub: the store keeps the quarantine and the 对账 ledger."""
        super().attach(hub)
        self.ledger = Ledger(hub.store, self.target, hub.clock)

    # ------------------------------------------------------------------ HTTP

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        key: str | None = None,
    ) -> tuple[SendResult, Any]:
        """A signed request to ``base + path``; returns the classified result and the parsed
        JSON answer (None when not JSON). Never raises for the national side's errors."""
        assert self._session is not None, "transport not started"
        url = self.base + path + (f"?{urlencode(query)}" if query else "")
        data = b"" if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        if self._signer is not None:
            from security.httpsig import sign_request

            sign_request(method, url, headers, data, signer=self._signer())
        t0 = time.perf_counter()
        try:
            async with self._session.request(method, url, data=data, headers=headers) as resp:
                text = await resp.read()
                ms = (time.perf_counter() - t0) * 1000
                parsed: Any = None
                if text:
                    try:
                        parsed = orjson.loads(text)
                    except orjson.JSONDecodeError:
                        parsed = None
                ok, permanent = classify_status(resp.status)
                detail = "" if ok else _national_detail(parsed, text)
                retry = parse_retry_after(resp.headers.get("Retry-After"))
                return SendResult(ok, resp.status, permanent, detail, retry, ms), parsed
        except TimeoutError:
            ms = (time.perf_counter() - t0) * 1000
            return SendResult(
                False, None, False, f"timeout after {self.options.timeout}s", latency_ms=ms
            ), None
        except aiohttp.ClientError as exc:
            ms = (time.perf_counter() - t0) * 1000
            return SendResult(
                False, None, False, f"{type(exc).__name__}: {exc}"[:300], latency_ms=ms
            ), None

    # ------------------------------------------------------------------ sending

    async def send(self, items: Sequence[OutboundItem]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(items)
        groups: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            route = self.options.datasets.get(item.dataset)
            if route is None:
                results[i] = SendResult(
                    False,
                    None,
                    True,
                    f"E_CONFIG: dataset {item.dataset!r} has no entry in outbound.datasets of "
                    f"{self.target}",
                )
                continue
            groups.setdefault(item.dataset, []).append(i)
        jobs = []
        for dataset, idx in groups.items():
            route = self.options.datasets[dataset]
            if route.kind == "behaviour":
                jobs.append(self._send_behaviour(route, [items[i] for i in idx], idx, results))
            else:
                jobs.append(self._send_each(route, [items[i] for i in idx], idx, results))
        await asyncio.gather(*jobs)
        return [r if r is not None else SendResult(False, None, False, "not sent") for r in results]

    async def _send_each(
        self,
        route: DatasetRoute,
        items: list[OutboundItem],
        idx: list[int],
        out: list[SendResult | None],
    ) -> None:
        for item, i in zip(items, idx, strict=True):
            if route.kind == "catalog":
                out[i] = await self.send_catalog(item)
            else:
                out[i] = await self._send_feedback(route, item)

    async def _send_feedback(self, route: DatasetRoute, item: OutboundItem) -> SendResult:
        body = dict(item.body)
        ref = str(body.get(route.ref_field, ""))
        if not ref:
            return SendResult(False, None, True, f"feedback has no {route.ref_field}")
        res, parsed = await self.request(
            "POST", f"/issued/{quote(ref, safe='')}/feedback", body, key=item.message_id
        )
        if res.ok and isinstance(parsed, dict):
            res.receipt = parsed.get("hzbh")
        return res

    # ---------------------------------------------------------------- catalog

    async def send_catalog(self, item: OutboundItem) -> SendResult:
        """Send one catalog update; resolve a version conflict (see the module docstring)."""
        o = self.options
        body = dict(item.body)
        code = str(body.get(o.catalog_code_field, ""))
        version = body.get(o.catalog_version_field)
        if not code or type(version) is not int:
            return SendResult(
                False, None, True, f"catalog update lacks {o.catalog_code_field}/"
                f"{o.catalog_version_field}"
            )  # fmt: skip
        body[o.catalog_base_field] = version - 1
        res, parsed = await self.request("POST", "/catalog/items", body, key=item.message_id)
        if res.status == 409:
            return await self._conflict(item, body, code, version, res)
        if res.ok:
            res.receipt = parsed.get("hzbh") if isinstance(parsed, dict) else None
            await self._keep_catalog(code, version, body)
        return res

    async def _keep_catalog(self, code: str, version: int, body: dict[str, Any]) -> None:
        if self.ledger is not None:
            plain = {k: v for k, v in body.items() if k != self.options.catalog_base_field}
            await self.ledger.record_catalog(code, version, record_digest(plain), plain)

    async def _conflict(
        self, item: OutboundItem, body: dict[str, Any], code: str, version: int, first: SendResult
    ) -> SendResult:
        o = self.options
        res, parsed = await self.request("GET", f"/catalog/items/{quote(code, safe='')}")
        if res.status == 404:
            national, digest = 0, None
        elif res.ok and isinstance(parsed, dict) and type(parsed.get("bbh")) is int:
            national, digest = int(parsed["bbh"]), parsed.get("zy")
        else:  # cannot read the national version now: try again later
            res.detail = f"version conflict; reading the national item failed: {res.detail}"
            res.ok = False
            return res
        plain = {k: v for k, v in body.items() if k != o.catalog_base_field}
        if national == version and digest == record_digest(plain):
            await self._keep_catalog(code, version, body)
            return SendResult(
                True, 200, detail=f"national item {code} already holds version {version}"
            )
        reason = (
            f"{VersionConflict.code}: catalog item {code}: the national system holds version "
            f"{national}, this update is version {version} (built on {version - 1})"
        )
        if national >= version:
            return SendResult(
                False, 409, True, reason + "; the national version is not older: not overwritten"
            )
        if o.on_conflict == "dead_letter":
            return SendResult(False, 409, True, reason + "; on_conflict: dead_letter")
        rebased = dict(body)
        rebased[o.catalog_base_field] = national
        change = o.catalog_change_field
        if national == 0:
            if rebased.get(change) == "3":
                return SendResult(
                    False, 409, True, reason + "; a revocation of an item the nation lacks"
                )
            rebased[change] = "1"  # the nation lacks the item: it is created at our version
        elif rebased.get(change) == "1":
            rebased[change] = "2"
        # our record is the whole item (not a diff), so on top of the nation's version it
        # becomes our version there too; the versions of both sides stay the same numbers
        res, parsed = await self.request(
            "POST", "/catalog/items", rebased, key=f"{item.message_id}:rebase:{national}"
        )
        if res.ok:
            res.receipt = parsed.get("hzbh") if isinstance(parsed, dict) else None
            res.detail = f"rebased onto national version {national} (conflict resolved)"
            await self._keep_catalog(code, version, rebased)
        elif res.status == 409:
            res.permanent = False  # the nation moved again: retry later
        return res

    # ---------------------------------------------------------------- 监管行为

    async def upload(
        self, path: str, entries: Sequence[tuple[str, dict[str, Any]]], key: str
    ) -> tuple[SendResult, list[Any] | None]:
        """POST one batch ``[(record id, national record)]``; the per-record results."""
        res, parsed = await self.request(
            "POST",
            f"/behaviour/{path}",
            {"records": [{"jlid": rid, "sj": data} for rid, data in entries]},
            key=key,
        )
        per = parsed.get("results") if isinstance(parsed, dict) else None
        if not res.ok or not isinstance(per, list) or len(per) != len(entries):
            if res.ok:
                res.ok = False
                res.detail = "unreadable batch answer from the national system"
            return res, None
        return res, per

    async def _send_behaviour(
        self,
        route: DatasetRoute,
        items: list[OutboundItem],
        idx: list[int],
        out: list[SendResult | None],
    ) -> None:
        assert route.path is not None and route.day_field is not None
        key = hashlib.sha256("\n".join(sorted(i.message_id for i in items)).encode()).hexdigest()
        res, per = await self.upload(
            route.path, [(i.message_id, i.body) for i in items], f"batch-{key[:32]}"
        )
        if per is None:
            for i in idx:
                out[i] = res
            return
        accepted: list[SentRecord] = []
        rejected: list[tuple[OutboundItem, dict[str, Any]]] = []
        for item, i, r in zip(items, idx, per, strict=True):
            if isinstance(r, dict) and r.get("zt") == "1":
                receipt = str(r.get("hzbh") or "")
                out[i] = SendResult(True, res.status, latency_ms=res.latency_ms, receipt=receipt)
                accepted.append(
                    SentRecord(
                        route.path,
                        item.message_id,
                        str(item.body.get(route.day_field, ""))[:10],
                        record_digest(item.body),
                        receipt,
                        item.body,
                    )
                )
                continue
            info = r if isinstance(r, dict) else {}
            out[i] = SendResult(
                False,
                422,
                True,
                f"{NationalRejected.code}: national code {info.get('code', '?')} "
                f"(field {info.get('field', '?')}): {info.get('message', '')}",
                latency_ms=res.latency_ms,
            )
            rejected.append((item, info))
        if self.ledger is not None and accepted:
            await self.ledger.record_sent(accepted)
        if rejected:
            await self._quarantine(rejected)

    async def _quarantine(self, rejected: list[tuple[OutboundItem, dict[str, Any]]]) -> None:
        """Put records the nation refused in the quarantine of the department that sent them
        (it reads it with ``GET /v1/systems/{system}/quarantine``)."""
        await self.quarantine_refused(
            [
                (
                    item,
                    str(info.get("field", "")) or None,
                    f"national code {info.get('code', '?')}: {info.get('message', '')}",
                )
                for item, info in rejected
            ],
            code=NationalRejected.code,
            kind="national",
            what="national upload",
        )


def _national_detail(parsed: Any, text: bytes) -> str:
    if isinstance(parsed, dict) and "code" in parsed:
        field = f" (field {parsed['field']})" if parsed.get("field") else ""
        return f"national code {parsed['code']}{field}: {parsed.get('message', '')}"[:300]
    return text[:300].decode("utf-8", "replace")


def _factory(target: str, options: NationalOptions) -> NationalTransport:
    return NationalTransport(target, options)


spec = TransportSpec(
    name="national",
    factory=_factory,
    config_model=NationalOptions,
    description="the national 互联网+监管 system: versioned catalog updates, 监管行为 batches "
    "with per-record receipts, feedback on issued items; signed (RFC 9421)",
)
