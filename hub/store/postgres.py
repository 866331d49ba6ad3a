"""PostgreSQL store: several hub nodes on one shared database.

* **Claims** lease due deliveries in batches with ``FOR UPDATE SKIP LOCKED``: nodes never wait
  for each other's rows and never claim the same row twice. A lease has an expiry (``next_at``
  of an inflight row), so the work of a node that died returns by itself.
* **Group commit**: concurrent ``enqueue`` calls of one node are merged into one transaction
  while the previous one commits (many HTTP requests, one round of WAL flush).
* **Wake-ups**: an enqueue sends ``pg_notify`` in its transaction; every node LISTENs on a
  dedicated connection and wakes its dispatcher for the named targets at once (also for the
  commits of its own ingest processes, ``serve --workers``: no doorbell needed).
* **Schema**: versioned migrations in ``postgres.sql`` (``migrate_<n>`` blocks), applied by
  ``jghub migrate``; :meth:`PostgresStore.open` refuses a schema it does not know.
* **Faults**: a lost connection or an unreachable database is :class:`StoreUnavailable`
  (``E_STORE``, HTTP 503 with ``Retry-After``): nothing was acknowledged. The pool replaces
  broken connections, so the node recovers by itself when the database is back.

psycopg 3 (async) with ``psycopg_pool``. PostgreSQL-specific SQL is listed in ``postgres.sql``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hub.errors import StoreSchemaError, StoreUnavailable
from hub.store.base import (
    ClaimedDelivery,
    DeadLetterInfo,
    DeliveryInfo,
    DeliveryState,
    EnqueueResult,
    LedgerEntry,
    MessageTrace,
    NewMessage,
    NonceClaim,
    Outcome,
    QuarantinedRecord,
    RouteStats,
    ShareEvent,
    ShareRecord,
    SubjectLink,
    TargetQueue,
    TraceEvent,
    UndeliveredInfo,
    judge_business_key,
)
from hub.store.sharerows import share_event, share_event_row, share_record, share_row, share_table
from hub.store.sql import load_queries

__all__ = ["SCHEMA_VERSION", "PostgresStore", "migrate"]

log = logging.getLogger("jghub.store.postgres")

#: the schema version this jghub runs on (``migrate_1`` … ``migrate_<n>`` in postgres.sql)
SCHEMA_VERSION = 3
#: ``next_at`` of a parked delivery (queued behind an unfinished one of its ordered partition)
PARKED = 1e18
Q = load_queries("hub.store", "postgres.sql")
#: a claim's or a relaxed settle's transaction returns without waiting for the WAL flush; a
#: server crash can lose it, which only means the delivery is claimed and sent again
_NO_SYNC = "SET LOCAL synchronous_commit = off"
T = TypeVar("T")
_Conn = psycopg.AsyncConnection[Any]
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: errors that mean "the database is not reachable now", not "this request is wrong"
_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
#: errors after which the same transaction is simply run again
_RETRY = (
    psycopg.errors.UniqueViolation,  # a concurrent node inserted the same key first
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
)


def _part(partition_key: str | None) -> str:
    """The indexable name of an ordered partition (NULL keys form one partition)."""
    return "-" if partition_key is None else "k:" + partition_key


def _check_schema_name(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"store.schema {schema!r}: use lower-case letters, digits and _")
    return schema


async def _connect(dsn: str, schema: str, timeout: float) -> _Conn:
    try:
        return await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, connect_timeout=max(1, int(timeout)), options=_options(schema)
        )
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"PostgreSQL store unreachable: {exc}".strip()) from exc


def _options(schema: str) -> str:
    return f"-c search_path={schema}"


async def migrate(
    dsn: str,
    schema: str = "public",
    *,
    timeout: float = 10.0,
    clock: Callable[[], float] = time.time,
) -> tuple[int, int]:
    """Bring the store's schema up to :data:`SCHEMA_VERSION` (``jghub migrate``).

    Creates the schema when missing. Safe to run from several nodes at once (the version table
    is locked while migrating). Returns (version before, version after); refuses a database
    whose schema is newer than this jghub knows."""
    _check_schema_name(schema)
    conn = await _connect(dsn, schema, timeout)
    try:
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        async with conn.transaction():
            await conn.execute(Q["version_table"])
            await conn.execute(Q["lock_version"])
            cur = await conn.execute(Q["get_version"])
            row = await cur.fetchone()
            before = int(row[0]) if row and row[0] is not None else 0
            if before > SCHEMA_VERSION:
                raise StoreSchemaError(
                    f"store schema {schema!r} is at version {before}; this jghub knows up to "
                    f"{SCHEMA_VERSION}: run a newer jghub",
                    field="store.schema",
                )
            for version in range(before + 1, SCHEMA_VERSION + 1):
                await conn.execute(Q[f"migrate_{version}"])
                await conn.execute(Q["set_version"], (version, clock()))
        return before, SCHEMA_VERSION
    finally:
        await conn.close()


async def schema_version(dsn: str, schema: str = "public", *, timeout: float = 10.0) -> int:
    """The store's schema version (0: never migrated)."""
    conn = await _connect(dsn, schema, timeout)
    try:
        cur = await conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name = 'jghub_schema'",
            (schema,),
        )
        if await cur.fetchone() is None:
            return 0
        cur = await conn.execute(Q["get_version"])
        row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0
    finally:
        await conn.close()


