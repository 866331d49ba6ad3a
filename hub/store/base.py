"""The ``Store`` protocol and the records that cross it.

A store keeps messages, one delivery row per (message, target), and the trace of every step.
Implementations: :mod:`hub.store.memory` (unit tests), :mod:`hub.store.sqlite` (embedded
default). Every implementation passes ``tests/store/test_store_contract.py``.

Delivery states::

    PENDING ──claim──► INFLIGHT ──ack──► DELIVERED
       ▲                  │  └──dead──► DEAD ──replay──► PENDING
       └──nack / lease────┘               └──discard──► DISCARDED

An INFLIGHT delivery whose lease ran out is claimable again (its node died).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal, Protocol, runtime_checkable

from hub.envelope import Envelope
from hub.errors import ReplayError

__all__ = [
    "SHARE_KINDS",
    "ClaimedDelivery",
    "DeadLetterInfo",
    "DeliveryInfo",
    "DeliveryState",
    "EnqueueResult",
    "LedgerEntry",
    "MessageTrace",
    "NewMessage",
    "Outcome",
    "Prunable",
    "QuarantinedRecord",
    "RouteStats",
    "ShareEvent",
    "ShareRecord",
    "Store",
    "SubjectLink",
    "TargetQueue",
    "TargetRef",
    "TraceEvent",
    "UndeliveredInfo",
    "WorkNotifier",
    "judge_business_key",
]


class DeliveryState(IntEnum):
    PENDING = 0
    INFLIGHT = 1
    DELIVERED = 2
    DEAD = 3
    DISCARDED = 4


@dataclass(frozen=True, slots=True)
class TargetRef:
    """Where a new message must be delivered: one row per route target."""

    target: str
    route: str
    ordered: bool = False


@dataclass(slots=True)
class NewMessage:
    """A validated envelope ready to commit, with the targets its routes chose."""

    envelope: Envelope
    targets: Sequence[TargetRef]
    #: governance: (source, dataset, business_key) names one business record (e.g. one
    #: 决定文书号 from one department). An identical copy is a duplicate; a changed one is a new
    #: version that replaces it; one whose ``version`` sorts below the stored one is stale.
    business_key: str | None = None
    #: orders versions of one business key (compared as text: use ISO 8601 times or
    #: zero-padded numbers); None = arrival order
    version: str | None = None
    #: governance notes (cleaning, standardisation, links), traced in the same commit
    notes: Sequence[str] = ()
    #: the subject the record is linked to (USCC / ID number: 关联整合)
    subject: str | None = None
    #: SHA-256 of the clear payload when the envelope's payload is field-encrypted (random
    #: nonces make equal records differ); None: the store hashes the payload itself
    digest: bytes | None = None

    def clear_digest(self) -> bytes:
        """What identifies the record's content: duplicates and conflicts compare this."""
        return self.digest or hashlib.sha256(self.envelope.payload).digest()


@dataclass(slots=True)
class NonceClaim:
    """A signed request's nonce (security.replay), to be remembered in the same transaction as
    the records the request carried: a replay then stores nothing, and a signed request costs
    one commit, not two. ``settled`` turns true once a store (or the caller) has remembered
    it or refused it as a replay, so it is never checked twice."""

    key_id: str
    nonce: str
    expires_at: float
    settled: bool = False

    def replay_error(self) -> ReplayError:
        return ReplayError(
            f"nonce already used with key {self.key_id!r}: the request is a replay",
            field="nonce",
        )

    async def settle(self, remember: Callable[[str, str, float], Awaitable[bool]]) -> None:
        """Remember the nonce with ``remember`` (a nonce cache's ``remember``, a store's
        ``remember_nonce``) unless that was done already; ``E_REPLAY`` if it was seen before."""
        if self.settled:
            return
        self.settled = True
        if not await remember(self.key_id, self.nonce, self.expires_at):
            raise self.replay_error()


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """``message_id`` is the original id when ``duplicate`` (same source + idempotency key);
    ``conflict`` says the key's original message had a different payload (the new one was
    not stored: a key names one record)."""

    message_id: str
    duplicate: bool
    conflict: bool = False
    #: an older version of the business key arrived after a newer one (not stored)
    stale: bool = False
    #: the message id of the version this one replaces (same business key, changed content)
    replaces: str | None = None


