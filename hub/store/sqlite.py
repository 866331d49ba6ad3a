"""SQLite store (WAL): the embedded default for one hub node.

All writes go through one writer thread that owns the write connection. Write operations
submitted while the previous transaction commits are *group-committed*: the writer drains
everything queued (up to ``max_group`` operations) into one transaction, so many concurrent
requests cost one ``fsync``. A caller's future resolves only after ``COMMIT`` returned, which is
what lets the HTTP layer acknowledge a source only once its records are on disk.

Reads (traces, dead-letter lists, reports) run on a separate read connection in its own thread;
WAL lets them proceed while the writer commits.

If one operation in a group fails, the group is rolled back and each operation is retried alone,
so one bad operation never fails its neighbours.

Under ``durability: full`` a transaction holding nothing but claims (leases) and, with
``settle_sync: relaxed`` (the default), delivery settles commits with ``synchronous=NORMAL``: no
fsync. A crash of the process loses nothing (the WAL is in the OS's page cache); a power cut can
lose the last such commits, which only means the deliveries are claimed and sent again with the
same Idempotency-Key (at least once). Ingest and operator replays/discards always fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from hub.errors import StoreUnavailable
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

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

SCHEMA_VERSION = 3
#: ``next_at`` of a parked delivery (queued behind an unfinished one of its ordered partition)
PARKED = 1e18
Q = load_queries("hub.store", "sqlite.sql")
T = TypeVar("T")
_Op = Callable[[sqlite3.Connection], Any]


def _connect(path: Path, durability: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-16384")  # 16 MiB page cache a connection, bounded
    return conn


class _Writer(threading.Thread):
    """Owns the write connection; runs queued operations in group-committed transactions."""

    def __init__(self, path: Path, durability: str, max_group: int) -> None:
        super().__init__(name=f"jghub-sqlite-writer:{path.name}", daemon=True)
        self.path = path
        self.durability = durability
        self.max_group = max_group
        self.jobs: queue.SimpleQueue[
            tuple[_Op, asyncio.AbstractEventLoop, asyncio.Future[Any]] | None
        ] = queue.SimpleQueue()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.closing = False
        self.commits = 0
        self.ops = 0
        #: of ``commits``, those made with ``synchronous=NORMAL`` (claims, relaxed settles)
        self.nosync_commits = 0
        #: the write connection is at ``synchronous=NORMAL`` for claims and relaxed settles
        #: (under ``durability: full``; it opens at FULL)
        self._nosync_level = False

    def run(self) -> None:
        try:
            conn = _connect(self.path, self.durability)
            lock = open(self.path.with_name(self.path.name + ".write-lock"), "a+")  # noqa: SIM115
        except BaseException as exc:  # surfaced by open()
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        stop = False
        try:
            while not stop:
                first = self.jobs.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < self.max_group:
                    try:
                        nxt = self.jobs.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                try:
                    # Processes of one node queue for the write lock in the kernel; SQLite's
                    # own busy handler would sleep-poll (1-100 ms naps) and starve one of them.
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    try:
                        self._run_batch(conn, batch)
                    finally:
                        fcntl.flock(lock, fcntl.LOCK_UN)
                except BaseException as exc:
                    # The connection itself failed (e.g. ROLLBACK on an I/O error): nothing in
                    # this batch is known to be committed. Fail it and stop taking writes.
                    self.error = exc
                    _deliver_results([(fut, loop, False, exc) for _, loop, fut in batch])
                    break
        finally:
            self.closing = True
            with contextlib.suppress(Exception):
                conn.close()
            lock.close()
            self._fail_queued()

    def _fail_queued(self) -> None:
        """Fail whatever is still queued: nobody will run it."""
        left = []
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                left.append(job)
        err = StoreUnavailable(
            f"the SQLite writer stopped ({self.error or 'store closed'}); nothing was committed"
        )
        _deliver_results([(fut, loop, False, err) for _, loop, fut in left])

    def _run_batch(
        self,
        conn: sqlite3.Connection,
        batch: list[tuple[_Op, asyncio.AbstractEventLoop, asyncio.Future[Any]]],
    ) -> None:
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        # A transaction of nothing but claims (leases) and relaxed settles need not reach the
        # disk before it returns: lost in a power cut, the deliveries are just claimed and sent
        # again (at least once, same Idempotency-Key). The next synchronous commit writes its
        # WAL frames out with its own.
        lease_only = self.durability == "full" and all(
            isinstance(op, _NoSync) for op, _, _ in batch
        )
        try:
            # (SQLite changes the level only outside a transaction.) The level is switched
            # only when it differs from the last transaction's: a run of claims and relaxed
            # settles costs no PRAGMA statements, and every commit still has its own level.
            self._sync_level(conn, lease_only)
            conn.execute("BEGIN IMMEDIATE")
            values = [op(conn) for op, _, _ in batch]
            conn.execute("COMMIT")
            results = [(fut, True, v) for (_, _, fut), v in zip(batch, values, strict=True)]
        except BaseException:
            lease_only = False  # the retry below commits with the connection's own level
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._sync_level(conn, False)
            if len(batch) == 1:
                raise_into = batch[0]
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    v = raise_into[0](conn)
                    conn.execute("COMMIT")
                    results = [(raise_into[2], True, v)]
                except BaseException as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    results = [(raise_into[2], False, exc)]
            else:
                for job in batch:  # isolate the failing operation
                    self._run_batch(conn, [job])
                return
        self.commits += 1
        self.ops += len(batch)
        if lease_only:
            self.nosync_commits += 1
        _deliver_results(
            [(fut, loop, ok, v) for (_, loop, _), (fut, ok, v) in zip(batch, results, strict=True)]
        )

    def _sync_level(self, conn: sqlite3.Connection, nosync: bool) -> None:
        """Under ``durability: full``, ``synchronous=NORMAL`` for the next transaction when it
        holds nothing but claims and relaxed settles, ``FULL`` otherwise; the PRAGMA runs only
        when the level changes (outside a transaction, where SQLite takes it)."""
        if self.durability != "full":
            return  # the connection's own level (NORMAL) for everything
        if nosync != self._nosync_level:
            conn.execute(f"PRAGMA synchronous={'NORMAL' if nosync else 'FULL'}")
            self._nosync_level = nosync


class _NoSync:
    """A write operation whose commit need not fsync: a claim (leases) or a relaxed settle,
    whose loss only means a delivery is sent again; see ``_Writer._run_batch``."""

    __slots__ = ("op",)

    def __init__(self, op: _Op) -> None:
        self.op = op

    def __call__(self, conn: sqlite3.Connection) -> Any:
        return self.op(conn)


def _deliver_results(
    items: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, bool, Any]],
) -> None:
    """Resolve futures on their own loops (one thread-safe call per loop)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for fut, loop, ok, value in items:
        by_loop.setdefault(loop, []).append((fut, ok, value))
    for loop, res in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_resolve, res)


