"""Guaranteed delivery through a real hub on real SQLite to real sink servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.samples import sample_inspection
from hub.breaker import BreakerState
from hub.config import HubConfig
from hub.events import DeliveryEvent
from hub.peers.sink import Sink, SinkBehaviour
from hub.plugins import hookimpl
from hub.runtime import Hub
from hub.store import DeliveryState
from tests.helpers import config, wait_until


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink("national")
    await s.start()
    yield s
    await s.stop()


class Observer:
    """A plugin that records lifecycle hook calls."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.delivered: list[DeliveryEvent] = []
        self.retried: list[DeliveryEvent] = []
        self.dead: list[tuple[DeliveryEvent, str]] = []

    @hookimpl
    def hub_messages_accepted(self, messages):  # type: ignore[no-untyped-def]
        self.accepted += [m.message_id for m in messages]

    @hookimpl
    def hub_delivery_succeeded(self, event):  # type: ignore[no-untyped-def]
        self.delivered.append(event)

    @hookimpl
    def hub_delivery_retried(self, event, next_attempt_at):  # type: ignore[no-untyped-def]
        self.retried.append(event)

    @hookimpl
    def hub_delivery_dead_lettered(self, event, reason):  # type: ignore[no-untyped-def]
        self.dead.append((event, reason))


