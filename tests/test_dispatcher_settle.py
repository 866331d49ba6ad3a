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
