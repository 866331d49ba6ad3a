"""The core's own plugin: registered through the ``jghub.plugins`` entry point (name ``core``)
exactly like a third-party plugin."""

from __future__ import annotations

from typing import Any

from hub import json_adapter
from hub.plugins import hookimpl
from hub.specs import AdapterSpec, SourceSpec, TransformFunctionSpec, TransportSpec
from hub.transports import amqp, db_staging, file_batch, http_json, http_pull, soap_xml, webhook
from transforms.functions import VALUE_FUNCTIONS

__all__ = ["drop_empty", "identity"]


def identity(record: dict[str, Any]) -> dict[str, Any]:
    """Send the canonical record unchanged."""
    return record


def drop_empty(record: dict[str, Any]) -> dict[str, Any]:
    """Remove keys whose value is ``None``, ``""`` or an empty list (for strict targets)."""
    return {k: v for k, v in record.items() if v not in (None, "", [])}


@hookimpl
def hub_register_adapters() -> list[AdapterSpec]:
    return [json_adapter.spec, soap_xml.adapter_spec]


@hookimpl
def hub_register_transports() -> list[TransportSpec]:
    return [
        http_json.spec,
        soap_xml.spec,
        file_batch.spec,
        db_staging.spec,
        webhook.spec,
        amqp.spec,
    ]


@hookimpl
def hub_register_sources() -> list[SourceSpec]:
    return [http_pull.spec, file_batch.source_spec, db_staging.source_spec, amqp.source_spec]


@hookimpl
def hub_register_transform_functions() -> list[TransformFunctionSpec]:
    return [
        TransformFunctionSpec("identity", identity, "the canonical record unchanged"),
        TransformFunctionSpec("drop_empty", drop_empty, "drop None, empty strings and lists"),
        *VALUE_FUNCTIONS,  # value functions for mapping rules (fn:)
    ]