def _resolve(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in items:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


#: Where ``insert_message`` / ``insert_delivery`` have the columns that their ``_nonull``
#: variants leave out, and how many columns they have.
_MSG_NULLS = ((5, 6, 11), 13)
_DEL_NULLS = ((4,), 6)


def _full_rows(
    rows: list[tuple[Any, ...]], nulls: tuple[tuple[int, ...], int]
) -> list[tuple[Any, ...]]:
    """Rows for the statement with every column: a job that mixes rows with and without the
    nullable columns inserts them all, in order, with one statement (ids follow the order)."""
    where, width = nulls
    out = []
    for r in rows:
        if len(r) == width:
            out.append(r)
            continue
        full = list(r)
        for i in where:  # ascending: each index counts the Nones inserted before it
            full.insert(i, None)
        out.append(tuple(full))
    return out


@dataclass(slots=True)
class _Rows:
    """What one writer job inserts, gathered across its callers' messages."""

    idem: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    bkeys: dict[tuple[str, str, str], tuple[str, str | None, bytes]] = field(default_factory=dict)
    busy: set[tuple[str, str | None]] = field(default_factory=set)
    #: rows of ``insert_message_nonull`` (no idempotency key, partition key or subject) while
    #: ``full_msgs`` is 0, else of ``insert_message`` (see ``_full_rows``)
    msgs: list[tuple[Any, ...]] = field(default_factory=list)
    full_msgs: int = 0
    #: rows of ``insert_delivery_nonull`` (no partition key) while ``full_dels`` is 0
    dels: list[tuple[Any, ...]] = field(default_factory=list)
    full_dels: int = 0
    bkey_rows: list[tuple[Any, ...]] = field(default_factory=list)
    notes: list[tuple[Any, ...]] = field(default_factory=list)
    superseded: list[tuple[str]] = field(default_factory=list)


class SQLiteStore:
    """The embedded store. ``clock`` is injectable so tests can move time."""

    def __init__(
        self,
        path: Path | str,
        *,
        durability: str = "full",
        settle_sync: str = "relaxed",
        max_group: int = 2000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settle_sync not in ("relaxed", "full"):
            raise ValueError(f"settle_sync must be 'relaxed' or 'full', not {settle_sync!r}")
        self.path = Path(path)
        self.durability = durability
        self.settle_sync = settle_sync
        self.max_group = max_group
        self.clock = clock
        self._writer: _Writer | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._rconn: sqlite3.Connection | None = None
        self._pending: list[
            tuple[Sequence[NewMessage], NonceClaim | None, asyncio.Future[list[EnqueueResult]]]
        ] = []
        self._flush_scheduled = False
        self._merge_loop: asyncio.AbstractEventLoop | None = None
        self._nonce_writes = 0
        self._prune_indexed = False

    # ------------------------------------------------------------------ plumbing

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path, self.durability)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, 1, 2, SCHEMA_VERSION):
                raise RuntimeError(
                    f"{self.path}: schema version {version} is not one this jghub knows "
                    f"(up to {SCHEMA_VERSION}); run a matching jghub"
                )
            if version == 1:
                conn.executescript(Q["migrate_1_2"])
            conn.executescript(Q["schema"])
            conn.executescript(Q["schema_v2"])
            conn.executescript(Q["schema_v3"])
        finally:
            conn.close()
        self._writer = _Writer(self.path, self.durability, self.max_group)
        self._writer.start()
        await asyncio.get_running_loop().run_in_executor(None, self._writer.ready.wait)
        if self._writer.error is not None:
            raise self._writer.error
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="jghub-sqlite-reader")
        self._rconn = await self._read_call(lambda: _connect(self.path, self.durability))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.closing = True
            self._writer.jobs.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
            self._writer = None
        if self._reader is not None:
            rconn = self._rconn
            if rconn is not None:
                await self._read_call(rconn.close)
            self._reader.shutdown(wait=True)
            self._reader = None
            self._rconn = None

    def _write(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        w = self._writer
        if w is None or w.closing or not w.is_alive():
            why = w.error if w is not None and w.error is not None else "store is not open"
            raise StoreUnavailable(f"the store takes no writes: {why}")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        w.jobs.put((op, loop, fut))
        if w.closing and not w.is_alive():  # it stopped between the check and the put
            w._fail_queued()
        return fut

    def problems(self) -> list[str]:
        """What keeps this store from taking writes (for ``/readyz``)."""
        w = self._writer
        if w is None:
            return ["store is not open"]
        if not w.is_alive():
            return [f"SQLite writer stopped: {w.error or 'closed'}"]
        return []

    async def _read_call(self, fn: Callable[[], T]) -> T:
        if self._reader is None:
            raise RuntimeError("store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._rconn
        if conn is None:
            raise RuntimeError("store is not open")
        return await self._read_call(lambda: fn(conn))

    @property
    def group_commit_stats(self) -> tuple[int, int]:
        """(transactions committed, operations in them) since open."""
        w = self._writer
        return (w.commits, w.ops) if w else (0, 0)

    @property
    def nosync_commits(self) -> int:
        """Transactions committed without fsync under ``durability: full`` since open: those
        holding nothing but claims and (with ``settle_sync: relaxed``) settles."""
        w = self._writer
        return w.nosync_commits if w else 0

    # ------------------------------------------------------------------ writes

    async def enqueue(
        self, messages: Sequence[NewMessage], *, nonce: NonceClaim | None = None
    ) -> list[EnqueueResult]:
        """Commit ``messages``; resolves after COMMIT.

        Calls made in the same event-loop iteration are merged into one writer job (one
        ``executemany`` per table for all of them), so a burst of single-record requests costs
        one hand-off to the writer thread, not one each. A signed request's ``nonce`` is
        remembered in the same transaction, just before its messages: one commit (one fsync)
        for the request instead of two, and a replay stores nothing."""
        if not messages:
            if nonce is not None:
                await nonce.settle(self.remember_nonce)
            return []
        if nonce is not None:
            nonce.settled = True  # remembered in the messages' transaction (_enqueue_groups)
        loop = asyncio.get_running_loop()
        if self._merge_loop is None:
            self._merge_loop = loop
        elif loop is not self._merge_loop:
            # Merging is per event loop; a caller on another loop gets its own writer job.
            [(ok, value)] = await self._write(
                lambda c: self._enqueue_groups(c, [messages], [nonce])
            )
            if not ok:
                raise value
            return list(value)
        fut: asyncio.Future[list[EnqueueResult]] = loop.create_future()
        self._pending.append((messages, nonce, fut))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        if not pending:
            return
        groups = [msgs for msgs, _, _ in pending]
        nonces = [n for _, n, _ in pending]
        futures = [f for _, _, f in pending]
        try:
            job = self._write(lambda conn: self._enqueue_groups(conn, groups, nonces))
        except StoreUnavailable as exc:  # closed or failed store
            for f in futures:
                if not f.done():
                    f.set_exception(exc)
            return

        def done(job: asyncio.Future[list[tuple[bool, Any]]]) -> None:
            exc = job.exception() if not job.cancelled() else asyncio.CancelledError()
            for i, f in enumerate(futures):
                if f.done():
                    continue
                if exc is not None:
                    f.set_exception(exc)
                    continue
                ok, value = job.result()[i]
                if ok:
                    f.set_result(value)
                else:
                    f.set_exception(value)

        job.add_done_callback(done)

    def _enqueue_groups(
        self,
        conn: sqlite3.Connection,
        groups: Sequence[Sequence[NewMessage]],
        nonces: Sequence[NonceClaim | None],
    ) -> list[tuple[bool, Any]]:
        """Insert several callers' messages at once; if that fails, each caller alone, so one
        caller's bad message never fails the others (a savepoint undoes the attempt). A
        caller's nonce is remembered first; a replayed one gets ``E_REPLAY`` and none of its
        messages are inserted (the other callers' are)."""
        now = self.clock()
        conn.execute("SAVEPOINT enqueue")
        try:
            # The write lock is held (BEGIN IMMEDIATE): the highest seq is ours to extend, also
            # when several processes of one node write to the file.
            seq = conn.execute(Q["max_seq"]).fetchone()[0]
            rows = _Rows()
            outs: list[tuple[bool, Any]] = []
            if self._prune_nonces_due(sum(n is not None for n in nonces)):
                conn.execute(Q["prune_nonces"], (now,))
            remember = Q["remember_nonce"]
            for messages, nonce in zip(groups, nonces, strict=True):
                if (
                    nonce is not None
                    and not conn.execute(
                        remember, (nonce.key_id, nonce.nonce, nonce.expires_at, now)
                    ).rowcount
                ):
                    outs.append((False, nonce.replay_error()))
                    continue
                out, seq = self._prepare(conn, messages, now, seq, rows)
                outs.append((True, out))
            if rows.msgs:
                if rows.full_msgs:
                    conn.executemany(Q["insert_message"], _full_rows(rows.msgs, _MSG_NULLS))
                else:
                    conn.executemany(Q["insert_message_nonull"], rows.msgs)
            if rows.dels:
                if rows.full_dels:
                    conn.executemany(Q["insert_delivery"], _full_rows(rows.dels, _DEL_NULLS))
                else:
                    conn.executemany(Q["insert_delivery_nonull"], rows.dels)
            if rows.bkey_rows:
                conn.executemany(Q["upsert_bkey"], rows.bkey_rows)
            if rows.notes:
                conn.executemany(Q["insert_event_seq"], rows.notes)
            if rows.superseded:
                conn.executemany(Q["insert_superseded"], rows.superseded)
            conn.execute("RELEASE enqueue")
        except Exception:
            conn.execute("ROLLBACK TO enqueue")
            conn.execute("RELEASE enqueue")
            if len(groups) == 1:
                raise
            results: list[tuple[bool, Any]] = []
            for messages, nonce in zip(groups, nonces, strict=True):
                try:
                    results.append(self._enqueue_groups(conn, [messages], [nonce])[0])
                except Exception as exc:
                    results.append((False, exc))
            return results
        return outs

    @staticmethod
    def _prepare(
        conn: sqlite3.Connection,
        messages: Sequence[NewMessage],
        now: float,
        seq: int,
        rows: _Rows,
    ) -> tuple[list[EnqueueResult], int]:
        """Rows for new messages; results for duplicates (earlier rows or this job's)."""
        out: list[EnqueueResult] = []
        find = Q["find_idem"]
        busy = Q["partition_busy"]
        # Per-record work runs on the writer thread while it holds the GIL: the loop's names
        # are looked up once (this is the hub's hottest write path).
        add_msg, add_del, add_out, sha256 = (
            rows.msgs.append,
            rows.dels.append,
            out.append,
            hashlib.sha256,
        )
        for new in messages:
            m = new.envelope
            key = m.idempotency_key
            digest = new.digest or sha256(m.payload).digest()  # NewMessage.clear_digest()
            if key is not None:
                k = (m.source, key)
                seen = rows.idem.get(k)
                if seen is None:
                    row = conn.execute(find, k).fetchone()
                    if row is not None:
                        # a pre-2 row holds no digest: its payload stands in (never encrypted)
                        got = row[1] if len(row[1]) == 32 else hashlib.sha256(row[1]).digest()
                        seen = (row[0], got)
                if seen is not None:
                    out.append(EnqueueResult(seen[0], True, seen[1] != digest))
                    continue
            replaces = None
            bk = new.business_key
            if bk is not None:
                bkk = (m.source, m.dataset, bk)
                cur = rows.bkeys.get(bkk)
                if cur is None:
                    r = conn.execute(Q["find_bkey"], bkk).fetchone()
                    cur = (r[0], r[1], r[2]) if r else None
                judged = judge_business_key(cur, digest, new.version)
                if isinstance(judged, EnqueueResult):
                    out.append(judged)
                    continue
                replaces = judged
                if replaces is not None:
                    rows.superseded.append((replaces,))
                rows.bkeys[bkk] = (m.message_id, new.version, digest)
                rows.bkey_rows.append((*bkk, new.version, digest, m.message_id))
            if key is not None:
                rows.idem[(m.source, key)] = (m.message_id, digest)
            seq += 1
            # Payload and digest as bytearray: stored as the same BLOB, but the sqlite3 module
            # binds a bytearray directly and looks up an adapter for every bytes value.
            if key is None and m.partition_key is None and new.subject is None:
                add_msg(
                    (
                        seq,
                        m.message_id,
                        m.source,
                        m.dataset,
                        m.dataset_version,
                        m.created_at,
                        now,
                        m.traceparent,
                        bytearray(m.payload),
                        bytearray(digest),
                    )
                )
            else:
                rows.full_msgs += 1
                add_msg(
                    (
                        seq,
                        m.message_id,
                        m.source,
                        m.dataset,
                        m.dataset_version,
                        key,
                        m.partition_key,
                        m.created_at,
                        now,
                        m.traceparent,
                        bytearray(m.payload),
                        new.subject,
                        bytearray(digest),
                    )
                )
            if new.notes:
                rows.notes.append((seq, now, "governed", "; ".join(new.notes)))
            for t in new.targets:
                if t.ordered:
                    due = now
                    part = (t.target, m.partition_key)
                    if part in rows.busy or conn.execute(busy, part).fetchone() is not None:
                        due = PARKED
                    rows.busy.add(part)
                    add_del((seq, t.target, t.route, int(t.ordered), m.partition_key, due))
                    rows.full_dels += 1
                elif m.partition_key is not None:
                    add_del((seq, t.target, t.route, 0, m.partition_key, now))
                    rows.full_dels += 1
                else:
                    add_del((seq, t.target, t.route, 0, now))
            add_out(EnqueueResult(m.message_id, False, False, False, replaces))
        return out, seq

    async def claim(
        self, target: str, limit: int, lease_seconds: float, owner: str
    ) -> list[ClaimedDelivery]:
        claimed: list[ClaimedDelivery] = await self._write(
            _NoSync(lambda c: self._claim_op(c, target, limit, lease_seconds, owner))
        )
        return claimed

    def _claim_op(
        self, conn: sqlite3.Connection, target: str, limit: int, lease: float, owner: str
    ) -> list[ClaimedDelivery]:
        now = self.clock()
        rows = conn.execute(
            Q["claim"],
            {
                "target": target,
                "now": now,
                "limit": limit,
                "lease_until": now + lease,
                "owner": owner,
            },
        ).fetchall()
        if not rows:
            return []
        seqs = sorted({r[1] for r in rows})
        msgs = {
            r[0]: r for r in conn.execute(Q["claimed_messages"], (orjson.dumps(seqs).decode(),))
        }
        out = []
        for did, seq, route, attempts, pkey in rows:
            m = msgs[seq]
            out.append(
                ClaimedDelivery(
                    did, m[1], target, route, attempts, m[3], m[4], m[2], m[5], m[6], pkey, m[7]
                )
            )
        out.sort(key=lambda c: c.delivery_id)
        return out

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        op: _Op = lambda c: self._settle_op(c, outcomes)  # noqa: E731
        await self._write(_NoSync(op) if self.settle_sync == "relaxed" else op)

    @staticmethod
    def _settle_op(conn: sqlite3.Connection, outcomes: Sequence[Outcome]) -> None:
        # Acks that share every value but the id (the records of a batch: one answer, one
        # time) are settled and traced with one statement each for the whole group; the rest
        # row by row. Both write the same rows (tests/store: test_sqlite_grouped_settle_*).
        groups: dict[tuple[float, int | None, int, float, str], list[int]] = {}
        retries, deads, events = [], [], []
        for o in outcomes:
            if o.kind == "ack":
                key = (o.at, o.status, o.attempt, o.latency_ms, o.detail)
                ids = groups.get(key)
                if ids is None:
                    groups[key] = [o.delivery_id]
                else:
                    ids.append(o.delivery_id)
                continue
            if o.kind == "retry":
                retries.append(
                    (
                        o.next_at if o.next_at is not None else o.at,
                        o.status,
                        o.detail,
                        o.delivery_id,
                        o.attempt,
                    )
                )
                step = "retry"
            else:
                deads.append((o.at, o.status, o.detail, o.delivery_id, o.attempt))
                step = "dead-lettered"
            events.append((o.at, step, o.attempt, o.status, o.latency_ms, o.detail, o.delivery_id))
        if groups:
            acks, ack_events, many = [], [], []
            for (at, status, attempt, latency_ms, detail), ids in groups.items():
                if len(ids) == 1:
                    acks.append((at, status, ids[0]))
                    ack_events.append(
                        (at, "delivered", attempt, status, latency_ms, detail, ids[0])
                    )
                    continue
                many.append(
                    {
                        "ids": orjson.dumps(ids).decode(),
                        "at": at,
                        "status": status,
                        "attempt": attempt,
                        "latency_ms": latency_ms,
                        "detail": detail,
                        "step": "delivered",
                    }
                )
            if acks:
                conn.executemany(Q["settle_ack"], acks)
            for g in many:
                conn.execute(Q["settle_ack_many"], g)
            all_ids = [i for ids in groups.values() for i in ids]
            ordered = {
                r[0] for r in conn.execute(Q["ordered_of"], (orjson.dumps(all_ids).decode(),))
            }
            if ordered:
                conn.executemany(
                    Q["unpark_next"],
                    [
                        {"id": i, "now": at}
                        for (at, *_), ids in groups.items()
                        for i in ids
                        if i in ordered
                    ],
                )
            for g in many:
                conn.execute(Q["insert_events_for_deliveries"], g)
            if ack_events:
                conn.executemany(Q["insert_event_for_delivery"], ack_events)
        if retries:
            conn.executemany(Q["settle_retry"], retries)
        if deads:
            conn.executemany(Q["settle_dead"], deads)
        if events:
            conn.executemany(Q["insert_event_for_delivery"], events)

    async def release_leases(self, owner: str | None = None) -> int:
        now = self.clock()

        def op(conn: sqlite3.Connection) -> int:
            if owner is None:
                return conn.execute(Q["release_all"], (now,)).rowcount
            return conn.execute(Q["release_owner"], (now, owner)).rowcount

        return await self._write(op)

    async def add_events(self, message_id: str, events: Sequence[TraceEvent]) -> None:
        rows = [
            (e.at, e.step, e.target, e.attempt, e.status, e.latency_ms, e.detail, message_id)
            for e in events
        ]
        if rows:
            await self._write(lambda c: c.executemany(Q["insert_event"], rows))

    async def replay(self, delivery_ids: Sequence[int], at: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            n = 0
            for did in delivery_ids:
                if conn.execute(Q["replay"], (at, did)).rowcount:
                    conn.execute(
                        Q["insert_event_for_delivery"], (at, "replayed", None, None, None, "", did)
                    )
                    n += 1
            return n

        return await self._write(op)

    async def discard(self, delivery_ids: Sequence[int], at: float, reason: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            n = 0
            for did in delivery_ids:
                if conn.execute(Q["discard"], (did,)).rowcount:
                    conn.execute(Q["unpark_next"], {"id": did, "now": at})
                    conn.execute(
                        Q["insert_event_for_delivery"],
                        (at, "discarded", None, None, None, reason, did),
                    )
                    n += 1
            return n

        return await self._write(op)

    # ------------------------------------------------------------------ reads

    async def lookup_idempotency(self, source: str, key: str) -> str | None:
        row = await self._read(lambda c: c.execute(Q["find_idem"], (source, key)).fetchone())
        return row[0] if row else None

    async def next_due_at(self, target: str) -> float | None:
        row = await self._read(lambda c: c.execute(Q["next_due"], (target,)).fetchone())
        return float(row[0]) if row and row[0] is not None else None

    async def trace(self, message_id: str) -> MessageTrace | None:
        def fn(c: sqlite3.Connection) -> MessageTrace | None:
            m = c.execute(Q["message"], (message_id,)).fetchone()
            if m is None:
                return None
            seq = m[0]
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
                for r in c.execute(Q["message_deliveries"], (seq,))
            ]
            evs = [
                TraceEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6] or "")
                for r in c.execute(Q["message_events"], (seq,))
            ]
            return MessageTrace(
                m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], dels, evs
            )

        return await self._read(fn)

    async def dead_letters(
        self, target: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetterInfo]:
        rows = await self._read(
            lambda c: c.execute(
                Q["dead_letters"], {"target": target, "limit": limit, "offset": offset}
            ).fetchall()
        )
        return [
            DeadLetterInfo(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9] or "")
            for r in rows
        ]

    async def undelivered(self, target: str, limit: int = 1000) -> list[UndeliveredInfo]:
        rows = await self._read(
            lambda c: c.execute(Q["undelivered"], {"target": target, "limit": limit}).fetchall()
        )
        return [
            UndeliveredInfo(r[0], r[1], r[2], r[3], DeliveryState(r[4]), r[5], r[6], bytes(r[7]))
            for r in rows
        ]

    async def route_stats(self) -> list[RouteStats]:
        def fn(c: sqlite3.Connection) -> list[RouteStats]:
            out = []
            for route, target, total, done, pending, dead, retries in c.execute(
                Q["route_totals"]
            ).fetchall():
                p50 = p99 = None
                if done:
                    p50 = self._rank(c, route, target, done, 0.50)
                    p99 = self._rank(c, route, target, done, 0.99)
                out.append(RouteStats(route, target, total, done, pending, dead, retries, p50, p99))
            return out

        return await self._read(fn)

    @staticmethod
    def _rank(c: sqlite3.Connection, route: str, target: str, n: int, q: float) -> float:
        offset = max(1, math.ceil(q * n)) - 1
        return float(c.execute(Q["route_latency_rank"], (route, target, offset)).fetchone()[0])

    async def get_state(self, scope: str, key: str) -> str | None:
        row = await self._read(lambda c: c.execute(Q["get_state"], (scope, key)).fetchone())
        return str(row[0]) if row else None

    async def put_state(self, scope: str, key: str, value: str) -> None:
        at = self.clock()
        await self._write(lambda c: c.execute(Q["put_state"], (scope, key, value, at)))

    async def quarantine(self, items: Sequence[QuarantinedRecord]) -> int:
        rows = [
            (q.source, q.dataset, q.key, q.origin, q.code, q.field, q.detail, q.raw, q.at)
            for q in items
        ]
        if not rows:
            return 0

        def op(c: sqlite3.Connection) -> int:
            before = c.total_changes
            c.executemany(Q["insert_quarantine"], rows)
            return c.total_changes - before

        return await self._write(op)

    async def quarantined(
        self, source: str | None = None, *, after: int = 0, limit: int = 100
    ) -> list[QuarantinedRecord]:
        rows = await self._read(
            lambda c: c.execute(
                Q["quarantined"], {"source": source, "after": after, "limit": limit}
            ).fetchall()
        )
        return [
            QuarantinedRecord(r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[0])
            for r in rows
        ]

    async def acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> bool:
        now = self.clock()
        row = (name, owner, now + ttl_seconds, now)
        return await self._write(lambda c: bool(c.execute(Q["acquire_lease"], row).rowcount))

    async def release_lease(self, name: str, owner: str) -> bool:
        return await self._write(
            lambda c: bool(c.execute(Q["release_lease"], (name, owner)).rowcount)
        )

    async def ledger_put(self, entries: Sequence[LedgerEntry]) -> int:
        rows = [
            (e.book, e.dataset, e.key, e.day, e.digest, e.body, e.version, e.receipt, e.at)
            for e in entries
        ]
        if not rows:
            return 0

        def op(c: sqlite3.Connection) -> int:
            before = c.total_changes
            c.executemany(Q["ledger_put"], rows)
            return c.total_changes - before

        return await self._write(op)

    async def ledger_entries(
        self, book: str, dataset: str, *, day: str | None = None
    ) -> list[LedgerEntry]:
        args = {"book": book, "dataset": dataset, "day": day}
        rows = await self._read(lambda c: c.execute(Q["ledger_entries"], args).fetchall())
        return [_ledger_row(r) for r in rows]

    async def prune(
        self,
        before: float,
        limit: int,
        archive: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Retention, the same rule as the PostgreSQL store (see
        :class:`~hub.store.base.Prunable`): one node owns the file, so no lease is needed."""

        def op(c: sqlite3.Connection) -> list[dict[str, Any]]:
            if not self._prune_indexed:
                c.execute(Q["prune_index"])
                self._prune_indexed = True
            seqs = [(r[0],) for r in c.execute(Q["prune_candidates"], (before, limit))]
            if not seqs:
                return []
            summary = []
            for (seq,) in seqs:
                r = c.execute(Q["archive_row"], (seq,)).fetchone()
                summary.append(
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
                )
            if archive is not None:
                archive(summary)  # before the delete commits: a crash repeats, never loses
            c.executemany(Q["prune_events"], seqs)
            c.executemany(Q["prune_deliveries"], seqs)
            c.executemany(Q["prune_message"], seqs)
            return summary

        return await self._write(op)

    async def remember_nonce(self, key_id: str, nonce: str, expires_at: float) -> bool:
        now = self.clock()

        def op(c: sqlite3.Connection) -> bool:
            if self._prune_nonces_due(1):
                c.execute(Q["prune_nonces"], (now,))
            return bool(c.execute(Q["remember_nonce"], (key_id, nonce, expires_at, now)).rowcount)

        return await self._write(op)

    def _prune_nonces_due(self, added: int) -> bool:
        """Count ``added`` nonce writes; True once every 1,000 (expired nonces are deleted
        then). Called on the writer thread only, by every write that remembers nonces."""
        before = self._nonce_writes
        self._nonce_writes += added
        return before // 1000 != self._nonce_writes // 1000

    async def subject_messages(self, subject: str, limit: int = 100) -> list[SubjectLink]:
        rows = await self._read(
            lambda c: c.execute(Q["subject_messages"], (subject, limit)).fetchall()
        )
        return [SubjectLink(r[0], r[1], r[2], r[3]) for r in rows]

    async def counts(self) -> dict[str, int]:
        def fn(c: sqlite3.Connection) -> dict[str, int]:
            out = {s.name.lower(): 0 for s in DeliveryState}
            for state, n in c.execute(Q["state_counts"]):
                out[DeliveryState(state).name.lower()] = n
            out["messages"] = c.execute(Q["message_count"]).fetchone()[0]
            return out

        return await self._read(fn)

    # ------------------------------------------------------------------ reporting

    async def queue_stats(self) -> list[TargetQueue]:
        def fn(c: sqlite3.Connection) -> list[TargetQueue]:
            rows: dict[str, list[Any]] = {}
            for target, pending, inflight, due in c.execute(Q["queue_stats"]):
                rows[target] = [pending or 0, inflight or 0, 0, due]
            for target, dead in c.execute(Q["dead_counts"]):
                rows.setdefault(target, [0, 0, 0, None])[2] = dead
            return [TargetQueue(t, r[0], r[1], r[2], r[3]) for t, r in sorted(rows.items())]

        return await self._read(fn)

    async def find_messages(
        self,
        *,
        source: str | None = None,
        idempotency_key: str | None = None,
        business_key: str | None = None,
        limit: int = 50,
    ) -> list[SubjectLink]:
        args = {"source": source, "idem": idempotency_key, "bkey": business_key, "limit": limit}
        rows = await self._read(lambda c: c.execute(Q["find_messages"], args).fetchall())
        return [SubjectLink(r[0], r[1], r[2], r[3]) for r in rows]

    async def schema_version(self) -> tuple[int, int]:
        found = await self._read(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
        return int(found), SCHEMA_VERSION

    # ------------------------------------------------------------------ data sharing

    async def share_put(
        self, record: ShareRecord, *, expect_rev: int, events: Sequence[ShareEvent] = ()
    ) -> bool:
        table = share_table(record.kind)
        row = share_row(record) | {"expect_rev": expect_rev}
        evs = [share_event_row(e) for e in events]
        sql = Q["share_insert" if expect_rev == 0 else "share_update"].format(table=table)

        def op(c: sqlite3.Connection) -> bool:
            if not c.execute(sql, row).rowcount:
                return False
            if evs:
                c.executemany(Q["share_event_insert"], evs)
            return True

        return await self._write(op)

    async def share_get(self, kind: str, id: str) -> ShareRecord | None:
        sql = Q["share_get"].format(table=share_table(kind))
        r = await self._read(lambda c: c.execute(sql, (id,)).fetchone())
        return None if r is None else share_record(kind, r)

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
        sql = Q["share_list"].format(table=share_table(kind))
        args = {
            "dataset": dataset,
            "provider": provider,
            "holder": holder,
            "states": None if states is None else orjson.dumps(list(states)).decode(),
            "due_before": due_before,
            "limit": limit,
        }
        rows = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [share_record(kind, r) for r in rows]

    async def share_events(self, application_id: str) -> list[ShareEvent]:
        rows = await self._read(
            lambda c: c.execute(Q["share_events"], (application_id,)).fetchall()
        )
        return [share_event(r) for r in rows]

    async def quota_add(
        self, grant_id: str, day: str, requests: int, records: int
    ) -> tuple[int, int]:
        if not requests and not records:
            got = await self._read(lambda c: c.execute(Q["quota_get"], (grant_id, day)).fetchone())
            return (int(got[0]), int(got[1])) if got else (0, 0)
        row = await self._write(
            lambda c: c.execute(Q["quota_add"], (grant_id, day, requests, records)).fetchone()
        )
        return int(row[0]), int(row[1])

    async def current_records(
        self, dataset: str, *, after: int = 0, limit: int = 1000
    ) -> list[tuple[int, bytes]]:
        rows = await self._read(
            lambda c: c.execute(Q["current_records"], (dataset, after, limit)).fetchall()
        )
        return [(int(r[0]), bytes(r[1])) for r in rows]


def _ledger_row(r: Sequence[Any]) -> LedgerEntry:
    return LedgerEntry(
        str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), bytes(r[5]), int(r[6]), r[7], r[8]
    )
