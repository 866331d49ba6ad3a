"""The ``market`` plugin: registered through the ``jghub.plugins`` entry point like any
third-party plugin. It provides the market platform's datasets, the ``market_feed`` source,
the ``market`` transport (检查结果 upload) and the governance comparators over the market
entity registry (``market_name_matches_uscc``, ``market_entity_active``)."""

from __future__ import annotations

from typing import Any

from adapters.market.contracts import DATASETS
from adapters.market.registry import EntityRegistry, comparator_specs
from adapters.market.source import spec as source_spec
from adapters.market.transport import MarketTransport
from adapters.market.transport import spec as transport_spec
from hub.plugins import hookimpl
from hub.specs import ComparatorSpec, DatasetSpec, SourceSpec, TransportSpec

__all__ = ["registry_of"]


def registry_of(hub: Any) -> EntityRegistry:
    """The market entity registry of a hub (bound to its store once the hub started)."""
    for spec in hub.registry.comparators.specs.values():
        owner = getattr(spec.check, "__self__", None)
        if isinstance(owner, EntityRegistry):
            return owner
    return EntityRegistry(hub.store)


@hookimpl
def hub_register_datasets() -> list[DatasetSpec]:
    return list(DATASETS)


@hookimpl
def hub_register_sources() -> list[SourceSpec]:
    return [source_spec]


@hookimpl
def hub_register_transports() -> list[TransportSpec]:
    return [transport_spec]


@hookimpl
def hub_register_comparators() -> list[ComparatorSpec]:
    # one registry per call: each hub loads its registry once and binds it at start-up
    return list(comparator_specs(EntityRegistry()))


@hookimpl
def hub_instance_plugins(hub: Any) -> list[object] | None:
    # Bind this hub's registry to its store while the hub is built: hub_startup is not called
    # in the extra ingest processes of ``serve --workers``, which run governance too.
    registry_of(hub).bind(hub.store)
    return None


@hookimpl
def hub_startup(hub: Any) -> None:
    for target in hub.targets.values():
        if isinstance(target.transport, MarketTransport):
            target.transport.attach(hub)
