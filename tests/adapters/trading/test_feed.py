"""The catch-up pull of the platform's document feed: requests signed with the hub's key
(the platform refuses others), answers verified with the platform's key, documents through
the same adapter (XSD) and idempotency keys as pushes, the cursor saved after the commit."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from adapters.trading import simulator as sim
from adapters.trading.demo import EXAMPLE_DIR, TradingSetup, start_trading
from adapters.trading.feed import FeedOptions, TradingFeed
from adapters.trading.plugin import feeds
from hub.errors import HubError
from security.keystore import Keystore
from security.signing import generate_key
from tests.helpers import wait_until


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[TradingSetup]:
    """The example configuration with the feed switched on (a long interval: the tests pull)."""
    config = tmp_path / "config"
    shutil.copytree(EXAMPLE_DIR, config, ignore=shutil.ignore_patterns("samples"))
    system = config / "systems" / "trading.yaml"
    doc = yaml.safe_load(system.read_text(encoding="utf-8"))
    doc["adapter_options"]["feed"] = {"url": "${TRADING_FEED_URL}", "interval": 3600}
    system.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    s = await start_trading(tmp_path / "work", config_dir=config)
    try:
        # the plugin started the pull from adapter_options.feed; it runs once at start, then
        # the tests pull themselves
        feed = feeds(s.hub)["trading"]
        await wait_until(lambda: feed.scheduled_runs >= 1, what="the first scheduled pull")
        await feed.stop_schedule()
        yield s
    finally:
        await s.stop()


def _offline(setup: TradingSetup) -> str:
    """Point the platform's pushes at a port nobody listens on; return the real address."""
    import socket

    real = setup.platform.push_url
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        setup.platform.push_url = f"http://127.0.0.1:{s.getsockname()[1]}/v1/records"
    assert real is not None
    return real


async def test_the_feed_catches_up_what_the_pushes_missed(setup: TradingSetup) -> None:
    hub, platform = setup.hub, setup.platform
    feed = feeds(hub)["trading"]
    # its scheduled run at start read the (then empty) feed, signed with the hub's key
    assert ("GET", "/ggzy/v1/wj", 200, "jghub-trading-1") in platform.requests
    real = _offline(setup)
    for doc in (sim.project_document(70), sim.award_document(70), sim.award_document(71, "CG")):
        assert (await platform.publish(doc)).status is None
    bad = await platform.publish(sim.hostile_document("bad_element", 72), check=False)
    assert len(platform.outbox) == 4

    report = await feed.pull_once()
    assert report.listed == 4 and report.accepted == 3
    assert report.refused == {bad.wjbh: "E_XSD"}
    [q] = await hub.store.quarantined("trading")
    assert (q.key, q.code, q.field) == (bad.wjbh, "E_XSD", "ZBJG/BZ")
    # the hub's requests were signed with its key and verified by the platform
    gets = [(path, status, key) for m, path, status, key in platform.requests if m == "GET"]
    assert gets and all(s == 200 and k == "jghub-trading-1" for _p, s, k in gets)
    await wait_until(lambda: len(setup.departments["zjj"].received) == 1, what="zjj")
    await wait_until(lambda: len(setup.departments["czj"].received) == 1, what="czj")

    # the cursor was saved: nothing new to read
    again = await feed.pull_once()
    assert again.listed == 0 and again.cursor == report.cursor == 4
    # the platform's retries arrive late: recognised, not routed twice
    platform.push_url = real
    assert await platform.flush() == 0
    assert platform.refused_by_hub == {bad.wjbh: ["E_XSD"]}
    counts = await hub.store.counts()
    assert counts["messages"] == 3
    assert setup.departments["zjj"].redeliveries == 0


async def test_an_answer_not_signed_by_the_platform_stops_the_pull(setup: TradingSetup) -> None:
    hub, platform = setup.hub, setup.platform
    _offline(setup)
    await platform.publish(sim.award_document(80))
    platform.signer = generate_key("ed25519", "ggzy-1")  # same key id, another key
    feed = TradingFeed(hub, "trading", FeedOptions(url=platform.base_url))  # type: ignore[arg-type]
    with pytest.raises(HubError) as info:
        await feed.pull_once()
    assert info.value.code == "E_SIGNATURE"
    assert (await hub.store.counts()).get("messages", 0) == 0
    assert await hub.store.get_state("trading-feed:trading", "cursor") is None


async def test_the_platform_refuses_a_hub_it_does_not_know(setup: TradingSetup) -> None:
    hub, platform = setup.hub, setup.platform
    platform.keys = Keystore()  # the platform lost the hub's public key
    feed = TradingFeed(hub, "trading", FeedOptions(url=platform.base_url))  # type: ignore[arg-type]
    with pytest.raises(HubError) as info:
        await feed.pull_once()
    assert info.value.code == "E_SOURCE" and "JY4010" in info.value.message
    assert platform.refusals == ["JY4010"]


async def test_a_slow_or_absent_platform_fails_the_pull_and_keeps_the_cursor(
    setup: TradingSetup,
) -> None:
    hub, platform = setup.hub, setup.platform
    _offline(setup)
    await platform.publish(sim.award_document(90))
    quick = FeedOptions(url=platform.base_url, timeout=0.2)  # type: ignore[arg-type]
    feed = TradingFeed(hub, "trading", quick)
    platform.behaviour.latency = 1.0  # slower than the feed waits
    with pytest.raises(HubError) as info:
        await feed.pull_once()
    assert info.value.code == "E_SOURCE" and "TimeoutError" in info.value.message
    platform.behaviour.latency = 0.0
    await platform.go_down()
    with pytest.raises(HubError) as info:
        await feed.pull_once()
    assert info.value.code == "E_SOURCE" and info.value.field == "feed.url"
    assert await hub.store.get_state("trading-feed:trading", "cursor") is None
    await platform.come_up()
    report = await feed.pull_once()  # back: nothing was skipped
    assert report.accepted == 1 and report.cursor == 1
