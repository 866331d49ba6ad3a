"""The ``amqp`` transport and source against the real RabbitMQ on 127.0.0.1:5672, through the
real hub (dispatcher, store, source runner). Every test uses its own exchanges and queues and
deletes them afterwards."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from contracts.samples import sample_inspection
from hub.errors import ConfigError
from hub.plugins import hookimpl
from hub.runtime import Hub
from hub.specs import ComparatorSpec, OutboundItem
from hub.transports.amqp import AmqpOptions, AmqpSource, AmqpTransport
from tests.helpers import config, wait_until
from tests.transports.rabbit import AMQP_URL, Broker, TcpProxy, broker

FAST_RETRY = {"max_attempts": 1000, "base_delay": 0.01, "max_delay": 0.05}


@pytest.fixture
async def mq() -> AsyncIterator[Broker]:
    async with broker() as b:
        yield b


def _target(**options: Any) -> dict[str, dict[str, Any]]:
    return {"mq": {"transport": "amqp", "url": AMQP_URL, **options}}


def _source(queue: str, **options: Any) -> dict[str, Any]:
    return {"inbound": {"source": {"kind": "amqp", "url": AMQP_URL, "queue": queue, **options}}}


async def _delivered(hub: Hub, n: int) -> bool:
    return (await hub.store.counts())["delivered"] == n


async def _dead(hub: Hub, n: int = 1) -> bool:
    return len(await hub.store.dead_letters()) == n


async def _stored(hub: Hub, n: int) -> bool:
    return (await hub.store.counts())["messages"] == n


def _source_of(hub: Hub) -> AmqpSource:
    source = hub._sources[0].source
    assert isinstance(source, AmqpSource)
    return source


# --------------------------------------------------------------------------- outbound


async def test_publish_is_confirmed_with_our_message_id_and_properties(
    tmp_path: Path, mq: Broker
) -> None:
    exchange = await mq.exchange("out")
    queue = await mq.queue("national", bind=(exchange, "jg.inspection"))
    cfg = config(tmp_path, _target(exchange=exchange, routing_key="jg.{dataset}", batch_size=8))
    async with Hub(cfg) as hub:
        res = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(30)])
        await wait_until(lambda: _delivered(hub, 30), what="30 confirmed")
        tr = await hub.store.trace(res.ids[0])
        assert tr is not None and tr.status() == "delivered"
        assert tr.events[-1].status == 200 and "confirmed by the broker" in (
            tr.events[-1].detail or ""
        )
    got = await mq.drain(queue)
    assert sorted(m.message_id or "" for m in got) == sorted(res.ids)
    first = next(m for m in got if m.message_id == res.ids[0])
    assert first.delivery_mode == 2 and first.content_type == "application/json"
    assert first.type == "inspection" and first.app_id == "jghub"
    headers = first.headers or {}
    assert headers["dataset"] == "inspection" and str(headers["traceparent"]).startswith("00-")
    assert orjson.loads(first.body)["inspection_no"] == sample_inspection(0)["inspection_no"]


async def test_unroutable_publish_is_dead_lettered_at_once(tmp_path: Path, mq: Broker) -> None:
    exchange = await mq.exchange("nowhere")  # no queue bound: mandatory publish is returned
    cfg = config(tmp_path, _target(exchange=exchange), retry=FAST_RETRY)
    async with Hub(cfg) as hub:
        res = await hub.ingest_records("dept-a", [sample_inspection(1)])
        await wait_until(lambda: _dead(hub), what="dead letter")
        [dl] = await hub.store.dead_letters()
    assert dl.message_id == res.ids[0] and dl.attempts == 1  # permanent: no retry
    assert dl.last_status == 312 and "unroutable" in dl.reason and "NO_ROUTE" in dl.reason


async def test_missing_exchange_is_permanent_and_the_channel_recovers(mq: Broker) -> None:
    queue = await mq.queue("direct")
    t = AmqpTransport("mq", AmqpOptions(url=AMQP_URL, exchange=mq.name("missing")))  # type: ignore[arg-type]
    await t.start()
    try:
        [r] = await t.send([OutboundItem(1, "m-1", "inspection", {}, 1)])
        assert not r.ok and r.permanent and "NOT_FOUND" in r.detail
    finally:
        await t.close()
    # the default exchange routes by queue name; the same transport type delivers there
    t = AmqpTransport("mq", AmqpOptions(url=AMQP_URL, routing_key=queue))  # type: ignore[arg-type]
    try:
        [r] = await t.send([OutboundItem(2, "m-2", "inspection", {"a": 1}, 1)])
        assert r.ok and r.status == 200
    finally:
        await t.close()
    [m] = await mq.drain(queue)
    assert m.message_id == "m-2"


async def test_a_nack_is_transient_and_retried(tmp_path: Path, mq: Broker) -> None:
    """A full queue with ``x-overflow: reject-publish`` makes the broker nack; the hub retries
    until the consumer has made room."""
    exchange = await mq.exchange("small")
    queue = await mq.queue(
        "small",
        bind=(exchange, "#"),
        arguments={"x-max-length": 2, "x-overflow": "reject-publish"},
    )
    cfg = config(tmp_path, _target(exchange=exchange), retry=FAST_RETRY)
    async with Hub(cfg) as hub:
        res = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(6)])

        async def retried() -> bool:
            return any(s.retries >= 1 for s in await hub.store.route_stats())

        await wait_until(retried, what="a nack, retried")
        taken: list[str] = []

        async def drained_all() -> bool:
            taken.extend(m.message_id or "" for m in await mq.drain(queue))
            return await _delivered(hub, 6)

        await wait_until(drained_all, what="every record published once room was made")
        taken.extend(m.message_id or "" for m in await mq.drain(queue))
        assert await hub.store.dead_letters() == []
        [dl_stats] = await hub.store.route_stats()
        assert dl_stats.retries >= 1
    assert set(taken) == set(res.ids)


async def test_connection_loss_is_transient_and_the_transport_reconnects(
    tmp_path: Path, mq: Broker
) -> None:
    exchange = await mq.exchange("via-proxy")
    queue = await mq.queue("via-proxy", bind=(exchange, "#"))
    proxy = TcpProxy()
    await proxy.start()
    try:
        cfg = config(
            tmp_path, {"mq": {"transport": "amqp", "url": proxy.url, "exchange": exchange}}
        )
        async with Hub(cfg) as hub:
            first = await hub.ingest_records("dept-a", [sample_inspection(0)])
            await wait_until(lambda: _delivered(hub, 1), what="first publish")
            await proxy.cut()  # what the hub sees of a broker restart
            res = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(1, 6)])

            async def retried() -> bool:
                return any(s.retries >= 2 for s in await hub.store.route_stats())

            await wait_until(retried, what="publishes failing while the broker is away")
            await proxy.restore()
            await wait_until(lambda: _delivered(hub, 6), what="published after reconnecting")
            assert await hub.store.dead_letters() == []
        assert proxy.connections >= 2  # a new connection after the cut
    finally:
        await proxy.stop()
    got = {m.message_id for m in await mq.drain(queue)}
    assert got == {*first.ids, *res.ids}


def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be an amqp"):
        Hub(config(tmp_path, {"mq": {"transport": "amqp", "url": "http://x"}}))
    with pytest.raises(ConfigError, match="key_header or key_field, not both"):
        Hub(config(tmp_path, {}, source_extra=_source("q", key_header="k", key_field="f")))
    with pytest.raises(ConfigError, match="cannot exceed prefetch"):
        Hub(config(tmp_path, {}, source_extra=_source("q", prefetch=10, batch_max=20)))
    assert "guest" not in repr(AmqpOptions(url=AMQP_URL))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- inbound


async def test_consume_batches_acks_after_commit_and_dedupes(tmp_path: Path, mq: Broker) -> None:
    queue = await mq.queue("in")
    ids = [f"dept-a-{uuid.uuid4().hex[:8]}-{i}" for i in range(60)]
    for i, mid in enumerate(ids):
        await mq.publish(queue, orjson.dumps(sample_inspection(i)), message_id=mid)
    for i in range(5):  # the department's publisher retried: same message ids again
        await mq.publish(queue, orjson.dumps(sample_inspection(i)), message_id=ids[i])
    cfg = config(tmp_path, {}, source_extra=_source(queue, batch_max=20, linger=0.02))
    async with Hub(cfg) as hub:
        source = _source_of(hub)
        await wait_until(
            lambda: source.stats["ingested"] + source.stats["duplicates"] == 65, what="all taken"
        )
        assert await _stored(hub, 60)
        assert source.stats == {
            "ingested": 60,
            "duplicates": 5,
            "quarantined": 0,
            "dead_lettered": 0,
            "redelivered": 0,
        }
    # every delivery acked: nothing came back to the queue when the hub closed its connection
    assert await mq.ready(queue) == 0


class FlakyComparator:
    """A governance comparator (比对) whose reference registry fails the first check."""

    def __init__(self) -> None:
        self.calls = 0

    async def check(self, dataset: str, record: dict[str, Any]) -> str | None:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("the registry is down")
        return None

    @hookimpl
    def hub_register_comparators(self) -> list[ComparatorSpec]:
        return [ComparatorSpec("registry", self.check)]


async def test_a_failed_ingest_acks_nothing_and_the_redelivery_is_stored_once(
    tmp_path: Path, mq: Broker
) -> None:
    queue = await mq.queue("in-flaky")
    for i in range(10):
        await mq.publish(queue, orjson.dumps(sample_inspection(i)), message_id=f"m-{i}")
    gov = {"governance": {"inspection": {"compare": [{"rule": "registry"}]}}}
    cfg = config(tmp_path, {}, source_extra={**_source(queue, linger=0.2), **gov})
    flaky = FlakyComparator()
    hub = Hub(cfg, extra_plugins=[flaky])
    hub._sources[0].min_backoff = 0.01
    async with hub:
        source = _source_of(hub)
        await wait_until(lambda: source.stats["ingested"] == 10, what="10 taken after the failure")
        assert await _stored(hub, 10)
        runner = hub._sources[0]
        assert "registry is down" in str(runner.last_error)
        # the failed batch was not acked, so the broker delivered it again
        assert source.stats["redelivered"] >= 1 and source.stats["ingested"] == 10
        keys = {q for q in (await _idem_keys(hub))}
        assert keys == {f"m-{i}" for i in range(10)}
    assert await mq.ready(queue) == 0


async def _idem_keys(hub: Hub) -> list[str]:
    out = []
    for i in range(10):
        mid = await hub.store.lookup_idempotency("dept-a", f"m-{i}")
        if mid is not None:
            out.append(f"m-{i}")
    return out


async def test_poison_messages_are_quarantined_or_dead_lettered_never_requeued(
    tmp_path: Path, mq: Broker
) -> None:
    queue = await mq.queue("in-poison")
    dlx = await mq.exchange("dlx", "fanout")
    parked = await mq.queue("parked", bind=(dlx, ""))
    good = sample_inspection(1)
    bad_contract = {**sample_inspection(2), "region_code": "99"}
    await mq.publish(queue, orjson.dumps(good), message_id="good-1")
    await mq.publish(queue, orjson.dumps(bad_contract), message_id="bad-contract")
    await mq.publish(queue, b"<xml>not json</xml>", message_id="not-json")
    await mq.publish(queue, b"\x1f\x8b broken", message_id="bad-gzip", content_encoding="gzip")
    await mq.publish(
        queue,
        gzip.compress(orjson.dumps(sample_inspection(3))),
        message_id="gz",
        content_encoding="gzip",
    )
    cfg = config(tmp_path, {}, source_extra=_source(queue, dead_letter_exchange=dlx))
    async with Hub(cfg) as hub:
        source = _source_of(hub)
        await wait_until(lambda: source.stats["dead_lettered"] == 2, what="2 dead-lettered")
        await wait_until(lambda: _stored(hub, 2), what="the good ones stored")
        await wait_until(lambda: source.stats["quarantined"] == 1, what="1 quarantined")
        [q] = await hub.store.quarantined("dept-a")
        assert q.key == "bad-contract" and q.code == "E_SCHEMA" and q.field == "region_code"
        assert q.origin.startswith(f"amqp queue {queue}")
        assert await hub.store.lookup_idempotency("dept-a", "gz") is not None
    assert await mq.ready(queue) == 0  # everything acked: no poison loop
    dead = {m.message_id: m for m in await mq.drain(parked)}
    assert set(dead) == {"not-json", "bad-gzip"}
    reason = str((dead["not-json"].headers or {})["x-jghub-reason"])
    assert "not JSON" in reason and dead["not-json"].body == b"<xml>not json</xml>"
    assert "does not decode" in str((dead["bad-gzip"].headers or {})["x-jghub-reason"])


async def test_without_a_dead_letter_exchange_the_queue_policy_decides(
    tmp_path: Path, mq: Broker
) -> None:
    """No ``dead_letter_exchange`` option: the message is rejected without requeue, which the
    broker routes to the queue's own ``x-dead-letter-exchange``."""
    dlx = await mq.exchange("queue-dlx", "fanout")
    parked = await mq.queue("queue-parked", bind=(dlx, ""))
    queue = await mq.queue("in-policy", arguments={"x-dead-letter-exchange": dlx})
    await mq.publish(queue, b"garbage", message_id="garbage-1")
    await mq.publish(
        queue, orjson.dumps(sample_inspection(1)), message_id="k-1", headers={"ds": "penalty"}
    )
    cfg = config(tmp_path, {}, source_extra=_source(queue, dataset_header="ds"))
    async with Hub(cfg) as hub:
        source = _source_of(hub)
        await wait_until(lambda: source.stats["dead_lettered"] == 2, what="rejected")
        assert (await hub.store.counts())["messages"] == 0
    assert await mq.ready(queue) == 0
    dead = {m.message_id for m in await mq.drain(parked)}
    assert dead == {"garbage-1", "k-1"}  # not JSON; a dataset the system may not send


