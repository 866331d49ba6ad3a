"""The connector's ledger (上报台账): what the nation acknowledged, kept on our side for
reconciliation (对账) and the catalog resync.

One small SQLite file per hub node (``ledger:`` in the national system's ``outbound``). Each
监管行为 record the nation accepted is kept with its day, digest, receipt and the exact body
sent, so a reconciliation can re-send precisely the records the nation is missing; each
catalog item keeps the latest version the nation accepted (our view, for ``resync``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

__all__ = ["CatalogEntry", "Ledger", "SentRecord"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    dataset   TEXT NOT NULL,
    record_id TEXT NOT NULL,
    day       TEXT NOT NULL,
    digest    TEXT NOT NULL,
    receipt   TEXT,
    body      BLOB NOT NULL,
    at        REAL NOT NULL,
    PRIMARY KEY (dataset, record_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sent_day ON sent (dataset, day);
CREATE TABLE IF NOT EXISTS catalog (
    code    TEXT NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL,
    digest  TEXT NOT NULL,
    body    BLOB NOT NULL,
    at      REAL NOT NULL
) WITHOUT ROWID;
"""


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
    """Thread-confined SQLite access run off the event loop; ``path=":memory:"`` for tests."""

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self.clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                if self._conn is None:
                    raise RuntimeError("the national ledger is not open")
                return fn(self._conn)

        return await asyncio.to_thread(call)

    async def record_sent(self, records: Sequence[SentRecord]) -> None:
        """Keep accepted records (a re-sent one keeps its first receipt)."""
        now = self.clock()
        rows = [
            (r.dataset, r.record_id, r.day, r.digest, r.receipt, orjson.dumps(r.body), now)
            for r in records
        ]

        def op(c: sqlite3.Connection) -> None:
            with c:
                c.executemany(
                    "INSERT INTO sent VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (dataset, record_id) DO UPDATE SET day = excluded.day, "
                    "digest = excluded.digest, body = excluded.body, "
                    "receipt = coalesce(sent.receipt, excluded.receipt)",
                    rows,
                )

        if rows:
            await self._run(op)

    async def day(self, dataset: str, day: str) -> list[SentRecord]:
        """Every record of ``dataset`` (national name) whose day is ``day`` (YYYY-MM-DD)."""
        rows = await self._run(
            lambda c: c.execute(
                "SELECT record_id, digest, receipt, body FROM sent WHERE dataset = ? AND day = ? "
                "ORDER BY record_id",
                (dataset, day),
            ).fetchall()
        )
        return [SentRecord(dataset, r[0], day, r[1], r[2], orjson.loads(r[3])) for r in rows]

    async def record_catalog(self, code: str, version: int, digest: str, body: Any) -> None:
        """Keep the version the nation accepted, unless a later one is already kept."""
        row = (code, version, digest, orjson.dumps(body), self.clock())
        await self._run(
            lambda c: c.execute(
                "INSERT INTO catalog VALUES (?, ?, ?, ?, ?) ON CONFLICT (code) DO UPDATE SET "
                "version = excluded.version, digest = excluded.digest, body = excluded.body, "
                "at = excluded.at WHERE excluded.version >= catalog.version",
                row,
            )
        )

    async def catalog(self) -> list[CatalogEntry]:
        """Our view of the catalog: the latest accepted version of every item."""
        rows = await self._run(
            lambda c: c.execute(
                "SELECT code, version, digest, body FROM catalog ORDER BY code"
            ).fetchall()
        )
        return [CatalogEntry(r[0], r[1], r[2], orjson.loads(r[3])) for r in rows]
