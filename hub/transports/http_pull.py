"""``http_pull``: collect a department's records by polling its REST API (动态采集).

The hub runs this inbound source itself (``inbound.source.kind: http_pull``). Each poll calls
the configured URL with a cursor, hands the page to :meth:`SourceContext.ingest` and saves the
cursor with :meth:`SourceContext.put_state` only after ``ingest`` returned (the durable commit).
A crash between the two reads the page again; each record's key ``<id>@<updated_at>`` makes the
re-read records duplicates, while a record the system changed since is a new version.

Two cursor modes:

* ``updated_since``: the request carries ``<since_param>=<largest updated_at seen>``; the API
  must return records with ``updated_at >=`` that value, oldest first. The cursor keeps the ids
  already taken at exactly that timestamp, so records sharing one timestamp across a page
  boundary are neither lost nor taken twice. When a full page holds nothing but already-taken
  records of one timestamp, the page size (``page_size_param``) is doubled until the page moves
  on (up to ``max_page_size``; beyond it the source fails with ``E_SOURCE``, loudly).
* ``page_token``: the request carries ``<token_param>=<token>``; the response's next token
  (``next_token_path``) is the new cursor. Without a next token (or the same one) the source is
  caught up and asks for the same page again after ``interval`` seconds (re-read records are
  duplicates; records appended meanwhile are new).

429 and 5xx answers and network errors are retried with a doubling backoff (``Retry-After`` is
honoured); other 4xx answers and unreadable bodies fail the source with ``E_SOURCE`` (the runner
restarts it after its own backoff and shows the error in health).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

import aiohttp
import orjson
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from hub.errors import SourceError
from hub.specs import SourceContext, SourceSpec
from hub.transports.http_json import parse_retry_after

__all__ = ["HttpPullOptions", "HttpPullSource", "dig", "record_key", "spec"]

log = logging.getLogger("jghub.sources.http_pull")

T = TypeVar("T")


class HttpPullOptions(BaseModel):
    """Options of the ``http_pull`` source (``inbound.source`` of a system file, minus ``kind``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl
    mode: Literal["updated_since", "page_token"] = "updated_since"
    interval: float = Field(30.0, gt=0, description="seconds between polls once caught up")
    records_path: str = Field(
        "", description="dotted path of the record list in the JSON answer ('' = the answer)"
    )
    id_field: str = Field("id", min_length=1, description="dotted path of a record's id")
    updated_field: str | None = Field(
        "updated_at", description="dotted path of a record's last-change time (its version)"
    )
    since_param: str = Field("updated_since", min_length=1)
    token_param: str = Field("page_token", min_length=1)
    next_token_path: str = Field("next_page_token", min_length=1)
    page_size: int = Field(100, ge=1, le=10_000, description="records the API returns per page")
    page_size_param: str | None = Field(
        "limit", description="query parameter carrying page_size (None: the API's fixed size)"
    )
    max_page_size: int = Field(5000, ge=1, le=10_000)
    params: dict[str, str] = Field(default_factory=dict, description="static query parameters")
    headers: dict[str, str] = Field(default_factory=dict, description="static request headers")
    token: str | None = Field(None, description="bearer token (use ${ENV_VAR})")
    timeout: float = Field(30.0, gt=0, description="seconds for one request")
    min_backoff: float = Field(1.0, gt=0, description="first wait after a 429/5xx/network error")
    max_backoff: float = Field(300.0, gt=0)
    dataset: str | None = Field(None, description="dataset of the records (if several are sent)")

    @model_validator(mode="after")
    def _check(self) -> HttpPullOptions:
        if self.mode == "updated_since" and not self.updated_field:
            raise ValueError("mode updated_since needs updated_field")
        if self.max_page_size < self.page_size:
            raise ValueError("max_page_size must be at least page_size")
        return self


def dig(value: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``data.rows``; '' is ``value`` itself), or None."""
    if not path:
        return value
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def record_key(record: Any, id_field: str, updated_field: str | None) -> str:
    """Idempotency key of a polled record: ``<id>@<updated_at>`` (``<id>`` without a version
    field); a record without an id is keyed by the digest of its content."""
    rid = dig(record, id_field)
    if rid is None or rid == "":
        digest = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return f"sha256:{digest}"
    if updated_field is None:
        return str(rid)
    return f"{rid}@{dig(record, updated_field)}"


def _order(value: Any) -> tuple[int, float, str]:
    """Sort key for update times: numbers, then ISO-8601 instants, then other text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    text = str(value)
    try:
        return (1, datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp(), text)
    except ValueError:
        return (2, 0.0, text)


class _Retry(Exception):
    """A transient failure: wait (``after`` seconds, if the system said) and try again."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class HttpPullSource:
    """Polls one system's API; see the module docstring for the cursor contract."""

    def __init__(self, system: str, options: HttpPullOptions) -> None:
        self.system = system
        self.options = options
        self.url = str(options.url)
        self._headers = {"Accept": "application/json", **options.headers}
        if options.token:
            self._headers["Authorization"] = f"Bearer {options.token}"
        self._page_size = options.page_size
        #: the last transient failure (for logs and tests), cleared by a good answer
        self.last_error: str | None = None
        #: seconds the source last waited after a failure (Retry-After or its backoff)
        self.last_wait: float | None = None

    async def run(self, ctx: SourceContext) -> None:
        timeout = aiohttp.ClientTimeout(total=self.options.timeout)
        async with aiohttp.ClientSession(timeout=timeout, headers=self._headers) as session:
            failures = 0
            while not ctx.stopping.is_set():
                try:
                    more = await self._poll_once(session, ctx)
                    failures = 0
                    self.last_error = None
                except _Retry as exc:
                    failures += 1
                    wait = exc.after
                    if wait is None:
                        wait = min(
                            self.options.max_backoff,
                            self.options.min_backoff * 2 ** (failures - 1),
                        )
                    self.last_error, self.last_wait = str(exc), wait
                    log.warning("%s: %s; polling again in %.1f s", self.system, exc, wait)
                    if await ctx.sleep(wait):
                        return
                    continue
                if more is None:  # the hub is stopping
                    return
                if not more and await ctx.sleep(self.options.interval):
                    return

    def _id(self, record: Any) -> str:
        return str(dig(record, self.options.id_field))

    # ------------------------------------------------------------------ one poll

    async def _poll_once(self, session: aiohttp.ClientSession, ctx: SourceContext) -> bool | None:
        """Fetch one page, ingest it, save the cursor. True if more pages wait now; None if
        the hub stopped meanwhile."""
        if self.options.mode == "page_token":
            return await self._poll_token(session, ctx)
        return await self._poll_since(session, ctx)

    async def _poll_since(self, session: aiohttp.ClientSession, ctx: SourceContext) -> bool | None:
        o = self.options
        assert o.updated_field is not None
        raw = await ctx.get_state("cursor")
        cursor: dict[str, Any] = orjson.loads(raw) if raw else {"since": None, "ids": []}
        since, seen = cursor["since"], set(cursor["ids"])
        params = dict(o.params)
        if since is not None:
            params[o.since_param] = str(since)
        if o.page_size_param:
            params[o.page_size_param] = str(self._page_size)
        got = await self._fetch(session, ctx, params)
        if got is None:
            return None
        rows, _ = got
        fresh = [
            r
            for r in rows
            if not (
                since is not None and _same(dig(r, o.updated_field), since) and self._id(r) in seen
            )
        ]
        if not fresh:
            if len(rows) >= self._page_size and all(
                _same(dig(r, o.updated_field), since) for r in rows
            ):
                self._grow_page(since)
                return True
            return False
        await self._ingest(ctx, fresh, f"{o.since_param}={since}")
        top = max((dig(r, o.updated_field) for r in fresh), key=_order)
        at_top = {self._id(r) for r in fresh if _same(dig(r, o.updated_field), top)}
        if since is not None and _same(top, since):
            at_top |= seen
        await ctx.put_state("cursor", orjson.dumps({"since": top, "ids": sorted(at_top)}).decode())
        self._page_size = o.page_size
        return True

    def _grow_page(self, since: Any) -> None:
        """A full page of records sharing the cursor's timestamp, all taken: only a bigger page
        can move past them."""
        o = self.options
        if not o.page_size_param or self._page_size >= o.max_page_size:
            raise SourceError(
                f"more than {self._page_size} records share {o.updated_field} = {since!r}; "
                "the page cannot move past them (set page_size_param / raise max_page_size)",
                field=o.updated_field,
            )
        self._page_size = min(o.max_page_size, self._page_size * 2)
        log.info("%s: page full of one timestamp; page size now %d", self.system, self._page_size)

    async def _poll_token(self, session: aiohttp.ClientSession, ctx: SourceContext) -> bool | None:
        o = self.options
        token = await ctx.get_state("cursor")
        params = dict(o.params)
        if token:
            params[o.token_param] = token
        if o.page_size_param:
            params[o.page_size_param] = str(o.page_size)
        got = await self._fetch(session, ctx, params)
        if got is None:
            return None
        rows, doc = got
        if rows:
            await self._ingest(ctx, rows, f"{o.token_param}={token or ''}")
        nxt = dig(doc, o.next_token_path)
        if nxt is None or nxt == "" or str(nxt) == token:
            return False
        await ctx.put_state("cursor", str(nxt))
        return True

    async def _ingest(self, ctx: SourceContext, rows: Sequence[Any], origin: str) -> None:
        o = self.options
        keys = [record_key(r, o.id_field, o.updated_field) for r in rows]
        result = await ctx.ingest(rows, keys=keys, dataset=o.dataset, origin=origin)
        log.info(
            "%s: %d records (%d new, %d duplicates, %d quarantined) from %s",
            self.system,
            len(rows),
            len(result.ids) - len(result.duplicates),
            len(result.duplicates),
            result.quarantined,
            origin,
        )

    # ------------------------------------------------------------------ HTTP

    async def _fetch(
        self, session: aiohttp.ClientSession, ctx: SourceContext, params: dict[str, str]
    ) -> tuple[list[Any], Any] | None:
        """GET one page: (records, whole answer), or None if the hub stopped meanwhile."""
        return await _unless_stopping(ctx, self._get(session, params))

    async def _get(
        self, session: aiohttp.ClientSession, params: dict[str, str]
    ) -> tuple[list[Any], Any]:
        try:
            async with session.get(self.url, params=params) as resp:
                body = await resp.read()
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except TimeoutError:
            raise _Retry(f"timeout after {self.options.timeout} s") from None
        except aiohttp.ClientError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        text = body[:200].decode("utf-8", "replace")
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}: {text}", retry_after)
        if status >= 300:
            raise SourceError(f"{self.url} answered HTTP {status}: {text}", field="url")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise SourceError(f"{self.url} answered invalid JSON: {exc}", field="body") from None
        rows = dig(doc, self.options.records_path)
        if rows is None and self.options.mode == "page_token":
            rows = []
        if not isinstance(rows, list):
            raise SourceError(
                f"no record list at records_path {self.options.records_path!r} in the answer "
                f"({type(rows).__name__})",
                field="records_path",
            )
        return rows, doc


def _same(a: Any, b: Any) -> bool:
    return a is not None and b is not None and _order(a) == _order(b)


async def _unless_stopping(ctx: SourceContext, work: Awaitable[T]) -> T | None:
    """Await ``work`` unless the hub stops first (then cancel it and return None)."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(ctx.stopping.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:  # it failed while being cancelled: the hub is stopping anyway
        log.debug("request ended with an error while stopping", exc_info=True)
    return None


def _factory(system: str, options: HttpPullOptions) -> HttpPullSource:
    return HttpPullSource(system, options)


spec = SourceSpec(
    name="http_pull",
    factory=_factory,
    config_model=HttpPullOptions,
    description="poll a REST API (updated_since or page_token cursor), keys <id>@<updated_at>",
)
