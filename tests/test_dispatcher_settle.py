"""The dispatcher's settle batcher: the units that finish in one event-loop iteration are
settled with one store write; a merged write that fails falls back to one write per unit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from hub.dispatcher import SettleBatcher
from hub.envelope import Envelope, new_message_id
from hub.store import DeliveryState, NewMessage, Outcome, TargetRef
from hub.store.memory import MemoryStore


class RecordingStore(MemoryStore):
    """The memory store, recording each settle call; refuses any call holding ``poison``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[int]] = []
        self.poison: int | None = None

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        ids = [o.delivery_id for o in outcomes]
        self.calls.append(ids)
        if self.poison in ids:
            raise RuntimeError(f"refused {self.poison}")
        await super().settle(outcomes)


async def _claimed(store: RecordingStore, n: int) -> list[Any]:
    await store.enqueue(
        [
            NewMessage(
                Envelope(
                    message_id=new_message_id(),
                    source="s",
                    dataset="d",
                    dataset_version="1",
                    created_at=1.0,
                    payload=orjson.dumps({"i": i}),
                ),
                [TargetRef("t", "r", False)],
            )
            for i in range(n)
        ]
    )
    return await store.claim("t", n, 30, "node")


def _ack(c: Any) -> list[Outcome]:
    return [Outcome(c.delivery_id, "ack", 2.0, c.attempt, 200)]


async def test_settles_of_one_iteration_are_one_write() -> None:
    store = RecordingStore()
    claimed = await _claimed(store, 5)
    batcher = SettleBatcher(SimpleNamespace(store=store))  # type: ignore[arg-type]
    await asyncio.gather(*(batcher.settle(_ack(c)) for c in claimed))
    assert store.calls == [[c.delivery_id for c in claimed]]
    assert (await store.counts())["delivered"] == 5
    # a settle alone is written alone
    more = await _claimed(store, 1)
    await batcher.settle(_ack(more[0]))
    assert store.calls[-1] == [more[0].delivery_id]


async def test_a_failed_merged_write_is_retried_unit_by_unit() -> None:
    store = RecordingStore()
    claimed = await _claimed(store, 4)
    store.poison = claimed[2].delivery_id
    batcher = SettleBatcher(SimpleNamespace(store=store))  # type: ignore[arg-type]
    got = await asyncio.gather(*(batcher.settle(_ack(c)) for c in claimed), return_exceptions=True)
    assert [type(g) for g in got] == [type(None), type(None), RuntimeError, type(None)]
    ids = [c.delivery_id for c in claimed]
    assert store.calls[0] == ids  # merged, refused, then one write per unit
    assert sorted(map(tuple, store.calls[1:])) == sorted((i,) for i in ids)
    for c in claimed:
        d = await store.trace(c.message_id)
        assert d is not None
        want = DeliveryState.INFLIGHT if c.delivery_id == store.poison else DeliveryState.DELIVERED
        assert d.deliveries[0].state == want


async def test_the_leaders_own_failure_is_raised_to_it_alone() -> None:
    store = RecordingStore()
    claimed = await _claimed(store, 3)
    store.poison = claimed[0].delivery_id  # the first to settle leads
    batcher = SettleBatcher(SimpleNamespace(store=store))  # type: ignore[arg-type]
    got = await asyncio.gather(*(batcher.settle(_ack(c)) for c in claimed), return_exceptions=True)
    assert isinstance(got[0], RuntimeError) and got[1] is None and got[2] is None
    with pytest.raises(RuntimeError):
        await batcher.settle(_ack(claimed[0]))


async def test_units_finishing_while_a_write_is_in_flight_are_written_together() -> None:
    store = RecordingStore()
    claimed = await _claimed(store, 6)
    gate = asyncio.Event()
    slow = store.settle

    async def held(outcomes: Sequence[Outcome]) -> None:
        if len(store.calls) == 0:
            await gate.wait()  # the first write is in flight until the gate opens
        await slow(outcomes)

    store.settle = held  # type: ignore[method-assign]
    batcher = SettleBatcher(SimpleNamespace(store=store))  # type: ignore[arg-type]
    first = asyncio.ensure_future(batcher.settle(_ack(claimed[0])))
    await asyncio.sleep(0.01)  # the first write waits at the gate
    later = [asyncio.ensure_future(batcher.settle(_ack(c))) for c in claimed[1:]]
    await asyncio.sleep(0.01)
    assert not first.done() and not any(t.done() for t in later)
    gate.set()
    await asyncio.gather(first, *later)
    ids = [c.delivery_id for c in claimed]
    assert store.calls == [ids[:1], ids[1:]]  # one write for everything that queued meanwhile
    assert (await store.counts())["delivered"] == 6


async def test_buffered_claims_are_started_in_order_and_dropped_by_their_own_use_by() -> None:
    """The claimed-ahead buffer is topped up before it runs dry, so it can hold several
    claims: each claim's records are dropped when *its* use-by time (half its lease) has
    passed, not when the newest claim's has."""
    from collections import deque

    from hub.dispatcher import TargetWorker, _Claim

    now = [15.0]
    started: list[list[int]] = []
    w = TargetWorker.__new__(TargetWorker)
    w.hub = SimpleNamespace(clock=lambda: now[0])  # type: ignore[assignment]
    w.inflight = w.unsettled = 0
    w._tasks = set()
    w._ready = deque(range(9))  # type: ignore[arg-type]
    w._claims = deque([_Claim(3, 10.0), _Claim(2, 20.0), _Claim(4, 30.0)])

    async def deliver(unit: list[int]) -> None:
        started.append(unit)

    w._deliver = deliver  # type: ignore[assignment,method-assign]
    w._drop_stale()  # the first claim (use-by 10) is stale at 15
    assert list(w._ready) == [3, 4, 5, 6, 7, 8]
    assert [(c.left, c.use_by) for c in w._claims] == [(2, 20.0), (4, 30.0)]
    w._start_unit(3)  # spans the second claim and the third
    await asyncio.sleep(0)
    assert started == [[3, 4, 5]] and w.inflight == w.unsettled == 1
    assert [(c.left, c.use_by) for c in w._claims] == [(3, 30.0)]
    now[0] = 25.0
    w._drop_stale()  # nothing of the second claim is left to drop
    assert list(w._ready) == [6, 7, 8]
    now[0] = 31.0
    w._drop_stale()
    assert not w._ready and not w._claims
