"""Adapter for the market supervision platform (市场监管平台): the market entity registry
(市场主体) synchronised incrementally and used by governance to check names against codes;
双随机、一公开 inspection tasks dispatched to departments and their results (检查结果) reported
back; the abnormal-operation list (经营异常名录), entries and removals.

See ``docs/adapters/market.md``. The simulated platform is :mod:`adapters.market.simulator`.
"""

from adapters.market.errors import FeedError, MarketRejected
from adapters.market.registry import EntityRegistry, RegisteredEntity, normalize_name
from adapters.market.source import MarketFeedOptions, MarketFeedSource
from adapters.market.transport import MarketOptions, MarketTransport

__all__ = [
    "EntityRegistry",
    "FeedError",
    "MarketFeedOptions",
    "MarketFeedSource",
    "MarketOptions",
    "MarketRejected",
    "MarketTransport",
    "RegisteredEntity",
    "normalize_name",
]
