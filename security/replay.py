"""Replay and freshness checks for signed requests.

A signature made by :func:`security.httpsig.sign_request` carries ``created`` (Unix seconds)
and a random ``nonce``. The verifier accepts it only while ``created`` is within ``±window`` of
its own clock (:func:`check_fresh`, ``E_EXPIRED``) and only once per ``(keyid, nonce)``
(:class:`NonceCache`, ``E_REPLAY``). A nonce is remembered until its signature would be stale
anyway (``created + window``), so the cache stays small.

This is not the idempotency check: an ``Idempotency-Key`` (kept by the hub store) makes a
*deliberate* resend of the same record harmless and returns the original message id; a replayed
signature is a captured request sent again, which is refused outright. A legitimate resend is
signed anew (new nonce) and carries the same ``Idempotency-Key``.

Two caches: :class:`MemoryNonceCache` (one process) and :class:`SQLiteNonceCache` (a table in a
SQLite file, shared by the processes of one node; the lead moves it into the hub store later).
"""

from __future__ import annotations

import asyncio
import heapq
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from hub.errors import ExpiredError, ReplayError
from hub.store.base import NonceClaim
from hub.store.sql import load_queries

__all__ = [
    "MemoryNonceCache",
    "NonceCache",
    "SQLiteNonceCache",
    "check_fresh",
    "check_replay",
    "nonce_claim",
]

_Q = load_queries("security", "replay.sql")


def check_fresh(created: float, now: float, window: float) -> None:
    """Raise :class:`ExpiredError` (``E_EXPIRED``, field ``created``) unless ``created`` is
    within ``window`` seconds of ``now`` (either side: clocks of two systems differ)."""
    if created < now - window:
        raise ExpiredError(
            f"signature created {now - created:.0f} s ago; at most {window:.0f} s are accepted",
            field="created",
        )
    if created > now + window:
        raise ExpiredError(
            f"signature created {created - now:.0f} s in the future; at most {window:.0f} s of "
            "clock difference are accepted",
            field="created",
        )


class NonceCache(Protocol):
    """Remembers ``(key_id, nonce)`` pairs until they expire."""

    async def remember(self, key_id: str, nonce: str, expires_at: float) -> bool:
        """Remember the pair until ``expires_at``; return ``False`` if it was already
        remembered and has not expired (a replay), ``True`` if it is new."""
        ...


def nonce_claim(key_id: str, nonce: str | None, created: float, window: float) -> NonceClaim:
    """The nonce of a signature made at ``created``, to be remembered until ``created +
    window`` (:meth:`NonceClaim.settle`, or with the request's records by the hub store). A
    missing nonce is refused (``E_REPLAY``, field ``nonce``), since it could not be checked."""
    if not nonce:
        raise ReplayError("the signature has no nonce; a nonce is required", field="nonce")
    return NonceClaim(key_id, nonce, created + window)


async def check_replay(
    cache: NonceCache, key_id: str, nonce: str | None, created: float, window: float
) -> None:
    """Raise :class:`ReplayError` (``E_REPLAY``) if ``nonce`` was seen before for ``key_id``;
    else remember it until ``created + window``. A missing nonce is refused too (field
    ``nonce``), since it could not be checked."""
    await nonce_claim(key_id, nonce, created, window).settle(cache.remember)


class MemoryNonceCache:
    """A :class:`NonceCache` in one process's memory; expired pairs are pruned as it goes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._seen: dict[tuple[str, str], float] = {}
        self._expiry: list[tuple[float, str, str]] = []

    def __len__(self) -> int:
        return len(self._seen)

    def _prune(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            expires_at, key_id, nonce = heapq.heappop(self._expiry)
            if self._seen.get((key_id, nonce)) == expires_at:
                del self._seen[(key_id, nonce)]

    async def remember(self, key_id: str, nonce: str, expires_at: float) -> bool:
        """See :meth:`NonceCache.remember`."""
        now = self._clock()
        self._prune(now)
        if (key_id, nonce) in self._seen:
            return False
        self._seen[(key_id, nonce)] = expires_at
        heapq.heappush(self._expiry, (expires_at, key_id, nonce))
        return True


class SQLiteNonceCache:
    """A :class:`NonceCache` in a SQLite file (own table ``seen_nonces``), so every process of
    a node sees the same nonces. Expired rows are deleted every ``prune_every`` inserts."""

    def __init__(
        self, path: Path, *, clock: Callable[[], float] = time.time, prune_every: int = 1000
    ) -> None:
        self._path = path
        self._clock = clock
        self._prune_every = prune_every
        self._inserts = 0
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        """Open the file and create the table if needed."""
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.executescript(_Q["schema"])
        self._conn = conn

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _remember(self, key_id: str, nonce: str, expires_at: float, now: float) -> bool:
        if self._conn is None:
            raise RuntimeError("SQLiteNonceCache is not open")
        with self._lock:
            cur = self._conn.execute(
                _Q["remember"],
                {"key_id": key_id, "nonce": nonce, "expires_at": expires_at, "now": now},
            )
            fresh = cur.rowcount == 1
            self._inserts += 1
            if self._inserts % self._prune_every == 0:
                self._conn.execute(_Q["prune"], {"now": now})
            return fresh

    def prune(self) -> int:
        """Delete expired rows now; return how many."""
        if self._conn is None:
            raise RuntimeError("SQLiteNonceCache is not open")
        with self._lock:
            return self._conn.execute(_Q["prune"], {"now": self._clock()}).rowcount

    def count(self) -> int:
        """Rows in the table (expired ones included until pruned)."""
        if self._conn is None:
            raise RuntimeError("SQLiteNonceCache is not open")
        with self._lock:
            row = self._conn.execute(_Q["count"]).fetchone()
        return int(row[0])

    async def remember(self, key_id: str, nonce: str, expires_at: float) -> bool:
        """See :meth:`NonceCache.remember`; the write runs in a worker thread."""
        return await asyncio.to_thread(self._remember, key_id, nonce, expires_at, self._clock())
