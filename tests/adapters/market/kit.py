"""What the market adapter tests share: the platform simulator, two department inboxes and the
shipped example configuration (``examples/platforms/market``) pointed at them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.market.demo import DEPT_A_CODE, write_market_setup
from adapters.market.plugin import registry_of
from adapters.market.simulator import MarketSimulator
from contracts.samples import make_uscc
from hub.peers.sink import Sink
from hub.runtime import Hub
from security.keystore import Keystore, ManagedKey

__all__ = ["DEPT_A_CODE", "Env", "entity", "env", "registered_names"]


@dataclass
class Env:
    path: Path
    sim: MarketSimulator
    sinks: dict[str, Sink]


def entity(n: int) -> str:
    """A valid USCC of a 上城区 enterprise."""
    return make_uscc("91", "330102", 500 + n)


async def registered_names(hub: Hub, usccs: list[str]) -> dict[str, str | None]:
    registry = registry_of(hub)
    out: dict[str, str | None] = {}
    for u in usccs:
        e = await registry.get(u)
        out[u] = None if e is None else e.name
    return out


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    sinks = {"dept-a": Sink("dept-a"), "dept-b": Sink("dept-b")}
    sim = MarketSimulator()
    for s in sinks.values():
        await s.start()
    await sim.start()
    path, hub_key, platform_key = write_market_setup(
        tmp_path / "hub", market_url=sim.base_url, dept_urls={n: s.url for n, s in sinks.items()}
    )
    sim.keys = Keystore([ManagedKey(hub_key, owner="zj-hub")])
    sim.signer = platform_key
    try:
        yield Env(path, sim, sinks)
    finally:
        await sim.stop()
        for s in sinks.values():
            await s.stop()
