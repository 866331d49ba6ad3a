"""Pulling the trading platform's document feed (catch-up after missed pushes).

The platform pushes each document as it is published; when the hub was unreachable for longer
than the platform keeps retrying, or a push was lost, the feed fills the gap. With
``adapter_options.feed`` set, the hub reads ``GET {url}/wj?cursor=N&limit=M`` (the list of
documents since the cursor, ``jy:WJLB`` with ``jy:XYGB`` the next cursor) and each listed
document with ``GET {url}/wj/{wjbh}``:

* every request is signed with the hub's own key (RFC 9421; the platform refuses others with
  ``JY4010``), and every answer must carry the platform's detached signature of its body in
  ``X-JY-Signature`` (verified with the platform's key from ``keys.peers``, before parsing);
* each document goes through the adapter (safe parsing, namespace, XSD) and
  :meth:`hub.runtime.Hub.ingest_records` with its ``wjbh`` as idempotency key, so a document
  the push already delivered is recognised as a duplicate, not routed twice;
* a document refused whole (``E_XSD`` …) is put in the quarantine with its code and text;
* the cursor is saved (``Store.put_state``) only after the page is committed: a crash re-reads
  the page and the idempotency keys absorb it.

:class:`TradingFeed` is started by the plugin with the hub (:func:`adapters.trading.plugin.
hub_startup`) as a :class:`hub.jobs.SingletonJob` (one node of a shared store pulls).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from adapters.trading.documents import DOCUMENTS, NS_JY
from hub.errors import HubError, SourceError
from transforms.xmljson import parse_xml

__all__ = ["FeedOptions", "FeedReport", "TradingFeed"]

log = logging.getLogger("jghub.trading.feed")


class FeedOptions(BaseModel):
    """``adapter_options.feed`` of a trading system."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl = Field(description="the platform's API root, e.g. https://…/ggzy/v1")
    interval: float = Field(300.0, gt=0, description="seconds between catch-up pulls")
    page_size: int = Field(100, ge=1, le=500)
    timeout: float = Field(10.0, gt=0)


class FeedReport(BaseModel):
    """What one pull did."""

    listed: int = 0
    accepted: int = 0
    duplicates: int = 0
    refused: dict[str, str] = Field(default_factory=dict)
    cursor: int = 0


class TradingFeed:
    """Pulls one trading system's feed into ``hub``."""

    def __init__(self, hub: Any, system: str, options: FeedOptions) -> None:
        self.hub = hub
        self.system = system
        self.options = options
        self.base = str(options.url).rstrip("/")
        self._state_scope = f"trading-feed:{system}"
        self._job: Any = None

    # ------------------------------------------------------------------ schedule

    def start_schedule(self) -> None:
        from hub.jobs import SingletonJob

        self._job = SingletonJob(
            self.hub.store,
            f"trading-feed:{self.system}",
            self.hub.node_id,
            self.options.interval,
            self.pull_once,
        )
        self._job.start()

    @property
    def scheduled_runs(self) -> int:
        """Pulls the schedule has completed on this node."""
        return int(self._job.runs) if self._job is not None else 0

    async def stop_schedule(self) -> None:
        if self._job is not None:
            await self._job.stop()
            self._job = None

    # ------------------------------------------------------------------ pulling

    async def _get(self, session: aiohttp.ClientSession, url: str) -> bytes:
        """GET ``url`` signed with the hub's key; the body, once its signature verified."""
        from security.httpsig import sign_request

        current = self.hub.guard.outbound_signer()
        if current is None:
            raise SourceError(
                f"{self.system} feed: the hub has no own key to sign its requests (keys.own)",
                field="keys.own",
            )
        headers: dict[str, str] = {}
        sign_request("GET", url, headers, b"", signer=current())
        try:
            async with session.get(url, headers=headers) as resp:
                body = await resp.read()
                status = resp.status
                signature = resp.headers.get("X-JY-Signature")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SourceError(
                f"{self.system} feed: GET {url} failed: {type(exc).__name__}: {exc}",
                field="feed.url",
            ) from None
        if status != 200:
            raise SourceError(
                f"{self.system} feed: GET {url} answered {status}: "
                f"{body[:300].decode('utf-8', 'replace')}",
                field="feed.url",
            )
        if not signature:
            raise SourceError(
                f"{self.system} feed: GET {url} carries no X-JY-Signature", field="X-JY-Signature"
            )
        # the platform's key (keys.peers.<system>), checked on the bytes before parsing
        self.hub.guard.verify_detached(self.system, body, signature)
        return body

    async def pull_once(self) -> FeedReport:
        """Read the feed from the saved cursor to its end; return what was done."""
        store = self.hub.store
        cursor = int(await store.get_state(self._state_scope, "cursor") or "0")
        report = FeedReport(cursor=cursor)
        timeout = aiohttp.ClientTimeout(total=self.options.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                url = f"{self.base}/wj?cursor={cursor}&limit={self.options.page_size}"
                page = parse_xml(await self._get(session, url))
                listed = [
                    (el.findtext(f"{{{NS_JY}}}WJBH") or "", el.findtext(f"{{{NS_JY}}}SJJ") or "")
                    for el in page.iterchildren(f"{{{NS_JY}}}WJ")
                ]
                following = int(page.findtext(f"{{{NS_JY}}}XYGB") or cursor)
                if not listed or following <= cursor:
                    break
                for wjbh, dataset in listed:
                    report.listed += 1
                    await self._take(session, wjbh, dataset, report)
                cursor = following
                await store.put_state(self._state_scope, "cursor", str(cursor))
                report.cursor = cursor
        return report

    async def _take(
        self, session: aiohttp.ClientSession, wjbh: str, dataset: str, report: FeedReport
    ) -> None:
        body = await self._get(session, f"{self.base}/wj/{wjbh}")
        rt = self.hub.systems[self.system]
        try:
            if dataset not in set(DOCUMENTS.values()):
                raise SourceError(f"feed lists {wjbh} as unknown dataset {dataset!r}", field="SJJ")
            records = rt.adapter.decode(body, "application/xml", {})
        except HubError as err:
            await self._quarantine(wjbh, dataset, body, err)
            report.refused[wjbh] = err.code
            return
        result = await self.hub.ingest_records(
            self.system, records, dataset=dataset, keys=[wjbh], origin=f"feed {wjbh}"
        )
        if result.errors:
            report.refused[wjbh] = result.errors[0].error.code
        elif result.duplicates:
            report.duplicates += 1
        else:
            report.accepted += 1

    async def _quarantine(self, wjbh: str, dataset: str, body: bytes, err: HubError) -> None:
        from hub.store.base import QuarantinedRecord

        await self.hub.store.quarantine(
            [
                QuarantinedRecord(
                    self.system,
                    dataset,
                    wjbh,
                    f"feed {wjbh}",
                    err.code,
                    err.field,
                    err.message,
                    body.decode("utf-8", "replace"),
                    time.time(),
                )
            ]
        )
        from hub.runtime import IngestResult, RecordError

        rejected = IngestResult(errors=[RecordError(0, err)], quarantined=1)
        self.hub.notify_rejected(self.system, dataset, rejected)
        log.warning("%s feed: %s refused: %s %s", self.system, wjbh, err.code, err.message)
