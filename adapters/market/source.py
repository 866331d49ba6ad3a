"""``market_feed``: the inbound source that pulls the market platform's incremental feeds.

The platform publishes each kind of change as a feed (主题): ``ztxx`` 主体信息 (registrations and
changes of market entities), ``sjrw`` 双随机任务 (inspection tasks), ``jyyc`` 经营异常名录
(entries and removals). Every change has the next 变更序号 (``BGXH``) of its feed; a page is
``GET {url}/feed/{topic}?cursor=<last BGXH taken>&pageSize=N``. For every page the source:

1. signs the request (RFC 9421, the hub's own key: the platform refuses unsigned requests);
2. verifies the answer's detached signature (``X-Scjg-Signature``) with the platform's key
   (``keys.peers.<system>`` in the hub file) *before* parsing it;
3. checks the page: JSON, a record list, ``BGXH`` increasing and after the cursor,
   ``nextCursor`` equal to the last ``BGXH`` — else :class:`FeedError` (``E_MARKET_FEED``):
   nothing of the page is taken and the cursor stays (the runner retries after a backoff);
4. ingests the records (mapping, contract, governance, durable commit), each keyed
   ``<topic>:<BGXH>``, so a page read twice is recognised record by record;
5. for a ``registry: true`` feed, writes the accepted entities to the market entity registry
   (:mod:`adapters.market.registry`);
6. only then saves the cursor (``cursor:<topic>`` in the store). A crash anywhere before this
   reads the page again; nothing is lost and nothing is routed twice.

429 / 5xx answers and network errors are retried with a doubling backoff (``Retry-After``
honoured); other 4xx answers fail the source with ``E_SOURCE`` naming the platform's code.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import orjson
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from adapters.market.errors import FeedError, platform_said
from adapters.market.registry import EntityRegistry, RegisteredEntity
from adapters.market.simulator import SIGNATURE_HEADER
from hub.errors import ConfigError, HubError, SourceError
from hub.specs import SourceContext, SourceSpec
from hub.transports.http_json import parse_retry_after
from hub.transports.http_pull import _unless_stopping, dig

__all__ = ["FeedOptions", "MarketFeedOptions", "MarketFeedSource", "spec"]

log = logging.getLogger("jghub.market")


class FeedOptions(BaseModel):
    """One feed the source pulls."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(min_length=1, pattern=r"^[a-z0-9_]+$", description="feed name (ztxx ...)")
    dataset: str = Field(min_length=1, description="canonical dataset of its records")
    registry: bool = Field(
        False, description="accepted records update the market entity registry (market_entity)"
    )