@dataclass(slots=True)
class ClaimedDelivery:
    delivery_id: int
    message_id: str
    target: str
    route: str
    attempt: int
    dataset: str
    dataset_version: str
    source: str
    payload: bytes
    accepted_at: float
    partition_key: str | None = None
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt, settled in one write with the rest of its batch.

    ``kind``: ``ack`` (delivered), ``retry`` (due again at ``next_at``), ``dead`` (dead letter,
    ``detail`` is the reason). ``step_detail`` goes into the trace next to the outcome.
    """

    delivery_id: int
    kind: Literal["ack", "retry", "dead"]
    at: float
    attempt: int
    status: int | None = None
    detail: str = ""
    latency_ms: float = 0.0
    next_at: float | None = None


@dataclass(frozen=True, slots=True)
class TraceEvent:
    at: float
    step: str
    target: str | None = None
    attempt: int | None = None
    status: int | None = None
    latency_ms: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) not in (None, "")}


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    delivery_id: int
    target: str
    route: str
    state: DeliveryState
    attempts: int
    next_at: float | None
    last_status: int | None
    last_error: str | None
    delivered_at: float | None


@dataclass(slots=True)
class MessageTrace:
    """The whole life of one message (全程留痕)."""

    message_id: str
    source: str
    dataset: str
    dataset_version: str
    idempotency_key: str | None
    partition_key: str | None
    traceparent: str | None
    created_at: float
    accepted_at: float
    payload: bytes
    deliveries: list[DeliveryInfo] = field(default_factory=list)
    events: list[TraceEvent] = field(default_factory=list)

    def envelope(self) -> Envelope:
        return Envelope(
            self.message_id,
            self.source,
            self.dataset,
            self.dataset_version,
            self.created_at,
            self.payload,
            self.idempotency_key,
            self.partition_key,
            self.traceparent,
        )

    def status(self) -> str:
        states = {d.state for d in self.deliveries}
        if not states:
            return "accepted (no route)"
        if states <= {DeliveryState.DELIVERED, DeliveryState.DISCARDED}:
            return "delivered"
        if DeliveryState.DEAD in states:
            return "dead-lettered"
        return "in progress"


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    delivery_id: int
    message_id: str
    source: str
    dataset: str
    target: str
    route: str
    attempts: int
    dead_at: float
    last_status: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class UndeliveredInfo:
    """A delivery its target has not acknowledged yet (pending, in flight or dead), with the
    message's stored payload: what a deadline check (e.g. the 双公示 disclosure deadline of
    the credit adapter) needs to judge records still waiting."""

    delivery_id: int
    message_id: str
    route: str
    dataset: str
    state: DeliveryState
    attempts: int
    accepted_at: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class RouteStats:
    """Per (route, target) totals for reports (demo summary, dashboard)."""

    route: str
    target: str
    total: int
    delivered: int
    pending: int
    dead: int
    retries: int
    p50_ms: float | None
    p99_ms: float | None


#: what a store keeps per business key: (message id, version, digest of the clear payload)
BusinessKeyRow = tuple[str, "str | None", bytes]


def judge_business_key(
    current: BusinessKeyRow | None, digest: bytes, version: str | None
) -> EnqueueResult | str | None:
    """The rule of 去重 for one new record whose business key is stored as ``current``:
    an :class:`EnqueueResult` when it is not stored (an identical copy; or ``stale``, an older
    version arriving late); else the id of the version it replaces (None: the key is new).
    Every store applies this same rule inside its enqueue transaction."""
    if current is None:
        return None
    if current[2] == digest:
        return EnqueueResult(current[0], True)
    if version is not None and current[1] is not None and version < current[1]:
        return EnqueueResult(current[0], True, stale=True)
    return current[0]


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """A record the hub refused, kept with its reasons so the source can read it back.

    ``key`` is unique per source (an idempotency key, or origin + index): a record re-sent
    after a crash is not quarantined twice. ``raw`` is the record as received (text)."""

    source: str
    dataset: str
    key: str
    origin: str
    code: str
    field: str | None
    detail: str
    raw: str
    at: float
    id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "dataset": self.dataset,
            "key": self.key,
            "origin": self.origin,
            "code": self.code,
            "field": self.field,
            "detail": self.detail,
            "raw": self.raw,
            "at": self.at,
        }


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One record an external system accepted from us, kept for reconciliation (上报台账 /
    对账) in the store every node shares, so any node sees what every node sent.

    ``book`` names the ledger (e.g. ``national:<system>``), ``dataset`` the external dataset
    and ``key`` the record in it (a message id, or the code of a versioned item). ``day``
    (YYYY-MM-DD, or empty) is the day it is reconciled under. ``version`` orders versions of
    one key: a write older than the stored version is ignored (0 when not versioned). The
    first ``receipt`` of a version stays when the same version is written again (a re-send).
    ``body`` is what was sent (bytes, e.g. JSON), so it can be sent again exactly."""

    book: str
    dataset: str
    key: str
    day: str
    digest: str
    body: bytes
    version: int = 0
    receipt: str | None = None
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class SubjectLink:
    """A message linked to a subject (统一社会信用代码 or 身份证号)."""

    message_id: str
    source: str
    dataset: str
    accepted_at: float


