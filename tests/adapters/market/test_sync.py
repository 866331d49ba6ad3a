"""Incremental sync of the platform's feeds by the ``market_feed`` source, against the
simulator: the cursor is durable and resumes after a restart, nothing is taken twice, and
outages, throttling, malformed or badly signed pages lose nothing."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import pytest

from adapters.market.errors import FeedError
from adapters.market.source import MarketFeedOptions, MarketFeedSource
from hub.config import load_config
from hub.errors import SourceError
from hub.runtime import Hub
from hub.sources import HubSourceContext
from security.keystore import Keystore
from tests.adapters.market.kit import Env, entity, registered_names
from tests.helpers import wait_until

SCOPE = "source:market"  # the market system's source state (cursors)


def feed_requests(env: Env, topic: str) -> list[int]:
    """The cursors the hub asked the platform's ``topic`` feed for, in order."""
    out = []
    for _, method, path_qs, _status in env.sim.requests:
        parts = urlsplit(path_qs)
        if method == "GET" and parts.path.endswith(f"/feed/{topic}"):
            out.append(int(parse_qs(parts.query)["cursor"][0]))
    return out


async def entity_messages(hub: Hub, uscc: str) -> int:
    return sum(1 for x in await hub.store.subject_messages(uscc) if x.dataset == "market_entity")


async def test_sync_resumes_from_its_durable_cursor_after_a_restart(env: Env) -> None:
    first = [entity(i) for i in range(5)]
    for i, u in enumerate(first):
        env.sim.register_entity(u, f"样例第{i}商贸有限公司")
    async with Hub(load_config(env.path)) as hub:
        await wait_until(
            lambda: _all_named(hub, first), what="the first five entities in the registry"
        )
        assert await hub.store.get_state(SCOPE, "cursor:ztxx") == "5"
    # while the hub is down: three new entities and a rename of the first
    later = [entity(i) for i in range(5, 8)]
    for i, u in enumerate(later):
        env.sim.register_entity(u, f"后来第{i}商贸有限公司")
    env.sim.change_entity(first[0], QYMC="样例第0商贸集团有限公司", FDDBR="李娜")
    asked_before = len(feed_requests(env, "ztxx"))
    async with Hub(load_config(env.path)) as hub:
        await wait_until(lambda: _all_named(hub, later), what="the later entities")
        await wait_until(
            lambda: _name_is(hub, first[0], "样例第0商贸集团有限公司"), what="the rename"
        )
        assert await hub.store.get_state(SCOPE, "cursor:ztxx") == "9"
        # nothing twice: one message per change, the renamed entity has two versions
        for u in first[1:] + later:
            assert await entity_messages(hub, u) == 1
        assert await entity_messages(hub, first[0]) == 2
        counts = await hub.store.counts()
        assert counts["messages"] == 9
    # the second run started at the saved cursor, not at 0
    assert feed_requests(env, "ztxx")[asked_before] == 5


async def _all_named(hub: Hub, usccs: list[str]) -> bool:
    return all(v is not None for v in (await registered_names(hub, usccs)).values())


async def _name_is(hub: Hub, uscc: str, name: str) -> bool:
    return (await registered_names(hub, [uscc]))[uscc] == name


async def test_a_page_read_again_after_a_crash_is_not_routed_twice(env: Env) -> None:
    """A crash after the commit and before the cursor was saved reads the page again: the
    records' keys (``jyyc:<BGXH>``) make them duplicates, so the departments get nothing
    twice."""
    env.sim.register_entity(entity(0), "甲商贸有限公司")
    env.sim.register_entity(entity(1), "乙商贸有限公司")
    env.sim.list_abnormal("YCML0001", entity(0), decided="20260701")
    env.sim.list_abnormal("YCML0002", entity(1), decided="20260702")
    sinks = env.sinks
    async with Hub(load_config(env.path)) as hub:
        await wait_until(
            lambda: all(len(s.applied) == 2 for s in sinks.values()), what="both listings"
        )
        assert await hub.store.get_state(SCOPE, "cursor:jyyc") == "2"
        await hub.store.put_state(SCOPE, "cursor:jyyc", "0")  # as if the save never happened
    requests = {n: s.requests for n, s in sinks.items()}
    async with Hub(load_config(env.path)) as hub:
        await wait_until(
            lambda: _cursor_is(hub, "jyyc", "2"), what="the cursor back at 2 after the re-read"
        )
        await asyncio.sleep(0.3)  # the dispatcher would have sent any new delivery by now
        assert (await hub.store.counts())["messages"] == 4  # 2 entities + 2 listings
    assert {n: s.requests for n, s in sinks.items()} == requests
    assert all(len(s.applied) == 2 and s.redeliveries == 0 for s in sinks.values())
    assert feed_requests(env, "jyyc").count(0) >= 2


async def _cursor_is(hub: Hub, topic: str, want: str) -> bool:
    return await hub.store.get_state(SCOPE, f"cursor:{topic}") == want


async def test_outage_throttling_and_maintenance_lose_nothing(env: Env) -> None:
    usccs = [entity(i) for i in range(4)]
    for i, u in enumerate(usccs):
        env.sim.register_entity(u, f"停机第{i}商贸有限公司")
    await env.sim.go_down()  # the platform is unreachable when the hub starts
    async with Hub(load_config(env.path)) as hub:
        source = hub_source(hub)
        await wait_until(lambda: source.last_error is not None, what="a failed poll")
        assert "ClientConnectorError" in (source.last_error or "")
        env.sim.behaviour.throttle = 1
        env.sim.behaviour.fail_next = 2
        await env.sim.come_up()
        await wait_until(lambda: _all_named(hub, usccs), what="the entities after the outage")
        assert (await hub.store.counts())["messages"] == 4
    statuses = [s for *_, s in env.sim.requests]
    assert 429 in statuses and statuses.count(503) == 2


