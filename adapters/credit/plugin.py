"""The ``credit`` plugin: registered through the ``jghub.plugins`` entry point like any
third-party plugin. It provides the 双公示 and 联合奖惩 datasets, the ``credit`` transport (to
the credit platform) and the ``credit_registry`` transport (the hub's list registry), attaches
them to the hub at start (calendar, clock, store, metrics), and adds the status API
``GET /v1/credit/subjects/{subject}/status``."""

from __future__ import annotations

from typing import Any

from adapters.credit.contracts import DATASETS
from adapters.credit.status import setup_routes
from adapters.credit.transport import CreditTransport, RegistryTransport, registry_spec, spec
from hub.plugins import hookimpl
from hub.specs import DatasetSpec, TransportSpec

__all__ = ["attach"]


def attach(hub: Any) -> None:
    """Give every credit and registry transport of ``hub`` its hub (idempotent)."""
    for target in hub.targets.values():
        if isinstance(target.transport, (CreditTransport, RegistryTransport)):
            target.transport.attach(hub)


@hookimpl
def hub_register_transports() -> list[TransportSpec]:
    return [spec, registry_spec]


@hookimpl
def hub_register_datasets() -> list[DatasetSpec]:
    return list(DATASETS)


@hookimpl
def hub_startup(hub: Any) -> None:
    attach(hub)


@hookimpl
def hub_setup_app(hub: Any, app: Any) -> None:
    # only hubs that keep a list registry answer status queries
    if any(t.transport_name == registry_spec.name for t in hub.targets.values()):
        setup_routes(app)
