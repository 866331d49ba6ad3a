"""The connector's ledger (上报台账): what the nation acknowledged, kept on our side for
reconciliation (对账) and the catalog resync.

It lives in the hub's store (:meth:`hub.store.Store.ledger_put` / ``ledger_entries``, book
``national:<system>``), so with several nodes on one PostgreSQL store every node reconciles
what every node sent. Each 监管行为 record the nation accepted is kept with its day, digest,
receipt and the exact body sent, so a reconciliation can re-send precisely the records the
nation is missing; each catalog item keeps the latest version the nation accepted (our view,
for ``resync``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from hub.store import LedgerEntry, Store

__all__ = ["CATALOG", "CatalogEntry", "Ledger", "SentRecord"]

#: the ledger dataset holding catalog items (监管事项目录清单), by item code
CATALOG = "catalog"


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One accepted 监管行为 record: national dataset, our record id (the message id)."""

    dataset: str
    record_id: str
    day: str
    digest: str
    receipt: str | None
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """The latest version of a catalog item the nation accepted (the national schema body)."""

    code: str
    version: int
    digest: str
    body: dict[str, Any]


class Ledger:
    """The national system ``system``'s ledger in ``store`` (book ``national:<system>``)."""

    def __init__(self, store: Store, system: str, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.book = f"national:{system}"
        self.clock = clock

    async def record_sent(self, records: Sequence[SentRecord]) -> None:
        """Keep accepted records (a re-sent one keeps its first receipt)."""
        now = self.clock()
        await self.store.ledger_put(
            [
                LedgerEntry(
                    self.book,
                    r.dataset,
                    r.record_id,
                    r.day,
                    r.digest,
                    orjson.dumps(r.body),
                    receipt=r.receipt,
                    at=now,
                )
                for r in records
            ]
        )

    async def day(self, dataset: str, day: str) -> list[SentRecord]:
        """Every record of ``dataset`` (national name) whose day is ``day`` (YYYY-MM-DD)."""
        return [
            SentRecord(dataset, e.key, e.day, e.digest, e.receipt, orjson.loads(e.body))
            for e in await self.store.ledger_entries(self.book, dataset, day=day)
        ]

    async def record_catalog(self, code: str, version: int, digest: str, body: Any) -> None:
        """Keep the version the nation accepted, unless a later one is already kept."""
        entry = LedgerEntry(
            self.book, CATALOG, code, "", digest, orjson.dumps(body), version, at=self.clock()
        )
        await self.store.ledger_put([entry])

    async def catalog(self) -> list[CatalogEntry]:
        """Our view of the catalog: the latest accepted version of every item."""
        return [
            CatalogEntry(e.key, e.version, e.digest, orjson.loads(e.body))
            for e in await self.store.ledger_entries(self.book, CATALOG)
        ]
