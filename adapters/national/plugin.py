"""The ``national`` plugin: registered through the ``jghub.plugins`` entry point like any
third-party plugin. It provides the ``national`` adapter type and transport, the datasets of
issued items and feedback, and starts each national system's connector (schedule) with the
hub."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.national.connector import NationalAdapterOptions, NationalConnector
from adapters.national.contracts import DATASETS
from adapters.national.transport import NationalTransport
from adapters.national.transport import spec as transport_spec
from hub.json_adapter import JsonAdapter
from hub.plugins import hookimpl
from hub.specs import AdapterSpec, DatasetSpec, TransportSpec

__all__ = ["NationalAdapter", "connectors"]

#: attribute of a started hub holding its national connectors by system name
_ATTR = "national_connectors"


class NationalAdapter(JsonAdapter):
    """JSON in and out (the national schema is reached by ``mapping``); carries the
    connector's options (``adapter_options``)."""

    def __init__(self, system: str, options: NationalAdapterOptions) -> None:
        super().__init__(system)
        self.options = options

    def decode(self, body: bytes, content_type: str, headers: Mapping[str, str]) -> list[Any]:
        return super().decode(body, content_type, headers)


def connectors(hub: Any) -> dict[str, NationalConnector]:
    """The national connectors of a started hub, by system name."""
    found: dict[str, NationalConnector] = getattr(hub, _ATTR, {})
    return found


def build_connectors(hub: Any) -> dict[str, NationalConnector]:
    """Attach every national transport to ``hub`` and build a connector per national system
    (``adapter: national`` with ``transport: national``); no schedule is started."""
    out: dict[str, NationalConnector] = {}
    for name, target in hub.targets.items():
        if isinstance(target.transport, NationalTransport):
            if target.transport.hub is None:
                target.transport.attach(hub)
            adapter = hub.systems[name].adapter
            opts = (
                adapter.options
                if isinstance(adapter, NationalAdapter)
                else NationalAdapterOptions()
            )
            out[name] = NationalConnector(hub, name, opts)
    setattr(hub, _ATTR, out)
    return out


@hookimpl
def hub_register_adapters() -> list[AdapterSpec]:
    return [
        AdapterSpec(
            "national",
            NationalAdapter,
            NationalAdapterOptions,
            "the national 互联网+监管 system (JSON; schedules in adapter_options)",
        )
    ]


@hookimpl
def hub_register_transports() -> list[TransportSpec]:
    return [transport_spec]


@hookimpl
def hub_register_datasets() -> list[DatasetSpec]:
    return list(DATASETS)


@hookimpl
def hub_startup(hub: Any) -> None:
    for connector in build_connectors(hub).values():
        connector.start_schedule()


@hookimpl
def hub_shutdown(hub: Any) -> None:
    for connector in connectors(hub).values():
        connector.stop_schedule()