@dataclass(frozen=True, slots=True)
class TargetQueue:
    """One target's queue for monitoring: deliveries waiting, being sent and dead, and the
    due time of the earliest waiting one (``None``: nothing waits)."""

    target: str
    pending: int
    inflight: int
    dead: int
    earliest_due: float | None

    def oldest_due_age(self, now: float) -> float:
        """Seconds the oldest due delivery has waited past its due time (0: none due)."""
        if self.earliest_due is None or self.earliest_due > now:
            return 0.0
        return now - self.earliest_due


#: the kinds of data-sharing (数据共享) objects a store keeps, each in its own table
SHARE_KINDS = ("application", "grant", "subscription")


@dataclass(frozen=True, slots=True)
class ShareRecord:
    """One data-sharing object (数据共享): an application (共享申请), a grant (授权) or a
    subscription (订阅), kept by the store with the columns it is searched by and the rest of
    the object as a JSON document (``doc``, owned by :mod:`hub.sharing`).

    ``rev`` counts writes: a write names the revision it read (``expect_rev``) and loses when
    another node wrote in between (optimistic concurrency, one state machine across nodes).
    ``provider`` is the department owning the dataset, ``holder`` the requesting one.
    ``due_at``: an application's decision deadline (None once decided)."""

    kind: str
    id: str
    rev: int
    state: str
    dataset: str
    provider: str
    holder: str
    created_at: float
    updated_at: float
    doc: dict[str, Any]
    due_at: float | None = None