def hub_source(hub: Hub) -> MarketFeedSource:
    found = [r.source for r in hub._sources if isinstance(r.source, MarketFeedSource)]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("malformed_next", "not JSON"),
        ("wrong_shape_next", "no record list at data.records"),
        ("bad_signature_next", "E_SIGNATURE"),
    ],
)
async def test_an_unusable_page_is_not_taken_and_read_again(
    env: Env, fault: str, said: str
) -> None:
    usccs = [entity(i) for i in range(3)]
    for i, u in enumerate(usccs):
        env.sim.register_entity(u, f"坏页第{i}商贸有限公司")
    setattr(env.sim.behaviour, fault, 1)
    async with Hub(load_config(env.path)) as hub:
        await wait_until(lambda: _all_named(hub, usccs), what="the entities after the bad page")
        assert (await hub.store.counts())["messages"] == 3
        assert await hub.store.quarantined("market") == []
        runner = next(r for r in hub._sources if r.system == "market")
        assert runner.last_error is not None and runner.last_error.startswith("FeedError")
        assert said in runner.last_error
    assert feed_requests(env, "ztxx")[:2] == [0, 0]  # the bad page, then the same page again


async def _poller(env: Env, hub: Hub) -> tuple[MarketFeedSource, HubSourceContext]:
    sc = hub.config.loaded_systems["market"]
    assert sc.inbound is not None and sc.inbound.source is not None
    opts = MarketFeedOptions.model_validate(
        {k: v for k, v in sc.inbound.source.items() if k != "kind"}
    )
    return MarketFeedSource("market", opts), HubSourceContext(hub, "market", asyncio.Event())


async def test_a_badly_signed_page_is_refused_with_its_code(env: Env) -> None:
    import aiohttp

    from adapters.market.registry import EntityRegistry

    env.sim.register_entity(entity(0), "签名商贸有限公司")
    env.sim.behaviour.bad_signature_next = 1
    hub = Hub(load_config(env.path))
    await hub.start(sources=False, dispatch=False)
    try:
        source, ctx = await _poller(env, hub)
        feed = source.options.feeds[0]
        signer = hub.guard.outbound_signer()
        registry = EntityRegistry(hub.store)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(FeedError) as exc:
                await source.poll(ctx, session, feed, signer, registry)
            assert exc.value.code == "E_MARKET_FEED"
            assert exc.value.field == "X-Scjg-Signature"
            assert "E_SIGNATURE" in exc.value.message
            assert await hub.store.get_state(SCOPE, "cursor:ztxx") is None
            # the platform does not know the hub's key: its 401 SC4010 stops the source
            env.sim.keys = Keystore()
            with pytest.raises(SourceError) as refused:
                await source.poll(ctx, session, feed, signer, registry)
            assert refused.value.code == "E_SOURCE" and "SC4010" in refused.value.message
            assert env.sim.refused == ["E_SIGNATURE"]
            assert (await hub.store.counts())["messages"] == 0
    finally:
        await hub.stop()


async def test_a_bad_record_in_a_page_is_quarantined_and_the_feed_moves_on(env: Env) -> None:
    """The platform's data has errors too: a record failing its contract is kept in the
    quarantine of the market system with its reason; the rest of the page is taken."""
    bad = entity(1)[:-1] + ("0" if entity(1)[-1] != "0" else "1")  # wrong check character
    env.sim.register_entity(entity(0), "好的商贸有限公司")
    env.sim.register_entity(bad, "坏代码商贸有限公司")
    env.sim.register_entity(entity(2), "也好的商贸有限公司")
    async with Hub(load_config(env.path)) as hub:
        await wait_until(lambda: _cursor_is(hub, "ztxx", "3"), what="the page taken")
        (q,) = await hub.store.quarantined("market")
        assert (q.dataset, q.code, q.field) == ("market_entity", "E_SCHEMA", "uscc")
        assert q.key == "ztxx:2" and bad in q.raw and "ztxx cursor=0" in q.origin
        names = await registered_names(hub, [entity(0), bad, entity(2)])
        assert names == {entity(0): "好的商贸有限公司", bad: None, entity(2): "也好的商贸有限公司"}


async def test_a_slow_platform_times_out_and_is_polled_again(env: Env) -> None:
    import yaml

    sysfile = env.path.parent / "systems" / "market.yaml"
    doc = yaml.safe_load(sysfile.read_text(encoding="utf-8"))
    doc["inbound"]["source"]["timeout"] = 0.3
    sysfile.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    env.sim.register_entity(entity(0), "慢速商贸有限公司")
    env.sim.behaviour.latency = 1.0  # longer than the source's timeout
    async with Hub(load_config(env.path)) as hub:
        source = hub_source(hub)
        await wait_until(lambda: source.last_error is not None, what="a timed-out poll")
        assert "timeout after 0.3 s" in (source.last_error or "")
        assert await hub.store.get_state(SCOPE, "cursor:ztxx") is None
        env.sim.behaviour.latency = 0.0
        await wait_until(lambda: _all_named(hub, [entity(0)]), what="the entity once fast again")