class MarketFeedOptions(BaseModel):
    """``inbound.source`` of the market system (``kind: market_feed``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl = Field(description="the platform's open interface root (…/scjg/open/v1)")
    feeds: list[FeedOptions] = Field(min_length=1)
    page_size: int = Field(100, ge=1, le=500)
    interval: float = Field(30.0, gt=0, description="seconds between rounds once caught up")
    timeout: float = Field(10.0, gt=0, description="seconds for one request")
    sign_requests: bool = Field(True, description="sign requests with the hub's own key")
    verify_signatures: bool = Field(
        True, description="verify the platform's answer signature (keys.peers.<system>)"
    )
    seq_field: str = Field("BGXH", description="a record's 变更序号")
    records_path: str = "data.records"
    next_cursor_path: str = "data.nextCursor"
    has_more_path: str = "data.hasMore"
    min_backoff: float = Field(0.5, gt=0)
    max_backoff: float = Field(120.0, gt=0)

    @model_validator(mode="after")
    def _unique_topics(self) -> MarketFeedOptions:
        topics = [f.topic for f in self.feeds]
        if len(set(topics)) != len(topics):
            raise ValueError(f"feeds: a topic is listed twice ({topics})")
        return self


class _Retry(Exception):
    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class MarketFeedSource:
    """Pulls every configured feed in turn, page by page, until caught up; then waits
    ``interval``. See the module docstring for the page contract."""

    def __init__(self, system: str, options: MarketFeedOptions) -> None:
        self.system = system
        self.options = options
        self.base = str(options.url).rstrip("/")
        #: the last transient failure (logs, tests)
        self.last_error: str | None = None
        #: pages taken per topic since start
        self.pages: dict[str, int] = {f.topic: 0 for f in options.feeds}

    async def run(self, ctx: SourceContext) -> None:
        hub = getattr(ctx, "hub", None)
        if hub is None:
            raise ConfigError("market_feed needs the hub's source context", field="source")
        signer = None
        if self.options.sign_requests:
            signer = hub.guard.outbound_signer()
            if signer is None:
                raise ConfigError(
                    f"system {self.system}: the market platform requires signed requests; give "
                    "the hub an own key (keys.own in the hub file)",
                    field="keys.own",
                )
        registry = EntityRegistry(hub.store)
        timeout = aiohttp.ClientTimeout(total=self.options.timeout)
        failures = 0
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not ctx.stopping.is_set():
                try:
                    more = False
                    for feed in self.options.feeds:
                        if ctx.stopping.is_set():
                            return
                        more = await self.poll(ctx, session, feed, signer, registry) or more
                    failures = 0
                    self.last_error = None
                except _Retry as exc:
                    failures += 1
                    wait = exc.after
                    if wait is None:
                        wait = min(
                            self.options.max_backoff, self.options.min_backoff * 2 ** (failures - 1)
                        )
                    self.last_error = str(exc)
                    log.warning("%s: %s; again in %.1f s", self.system, exc, wait)
                    if await ctx.sleep(wait):
                        return
                    continue
                if not more and await ctx.sleep(self.options.interval):
                    return

    async def poll(
        self,
        ctx: SourceContext,
        session: aiohttp.ClientSession,
        feed: FeedOptions,
        signer: Any,
        registry: EntityRegistry,
    ) -> bool:
        """Take one page of ``feed``; True when the platform says more are waiting."""
        o = self.options
        state_key = f"cursor:{feed.topic}"
        cursor = int(await ctx.get_state(state_key) or 0)
        url = f"{self.base}/feed/{feed.topic}?cursor={cursor}&pageSize={o.page_size}"
        got = await _unless_stopping(ctx, self._get(session, url, signer))
        if got is None:  # the hub is stopping: the page is read again next time
            return False
        body, headers = got
        if o.verify_signatures:
            sig = headers.get(SIGNATURE_HEADER.lower())
            if not sig:
                raise FeedError(
                    f"{feed.topic} page at cursor {cursor}: the answer has no {SIGNATURE_HEADER}",
                    field=SIGNATURE_HEADER,
                )
            try:
                ctx.verify_detached(body, sig)
            except HubError as err:
                raise FeedError(
                    f"{feed.topic} page at cursor {cursor}: {err.code} {err.message}",
                    field=SIGNATURE_HEADER,
                ) from None
        rows, nxt, more = self._page(feed.topic, cursor, body)
        if rows:
            keys = [f"{feed.topic}:{r[o.seq_field]}" for r in rows]
            result = await ctx.ingest(
                rows, keys=keys, dataset=feed.dataset, origin=f"{feed.topic} cursor={cursor}"
            )
            log.info(
                "%s: %s cursor %d: %d records (%d new, %d duplicates, %d refused)",
                self.system, feed.topic, cursor, len(rows),
                len(result.ids) - len(result.duplicates), len(result.duplicates),
                len(result.errors),
            )  # fmt: skip
            if feed.registry:
                await self._keep_entities(ctx, feed.dataset, rows, result.indexes, registry)
        if nxt != cursor:
            await ctx.put_state(state_key, str(nxt))
        self.pages[feed.topic] = self.pages.get(feed.topic, 0) + 1
        return more and bool(rows)

    # ------------------------------------------------------------------ HTTP

    async def _get(
        self, session: aiohttp.ClientSession, url: str, signer: Any
    ) -> tuple[bytes, dict[str, str]]:
        """GET one page: the body and the answer's headers (lower-case names)."""
        headers = {"Accept": "application/json"}
        if signer is not None:
            from security.httpsig import sign_request

            sign_request("GET", url, headers, b"", signer=signer())
        try:
            async with session.get(url, headers=headers) as resp:
                body = await resp.read()
                status = resp.status
                got = {k.lower(): v for k, v in resp.headers.items()}
        except TimeoutError:
            raise _Retry(f"timeout after {self.options.timeout} s") from None
        except aiohttp.ClientError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        if status == 429 or status >= 500:
            after = parse_retry_after(got.get("retry-after"))
            raise _Retry(f"HTTP {status}: {platform_said(body)}", after)
        if status >= 300:
            raise SourceError(f"{url} answered HTTP {status}: {platform_said(body)}", field="url")
        return body, got

    def _page(self, topic: str, cursor: int, body: bytes) -> tuple[list[Any], int, bool]:
        o = self.options
        where = f"{topic} page at cursor {cursor}"
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise FeedError(f"{where}: not JSON ({exc})", field="body") from None
        if not isinstance(doc, dict) or doc.get("code") != "00000":
            raise SourceError(f"{where}: the platform answered {platform_said(body)}", field="code")
        rows = dig(doc, o.records_path)
        if not isinstance(rows, list):
            raise FeedError(
                f"{where}: no record list at {o.records_path} ({type(rows).__name__})",
                field=o.records_path,
            )
        last = cursor
        for i, r in enumerate(rows):
            seq = r.get(o.seq_field) if isinstance(r, dict) else None
            if type(seq) is not int or seq <= last:
                raise FeedError(
                    f"{where}: record {i} has {o.seq_field} {seq!r}, not after {last} "
                    "(the feed must be in 变更序号 order)",
                    field=o.seq_field,
                )
            last = seq
        nxt = dig(doc, o.next_cursor_path)
        if type(nxt) is not int or nxt != last:
            raise FeedError(
                f"{where}: {o.next_cursor_path} is {nxt!r}, expected {last}",
                field=o.next_cursor_path,
            )
        return rows, nxt, bool(dig(doc, o.has_more_path))

    # ------------------------------------------------------------------ registry

    async def _keep_entities(
        self,
        ctx: SourceContext,
        dataset: str,
        rows: list[Any],
        accepted: list[int],
        registry: EntityRegistry,
    ) -> None:
        """Write the committed entities of a page to the registry (canonical form: the same
        mapping and contract the hub applied)."""
        hub = getattr(ctx, "hub", None)
        if hub is None or not accepted:
            return
        rt = hub.systems[self.system]
        spec = rt.datasets[dataset]
        pipe = rt.pipelines.get(dataset)
        entities = []
        for i in accepted:
            raw = rows[i]
            try:
                rec = pipe.prepare(raw, i, None, max_bytes=None, depth=64)[0] if pipe else raw
                # the hub accepted it already: take its canonical form as the hub did
                model = spec.model.model_validate(rec, context={"uscc_strict": False})
                entities.append(RegisteredEntity.from_record(model.model_dump(mode="json")))
            except Exception:  # committed anyway; one odd record must not stop the feed
                log.exception("%s: entity %d of the page not kept in the registry", self.system, i)
        written = await registry.put(entities)
        log.info(
            "%s: market entity registry: %d of %d kept", self.system, len(written), len(entities)
        )


def _factory(system: str, options: MarketFeedOptions) -> MarketFeedSource:
    return MarketFeedSource(system, options)


spec = SourceSpec(
    name="market_feed",
    factory=_factory,
    config_model=MarketFeedOptions,
    description="the market supervision platform's incremental feeds (变更序号 cursor per "
    "topic), signed requests, signed answers verified",
)
