"""Governed access (受控访问) to the records the hub holds: query pages, bulk export and the
projection of subscription deliveries, each through the caller's grant.

The data source is the store's current records of a dataset (the latest version per business
key, :meth:`hub.store.Store.current_records`), field-decrypted, then checked and projected by
:mod:`hub.sharing.enforce`: only granted fields and rows leave, masked where the grant says.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson

from hub.sharing.enforce import CursorCodec, CursorError, GrantScope, Plan, plan_query
from hub.sharing.filterlang import parse
from hub.sharing.quota import Quota, QuotaMeter, Usage
from hub.store.base import ShareRecord
from security.masking import MaskRule

__all__ = ["GovernedReader", "StoreCounters", "grant_quota", "grant_scope", "record_key"]

#: records read from the store per round trip while paging or exporting
_BATCH = 500


def record_key(position: int) -> str:
    """A record's key in cursors: its store position, zero-padded so text order is position
    order (the tie-breaker of every sort)."""
    return f"{position:020d}"


def grant_scope(grant: ShareRecord, extra_masks: tuple[MaskRule, ...] = ()) -> GrantScope:
    """What ``grant`` lets its holder read (fields, rows, masks, period)."""
    d = grant.doc
    masks = tuple(MaskRule(path, kind) for path, kind in sorted(d.get("masks", {}).items()))
    return GrantScope(
        dataset=grant.dataset,
        fields=tuple(d["fields"]),
        row_filter=parse(d["row_filter"]) if d.get("row_filter") else None,
        masks=masks + extra_masks,
        valid_from=dt.datetime.fromtimestamp(d["valid_from"], dt.UTC),
        valid_until=dt.datetime.fromtimestamp(d["valid_until"], dt.UTC),
        grant_id=grant.id,
    )


def grant_quota(grant: ShareRecord) -> Quota:
    return Quota(grant.doc["requests_per_day"], grant.doc["records_per_day"])


class StoreCounters:
    """The hub store's per-grant, per-day counters as the quota meter's counter store."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def add(self, grant_id: str, day: dt.date, requests: int, records: int) -> Usage:
        r, n = await self.store.quota_add(grant_id, day.isoformat(), requests, records)
        return Usage(r, n)

    async def get(self, grant_id: str, day: dt.date) -> Usage:
        r, n = await self.store.quota_add(grant_id, day.isoformat(), 0, 0)
        return Usage(r, n)


class GovernedReader:
    """Reads a dataset's current records for one hub (decrypting encrypted fields), from the
    store, or from the provider's own system for a proxied resource (``proxies`` by dataset,
    :class:`hub.sharing.proxy.ProviderProxy`: the same paging contract as the store)."""

    def __init__(
        self,
        store: Any,
        cipher_of: Callable[[str], Any],
        meter: QuotaMeter,
        proxies: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store
        #: the field cipher of a dataset (security.fieldcrypt), looked up per read: the guard
        #: builds its ciphers when the hub starts, after this reader
        self.cipher_of = cipher_of
        self.meter = meter
        self.proxies = dict(proxies or {})

    def _decode(self, dataset: str, payload: bytes | dict[str, Any]) -> dict[str, Any]:
        if isinstance(payload, dict):  # a provider's record, already parsed
            return payload
        rec: dict[str, Any] = orjson.loads(payload)
        cipher = self.cipher_of(dataset)
        return cipher.decrypt_fields(rec) if cipher is not None else rec

    async def records(
        self, dataset: str, after: int = 0
    ) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """Every current record after position ``after``, in position order, read in batches
        (memory stays bounded)."""
        source = self.proxies.get(dataset, self.store)
        while True:
            rows = await source.current_records(dataset, after=after, limit=_BATCH)
            for pos, payload in rows:
                yield pos, self._decode(dataset, payload)
                after = pos
            if len(rows) < _BATCH:
                return

    async def page(
        self, plan: Plan, codec: CursorCodec, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the plan's rows after ``cursor``.

        Without a sort, rows come in store order: the read starts right after the cursor's
        position and stops as soon as the page is full (one more match decides whether there
        is a next page). With a sort, every current record streams through the plan's bounded
        heap (:meth:`Plan.apage`: at most ``limit + 1`` rows held)."""
        dataset = plan.scope.dataset
        if plan.sort:

            async def keyed() -> AsyncIterator[tuple[str, dict[str, Any]]]:
                async for pos, rec in self.records(dataset):
                    yield record_key(pos), rec

            got = await plan.apage(keyed(), limit, codec, cursor)
            return got.items, got.next_cursor
        after = 0
        if cursor is not None:
            position = codec.decode(cursor, plan.fingerprint)
            if len(position) != 1 or not isinstance(position[0], str) or not position[0].isdigit():
                raise CursorError("the cursor does not fit this query", field="cursor")
            after = int(position[0])
        items: list[dict[str, Any]] = []
        last = after
        more = False
        async for pos, rec in self.records(dataset, after):
            out = plan.apply(rec)
            if out is None:
                continue
            if len(items) == limit:
                more = True
                break
            items.append(out)
            last = pos
        nxt = codec.encode(plan.fingerprint, [record_key(last)]) if more else None
        return items, nxt

    async def export_records(self, dataset: str) -> AsyncIterator[dict[str, Any]]:
        async for _, rec in self.records(dataset):
            yield rec


def subscription_plan(grant: ShareRecord, extra_masks: tuple[MaskRule, ...] = ()) -> Plan:
    """The plan a subscription's deliveries go through: the grant's fields, rows and masks."""
    return plan_query(grant_scope(grant, extra_masks))