@dataclass(frozen=True, slots=True)
class ShareEvent:
    """One step in an application's history (both sides see it): who, when, what, why."""

    application_id: str
    at: float
    actor: str
    action: str
    state: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class Store(Protocol):
    """What the hub needs from durable storage. All methods are safe to call concurrently;
    writes from concurrent callers may be group-committed (one transaction, one fsync)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def problems(self) -> list[str]:
        """What keeps the store from working now (empty when healthy), for ``/readyz``."""
        ...

    async def enqueue(
        self, messages: Sequence[NewMessage], *, nonce: NonceClaim | None = None
    ) -> list[EnqueueResult]:
        """Commit messages and their delivery rows durably; return only after the commit.

        A message whose (source, idempotency_key) was seen before is not stored again: its
        result carries the original id and ``duplicate=True`` (and ``conflict=True`` when its
        payload differs from the original's). Within one call too.

        ``nonce``: the signed request's nonce, remembered like :meth:`remember_nonce` before
        the messages and committed with them; a replay raises ``E_REPLAY`` and stores none of
        them. The claim is marked ``settled`` either way."""
        ...

    async def lookup_idempotency(self, source: str, key: str) -> str | None:
        """The message id already stored for (source, key), if any."""
        ...

    async def claim(
        self, target: str, limit: int, lease_seconds: float, owner: str
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries for ``target`` (oldest due first).

        On ordered routes only the earliest unfinished delivery of each partition is due, and a
        DEAD one holds the partition until it is replayed or discarded."""
        ...

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        """Record attempt outcomes (ack / retry / dead) and their trace events."""
        ...

    async def next_due_at(self, target: str) -> float | None:
        """When the earliest pending or leased delivery for ``target`` becomes claimable."""
        ...

    async def release_leases(self, owner: str | None = None) -> int:
        """Make leased deliveries claimable now (all, or one owner's). Single-node start-up."""
        ...

    async def add_events(self, message_id: str, events: Sequence[TraceEvent]) -> None: ...

    async def trace(self, message_id: str) -> MessageTrace | None: ...

    async def dead_letters(
        self, target: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetterInfo]: ...

    async def undelivered(self, target: str, limit: int = 1000) -> list[UndeliveredInfo]:
        """The deliveries to ``target`` not acknowledged yet (PENDING, INFLIGHT or DEAD; not
        DELIVERED or DISCARDED) with their payloads, oldest first (by delivery id), at most
        ``limit`` of them."""
        ...

    async def replay(self, delivery_ids: Sequence[int], at: float) -> int:
        """Move DEAD deliveries back to PENDING (attempts reset), tracing ``replayed``.
        Returns how many moved."""
        ...

    async def discard(self, delivery_ids: Sequence[int], at: float, reason: str) -> int:
        """Mark DEAD deliveries DISCARDED (releases a held ordered partition)."""
        ...

    async def route_stats(self) -> list[RouteStats]: ...

    async def counts(self) -> dict[str, int]:
        """Delivery counts by state name, plus ``messages``."""
        ...

    async def get_state(self, scope: str, key: str) -> str | None:
        """A saved value (an inbound source's cursor), or None."""
        ...

    async def put_state(self, scope: str, key: str, value: str) -> None:
        """Save a value durably; returns after the commit."""
        ...

    async def quarantine(self, items: Sequence[QuarantinedRecord]) -> int:
        """Keep refused records durably; an item whose (source, key) is there already is
        skipped. Returns how many were added."""
        ...

    async def quarantined(
        self, source: str | None = None, *, after: int = 0, limit: int = 100
    ) -> list[QuarantinedRecord]:
        """Refused records in arrival order (ids greater than ``after``)."""
        ...

    async def subject_messages(self, subject: str, limit: int = 100) -> list[SubjectLink]:
        """Messages linked to a subject, newest first."""
        ...

    async def acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Take or renew the named lease (a lock shared by every node on this store) for
        ``ttl_seconds``: True when ``owner`` now holds it (it was free, expired or already
        ``owner``'s), False when another owner holds an unexpired lease. Scheduled jobs take one
        so that no two nodes run the same job at once."""
        ...

    async def release_lease(self, name: str, owner: str) -> bool:
        """Give the lease up if ``owner`` holds it; True when it did."""
        ...

    async def ledger_put(self, entries: Sequence[LedgerEntry]) -> int:
        """Keep accepted records in their ledger in one commit: an entry replaces the stored
        one of its (book, dataset, key) unless the stored version is newer (see
        :class:`LedgerEntry`). Returns how many were written (older versions are not)."""
        ...

    async def ledger_entries(
        self, book: str, dataset: str, *, day: str | None = None
    ) -> list[LedgerEntry]:
        """The entries of ``dataset`` in ``book`` (only those of ``day`` when given), by key."""
        ...

    async def remember_nonce(self, key_id: str, nonce: str, expires_at: float) -> bool:
        """Remember a signed request's nonce until ``expires_at``; False when it is already
        remembered and not yet expired (a replay). Expired nonces are pruned as it goes.
        (Implements :class:`security.replay.NonceCache`.)"""
        ...

    # Data sharing (数据共享, hub.sharing): applications, grants, subscriptions, quota counters
    # and the governed read of a dataset's current records.

    async def share_put(
        self, record: ShareRecord, *, expect_rev: int, events: Sequence[ShareEvent] = ()
    ) -> bool:
        """Write a sharing object and its history events in one commit. ``expect_rev`` 0:
        insert (False when the id exists); else update only if the stored ``rev`` is still
        ``expect_rev`` (False when another writer came first: read again and decide again).
        ``record.rev`` is the new revision."""
        ...

    async def share_get(self, kind: str, id: str) -> ShareRecord | None:
        """One sharing object of ``kind`` (see :data:`SHARE_KINDS`), or None."""
        ...

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
        """Sharing objects matching every given filter, oldest first (``due_before``: with a
        deadline before that time)."""
        ...

    async def share_events(self, application_id: str) -> list[ShareEvent]:
        """An application's history, in order."""
        ...

    async def quota_add(
        self, grant_id: str, day: str, requests: int, records: int
    ) -> tuple[int, int]:
        """Add to a grant's usage counters of ``day`` atomically (every node shares them);
        returns the totals (requests, records) after the addition. Adding 0, 0 reads them."""
        ...

    async def current_records(
        self, dataset: str, *, after: int = 0, limit: int = 1000
    ) -> list[tuple[int, bytes]]:
        """The records the hub holds for ``dataset`` (the latest version per business key:
        versions replaced by a newer one are left out), as (position, payload) ordered by
        position, after position ``after`` (a cursor)."""
        ...

    # Reporting for monitoring (memory and SQLite stores; cheap: partial indexes only, except
    # the searches by idempotency key and business key without a source, which scan).

    async def queue_stats(self) -> list[TargetQueue]:
        """Per target: pending, inflight and dead deliveries and the earliest due time."""
        ...

    async def find_messages(
        self,
        *,
        source: str | None = None,
        idempotency_key: str | None = None,
        business_key: str | None = None,
        limit: int = 50,
    ) -> list[SubjectLink]:
        """Messages matching every given filter, newest first (ops search)."""
        ...

    async def schema_version(self) -> tuple[int, int]:
        """(schema version found in the store, version this jghub expects)."""
        ...


# --------------------------------------------------------------------------- shared stores
# What a store shared by several hub nodes (PostgreSQL) offers besides :class:`Store`.


@runtime_checkable
class WorkNotifier(Protocol):
    """A store that tells every node when new work is committed (PostgreSQL LISTEN/NOTIFY)."""

    def on_work(self, callback: Callable[[Sequence[str] | None], None]) -> None:
        """Call ``callback(targets)`` when work for those targets was committed by any node;
        ``None`` means "maybe any target" (after a reconnect, when notices may have been lost)."""
        ...


@runtime_checkable
class Prunable(Protocol):
    """A store whose finished messages are pruned by the retention policy."""

    async def prune(
        self,
        before: float,
        limit: int,
        archive: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Delete up to ``limit`` messages accepted before ``before`` whose deliveries are all
        finished (delivered or discarded), with their deliveries and trace events; dead letters
        and pending work are kept. ``archive`` gets a summary of each pruned message before the
        delete commits (if it raises, nothing is deleted). Returns the summaries."""
        ...
