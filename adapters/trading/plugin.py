"""The ``trading`` plugin (entry point ``jghub.plugins``: ``trading``): the ``trading``
adapter type for the public resource trading platform (公共资源交易平台) and its four
canonical datasets. Everything else — mapping, routes to the supervising departments, the
departments' own schemas — is configuration (``examples/platforms/trading/``)."""

from __future__ import annotations

from adapters.trading.adapter import TradingAdapter, TradingAdapterOptions
from adapters.trading.contracts import DATASETS
from hub.plugins import hookimpl
from hub.specs import AdapterSpec, DatasetSpec

__all__ = ["hub_register_adapters", "hub_register_datasets"]


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