@dataclass(slots=True)
class _Prepared:
    """What one group-commit transaction writes, gathered across its callers' messages."""

    results: list[EnqueueResult | None] = field(default_factory=list)
    msgs: list[tuple[Any, ...]] = field(default_factory=list)
    dels: list[tuple[Any, ...]] = field(default_factory=list)
    notes: list[tuple[Any, ...]] = field(default_factory=list)
    bkey_inserts: list[tuple[Any, ...]] = field(default_factory=list)
    bkey_updates: list[tuple[Any, ...]] = field(default_factory=list)
    targets: set[str] = field(default_factory=set)
    superseded: list[tuple[str]] = field(default_factory=list)


class PostgresStore:
    """The shared store for several hub nodes. ``clock`` is injectable so tests can move time.

    ``schema`` is the PostgreSQL schema holding the tables (one database can hold several
    hubs, or one schema per test). ``pool_size`` bounds the connections a node opens;
    ``timeout`` is how long a request waits for a connection before it is refused with 503.
    """

    #: several nodes share this store: scheduled jobs and sources take leases in it
    shared_by_nodes = True

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        pool_size: int = 10,
        timeout: float = 5.0,
        max_group: int = 2000,
        settle_sync: str = "relaxed",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settle_sync not in ("relaxed", "full"):
            raise ValueError(f"settle_sync must be 'relaxed' or 'full', not {settle_sync!r}")
        self.dsn = dsn
        #: ``relaxed``: settles commit with ``synchronous_commit = off`` like claims always do
        #: (lost in a server crash, a delivery is only sent again with its Idempotency-Key)
        self.settle_sync = settle_sync
        self.schema = _check_schema_name(schema)
        self.pool_size = pool_size
        self.timeout = timeout
        self.max_group = max_group
        self.clock = clock
        self.channel = f"jghub_work_{self.schema}"[:63]
        #: how this store's connections show in ``pg_stat_activity``
        self.application_name = f"jghub-{self.schema}"[:63]
        self._pool: AsyncConnectionPool[_Conn] | None = None
        self._pending: list[tuple[Sequence[NewMessage], asyncio.Future[list[EnqueueResult]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._on_work: Callable[[Sequence[str] | None], None] | None = None
        self._listening = False
        self._last_error: str | None = None
        self._nonce_writes = 0
        #: (transactions committed, enqueue calls in them) since open
        self.commits = 0
        self.calls = 0

    # ------------------------------------------------------------------ plumbing

    async def migrate(self) -> tuple[int, int]:
        """Apply missing migrations (see :func:`migrate`)."""
        return await migrate(self.dsn, self.schema, timeout=self.timeout, clock=self.clock)

    async def open(self) -> None:
        """Check the schema version, open the pool and start listening for new work."""
        version = await schema_version(self.dsn, self.schema, timeout=self.timeout)
        if version != SCHEMA_VERSION:
            what = "has no jghub tables" if version == 0 else f"is at version {version}"
            raise StoreSchemaError(
                f"PostgreSQL store schema {self.schema!r} {what}; this jghub runs on version "
                f"{SCHEMA_VERSION}"
                + (": run `jghub migrate`" if version < SCHEMA_VERSION else ": run a newer jghub"),
                field="store.schema",
            )
        pool: AsyncConnectionPool[_Conn] = AsyncConnectionPool(
            self.dsn,
            min_size=min(2, self.pool_size),
            max_size=self.pool_size,
            kwargs={
                "autocommit": True,
                "options": _options(self.schema),
                "application_name": self.application_name,
            },
            timeout=self.timeout,
            reconnect_timeout=0,  # keep trying while the database is down (never give up)
            open=False,
            name=f"jghub-{self.schema}",
        )
        try:
            await pool.open(wait=True, timeout=self.timeout)
        except _UNAVAILABLE as exc:
            await pool.close()
            raise StoreUnavailable(f"PostgreSQL store unreachable: {exc}") from exc
        self._pool = pool
        if self._on_work is not None:
            self._start_listening()

    def _start_listening(self) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name=f"jghub-listen:{self.schema}")

    async def close(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
            self._flusher = None
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def problems(self) -> list[str]:
        """What keeps the store from working now (for ``/readyz``)."""
        if self._pool is None:
            return ["store is not open"]
        return [f"PostgreSQL: {self._last_error}"] if self._last_error else []

    def on_work(self, callback: Callable[[Sequence[str] | None], None]) -> None:
        """Wake-ups from every node's commits (LISTEN/NOTIFY), see :class:`WorkNotifier`.
        The LISTEN connection is opened only for a store that asked for wake-ups: an ingest
        process (``serve --workers``) only commits, and its commits NOTIFY the node."""
        self._on_work = callback
        if self._pool is not None:
            self._start_listening()

    async def _listen(self) -> None:
        """Keep one LISTEN connection; reconnect with a backoff when it breaks."""
        delay = 0.2
        while True:
            conn: _Conn | None = None
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn,
                    autocommit=True,
                    connect_timeout=max(1, int(self.timeout)),
                    application_name=self.application_name,
                )
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                self._listening = True
                delay = 0.2
                self._wake(None)  # notices sent while we were not listening are lost
                async for note in conn.notifies():
                    self._wake([t for t in note.payload.split("\n") if t])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._listening:
                    log.warning("LISTEN connection lost (%s); reconnecting", exc)
                self._listening = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()

    def _wake(self, targets: Sequence[str] | None) -> None:
        if self._on_work is not None:
            try:
                self._on_work(targets)
            except Exception:
                log.exception("wake-up callback failed")

    async def _run(self, fn: Callable[[_Conn], Awaitable[T]], *, tx: bool = True) -> T:
        """Run ``fn`` on a pooled connection (in a transaction when ``tx``); run it again when
        it lost a race with another node; a lost database is :class:`StoreUnavailable`."""
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the store takes no writes: store is not open")
        for attempt in range(8):
            try:
                async with pool.connection() as conn:
                    if not tx:
                        value = await fn(conn)
                    else:
                        async with conn.transaction():
                            value = await fn(conn)
                self._last_error = None
                return value
            except _RETRY:
                if attempt == 7:
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))
            except _UNAVAILABLE as exc:
                self._last_error = str(exc).strip() or type(exc).__name__
                raise StoreUnavailable(
                    f"PostgreSQL store unavailable ({self._last_error}); nothing was committed"
                ) from exc
        raise AssertionError("unreachable")

    async def _fetchall(self, query: str, params: Any = None) -> list[Any]:
        async def fn(conn: _Conn) -> list[Any]:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

        return await self._run(fn, tx=False)

    @property
    def group_commit_stats(self) -> tuple[int, int]:
        """(transactions committed, enqueue calls in them) since open."""
        return self.commits, self.calls

    # ------------------------------------------------------------------ enqueue

    async def enqueue(
        self, messages: Sequence[NewMessage], *, nonce: NonceClaim | None = None
    ) -> list[EnqueueResult]:
        """Commit ``messages``; resolves after COMMIT. Calls made while the previous
        transaction commits are group-committed in the next one. A ``nonce`` is remembered
        first, in its own commit (a replay stores nothing; the SQLite store, where the second
        fsync mattered, puts it in the messages' transaction)."""
        if nonce is not None:
            await nonce.settle(self.remember_nonce)
        if not messages:
            return []
        if self._pool is None:
            raise StoreUnavailable("the store takes no writes: store is not open")
        fut: asyncio.Future[list[EnqueueResult]] = asyncio.get_running_loop().create_future()
        self._pending.append((messages, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        return await fut

    async def _flush_loop(self) -> None:
        while self._pending:
            batch: list[tuple[Sequence[NewMessage], asyncio.Future[list[EnqueueResult]]]] = []
            size = 0
            while self._pending and (
                not batch or size + len(self._pending[0][0]) <= self.max_group
            ):
                item = self._pending.pop(0)
                if item[1].done():  # its caller went away before we started
                    continue
                batch.append(item)
                size += len(item[0])
            if batch:
                await self._commit_groups(batch)

    async def _commit_groups(
        self, batch: list[tuple[Sequence[NewMessage], asyncio.Future[list[EnqueueResult]]]]
    ) -> None:
        groups = [msgs for msgs, _ in batch]
        try:
            outs = await self._run(lambda c: self._enqueue_tx(c, groups))
        except Exception as exc:
            if len(batch) > 1 and not isinstance(exc, StoreUnavailable):
                for one in batch:  # isolate the caller whose messages fail
                    await self._commit_groups([one])
                return
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self.commits += 1
        self.calls += len(batch)
        for (_, fut), out in zip(batch, outs, strict=True):
            if not fut.done():
                fut.set_result(out)

    async def _enqueue_tx(
        self, conn: _Conn, groups: Sequence[Sequence[NewMessage]]
    ) -> list[list[EnqueueResult]]:
        now = self.clock()
        flat = [m for g in groups for m in g]
        prep = await self._prepare(conn, flat, now)
        async with conn.cursor() as cur:
            if prep.msgs:
                await cur.execute(Q["next_seqs"], (len(prep.msgs),))
                seqs = [r[0] for r in await cur.fetchall()]
                await cur.executemany(
                    Q["insert_message"],
                    [(s, *row) for s, row in zip(seqs, prep.msgs, strict=True)],
                )
                if prep.dels:
                    await cur.executemany(
                        Q["insert_delivery"], [(seqs[i], *rest) for i, *rest in prep.dels]
                    )
                if prep.notes:
                    await cur.executemany(
                        Q["insert_note"], [(seqs[i], *rest) for i, *rest in prep.notes]
                    )
            if prep.bkey_inserts:
                await cur.executemany(Q["insert_bkey"], prep.bkey_inserts)
            if prep.bkey_updates:
                await cur.executemany(Q["update_bkey"], prep.bkey_updates)
            if prep.superseded:
                await cur.executemany(Q["insert_superseded"], prep.superseded)
            if prep.targets:
                await cur.execute(Q["notify"], (self.channel, "\n".join(sorted(prep.targets))))
        out: list[list[EnqueueResult]] = []
        i = 0
        for g in groups:
            part = prep.results[i : i + len(g)]
            out.append([r for r in part if r is not None])
            i += len(g)
        return out

    async def _prepare(self, conn: _Conn, flat: Sequence[NewMessage], now: float) -> _Prepared:
        """Rows for new messages; results for duplicates (stored rows or earlier in ``flat``)."""
        prep = _Prepared()
        idem: dict[tuple[str, str], tuple[str, bytes]] = {}
        keys = [(n.envelope.source, n.envelope.idempotency_key) for n in flat]
        wanted = sorted({(s, k) for s, k in keys if k is not None})
        if wanted:
            cur = await conn.execute(
                Q["find_idem"], ([s for s, _ in wanted], [k for _, k in wanted])
            )
            for source, key, mid, digest in await cur.fetchall():
                idem[(source, key)] = (mid, bytes(digest))
        bkeys: dict[tuple[str, str, str], tuple[str, str | None, bytes]] = {}
        stored_bkeys: set[tuple[str, str, str]] = set()
        bwanted = sorted(
            {
                (n.envelope.source, n.envelope.dataset, n.business_key)
                for n in flat
                if n.business_key is not None
            }
        )
        if bwanted:
            cur = await conn.execute(
                Q["find_bkeys"],
                ([b[0] for b in bwanted], [b[1] for b in bwanted], [b[2] for b in bwanted]),
            )
            for source, dataset, bkey, mid, version, digest in await cur.fetchall():
                bkeys[(source, dataset, bkey)] = (mid, version, bytes(digest))
                stored_bkeys.add((source, dataset, bkey))
        # Ordered partitions: lock each partition's tail (sorted, so nodes lock in one order).
        parts = sorted(
            {
                (t.target, _part(n.envelope.partition_key))
                for n in flat
                for t in n.targets
                if t.ordered
            }
        )
        busy: set[tuple[str, str]] = set()
        for target, part in parts:
            cur = await conn.execute(Q["partition_tail"], (target, part))
            if await cur.fetchone() is not None:
                busy.add((target, part))
        bkey_final: dict[tuple[str, str, str], tuple[str, str | None, bytes]] = {}
        for new in flat:
            m = new.envelope
            key = m.idempotency_key
            digest = new.clear_digest()
            if key is not None:
                seen = idem.get((m.source, key))
                if seen is not None:
                    prep.results.append(EnqueueResult(seen[0], True, seen[1] != digest))
                    continue
            replaces = None
            bk = new.business_key
            if bk is not None:
                bkk = (m.source, m.dataset, bk)
                judged = judge_business_key(bkeys.get(bkk), digest, new.version)
                if isinstance(judged, EnqueueResult):
                    prep.results.append(judged)
                    continue
                replaces = judged
                if replaces is not None:
                    prep.superseded.append((replaces,))
                bkeys[bkk] = bkey_final[bkk] = (m.message_id, new.version, digest)
            if key is not None:
                idem[(m.source, key)] = (m.message_id, digest)
            index = len(prep.msgs)
            prep.msgs.append(
                (
                    m.message_id,
                    m.source,
                    m.dataset,
                    m.dataset_version,
                    key,
                    m.partition_key,
                    m.created_at,
                    now,
                    m.traceparent,
                    m.payload,
                    new.subject,
                    digest,
                )
            )
            if new.notes:
                prep.notes.append((index, now, "; ".join(new.notes)))
            for t in new.targets:
                due = now
                part = _part(m.partition_key)
                if t.ordered:
                    if (t.target, part) in busy:
                        due = PARKED
                    busy.add((t.target, part))
                prep.dels.append((index, t.target, t.route, t.ordered, part, due))
                prep.targets.add(t.target)
            prep.results.append(EnqueueResult(m.message_id, False, replaces=replaces))
        for bkk, (mid, version, digest) in bkey_final.items():
            if bkk in stored_bkeys:
                prep.bkey_updates.append((version, digest, mid, *bkk))
            else:
                prep.bkey_inserts.append((*bkk, version, digest, mid))
        return prep

    # ------------------------------------------------------------------ claims and outcomes

    async def claim(
        self, target: str, limit: int, lease_seconds: float, owner: str
    ) -> list[ClaimedDelivery]:
        now = self.clock()
        params = {
            "target": target,
            "now": now,
            "limit": limit,
            "lease_until": now + lease_seconds,
            "owner": owner,
        }

        async def fn(conn: _Conn) -> list[Any]:
            # A claim only takes leases: lost in a server crash, the deliveries are claimed
            # again; a later synchronous commit (a full settle) flushes it with its own WAL.
            await conn.execute(_NO_SYNC)
            cur = await conn.execute(Q["claim"], params)
            return await cur.fetchall()

        rows = await self._run(fn)
        out = [
            ClaimedDelivery(
                r[0], r[1], target, r[2], r[3], r[4], r[5], r[6], bytes(r[7]), r[8], r[9], r[10]
            )
            for r in rows
        ]
        out.sort(key=lambda c: c.delivery_id)
        return out

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        ordered = sorted(outcomes, key=lambda o: o.delivery_id)  # one lock order for all nodes
        acks = [o for o in ordered if o.kind == "ack"]
        retries = [o for o in ordered if o.kind == "retry"]
        deads = [o for o in ordered if o.kind == "dead"]
        steps = {"ack": "delivered", "retry": "retry", "dead": "dead-lettered"}

        async def fn(conn: _Conn) -> None:
            if self.settle_sync == "relaxed":
                await conn.execute(_NO_SYNC)
            if acks:
                await conn.execute(
                    Q["settle_ack"],
                    (
                        [o.delivery_id for o in acks],
                        [o.at for o in acks],
                        [o.status for o in acks],
                    ),
                )
                await conn.execute(
                    Q["unpark_next"], {"ids": [o.delivery_id for o in acks], "now": acks[0].at}
                )
            if retries:
                await conn.execute(
                    Q["settle_retry"],
                    (
                        [o.delivery_id for o in retries],
                        [o.next_at if o.next_at is not None else o.at for o in retries],
                        [o.status for o in retries],
                        [o.detail for o in retries],
                        [o.attempt for o in retries],
                    ),
                )
            if deads:
                await conn.execute(
                    Q["settle_dead"],
                    (
                        [o.delivery_id for o in deads],
                        [o.at for o in deads],
                        [o.status for o in deads],
                        [o.detail for o in deads],
                        [o.attempt for o in deads],
                    ),
                )
            await self._events_for(conn, [(o, steps[o.kind]) for o in outcomes])

        await self._run(fn)

    @staticmethod
    async def _events_for(conn: _Conn, items: Sequence[tuple[Outcome, str]]) -> None:
        await conn.execute(
            Q["insert_events_for_deliveries"],
            (
                [o.delivery_id for o, _ in items],
                [o.at for o, _ in items],
                [step for _, step in items],
                [o.attempt for o, _ in items],
                [o.status for o, _ in items],
                [o.latency_ms for o, _ in items],
                [o.detail for o, _ in items],
            ),
        )

    async def release_leases(self, owner: str | None = None) -> int:
        now = self.clock()

        async def fn(conn: _Conn) -> int:
            if owner is None:
                cur = await conn.execute(Q["release_all"], (now,))
            else:
                cur = await conn.execute(Q["release_owner"], (now, owner))
            return cur.rowcount

        return await self._run(fn)

    async def next_due_at(self, target: str) -> float | None:
        rows = await self._fetchall(Q["next_due"], (target,))
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    async def add_events(self, message_id: str, events: Sequence[TraceEvent]) -> None:
        rows = [
            (e.at, e.step, e.target, e.attempt, e.status, e.latency_ms, e.detail, message_id)
            for e in events
        ]
        if not rows:
            return

        async def fn(conn: _Conn) -> None:
            async with conn.cursor() as cur:
                await cur.executemany(Q["insert_event"], rows)

        await self._run(fn)

    async def replay(self, delivery_ids: Sequence[int], at: float) -> int:
        return await self._change_dead("replay", (at, list(delivery_ids)), at, "replayed", "")

    async def discard(self, delivery_ids: Sequence[int], at: float, reason: str) -> int:
        return await self._change_dead("discard", (list(delivery_ids),), at, "discarded", reason)

    async def _change_dead(
        self, query: str, params: tuple[Any, ...], at: float, step: str, detail: str
    ) -> int:
        async def fn(conn: _Conn) -> int:
            cur = await conn.execute(Q[query], params)
            rows = await cur.fetchall()
            ids = sorted(r[0] for r in rows)
            if not ids:
                return 0
            if query == "discard":
                await conn.execute(Q["unpark_next"], {"ids": ids, "now": at})
            outs = [Outcome(i, "ack", at, 0, detail=detail) for i in ids]
            await conn.execute(
                Q["insert_events_for_deliveries"],
                (
                    ids,
                    [at] * len(ids),
                    [step] * len(ids),
                    [None] * len(ids),
                    [None] * len(ids),
                    [None] * len(ids),
                    [o.detail for o in outs],
                ),
            )
            await conn.execute(Q["notify"], (self.channel, "\n".join(sorted({r[1] for r in rows}))))
            return len(ids)

        return await self._run(fn)

    # ------------------------------------------------------------------ reads

    async def lookup_idempotency(self, source: str, key: str) -> str | None:
        rows = await self._fetchall(Q["find_idem_one"], (source, key))
        return str(rows[0][0]) if rows else None

    async def trace(self, message_id: str) -> MessageTrace | None:
        async def fn(conn: _Conn) -> MessageTrace | None:
            cur = await conn.execute(Q["message"], (message_id,))
            m = await cur.fetchone()
            if m is None:
                return None
            cur = await conn.execute(Q["message_deliveries"], (m[0],))
            dels = [
                DeliveryInfo(
                    r[0],
                    r[1],
                    r[2],
                    DeliveryState(r[3]),
                    r[4],
                    r[5] if r[3] < 2 else None,
                    r[6],
                    r[7],
                    r[8],
                )
                for r in await cur.fetchall()
            ]
            cur = await conn.execute(Q["message_events"], (m[0],))
            evs = [
                TraceEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6] or "")
                for r in await cur.fetchall()
            ]
            return MessageTrace(
                m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], bytes(m[10]), dels, evs
            )

        # one snapshot for the message, its deliveries and events
        return await self._run(fn)

    async def dead_letters(
        self, target: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetterInfo]:
        rows = await self._fetchall(
            Q["dead_letters"], {"target": target, "limit": limit, "offset": offset}
        )
        return [
            DeadLetterInfo(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9] or "")
            for r in rows
        ]

    async def undelivered(self, target: str, limit: int = 1000) -> list[UndeliveredInfo]:
        rows = await self._fetchall(Q["undelivered"], {"target": target, "limit": limit})
        return [
            UndeliveredInfo(r[0], r[1], r[2], r[3], DeliveryState(r[4]), r[5], r[6], bytes(r[7]))
            for r in rows
        ]

    async def route_stats(self) -> list[RouteStats]:
        rows = await self._fetchall(Q["route_stats"])
        return [
            RouteStats(
                r[0],
                r[1],
                int(r[2]),
                int(r[3]),
                int(r[4]),
                int(r[5]),
                int(r[6]),
                float(r[7]) if r[7] is not None else None,
                float(r[8]) if r[8] is not None else None,
            )
            for r in rows
        ]

    async def counts(self) -> dict[str, int]:
        async def fn(conn: _Conn) -> dict[str, int]:
            out = {s.name.lower(): 0 for s in DeliveryState}
            cur = await conn.execute(Q["state_counts"])
            for state, n in await cur.fetchall():
                out[DeliveryState(state).name.lower()] = int(n)
            cur = await conn.execute(Q["message_count"])
            row = await cur.fetchone()
            out["messages"] = int(row[0]) if row else 0
            return out

        return await self._run(fn, tx=False)

    async def get_state(self, scope: str, key: str) -> str | None:
        rows = await self._fetchall(Q["get_state"], (scope, key))
        return str(rows[0][0]) if rows else None

    async def put_state(self, scope: str, key: str, value: str) -> None:
        at = self.clock()

        async def fn(conn: _Conn) -> None:
            await conn.execute(Q["put_state"], (scope, key, value, at))

        await self._run(fn)

    async def quarantine(self, items: Sequence[QuarantinedRecord]) -> int:
        rows = [
            (q.source, q.dataset, q.key, q.origin, q.code, q.field, q.detail, q.raw, q.at)
            for q in items
        ]
        if not rows:
            return 0

        async def fn(conn: _Conn) -> int:
            n = 0
            for row in rows:
                cur = await conn.execute(Q["insert_quarantine"], row)
                n += max(cur.rowcount, 0)
            return n

        return await self._run(fn)

    async def quarantined(
        self, source: str | None = None, *, after: int = 0, limit: int = 100
    ) -> list[QuarantinedRecord]:
        rows = await self._fetchall(
            Q["quarantined"], {"source": source, "after": after, "limit": limit}
        )
        return [
            QuarantinedRecord(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[0])
            for r in rows
        ]

    async def subject_messages(self, subject: str, limit: int = 100) -> list[SubjectLink]:
        rows = await self._fetchall(Q["subject_messages"], (subject, limit))
        return [SubjectLink(r[0], r[1], r[2], r[3]) for r in rows]

    async def ledger_put(self, entries: Sequence[LedgerEntry]) -> int:
        rows = [
            (e.book, e.dataset, e.key, e.day, e.digest, e.body, e.version, e.receipt, e.at)
            for e in entries
        ]
        if not rows:
            return 0

        async def fn(conn: _Conn) -> int:
            n = 0
            for row in rows:
                cur = await conn.execute(Q["ledger_put"], row)
                n += max(cur.rowcount, 0)
            return n

        return await self._run(fn)

    async def ledger_entries(
        self, book: str, dataset: str, *, day: str | None = None
    ) -> list[LedgerEntry]:
        rows = await self._fetchall(
            Q["ledger_entries"], {"book": book, "dataset": dataset, "day": day}
        )
        return [_ledger_row(r) for r in rows]

    async def remember_nonce(self, key_id: str, nonce: str, expires_at: float) -> bool:
        now = self.clock()
        self._nonce_writes += 1
        prune = self._nonce_writes % 1000 == 0

        async def fn(conn: _Conn) -> bool:
            if prune:
                await conn.execute(Q["prune_nonces"], (now,))
            cur = await conn.execute(Q["remember_nonce"], (key_id, nonce, expires_at, now))
            return cur.rowcount > 0

        return await self._run(fn)

    # ------------------------------------------------------------------ reporting

    async def queue_stats(self) -> list[TargetQueue]:
        """Per target: pending, inflight and dead deliveries and the earliest due time."""

        async def fn(conn: _Conn) -> list[TargetQueue]:
            rows: dict[str, list[Any]] = {}
            cur = await conn.execute(Q["queue_stats"])
            for target, pending, inflight, due in await cur.fetchall():
                rows[target] = [int(pending or 0), int(inflight or 0), 0, due]
            cur = await conn.execute(Q["dead_counts"])
            for target, dead in await cur.fetchall():
                rows.setdefault(target, [0, 0, 0, None])[2] = int(dead)
            return [TargetQueue(t, r[0], r[1], r[2], r[3]) for t, r in sorted(rows.items())]

        return await self._run(fn, tx=False)

    async def find_messages(
        self,
        *,
        source: str | None = None,
        idempotency_key: str | None = None,
        business_key: str | None = None,
        limit: int = 50,
    ) -> list[SubjectLink]:
        """Messages matching every given filter, newest first (ops search)."""
        args = {"source": source, "idem": idempotency_key, "bkey": business_key, "limit": limit}
        rows = await self._fetchall(Q["find_messages"], args)
        return [SubjectLink(r[0], r[1], r[2], r[3]) for r in rows]

    async def schema_version(self) -> tuple[int, int]:
        """(schema version found in the store, version this jghub expects)."""
        return await schema_version(self.dsn, self.schema, timeout=self.timeout), SCHEMA_VERSION

    # ------------------------------------------------------------------ several nodes

    async def acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Take or renew a named lease (scheduled jobs, sources): see the Store protocol."""
        now = self.clock()

        async def fn(conn: _Conn) -> bool:
            cur = await conn.execute(
                Q["try_lease"],
                {"job": name, "owner": owner, "until": now + ttl_seconds, "now": now},
            )
            return await cur.fetchone() is not None

        return await self._run(fn)

    async def release_lease(self, name: str, owner: str) -> bool:
        async def fn(conn: _Conn) -> bool:
            cur = await conn.execute(Q["drop_lease"], (name, owner))
            return bool(cur.rowcount)

        return await self._run(fn)

    async def prune(
        self,
        before: float,
        limit: int,
        archive: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Retention (see :class:`~hub.store.base.Prunable`)."""

        async def fn(conn: _Conn) -> list[dict[str, Any]]:
            cur = await conn.execute(Q["prune_candidates"], (before, limit))
            seqs = [r[0] for r in await cur.fetchall()]
            if not seqs:
                return []
            cur = await conn.execute(Q["archive_rows"], (seqs,))
            summary = [
                {
                    "message_id": r[0],
                    "source": r[1],
                    "dataset": r[2],
                    "dataset_version": r[3],
                    "idempotency_key": r[4],
                    "accepted_at": r[5],
                    "delivered": int(r[6]),
                    "events": int(r[7]),
                }
                for r in await cur.fetchall()
            ]
            if archive is not None:
                archive(summary)  # before the delete commits: a crash repeats, never loses
            await conn.execute(Q["prune_messages"], (seqs,))
            return summary

        return await self._run(fn)

    # ------------------------------------------------------------------ data sharing

    async def share_put(
        self, record: ShareRecord, *, expect_rev: int, events: Sequence[ShareEvent] = ()
    ) -> bool:
        query = Q["share_insert" if expect_rev == 0 else "share_update"].format(
            table=share_table(record.kind)
        )
        row = share_row(record) | {"expect_rev": expect_rev}
        evs = [share_event_row(e) for e in events]

        async def fn(conn: _Conn) -> bool:
            cur = await conn.execute(query, row)
            if not cur.rowcount:
                return False
            if evs:
                async with conn.cursor() as c:
                    await c.executemany(Q["share_event_insert"], evs)
            return True

        return await self._run(fn)

    async def share_get(self, kind: str, id: str) -> ShareRecord | None:
        rows = await self._fetchall(Q["share_get"].format(table=share_table(kind)), (id,))
        return share_record(kind, rows[0]) if rows else None

    async def share_list(
        self,
        kind: str,
        *,
        dataset: str | None = None,
        provider: str | None = None,
        holder: str | None = None,
        states: Sequence[str] | None = None,
        due_before: float | None = None,
        limit: int = 100,
    ) -> list[ShareRecord]:
        args = {
            "dataset": dataset,
            "provider": provider,
            "holder": holder,
            "states": None if states is None else list(states),
            "due_before": due_before,
            "limit": limit,
        }
        rows = await self._fetchall(Q["share_list"].format(table=share_table(kind)), args)
        return [share_record(kind, r) for r in rows]

    async def share_events(self, application_id: str) -> list[ShareEvent]:
        rows = await self._fetchall(Q["share_events"], (application_id,))
        return [share_event(r) for r in rows]

    async def quota_add(
        self, grant_id: str, day: str, requests: int, records: int
    ) -> tuple[int, int]:
        if not requests and not records:
            rows = await self._fetchall(Q["quota_get"], (grant_id, day))
            return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

        async def fn(conn: _Conn) -> tuple[int, int]:
            cur = await conn.execute(Q["quota_add"], (grant_id, day, requests, records))
            row = await cur.fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        return await self._run(fn)

    async def current_records(
        self, dataset: str, *, after: int = 0, limit: int = 1000
    ) -> list[tuple[int, bytes]]:
        rows = await self._fetchall(Q["current_records"], (dataset, after, limit))
        return [(int(r[0]), bytes(r[1])) for r in rows]


def _ledger_row(r: Sequence[Any]) -> LedgerEntry:
    return LedgerEntry(
        str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), bytes(r[5]), int(r[6]), r[7], r[8]
    )
