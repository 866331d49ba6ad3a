"""In-memory store for unit tests: same semantics as the durable stores, no durability."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hub.envelope import Envelope
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
from hub.store.sharerows import share_table
from hub.store.stats import percentile

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Msg:
    new: Envelope
    accepted_at: float
    events: list[TraceEvent]
    subject: str | None = None


@dataclass(slots=True)
class _Del:
    id: int
    message_id: str
    target: str
    route: str
    ordered: bool
    partition_key: str | None
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    next_at: float = 0.0
    owner: str | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None
    dead_at: float | None = None
    retries: int = 0


class MemoryStore:
    """Keeps everything in dicts; the clock is injectable so tests can move time."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._msgs: dict[str, _Msg] = {}
        self._idem: dict[tuple[str, str], str] = {}
        self._dels: dict[int, _Del] = {}
        self._next_id = 1
        self._bkeys: dict[tuple[str, str, str], tuple[str, str | None, bytes]] = {}
        self._state: dict[tuple[str, str], str] = {}
        self._quarantine: list[QuarantinedRecord] = []
        self._nonces: dict[tuple[str, str], float] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._digests: dict[str, bytes] = {}
        self._ledger: dict[tuple[str, str, str], LedgerEntry] = {}
        # data sharing: objects by (kind, id), application histories, quota counters, and
        # each message's position (seq) plus the messages replaced by a newer version
        self._share: dict[tuple[str, str], ShareRecord] = {}
        self._share_events: dict[str, list[ShareEvent]] = {}
        self._quota: dict[tuple[str, str], tuple[int, int]] = {}
        self._seq: dict[str, int] = {}
        self._superseded: set[str] = set()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def problems(self) -> list[str]:
        return []

    async def enqueue(
        self, messages: Sequence[NewMessage], *, nonce: NonceClaim | None = None
    ) -> list[EnqueueResult]:
        if nonce is not None:  # remember_nonce never suspends: check and messages are one step
            await nonce.settle(self.remember_nonce)
        now = self.clock()
        out: list[EnqueueResult] = []
        for new in messages:
            m = new.envelope
            if m.idempotency_key is not None:
                seen = self._idem.get((m.source, m.idempotency_key))
                if seen is not None:
                    original = self._digests[seen]
                    out.append(EnqueueResult(seen, True, original != new.clear_digest()))
                    continue
            replaces = None
            if new.business_key is not None:
                bkk = (m.source, m.dataset, new.business_key)
                digest = new.clear_digest()
                judged = judge_business_key(self._bkeys.get(bkk), digest, new.version)
                if isinstance(judged, EnqueueResult):
                    out.append(judged)
                    continue
                replaces = judged
                if replaces is not None:
                    self._superseded.add(replaces)
                self._bkeys[bkk] = (m.message_id, new.version, digest)
            if m.idempotency_key is not None:
                self._idem[(m.source, m.idempotency_key)] = m.message_id
            events = [TraceEvent(now, "governed", detail="; ".join(new.notes))] if new.notes else []
            self._msgs[m.message_id] = _Msg(m, now, events, new.subject)
            self._seq[m.message_id] = len(self._seq) + 1
            self._digests[m.message_id] = new.clear_digest()
            for t in new.targets:
                d = _Del(
                    self._next_id,
                    m.message_id,
                    t.target,
                    t.route,
                    t.ordered,
                    m.partition_key,
                    next_at=now,
                )
                self._dels[d.id] = d
                self._next_id += 1
            out.append(EnqueueResult(m.message_id, False, replaces=replaces))
        return out

    async def lookup_idempotency(self, source: str, key: str) -> str | None:
        return self._idem.get((source, key))

    def _blocked(self, d: _Del) -> bool:
        if not d.ordered:
            return False
        return any(
            e.target == d.target
            and e.ordered
            and e.partition_key == d.partition_key
            and e.id < d.id
            and e.state in (DeliveryState.PENDING, DeliveryState.INFLIGHT, DeliveryState.DEAD)
            for e in self._dels.values()
        )

    async def claim(
        self, target: str, limit: int, lease_seconds: float, owner: str
    ) -> list[ClaimedDelivery]:
        now = self.clock()
        due = sorted(
            (
                d
                for d in self._dels.values()
                if d.target == target
                and d.state in (DeliveryState.PENDING, DeliveryState.INFLIGHT)
                and d.next_at <= now
            ),
            key=lambda d: (d.next_at, d.id),
        )
        out: list[ClaimedDelivery] = []
        for d in due:
            if len(out) >= limit:
                break
            if self._blocked(d):
                continue
            d.state = DeliveryState.INFLIGHT
            d.attempts += 1
            d.next_at = now + lease_seconds
            d.owner = owner
            m = self._msgs[d.message_id]
            out.append(
                ClaimedDelivery(
                    d.id,
                    d.message_id,
                    d.target,
                    d.route,
                    d.attempts,
                    m.new.dataset,
                    m.new.dataset_version,
                    m.new.source,
                    m.new.payload,
                    m.accepted_at,
                    m.new.partition_key,
                    m.new.traceparent,
                )
            )
        return out

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        for o in outcomes:
            d = self._dels.get(o.delivery_id)
            if d is None:
                continue
            # Fenced like the SQL store: a success counts from any attempt, a failure only
            # from the current one; every answer is traced.
            current = d.state == DeliveryState.INFLIGHT and d.attempts == o.attempt
            if o.kind == "ack":
                step = "delivered"
                if d.state in (DeliveryState.PENDING, DeliveryState.INFLIGHT):
                    d.state = DeliveryState.DELIVERED
                    d.delivered_at = o.at
                    d.last_error = None
                    d.last_status = o.status
                    d.owner = None
            elif o.kind == "retry":
                step = "retry"
                if current:
                    d.state = DeliveryState.PENDING
                    d.next_at = o.next_at if o.next_at is not None else o.at
                    d.last_error = o.detail
                    d.last_status = o.status
                    d.retries += 1
                    d.owner = None
            else:
                step = "dead-lettered"
                if current:
                    d.state = DeliveryState.DEAD
                    d.dead_at = o.at
                    d.last_error = o.detail
                    d.last_status = o.status
                    d.owner = None
            self._msgs[d.message_id].events.append(
                TraceEvent(o.at, step, d.target, o.attempt, o.status, o.latency_ms, o.detail)
            )

    async def next_due_at(self, target: str) -> float | None:
        due = [
            d.next_at
            for d in self._dels.values()
            if d.target == target and d.state in (DeliveryState.PENDING, DeliveryState.INFLIGHT)
        ]
        return min(due) if due else None

    async def release_leases(self, owner: str | None = None) -> int:
        now = self.clock()
        n = 0
        for d in self._dels.values():
            if d.state == DeliveryState.INFLIGHT and (owner is None or d.owner == owner):
                d.state = DeliveryState.PENDING
                d.next_at = now
                d.owner = None
                n += 1
        return n

    async def add_events(self, message_id: str, events: Sequence[TraceEvent]) -> None:
        if message_id in self._msgs:
            self._msgs[message_id].events.extend(events)

    async def trace(self, message_id: str) -> MessageTrace | None:
        m = self._msgs.get(message_id)
        if m is None:
            return None
        n = m.new
        dels = [d for d in self._dels.values() if d.message_id == message_id]
        return MessageTrace(
            n.message_id,
            n.source,
            n.dataset,
            n.dataset_version,
            n.idempotency_key,
            n.partition_key,
            n.traceparent,
            n.created_at,
            m.accepted_at,
            n.payload,
            [
                DeliveryInfo(
                    d.id,
                    d.target,
                    d.route,
                    d.state,
                    d.attempts,
                    d.next_at if d.state < DeliveryState.DELIVERED else None,
                    d.last_status,
                    d.last_error,
                    d.delivered_at,
                )
                for d in sorted(dels, key=lambda d: d.id)
            ],
            sorted(m.events, key=lambda e: e.at),
        )

    async def dead_letters(
        self, target: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetterInfo]:
        dead = [
            d
            for d in self._dels.values()
            if d.state == DeliveryState.DEAD and (target is None or d.target == target)
        ]
        dead.sort(key=lambda d: d.id)
        out = []
        for d in dead[offset : offset + limit]:
            m = self._msgs[d.message_id].new
            out.append(
                DeadLetterInfo(
                    d.id,
                    d.message_id,
                    m.source,
                    m.dataset,
                    d.target,
                    d.route,
                    d.attempts,
                    d.dead_at or 0.0,
                    d.last_status,
                    d.last_error or "",
                )
            )
        return out

    async def undelivered(self, target: str, limit: int = 1000) -> list[UndeliveredInfo]:
        waiting = sorted(
            (
                d
                for d in self._dels.values()
                if d.target == target
                and d.state in (DeliveryState.PENDING, DeliveryState.INFLIGHT, DeliveryState.DEAD)
            ),
            key=lambda d: d.id,
        )
        out = []
        for d in waiting[:limit]:
            m = self._msgs[d.message_id]
            out.append(
                UndeliveredInfo(
                    d.id,
                    d.message_id,
                    d.route,
                    m.new.dataset,
                    d.state,
                    d.attempts,
                    m.accepted_at,
                    m.new.payload,
                )
            )
        return out

    async def replay(self, delivery_ids: Sequence[int], at: float) -> int:
        n = 0
        for i in delivery_ids:
            d = self._dels.get(i)
            if d is None or d.state != DeliveryState.DEAD:
                continue
            d.state = DeliveryState.PENDING
            d.attempts = 0
            d.next_at = at
            d.dead_at = None
            self._msgs[d.message_id].events.append(TraceEvent(at, "replayed", d.target))
            n += 1
        return n

    async def discard(self, delivery_ids: Sequence[int], at: float, reason: str) -> int:
        n = 0
        for i in delivery_ids:
            d = self._dels.get(i)
            if d is None or d.state != DeliveryState.DEAD:
                continue
            d.state = DeliveryState.DISCARDED
            self._msgs[d.message_id].events.append(
                TraceEvent(at, "discarded", d.target, detail=reason)
            )
            n += 1
        return n

    async def route_stats(self) -> list[RouteStats]:
        groups: dict[tuple[str, str], list[_Del]] = {}
        for d in self._dels.values():
            groups.setdefault((d.route, d.target), []).append(d)
        out = []
        for (route, target), ds in sorted(groups.items()):
            lat = sorted(
                (d.delivered_at - self._msgs[d.message_id].accepted_at) * 1000
                for d in ds
                if d.delivered_at is not None
            )
            out.append(
                RouteStats(
                    route,
                    target,
                    len(ds),
                    sum(d.state == DeliveryState.DELIVERED for d in ds),
                    sum(d.state in (DeliveryState.PENDING, DeliveryState.INFLIGHT) for d in ds),
                    sum(d.state == DeliveryState.DEAD for d in ds),
                    sum(d.retries for d in ds),
                    percentile(lat, 0.50),
                    percentile(lat, 0.99),
                )
            )
        return out

    async def counts(self) -> dict[str, int]:
        out = {s.name.lower(): 0 for s in DeliveryState}
        for d in self._dels.values():
            out[d.state.name.lower()] += 1
        out["messages"] = len(self._msgs)
        return out

    async def get_state(self, scope: str, key: str) -> str | None:
        return self._state.get((scope, key))

    async def put_state(self, scope: str, key: str, value: str) -> None:
        self._state[(scope, key)] = value

    async def quarantine(self, items: Sequence[QuarantinedRecord]) -> int:
        seen = {(q.source, q.key) for q in self._quarantine}
        added = 0
        for q in items:
            if (q.source, q.key) in seen:
                continue
            seen.add((q.source, q.key))
            self._quarantine.append(
                QuarantinedRecord(
                    q.source,
                    q.dataset,
                    q.key,
                    q.origin,
                    q.code,
                    q.field,
                    q.detail,
                    q.raw,
                    q.at,
                    len(self._quarantine) + 1,
                )
            )
            added += 1
        return added

    async def quarantined(
        self, source: str | None = None, *, after: int = 0, limit: int = 100
    ) -> list[QuarantinedRecord]:
        got = [
            q for q in self._quarantine if q.id > after and (source is None or q.source == source)
        ]
        return got[:limit]

    async def subject_messages(self, subject: str, limit: int = 100) -> list[SubjectLink]:
        links = [
            SubjectLink(mid, m.new.source, m.new.dataset, m.accepted_at)
            for mid, m in self._msgs.items()
            if m.subject == subject
        ]
        return links[::-1][:limit]

    async def prune(
        self,
        before: float,
        limit: int,
        archive: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Retention, the same rule as the SQL stores (see :class:`~hub.store.base.Prunable`)."""
        finished = (DeliveryState.DELIVERED, DeliveryState.DISCARDED)
        by_msg: dict[str, list[_Del]] = {}
        for d in self._dels.values():
            by_msg.setdefault(d.message_id, []).append(d)
        old = sorted(
            (m for m in self._msgs.values() if m.accepted_at < before),
            key=lambda m: m.accepted_at,
        )
        chosen = [
            m for m in old if all(d.state in finished for d in by_msg.get(m.new.message_id, []))
        ][:limit]
        summary = [
            {
                "message_id": m.new.message_id,
                "source": m.new.source,
                "dataset": m.new.dataset,
                "dataset_version": m.new.dataset_version,
                "idempotency_key": m.new.idempotency_key,
                "accepted_at": m.accepted_at,
                "delivered": sum(
                    d.state == DeliveryState.DELIVERED for d in by_msg.get(m.new.message_id, [])
                ),
                "events": len(m.events),
            }
            for m in chosen
        ]
        if archive is not None and summary:
            archive(summary)
        for m in chosen:
            mid = m.new.message_id
            for d in by_msg.get(mid, []):
                del self._dels[d.id]
            del self._msgs[mid]
            self._digests.pop(mid, None)
            self._superseded.discard(mid)
            if m.new.idempotency_key is not None:
                self._idem.pop((m.new.source, m.new.idempotency_key), None)
        return summary

    async def acquire_lease(self, name: str, owner: str, ttl_seconds: float) -> bool:
        now = self.clock()
        held = self._leases.get(name)
        if held is not None and held[0] != owner and held[1] > now:
            return False
        self._leases[name] = (owner, now + ttl_seconds)
        return True

    async def release_lease(self, name: str, owner: str) -> bool:
        held = self._leases.get(name)
        if held is None or held[0] != owner:
            return False
        del self._leases[name]
        return True

    async def ledger_put(self, entries: Sequence[LedgerEntry]) -> int:
        written = 0
        for e in entries:
            k = (e.book, e.dataset, e.key)
            old = self._ledger.get(k)
            if old is not None and old.version > e.version:
                continue
            if old is not None and old.version == e.version and old.receipt is not None:
                e = replace(e, receipt=old.receipt)
            self._ledger[k] = e
            written += 1
        return written

    async def ledger_entries(
        self, book: str, dataset: str, *, day: str | None = None
    ) -> list[LedgerEntry]:
        return [
            e
            for k, e in sorted(self._ledger.items())
            if k[0] == book and k[1] == dataset and (day is None or e.day == day)
        ]

    async def remember_nonce(self, key_id: str, nonce: str, expires_at: float) -> bool:
        now = self.clock()
        seen = self._nonces.get((key_id, nonce))
        if seen is not None and seen > now:
            return False
        if len(self._nonces) > 10_000:
            self._nonces = {k: v for k, v in self._nonces.items() if v > now}
        self._nonces[(key_id, nonce)] = expires_at
        return True

    # ------------------------------------------------------------------ reporting

    async def queue_stats(self) -> list[TargetQueue]:
        acc: dict[str, list[Any]] = {}
        for d in self._dels.values():
            row = acc.setdefault(d.target, [0, 0, 0, None])
            if d.state == DeliveryState.PENDING:
                row[0] += 1
                row[3] = d.next_at if row[3] is None else min(row[3], d.next_at)
            elif d.state == DeliveryState.INFLIGHT:
                row[1] += 1
            elif d.state == DeliveryState.DEAD:
                row[2] += 1
        return [TargetQueue(t, r[0], r[1], r[2], r[3]) for t, r in sorted(acc.items())]

    async def find_messages(
        self,
        *,
        source: str | None = None,
        idempotency_key: str | None = None,
        business_key: str | None = None,
        limit: int = 50,
    ) -> list[SubjectLink]:
        ids: set[str] | None = None
        if business_key is not None:
            ids = {
                v[0]
                for k, v in self._bkeys.items()
                if k[2] == business_key and (source is None or k[0] == source)
            }
        out: list[SubjectLink] = []
        for mid, m in reversed(self._msgs.items()):
            env = m.new
            if source is not None and env.source != source:
                continue
            if idempotency_key is not None and env.idempotency_key != idempotency_key:
                continue
            if ids is not None and mid not in ids:
                continue
            out.append(SubjectLink(mid, env.source, env.dataset, m.accepted_at))
            if len(out) >= limit:
                break
        return out

    async def schema_version(self) -> tuple[int, int]:
        return (1, 1)  # nothing persisted, nothing to migrate

    # ------------------------------------------------------------------ data sharing

    async def share_put(
        self, record: ShareRecord, *, expect_rev: int, events: Sequence[ShareEvent] = ()
    ) -> bool:
        share_table(record.kind)
        k = (record.kind, record.id)
        held = self._share.get(k)
        if (held is None) != (expect_rev == 0) or (held is not None and held.rev != expect_rev):
            return False
        self._share[k] = replace(record, doc=copy.deepcopy(record.doc))
        for e in events:
            self._share_events.setdefault(e.application_id, []).append(e)
        return True

    async def share_get(self, kind: str, id: str) -> ShareRecord | None:
        share_table(kind)
        got = self._share.get((kind, id))
        return None if got is None else replace(got, doc=copy.deepcopy(got.doc))

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
        share_table(kind)  # an unknown kind fails as in the SQL stores
        out = [
            replace(r, doc=copy.deepcopy(r.doc))
            for (k, _), r in self._share.items()
            if k == kind
            and (dataset is None or r.dataset == dataset)
            and (provider is None or r.provider == provider)
            and (holder is None or r.holder == holder)
            and (states is None or r.state in states)
            and (due_before is None or (r.due_at is not None and r.due_at < due_before))
        ]
        out.sort(key=lambda r: (r.created_at, r.id))
        return out[:limit]

    async def share_events(self, application_id: str) -> list[ShareEvent]:
        return list(self._share_events.get(application_id, []))

    async def quota_add(
        self, grant_id: str, day: str, requests: int, records: int
    ) -> tuple[int, int]:
        r, n = self._quota.get((grant_id, day), (0, 0))
        self._quota[(grant_id, day)] = got = (r + requests, n + records)
        return got

    async def current_records(
        self, dataset: str, *, after: int = 0, limit: int = 1000
    ) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        for mid, m in self._msgs.items():  # insertion order is position order
            seq = self._seq[mid]
            if seq <= after or m.new.dataset != dataset or mid in self._superseded:
                continue
            out.append((seq, m.new.payload))
            if len(out) >= limit:
                break
        return out