class UnitObserver:
    """A plugin that records ``hub_deliveries_settled`` (one call per settled unit)."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, DeliveryEvent, float | str]]] = []

    @hookimpl
    def hub_deliveries_settled(self, events):  # type: ignore[no-untyped-def]
        self.calls.append(list(events))

    def of(self, kind: str) -> list[DeliveryEvent]:
        return [ev for call in self.calls for k, ev, _ in call if k == kind]


async def test_settled_hook_sees_each_outcome_once_as_the_per_delivery_hooks(
    tmp_path: Path,
) -> None:
    """The settled hook and the per-delivery hooks see the same deliveries, in the same order,
    with the same extras (next attempt time, dead-letter reason), one call per settle write
    (one or more units), each outcome once."""
    sink = Sink(
        "batcher",
        SinkBehaviour(
            fail_rate=0.3,
            seed=3,
            reject=lambda r: "bad" if r["inspection_no"].endswith("7") else None,
        ),
    )
    await sink.start()
    per, unit = Observer(), UnitObserver()
    try:
        cfg = config(
            tmp_path,
            {"batcher": {"url": sink.batch_url, "batch_size": 10}},
            retry={"max_attempts": 50, "base_delay": 0.005, "max_delay": 0.02},
        )
        async with Hub(cfg, extra_plugins=[per, unit]) as hub:
            await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(60)])
            await wait_until(lambda: _settled(hub, 60), what="every delivery settled")
            await wait_until(
                lambda: len(per.delivered) + len(per.dead) == 60, what="every outcome observed"
            )
        assert per.dead and per.retried, "the sink must have rejected and failed some"
        assert unit.of("ok") == per.delivered
        assert unit.of("retry") == per.retried
        assert unit.of("dead") == [ev for ev, _ in per.dead]
        reasons = [str(x) for call in unit.calls for k, _, x in call if k == "dead"]
        assert reasons == [r for _, r in per.dead]
        outcomes = len(per.delivered) + len(per.retried) + len(per.dead)
        assert sum(len(call) for call in unit.calls) == outcomes
        assert len(unit.calls) < outcomes
    finally:
        await sink.stop()


async def test_records_reach_target_once_with_message_id(tmp_path: Path, sink: Sink) -> None:
    obs = Observer()
    cfg = config(tmp_path, {"national": {"url": sink.url}})
    async with Hub(cfg, extra_plugins=[obs]) as hub:
        res = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(50)])
        assert len(res.ids) == 50 and not res.errors
        await wait_until(lambda: len(sink.applied) == 50, what="50 deliveries")
        assert set(sink.applied) == set(res.ids)  # Idempotency-Key == message id
        assert sink.applied[res.ids[0]]["inspection_no"] == sample_inspection(0)["inspection_no"]
        await wait_until(lambda: len(obs.delivered) == 50, what="delivered hooks")
        tr = await hub.store.trace(res.ids[0])
        assert tr is not None and tr.status() == "delivered"
        assert tr.events[-1].step == "delivered" and tr.events[-1].status == 200
    assert sorted(obs.accepted) == sorted(res.ids)


async def test_retry_then_success(tmp_path: Path) -> None:
    sink = Sink("flaky", SinkBehaviour(fail_rate=0.5, lost_reply_rate=0.2, seed=7))
    await sink.start()
    obs = Observer()
    try:
        cfg = config(
            tmp_path,
            {"flaky": {"url": sink.url}},
            retry={"max_attempts": 50, "base_delay": 0.005, "max_delay": 0.02},
        )
        async with Hub(cfg, extra_plugins=[obs]) as hub:
            res = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(100)])
            await wait_until(
                lambda: len(obs.delivered) == 100, what="every record delivered despite 503s"
            )
            assert set(sink.applied) == set(res.ids)
            assert obs.retried, "the flaky sink must have caused retries"
            # lost replies make the hub re-send something applied: the sink de-duplicates
            assert sink.redeliveries > 0
            stats = {(s.route, s.target): s for s in await hub.store.route_stats()}
            st = stats[("inspection-out", "flaky")]
            assert st.delivered == 100 and st.retries == len(obs.retried)
    finally:
        await sink.stop()


async def test_permanent_error_dead_letter_then_replay(tmp_path: Path) -> None:
    blocked = {"330106"}
    sink = Sink(
        "strict",
        SinkBehaviour(
            reject=lambda r: (
                f"unknown region {r['region_code']}" if r["region_code"] in blocked else None
            )
        ),
    )
    await sink.start()
    obs = Observer()
    try:
        cfg = config(tmp_path, {"strict": {"url": sink.url}})
        async with Hub(cfg, extra_plugins=[obs]) as hub:
            recs = [sample_inspection(i, region="330106" if i < 3 else "330102") for i in range(10)]
            res = await hub.ingest_records("dept-a", recs)
            await wait_until(
                lambda: len(sink.applied) == 7 and len(obs.dead) == 3,
                what="7 delivered and 3 dead-lettered",
            )
            dead = await hub.store.dead_letters()
            assert {d.message_id for d in dead} == set(res.ids[:3])
            assert all(d.last_status == 422 and "unknown region 330106" in d.reason for d in dead)
            assert all(d.attempts == 1 for d in dead)  # permanent: no retry
            blocked.clear()  # the target's code table was fixed
            assert await hub.store.replay([d.delivery_id for d in dead], hub.clock()) == 3
            hub.dispatcher.wake("strict")
            await wait_until(lambda: len(sink.applied) == 10, what="replayed deliveries")
            await wait_until(lambda: _settled(hub, 10), what="replays settled")
            tr = await hub.store.trace(res.ids[0])
            assert tr is not None
            assert [e.step for e in tr.events] == ["dead-lettered", "replayed", "delivered"]
            assert await hub.store.dead_letters() == []
    finally:
        await sink.stop()


async def test_gives_up_after_max_attempts(tmp_path: Path) -> None:
    sink = Sink("down", SinkBehaviour(fail_rate=1.0))
    await sink.start()
    try:
        cfg = config(
            tmp_path,
            {"down": {"url": sink.url}},
            retry={"max_attempts": 3, "base_delay": 0.001, "max_delay": 0.002},
        )
        async with Hub(cfg) as hub:
            res = await hub.ingest_records("dept-a", [sample_inspection(1)])
            await wait_until(lambda: sink.requests >= 3, what="3 attempts")
            await wait_until(lambda: _dead(hub), what="dead letter")
            [dl] = await hub.store.dead_letters()
            assert dl.message_id == res.ids[0] and dl.attempts == 3
            assert "gave up after 3 attempts" in dl.reason and "503" in dl.reason
    finally:
        await sink.stop()


async def _settled(hub: Hub, n: int) -> bool:
    counts = await hub.store.counts()
    return counts["delivered"] + counts["dead"] == n


async def _dead(hub: Hub) -> bool:
    return bool(await hub.store.dead_letters())


async def test_circuit_opens_while_down_and_recovers(tmp_path: Path) -> None:
    sink = Sink("outage")
    await sink.start()
    try:
        cfg = config(
            tmp_path,
            {"outage": {"url": sink.url, "timeout": 1}},
            retry={"max_attempts": 1000, "base_delay": 0.01, "max_delay": 0.05},
            circuit={"failure_threshold": 3, "reset_timeout": 0.3, "max_reset_timeout": 0.6},
        )
        async with Hub(cfg) as hub:
            await sink.go_down()
            await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(20)])
            worker = hub.dispatcher.workers["outage"]
            await wait_until(
                lambda: worker.breaker.state is not BreakerState.CLOSED, what="circuit open"
            )
            opened = worker.breaker.opened_count
            counts = await hub.store.counts()
            # while open the hub probes, it does not hammer: attempts stay far below
            # what 20 records x retries every ~30 ms would have made
            assert counts["pending"] + counts["inflight"] == 20
            await sink.come_up()
            await wait_until(lambda: len(sink.applied) == 20, what="delivery after recovery")
            await wait_until(
                lambda: worker.breaker.state is BreakerState.CLOSED, what="circuit closed again"
            )
            assert opened >= 1
    finally:
        await sink.stop()


async def test_ordered_delivery_per_partition(tmp_path: Path) -> None:
    sink = Sink("ordered", SinkBehaviour(fail_rate=0.3, seed=3))
    await sink.start()
    try:
        cfg = config(
            tmp_path,
            {"ordered": {"url": sink.url, "concurrency": 16}},
            dataset="catalog_item",
            ordered=True,
            retry={"max_attempts": 100, "base_delay": 0.002, "max_delay": 0.01},
        )
        from contracts.samples import sample_catalog_item

        async with Hub(cfg) as hub:
            records = [
                sample_catalog_item(item, version=v) for v in range(1, 6) for item in range(8)
            ]
            res = await hub.ingest_records("dept-a", records, dataset="catalog_item")
            assert len(res.ids) == 40
            await wait_until(lambda: len(sink.applied) == 40, what="40 ordered deliveries")
        per_item: dict[str, list[int]] = {}
        for key in sink.order:
            rec = sink.applied[key]
            per_item.setdefault(rec["code"], []).append(rec["version"])
        assert len(per_item) == 8
        assert all(v == [1, 2, 3, 4, 5] for v in per_item.values()), per_item
    finally:
        await sink.stop()


async def test_batch_transport_with_per_record_results(tmp_path: Path) -> None:
    sink = Sink(
        "batcher",
        SinkBehaviour(reject=lambda r: "bad" if r["inspection_no"].endswith("7") else None),
    )
    await sink.start()
    try:
        cfg = config(tmp_path, {"batcher": {"url": sink.batch_url, "batch_size": 100}})
        async with Hub(cfg) as hub:
            recs = [sample_inspection(i) for i in range(300)]
            res = await hub.ingest_records("dept-a", recs)
            rejected = {
                mid
                for mid, r in zip(res.ids, recs, strict=True)
                if r["inspection_no"].endswith("7")
            }
            assert rejected
            await wait_until(
                lambda: len(sink.applied) == 300 - len(rejected), what="batch deliveries"
            )
            await wait_until(lambda: _settled(hub, 300), what="every delivery settled")
            counts = await hub.store.counts()
            assert counts["delivered"] == 300 - len(rejected)
            assert counts["dead"] == len(rejected)
            assert sink.requests < 20  # batched, not one request per record
    finally:
        await sink.stop()


async def test_rate_limited_target_respects_retry_after(tmp_path: Path) -> None:
    sink = Sink("limited", SinkBehaviour(rate_limit=5))
    await sink.start()
    try:
        cfg = config(
            tmp_path,
            {"limited": {"url": sink.url, "concurrency": 4}},
            retry={"max_attempts": 100, "base_delay": 0.001, "max_delay": 2},
        )
        async with Hub(cfg) as hub:
            await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(12)])
            await wait_until(lambda: len(sink.applied) == 12, timeout=30, what="all delivered")
            worker = hub.dispatcher.workers["limited"]
            # 429s say the target is alive: they never open the circuit
            assert worker.breaker.opened_count == 0
    finally:
        await sink.stop()


async def test_route_filter(tmp_path: Path, sink: Sink) -> None:
    cfg = config(
        tmp_path,
        {"national": {"url": sink.url}},
        route_filter=[{"field": "inspection_result", "in": ["2", "3"]}],
    )
    async with Hub(cfg) as hub:
        recs = [sample_inspection(i) for i in range(40)]
        res = await hub.ingest_records("dept-a", recs)
        want = {
            mid
            for mid, r in zip(res.ids, recs, strict=True)
            if r["inspection_result"] in ("2", "3")
        }
        assert 0 < len(want) < 40
        await wait_until(lambda: len(sink.applied) == len(want), what="filtered deliveries")
        await wait_until(lambda: _settled(hub, len(want)), what="settled")
        counts = await hub.store.counts()
        assert counts["messages"] == 40 and counts["delivered"] == len(want)
        assert set(sink.applied) == want


async def test_traceparent_propagates(tmp_path: Path, sink: Sink) -> None:
    cfg = config(tmp_path, {"national": {"url": sink.url}})
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with Hub(cfg) as hub:
        res = await hub.ingest_records("dept-a", [sample_inspection(1)], traceparent=tp)
        await wait_until(lambda: len(sink.applied) == 1, what="delivery")
        await wait_until(lambda: _settled(hub, 1), what="settled")
        got = sink.traceparents[res.ids[0]]
        assert got.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"  # same trace
        assert got.split("-")[2] != "00f067aa0ba902b7"  # our own span
        tr = await hub.store.trace(res.ids[0])
        assert tr is not None and tr.traceparent == tp
        assert tr.deliveries[0].state is DeliveryState.DELIVERED


async def test_second_node_on_same_sqlite_file_is_refused(tmp_path: Path, sink: Sink) -> None:
    from hub.errors import StateError

    cfg = config(tmp_path, {"national": {"url": sink.url}})
    async with Hub(cfg):
        with pytest.raises(StateError, match="another jghub node is running") as exc:
            await Hub(cfg).start()
        assert exc.value.code == "E_STATE" and exc.value.field == "store.path"
    async with Hub(cfg) as again:  # released on stop
        assert again.started


async def test_ingest_process_rings_the_node_doorbell(tmp_path: Path, sink: Sink) -> None:
    """An ingest-role hub commits and rings; the node delivers at once, although its idle poll
    is ten minutes. (In production the two live in separate processes: ``serve --workers``.)"""
    cfg = config(
        tmp_path,
        {"national": {"url": sink.url}},
        dispatcher={"lease_seconds": 30, "idle_poll_seconds": 600},
    )
    async with Hub(cfg) as node:
        await asyncio.sleep(0.2)  # the node's worker is now asleep for up to 600 s
        ingest = Hub(cfg, role="ingest")
        await ingest.start()
        try:
            res = await ingest.ingest_records("dept-a", [sample_inspection(1)])
            assert not ingest.dispatcher.running or not ingest.dispatcher.workers
            await wait_until(
                lambda: set(sink.applied) == set(res.ids),
                timeout=10,
                what="delivery woken by the doorbell",
            )
            await wait_until(lambda: _settled(node, 1), what="settled by the node")
        finally:
            await ingest.stop()


async def test_doorbell_ring_without_listener_is_harmless() -> None:
    from hub.doorbell import ring

    assert ring("\0jghub-doorbell-nobody-listens", ["t"]) is False
    assert ring("\0jghub-doorbell-nobody-listens", []) is True


class _ExplodingTransport:
    """A third-party transport with a bug: it raises instead of returning results."""

    max_batch = 1
    concurrency = 2

    def __init__(self) -> None:
        self.calls = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, items):  # type: ignore[no-untyped-def]
        self.calls += 1
        raise RuntimeError("bug in a plugin transport")


def _plugin_target(
    tmp_path: Path, name: str, transport: Any, **kw: Any
) -> tuple[HubConfig, object]:
    """A hub config whose target ``name`` uses ``transport`` (a plugin transport object, the
    same for every factory call), and the plugin that registers it."""
    from hub.config import load_config
    from hub.specs import TransportSpec

    class Plugin:
        @hookimpl
        def hub_register_transports(self):  # type: ignore[no-untyped-def]
            return [TransportSpec(f"plugin-{name}", lambda target, options: transport)]

    config(tmp_path, {name: {}}, **kw)
    doc = yaml.safe_load((tmp_path / "systems" / f"{name}.yaml").read_text())
    doc["outbound"] = {"transport": f"plugin-{name}"}
    (tmp_path / "systems" / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    return load_config(tmp_path / "hub.yaml"), Plugin()


async def test_a_transport_that_raises_is_retried_then_dead_lettered(tmp_path: Path) -> None:
    exploding = _ExplodingTransport()
    cfg, plugin = _plugin_target(
        tmp_path,
        "boom",
        exploding,
        retry={"max_attempts": 3, "base_delay": 0.001, "max_delay": 0.002},
    )
    async with Hub(cfg, extra_plugins=[plugin]) as hub:
        res = await hub.ingest_records("dept-a", [sample_inspection(1)])
        await wait_until(lambda: _dead(hub), what="dead letter after 3 attempts")
        [dl] = await hub.store.dead_letters()
        assert dl.message_id == res.ids[0] and dl.attempts == 3
        assert "gave up after 3 attempts" in dl.reason and "bug in a plugin transport" in dl.reason
        assert exploding.calls == 3


async def test_unreadable_batch_results_are_not_receipts(tmp_path: Path) -> None:
    """A batch target whose per-record results are not what the protocol says: a non-object
    entry is no receipt (retried), a bad status counts as a refusal (dead letter)."""
    from aiohttp import web

    seen: list[int] = []

    async def batch(request: web.Request) -> web.Response:
        doc = await request.json()
        seen.append(len(doc["records"]))
        if len(seen) == 1:
            return web.json_response({"results": [None, {"ok": False, "status": "x"}]})
        return web.json_response({"results": [{"ok": True}] * len(doc["records"])})

    app = web.Application()
    app.router.add_post("/batch", batch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    from hub.peers import bound_port

    url = f"http://127.0.0.1:{bound_port(site)}/batch"
    try:
        cfg = config(tmp_path, {"odd": {"url": url, "batch_size": 2, "concurrency": 1}})
        async with Hub(cfg) as hub:
            res = await hub.ingest_records("dept-a", [sample_inspection(1), sample_inspection(2)])
            await wait_until(lambda: _settled(hub, 2), what="both settled")
            [dl] = await hub.store.dead_letters()
            assert dl.message_id == res.ids[1] and dl.last_status == 422
            tr = await hub.store.trace(res.ids[0])
            assert tr is not None
            assert [e.step for e in tr.events] == ["retry", "delivered"]
            assert "unreadable result None" in tr.events[0].detail
    finally:
        await runner.cleanup()


async def test_claims_topped_up_until_the_queue_is_empty_then_new_work_is_delivered(
    tmp_path: Path, sink: Sink
) -> None:
    """One slot (a buffer of five, topped up at one): the last top-ups find nothing while the
    buffer still holds records; once it has drained, new work must still be claimed at once
    (the idle poll is ten minutes) and the worker loop must not spin."""
    cfg = config(
        tmp_path,
        {"national": {"url": sink.url, "concurrency": 1}},
        dispatcher={"idle_poll_seconds": 600},
    )
    async with Hub(cfg) as hub:
        first = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(12)])
        await wait_until(lambda: _settled(hub, 12), what="the first records delivered")
        await asyncio.sleep(0.05)  # the drained worker goes to sleep
        second = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(20, 27)])
        await wait_until(lambda: _settled(hub, 19), timeout=10, what="new work delivered")
        assert set(sink.applied) == set(first.ids) | set(second.ids)


class _TaskRecordingTransport:
    """A plugin transport that answers at once and records which task sent each record."""

    max_batch = 1
    concurrency = 2

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []  # (message id, the task: kept alive)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, items):  # type: ignore[no-untyped-def]
        from hub.specs import SendResult

        await asyncio.sleep(0)  # an answer comes in a later loop iteration, as from a socket
        self.sent += [(i.message_id, asyncio.current_task()) for i in items]
        return [SendResult(True, 200) for _ in items]


async def test_answered_units_are_followed_by_the_next_in_the_same_task(tmp_path: Path) -> None:
    """When a target answers, the next buffered unit is sent by the same task at once (no new
    task, no loop iteration lost); every record still arrives once, is settled, and observers
    hear of each once the settle is committed."""
    recording = _TaskRecordingTransport()
    cfg, plugin = _plugin_target(tmp_path, "rec", recording)
    units = UnitObserver()
    async with Hub(cfg, extra_plugins=[plugin, units]) as hub:
        res = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(60)])
        await wait_until(lambda: len(units.of("ok")) == 60, what="60 settled and observed")
        assert sorted(m for m, _ in recording.sent) == sorted(res.ids)  # each once
        counts = await hub.store.counts()
        assert counts["delivered"] == 60 and counts["pending"] == counts["inflight"] == 0
        tasks = {t for _, t in recording.sent}
        # One task per unit would be 60. A task ends only when no unit may start at once
        # (the buffer is being topped up, or the unsettled budget waits for settle writes).
        assert len(tasks) <= 45, len(tasks)