async def test_key_from_a_header_or_a_body_field(tmp_path: Path, mq: Broker) -> None:
    queue = await mq.queue("in-keys")
    rec = sample_inspection(4)
    await mq.publish(queue, orjson.dumps(rec), headers={"x-row": "row-4"})
    await mq.publish(queue, orjson.dumps(rec), headers={"x-row": "row-4"})
    cfg = config(tmp_path, {}, source_extra=_source(queue, key_header="x-row"))
    async with Hub(cfg) as hub:
        source = _source_of(hub)
        await wait_until(lambda: source.stats["duplicates"] == 1, what="the second a duplicate")
        assert await hub.store.lookup_idempotency("dept-a", "row-4") is not None
    queue2 = await mq.queue("in-field")
    await mq.publish(queue2, orjson.dumps(rec))
    cfg = config(tmp_path / "2", {}, source_extra=_source(queue2, key_field="inspection_no"))
    async with Hub(cfg) as hub:
        await wait_until(lambda: _stored(hub, 1), what="stored")
        assert await hub.store.lookup_idempotency("dept-a", str(rec["inspection_no"]))


async def test_the_source_reconnects_after_losing_the_broker(tmp_path: Path, mq: Broker) -> None:
    queue = await mq.queue("in-proxy")
    proxy = TcpProxy()
    await proxy.start()
    try:
        for i in range(10):
            await mq.publish(queue, orjson.dumps(sample_inspection(i)), message_id=f"p-{i}")
        src = {"inbound": {"source": {"kind": "amqp", "url": proxy.url, "queue": queue}}}
        cfg = config(tmp_path, {}, source_extra=src)
        async with Hub(cfg) as hub:
            await wait_until(lambda: _stored(hub, 10), what="10 stored")
            await proxy.cut()
            for i in range(10, 20):
                await mq.publish(queue, orjson.dumps(sample_inspection(i)), message_id=f"p-{i}")
            await proxy.restore()
            # the store is the judge: a unique (system, key) index, so 20 = each once
            await wait_until(lambda: _stored(hub, 20), what="20 stored after reconnecting")

        assert proxy.connections >= 2
    finally:
        await proxy.stop()
    assert await mq.ready(queue) == 0
