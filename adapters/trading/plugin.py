"""The ``trading`` plugin (entry point ``jghub.plugins``: ``trading``): the ``trading``
adapter type for the public resource trading platform (公共资源交易平台) and its four
canonical datasets; with the hub it starts the feed pull of every trading system that has
``adapter_options.feed``. Everything else — mapping, routes to the supervising departments,
the departments' own schemas — is configuration (``examples/platforms/trading/``)."""

from __future__ import annotations

from typing import Any

from adapters.trading.adapter import TradingAdapter, TradingAdapterOptions
from adapters.trading.contracts import DATASETS
from adapters.trading.feed import TradingFeed
from hub.plugins import hookimpl
from hub.specs import AdapterSpec, DatasetSpec

__all__ = ["feeds", "hub_register_adapters", "hub_register_datasets"]

#: attribute of a started hub holding its trading feeds by system name
_ATTR = "trading_feeds"


def feeds(hub: Any) -> dict[str, TradingFeed]:
    """The feed pulls of a hub, by system name (built at start-up)."""
    found: dict[str, TradingFeed] = getattr(hub, _ATTR, {})
    return found


def build_feeds(hub: Any) -> dict[str, TradingFeed]:
    """A :class:`TradingFeed` per trading system with ``adapter_options.feed``."""
    out = {
        name: TradingFeed(hub, name, rt.adapter.options.feed)
        for name, rt in hub.systems.items()
        if isinstance(rt.adapter, TradingAdapter) and rt.adapter.options.feed is not None
    }
    setattr(hub, _ATTR, out)
    return out


@hookimpl
def hub_register_adapters() -> list[AdapterSpec]:
    return [
        AdapterSpec(
            "trading",
            TradingAdapter,
            TradingAdapterOptions,
            "公共资源交易平台: one XML document per request, XSD-validated (xsd/jy.xsd)",
        )
    ]


@hookimpl
def hub_register_datasets() -> list[DatasetSpec]:
    return list(DATASETS)


@hookimpl
def hub_startup(hub: Any) -> None:
    for feed in build_feeds(hub).values():
        feed.start_schedule()


@hookimpl
async def hub_shutdown(hub: Any) -> None:
    for feed in feeds(hub).values():
        await feed.stop_schedule()
