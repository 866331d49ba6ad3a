"""The ``credit`` plugin: registered through the ``jghub.plugins`` entry point like any
third-party plugin. It provides the 双公示 and 联合奖惩 datasets, the ``credit`` transport (to
the credit platform) and the ``credit_registry`` transport (the hub's list registry), attaches
them to the hub at start (calendar, clock, store, metrics), runs the disclosure deadline
watch of every ``credit`` target on nodes (:mod:`adapters.credit.watch`), and adds the status
API ``GET /v1/credit/subjects/{subject}/status``."""

from __future__ import annotations

from typing import Any

from adapters.credit.contracts import DATASETS
from adapters.credit.status import setup_routes
from adapters.credit.transport import CreditTransport, RegistryTransport, registry_spec, spec
from adapters.credit.watch import build_watches, watches
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
    if hub.role != "node":  # the deadline watch runs on nodes, not in ingest processes
        return
    for watch in build_watches(hub).values():
        watch.start()


@hookimpl
async def hub_shutdown(hub: Any) -> None:
    for watch in watches(hub).values():
        await watch.stop()


@hookimpl
def hub_readiness(hub: Any) -> dict[str, Any]:
    # the waiting disclosures' deadlines are detail for ops, never a reason to be not ready
    found = watches(hub)
    return {"targets": {name: w.readiness() for name, w in found.items()}} if found else {}


@hookimpl
def hub_setup_app(hub: Any, app: Any) -> None:
    # only hubs that keep a list registry answer status queries
    if any(t.transport_name == registry_spec.name for t in hub.targets.values()):
        setup_routes(app)
