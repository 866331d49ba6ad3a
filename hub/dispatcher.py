"""The dispatcher: one worker per target claims due deliveries, transforms, sends, settles.

Each worker keeps up to ``transport.concurrency`` units in flight (a unit is one record, or a
batch of up to ``transport.max_batch`` records). It claims with a lease, so work held by a node
that died returns when the lease ends. It sleeps until woken by new work (ingest sets the
target's event right after the commit, so an idle hub delivers in milliseconds), until the next
retry is due, or at most ``idle_poll_seconds`` (to notice work written by another process).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from hub.breaker import BreakerState, CircuitBreaker, backoff_delay
from hub.builtin import identity as builtin_identity
from hub.events import DeliveryEvent
from hub.json_adapter import JsonAdapter
from hub.specs import OutboundItem, SendResult
from hub.store import ClaimedDelivery, Outcome
from hub.tracecontext import child_traceparent

if TYPE_CHECKING:
    from hub.routing import RouteTargetRuntime
    from hub.runtime import Hub, TargetRuntime

__all__ = ["Dispatcher", "SettleBatcher", "TargetWorker", "render_outbound"]

log = logging.getLogger("jghub.dispatcher")


class Doorbell:
    """The worker loop's wake-up: ``set`` by ingest, answers and settles; ``wait`` returns when
    it rings or after a timeout. What ``asyncio.Event`` with ``asyncio.wait_for`` did, in one
    hop (a future and a timer), not a task and three loop iterations per wake-up."""

    __slots__ = ("_rung", "_waiter")

    def __init__(self) -> None:
        self._rung = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._rung = True
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def clear(self) -> None:
        self._rung = False

    def is_set(self) -> bool:
        return self._rung

    async def wait(self, timeout: float) -> None:
        """Until rung (at once if it already is) or ``timeout`` seconds have passed."""
        if self._rung:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiter = fut
        timer = loop.call_later(timeout, _ring_out, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._waiter = None


def _ring_out(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def render_outbound(
    payload: bytes,
    transform: Callable[[dict[str, Any]], Any],
    mapping: Callable[..., Any] | None,
    cipher: Any,
    adapter: Any,
) -> Any:
    """A stored payload as its target gets it: field values decrypted (encrypted at rest;
    targets get clear values), the route's transform, the target's outbound mapping, the
    target adapter's encoding. What the dispatcher sends, and what a check of waiting
    deliveries (the credit deadline watch) reads."""
    data = orjson.loads(payload)
    if cipher is not None:
        data = cipher.decrypt_fields(data)
    record = transform(data)
    if mapping is not None:
        record = mapping(record, None)
    return adapter.encode(record)


#: (kind, event, next attempt time or reason) of a settled delivery, for observers
_Event = tuple[str, DeliveryEvent, float | str]
#: one unit's outcomes, its observers' events, and the future its settle waits on
_Settle = tuple[Sequence[Outcome], Sequence[_Event], asyncio.Future[None]]


class SettleBatcher:
    """Settles the outcomes of many units with one store write (like the ingest's merged
    writer jobs): the units that finish while a settle write is in flight, or in the same
    event-loop iteration, are written together when it returns. At most one settle write is
    in flight; under load the writes grow instead of queueing one transaction per unit, and
    an idle hub writes a lone unit's outcomes one loop iteration after they were ready.

    A unit's ``settle`` returns once its outcomes are committed. If a merged write fails, each
    unit's outcomes are written alone, so one unit's failure never fails its neighbours. The
    observers hear of the units' deliveries (``events``) once per committed write, before the
    units' futures resolve: one observer call for all the units a write settled.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._pending: list[_Settle] = []
        self._writer: asyncio.Task[None] | None = None

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        await self.submit(outcomes)

    def submit(
        self, outcomes: Sequence[Outcome], events: Sequence[_Event] = ()
    ) -> asyncio.Future[None]:
        """Queue ``outcomes`` for the next merged write; the future resolves once they are
        committed (or fails with the store's error), after the observers heard of ``events``."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((outcomes, events, fut))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_pending())
        return fut

    async def _write_pending(self) -> None:
        try:
            await asyncio.sleep(0)  # the units answered in this iteration join
            while self._pending:
                batch, self._pending = self._pending, []
                await self._write(batch)
        finally:
            self._writer = None
            for _, _, fut in self._pending:  # only if cancelled: nobody will write them
                fut.cancel()
            self._pending = []

    async def _write(self, batch: list[_Settle]) -> None:
        merged = [o for outs, _, _ in batch for o in outs]
        try:
            await self.hub.store.settle(merged)
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0][2], exc)
                return
            for outs, events, fut in batch:  # alone: one unit's failure fails no other
                try:
                    await self.hub.store.settle(outs)
                except Exception as exc:
                    _fail(fut, exc)
                else:
                    self._notify(events)
                    _done(fut)
            return
        except BaseException:  # cancelled: so are the units waiting for this write
            for _, _, fut in batch:
                fut.cancel()
            raise
        self._notify([e for _, events, _ in batch for e in events])
        for _, _, fut in batch:
            _done(fut)

    def _notify(self, events: Sequence[_Event]) -> None:
        if not events:
            return
        try:
            self.hub.notify_deliveries(events)
        except Exception:
            log.exception("delivery observers failed")


def _done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _fail(fut: asyncio.Future[None], exc: Exception) -> None:
    if not fut.done():
        fut.set_exception(exc)


class _Claim:
    """One claim's records still in a worker's buffer, and when they must have started."""

    __slots__ = ("left", "use_by")

    def __init__(self, left: int, use_by: float) -> None:
        self.left = left
        self.use_by = use_by


class TargetWorker:
    """Delivers everything due for one target."""

    def __init__(
        self, hub: Hub, target: TargetRuntime, settler: SettleBatcher | None = None
    ) -> None:
        self.hub = hub
        self.settler = settler if settler is not None else SettleBatcher(hub)
        self.target = target
        self.name = target.name
        self.breaker: CircuitBreaker = target.breaker
        self.wake = Doorbell()
        self.inflight = 0  # units being sent (the target's concurrency)
        self.unsettled = 0  # units claimed and not settled yet (sending or settling)
        self._ready: deque[ClaimedDelivery] = deque()  # claimed ahead, not started yet
        #: per claim still in the buffer, oldest first: [records left, use-by time]; a
        #: claim's records not started by half their lease are dropped (they return to the
        #: queue when the lease ends)
        self._claims: deque[_Claim] = deque()
        # The buffer is topped up once it holds half a claim or less (in records), and at most
        # one round of units; not before _refill_after after a claim found nothing due.
        settings = hub.config.dispatcher
        tr = target.transport
        full = min(settings.claim_batch, 5 * tr.concurrency * tr.max_batch)
        if full > tr.max_batch:
            full -= full % tr.max_batch
        # (half a claim, and at most one round of units: per record a claim of ~32, not ~16)
        self._refill_at = min(full // 2, tr.concurrency * tr.max_batch)
        self._refill_after = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._settling: set[asyncio.Future[None]] = set()  # units' settle writes in flight
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        # The stored canonical JSON can go out as it is (no parse, no re-serialisation) when
        # the transport posts JSON and the target's adapter sends records unchanged.
        self._raw_json = bool(
            getattr(target.transport, "accepts_raw_json", False)
            and getattr(type(target.adapter), "encode", None) is JsonAdapter.encode
        )

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name=f"jghub-dispatch:{self.name}")

    async def stop(self, drain_timeout: float = 10.0) -> None:
        self._stopping = True
        self.wake.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=drain_timeout)
            for t in pending:
                t.cancel()
            # Deliveries cut off here keep their lease and are claimed again later.
            await asyncio.gather(*pending, return_exceptions=True)
        if self._settling:  # the outcomes of answered units: committed before the store closes
            await asyncio.wait(self._settling, timeout=drain_timeout)

    async def _sleep(self, seconds: float) -> None:
        await self.wake.wait(max(seconds, 0.0005))

    async def _run(self) -> None:
        settings = self.hub.config.dispatcher
        transport = self.target.transport
        conc, step = transport.concurrency, transport.max_batch
        while not self._stopping:
            try:
                wait = self.breaker.ready_in()
                if wait > 0:
                    self.wake.clear()
                    await self._sleep(wait)
                    continue
                probing = self.breaker.probing
                free = transport.concurrency - self.inflight
                self._drop_stale()
                # Top the buffer up while half of it is still there (not once it ran dry), so
                # the claim (a write that queues behind the settles) overlaps the sending.
                # (An empty buffer always claims: every path below then awaits or starts a
                # unit, so the loop never spins.)
                refill = not self._ready or (
                    not probing
                    and len(self._ready) <= self._refill_at
                    and self.hub.clock() >= self._refill_after
                )
                if (
                    (free <= 0 and not refill)
                    or (probing and self.inflight)
                    or self.unsettled >= 4 * conc
                ):
                    self.wake.clear()
                    await self._sleep(settings.idle_poll_seconds)
                    continue
                if refill:
                    # Claim ahead (for the slots free now and four rounds more, less what is
                    # buffered), so the next units start from this buffer.
                    ahead = free if probing else free + 4 * conc
                    limit = (
                        1 if probing else min(settings.claim_batch, ahead * step) - len(self._ready)
                    )
                    if limit > step:  # whole batches: no short request for the remainder
                        limit -= limit % step
                    claimed = []
                    if limit > 0:
                        self.wake.clear()
                        claimed = await self.hub.store.claim(
                            self.name, limit, settings.lease_seconds, self.hub.node_id
                        )
                    if not claimed and not self._ready:
                        due = await self.hub.store.next_due_at(self.name)
                        now = self.hub.clock()
                        idle = settings.idle_poll_seconds
                        await self._sleep(
                            idle if due is None or due <= now else min(due - now, idle)
                        )
                        continue
                    if not claimed:  # nothing due now: no top-up until new work or a poll
                        self._refill_after = self.hub.clock() + settings.idle_poll_seconds
                    else:
                        self._ready.extend(claimed)
                        use_by = self.hub.clock() + settings.lease_seconds / 2
                        self._claims.append(_Claim(len(claimed), use_by))
                    free = transport.concurrency - self.inflight
                for _ in range(1 if probing else max(free, 0)):
                    if not self._ready:
                        break
                    self._start_unit(1 if probing else step)  # a probe: one record
            except asyncio.CancelledError:
                raise
            except Exception:  # the store hiccuped: back off, never die
                log.exception("dispatcher loop for %s failed; retrying in 1s", self.name)
                await self._sleep(1.0)

    def _drop_stale(self) -> None:
        """Drop the buffered records of claims past their use-by time (half the lease)."""
        now = self.hub.clock()
        claims, ready = self._claims, self._ready
        while claims and claims[0].use_by < now:
            for _ in range(claims.popleft().left):
                ready.popleft()

    def _start_unit(self, size: int) -> None:
        """Start a unit of up to ``size`` records from the claimed-ahead buffer."""
        self._spawn(self._take(size))

    def _spawn(self, unit: list[ClaimedDelivery]) -> None:
        """Deliver ``unit`` (taken from the buffer) in a task of its own, kept for stop()."""
        task = asyncio.create_task(self._deliver(unit))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self, size: int) -> list[ClaimedDelivery]:
        """Up to ``size`` records from the claimed-ahead buffer, counted as a unit in flight."""
        ready = self._ready
        n = min(size, len(ready))
        unit = [ready.popleft() for _ in range(n)]
        claims = self._claims
        while n:
            front = claims[0]
            take = min(n, front.left)
            front.left -= take
            n -= take
            if not front.left:
                claims.popleft()
        self.inflight += 1
        self.unsettled += 1
        return unit

    def _next_unit(self) -> None:
        """A slot was freed: start the next unit from the buffer in a task of its own at once
        when the worker loop would (see :meth:`_follow_on`), else ring the loop."""
        unit = self._follow_on()
        if unit is not None:
            self._spawn(unit)

    def _follow_on(self) -> list[ClaimedDelivery] | None:
        """A slot was freed: the next unit from the buffer when the worker loop would start
        one now (circuit closed, a slot and the unsettled budget free, leases fresh), counted
        in flight; the loop is rung to claim, wait out the circuit or probe unless the buffer
        is still above its top-up mark."""
        conc = self.target.transport.concurrency
        unit = None
        if (
            self._ready
            and not self._stopping
            and self.breaker.state is BreakerState.CLOSED
            and self.inflight < conc
            and self.unsettled < 4 * conc
            and self._claims[0].use_by >= self.hub.clock()
        ):
            unit = self._take(self.target.transport.max_batch)
            if len(self._ready) > self._refill_at:
                return unit
        self.wake.set()
        return unit

    def new_work(self) -> None:
        """Work was queued for this target (ingest, a replay): claim again, also to top up."""
        self._refill_after = 0.0
        self.wake.set()

    async def _deliver(self, claimed: Sequence[ClaimedDelivery]) -> None:
        """Send units, one after the other, in this task: when the target has answered a unit
        its outcomes go to the settle batcher (:meth:`_settle_later`) and the next unit from
        the buffer is sent at once, in the same event-loop iteration — no new task, no
        iteration lost between an answer and the next request, which under a busy loop (ingest
        on the same loop) is what bounds a per-record target's rate. The task ends when the
        buffer has no unit to start now; the worker loop starts others."""
        unit: Sequence[ClaimedDelivery] | None = claimed
        while unit is not None:
            try:
                outcomes, events = await self._deliver_unit(unit)
            except Exception as exc:
                log.exception("delivery unit to %s failed", self.name)
                self.inflight -= 1
                self._next_unit()
                try:
                    await self._settle_failed_unit(unit, exc)
                finally:
                    self._unit_settled()
                return
            except BaseException:  # cancelled (stop): the unit keeps its lease
                self.inflight -= 1
                self._unit_settled()
                raise
            # The target answered: the slot is free for the next unit while this one's
            # outcome is being committed (the fsync need not hold a connection idle).
            self.inflight -= 1
            self._settle_later(outcomes, events)
            unit = self._follow_on()

    def _settle_later(
        self, outcomes: Sequence[Outcome], events: list[tuple[str, DeliveryEvent, float | str]]
    ) -> None:
        """Hand an answered unit's outcomes to the settle batcher, which tells the observers
        once they are committed; then the unit stops counting against the unsettled budget."""
        fut = self.settler.submit(outcomes, events)
        self._settling.add(fut)

        def settled(f: asyncio.Future[None]) -> None:
            self._settling.discard(f)
            try:
                if f.cancelled():
                    return
                exc = f.exception()
                if exc is not None:  # the leases expire and the deliveries are sent again
                    log.error(
                        "could not settle %d deliveries to %s: %s",
                        len(outcomes),
                        self.name,
                        exc,
                        exc_info=exc,
                    )
            finally:
                self._unit_settled()

        fut.add_done_callback(settled)

    def _unit_settled(self) -> None:
        """A unit's outcomes are committed (or given up): it leaves the unsettled budget; if
        that budget was what held the worker back, start the next unit or ring the loop."""
        blocked = self.unsettled >= 4 * self.target.transport.concurrency
        self.unsettled -= 1
        if blocked or self._stopping:
            self._next_unit()

    async def _settle_failed_unit(self, claimed: Sequence[ClaimedDelivery], exc: Exception) -> None:
        """A unit that raised (a transport bug, an unreadable answer) counts as a failed
        attempt: retried with backoff, dead-lettered once the budget is spent, and seen by the
        circuit breaker; otherwise it would come back every lease, forever."""
        now = self.hub.clock()
        policy = self.target.retry
        detail = f"delivery failed inside the hub: {type(exc).__name__}: {exc}"[:300]
        outcomes = [
            Outcome(
                c.delivery_id,
                "retry",
                now,
                c.attempt,
                None,
                detail,
                next_at=now + backoff_delay(policy, c.attempt),
            )
            if c.attempt < policy.max_attempts
            else Outcome(
                c.delivery_id,
                "dead",
                now,
                c.attempt,
                None,
                f"gave up after {c.attempt} attempts; last: {detail}",
            )
            for c in claimed
        ]
        self.breaker.record_failure()
        try:
            await self.hub.store.settle(outcomes)
        except Exception:  # the leases will expire and the work returns
            log.exception("could not settle the failed unit to %s", self.name)

    def _prepare(
        self, c: ClaimedDelivery
    ) -> tuple[RouteTargetRuntime, Callable[..., Any] | None, Any, bool, str]:
        """What delivering ``c`` needs from its (route, dataset): the route's transform, the
        target's mapping, the field cipher, whether the stored JSON goes out as it is, and the
        trace note. Looked up once per (route, dataset) in a unit, not once per record."""
        rt = self.hub.outbound_route(c.route, self.name)
        mapping = self.target.mappings.get(c.dataset)
        cipher = self.hub.guard.ciphers.get(c.dataset)
        raw = (
            self._raw_json
            and mapping is None
            and cipher is None
            and rt.transform is builtin_identity
        )
        note = f"transform={rt.transform_name}" + (
            f"; mapped for {self.name}" if mapping is not None else ""
        )
        return rt, mapping, cipher, raw, note

    async def _deliver_unit(
        self, claimed: Sequence[ClaimedDelivery]
    ) -> tuple[list[Outcome], list[tuple[str, DeliveryEvent, float | str]]]:
        """Prepare, send and classify one unit; record the answer with the circuit breaker.
        Returns the outcomes to settle and the events for observers (after the settle)."""
        hub = self.hub
        outcomes: list[Outcome] = []
        events: list[tuple[str, DeliveryEvent, float | str]] = []
        items: list[OutboundItem] = []
        sent: list[ClaimedDelivery] = []
        notes: list[str] = []
        prepared: dict[tuple[str, str], tuple[Any, ...]] = {}
        for c in claimed:
            key = (c.route, c.dataset)
            prep = prepared.get(key)
            if prep is None:
                prep = prepared[key] = self._prepare(c)
            rt, mapping, cipher, raw, note = prep
            try:
                if raw:
                    items.append(
                        OutboundItem(
                            c.delivery_id,
                            c.message_id,
                            c.dataset,
                            orjson.Fragment(c.payload),
                            c.attempt,
                            child_traceparent(c.traceparent),
                        )
                    )
                    sent.append(c)
                    notes.append(note)
                    continue
                body = render_outbound(
                    c.payload, rt.transform, mapping, cipher, self.target.adapter
                )
            except Exception as exc:  # a mapping that cannot apply will not apply on retry
                now = hub.clock()
                step = f"mapping.outbound.{c.dataset}" if mapping is not None else "transform"
                reason = (
                    f"{step} (transform {rt.transform_name!r}) failed: {type(exc).__name__}: {exc}"
                )
                outcomes.append(Outcome(c.delivery_id, "dead", now, c.attempt, None, reason))
                events.append(("dead", self._event(c, None, reason, 0.0), reason))
                continue
            items.append(
                OutboundItem(
                    c.delivery_id,
                    c.message_id,
                    c.dataset,
                    body,
                    c.attempt,
                    child_traceparent(c.traceparent),
                )
            )
            sent.append(c)
            notes.append(note)
        results: list[SendResult] = []
        if items:
            results = await self.target.transport.send(items)
            if len(results) != len(items):
                raise RuntimeError(
                    f"transport {self.name} returned {len(results)} results for {len(items)}"
                )
        now = hub.clock()
        transient_failure = False
        reached = False
        policy = self.target.retry
        name = self.name
        # a batch's records share one result (one request) and one note: the trace detail
        # is built once for them
        last: tuple[SendResult | None, str | None, str] = (None, None, "")
        for c, res, note in zip(sent, results, notes, strict=True):
            if res is last[0] and note is last[1]:
                detail = last[2]
            else:
                detail = f"{note}; {res.detail}".rstrip("; ") if res.detail else note
                if res.receipt:
                    detail += f"; receipt={res.receipt}"
                last = (res, note, detail)
            ev = DeliveryEvent(
                c.message_id,
                name,
                c.route,
                c.attempt,
                res.status,
                res.detail,
                res.latency_ms,
                c.accepted_at,
                c.traceparent,
            )
            if res.ok:
                reached = True
                outcomes.append(
                    Outcome(
                        c.delivery_id, "ack", now, c.attempt, res.status, detail, res.latency_ms
                    )
                )
                events.append(("ok", ev, ""))
                continue
            if res.permanent:
                reached = True
                reason = f"permanent error {res.status}: {res.detail}".strip()
            else:
                if res.status == 429:
                    reached = True
                else:
                    transient_failure = True
                if c.attempt < policy.max_attempts:
                    nxt = now + backoff_delay(policy, c.attempt, res.retry_after)
                    outcomes.append(
                        Outcome(
                            c.delivery_id,
                            "retry",
                            now,
                            c.attempt,
                            res.status,
                            detail,
                            res.latency_ms,
                            nxt,
                        )
                    )
                    events.append(("retry", ev, nxt))
                    continue
                reason = f"gave up after {c.attempt} attempts; last: {res.status} {res.detail}"
            outcomes.append(
                Outcome(c.delivery_id, "dead", now, c.attempt, res.status, reason, res.latency_ms)
            )
            events.append(("dead", ev, reason))
        if transient_failure:
            before = self.breaker.state
            self.breaker.record_failure()
            if self.breaker.state is BreakerState.OPEN and before is not BreakerState.OPEN:
                log.warning("circuit to %s opened for %.1fs", self.name, self.breaker.timeout)
        elif reached:
            if self.breaker.state is not BreakerState.CLOSED:
                log.info("circuit to %s closed", self.name)
            self.breaker.record_success()
        # The slot is freed (and the next unit starts) only after the breaker has heard this
        # answer, as when the worker loop ran after this unit's synchronous part.
        return outcomes, events

    def _event(
        self, c: ClaimedDelivery, status: int | None, detail: str, latency_ms: float
    ) -> DeliveryEvent:
        return DeliveryEvent(
            c.message_id,
            self.name,
            c.route,
            c.attempt,
            status,
            detail,
            latency_ms,
            c.accepted_at,
            c.traceparent,
        )


class Dispatcher:
    """All target workers of one hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        #: one for all targets: the settles of one loop iteration are one store write
        self.settler = SettleBatcher(hub)
        self.workers: dict[str, TargetWorker] = {
            name: TargetWorker(hub, t, self.settler) for name, t in hub.targets.items()
        }
        self.started_at: float | None = None

    def start(self) -> None:
        self.started_at = time.time()
        for w in self.workers.values():
            w.start()

    def add_worker(self, target: TargetRuntime) -> None:
        """A worker for a target added at run time (started now when the dispatcher runs)."""
        if target.name in self.workers:
            return
        w = self.workers[target.name] = TargetWorker(self.hub, target, self.settler)
        if self.started_at is not None:
            w.start()

    async def stop(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers.values()))

    def wake(self, target: str) -> None:
        w = self.workers.get(target)
        if w is not None:
            w.new_work()

    @property
    def running(self) -> bool:
        return (
            any(w._loop_task is not None and not w._loop_task.done() for w in self.workers.values())
            or not self.workers
        )
