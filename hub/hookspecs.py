# mypy: disable-error-code="empty-body"
"""Every hook of jghub, in one module.

Plugins implement these with ``@hub.plugins.hookimpl``. Built-in features are plugins too and
load through the same entry-point group (``jghub.plugins``) as third-party ones.

Rules (see STYLE.md): hooks are prefixed ``hub_``; registration hooks *return* lists of spec
objects (the core checks names are unique); observer hooks return nothing; pluggy has no async
hooks, so hooks that need I/O return an awaitable which the core awaits with
:func:`hub.plugins.acall`. No hook here is ``firstresult``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from hub.events import AcceptedMessage, AdapterHealth, DeliveryEvent
    from hub.sharing.catalog import CatalogResource
    from hub.specs import (
        AdapterSpec,
        ComparatorSpec,
        DatasetSpec,
        SignerSpec,
        SourceSpec,
        TransformFunctionSpec,
        TransportSpec,
    )

hookspec = pluggy.HookspecMarker("jghub")

# --------------------------------------------------------------------------- registration
# Called once when the registry is loaded, after every plugin is registered (so no late
# registrations). Each returns a list of specs; duplicate names across plugins fail at start.


@hookspec
def hub_register_adapters() -> list[AdapterSpec]:
    """Return the adapter types this plugin provides.

    Called once at start. A system config names its adapter type in ``adapter:``; the matching
    spec's ``config_model`` validates ``adapter_options:`` and ``factory(system, options)``
    builds the adapter. Implemented by every ``adapters/*`` package.
    """


@hookspec
def hub_register_transports() -> list[TransportSpec]:
    """Return the outbound transport types this plugin provides (``http_json``, ``soap`` ...).

    A system config names one in ``outbound.transport``; ``config_model`` validates the rest of
    the ``outbound:`` section.
    """


@hookspec
def hub_register_sources() -> list[SourceSpec]:
    """Return the inbound source types this plugin provides (``http_pull``, ``file_batch``,
    ``db_staging``, ``amqp`` ...): sources the hub runs itself to collect a system's records.

    A system config names one in ``inbound.source.kind``; ``config_model`` validates the rest of
    that section.
    """


@hookspec
def hub_register_comparators() -> list[ComparatorSpec]:
    """Return cross-source checks (比对/校核) that governance rules may name in ``compare:``.

    Called once at start. Implemented by adapters that own a reference registry (the market
    adapter's entity registry, for one).
    """


@hookspec
def hub_register_signers() -> list[SignerSpec]:
    """Return the signature algorithms this plugin provides (``hmac-sha256``, ``ed25519`` ...)."""


@hookspec
def hub_register_transform_functions() -> list[TransformFunctionSpec]:
    """Return named record functions usable as a route's ``transform:`` and in mappings."""


@hookspec
def hub_register_datasets() -> list[DatasetSpec]:
    """Return the canonical datasets (contracts) this plugin defines.

    Records posted for a dataset are validated by its ``model`` before they are committed.
    """


@hookspec
def hub_register_catalog() -> list[CatalogResource]:
    """Return the catalog resources (政务信息资源目录) this plugin offers for data sharing.

    Called once per hub when the sharing plugin builds its catalog, after the datasets are
    registered; each :class:`hub.sharing.catalog.CatalogResource` names a registered dataset
    and its code must be unique across the hub file (``sharing.catalog``), dataset files and
    plugins. Implemented by adapters whose department shares the records it sends.
    """


# --------------------------------------------------------------------------- lifecycle
# Called while the hub runs. Implementations may return an awaitable; the core awaits it.
# They must be quick: they run on the hub's event loop after the durable commit.


@hookspec
def hub_instance_plugins(hub: Any) -> list[object] | None:
    """Return plugin objects that serve only this hub (per-hub state, no globals).

    Called once while a :class:`hub.runtime.Hub` is built, before it looks up which observer
    hooks are implemented; the objects are registered into that hub's own plugin manager, so
    their observer hooks (``hub_messages_accepted`` ...) see only this hub's events. The
    monitoring plugin returns its per-hub metrics registry and health tracker here.
    """


@hookspec
def hub_setup_app(hub: Any, app: Any) -> None:
    """Called once by :func:`hub.api.create_app` after the core routes are added: add a
    plugin's own routes (``/metrics``, ``/dashboard`` ...) to the aiohttp application ``app``
    of ``hub``. Not called for hubs run without the HTTP API."""


@hookspec
def hub_startup(hub: Any) -> Awaitable[None] | None:
    """Called once when a hub (:class:`hub.runtime.Hub`) has opened its store, before it
    accepts traffic. Use it to start a plugin's own background work. Not called in the extra
    ingest processes of ``serve --workers`` (background work runs once per node)."""


@hookspec
def hub_shutdown(hub: Any) -> Awaitable[None] | None:
    """Called once when the hub stops, after the dispatcher has drained."""


@hookspec
def hub_messages_accepted(messages: Sequence[AcceptedMessage]) -> None:
    """Called after a group of messages was durably committed and acknowledged.

    ``duplicate=True`` marks a re-sent record that matched an earlier idempotency key (it is
    acknowledged with the original id and routed nothing)."""


@hookspec
def hub_records_rejected(
    system: str, dataset: str | None, codes: Sequence[str], quarantined: int
) -> None:
    """Called after records of ``system`` were refused: once per request or batch, with the
    stable error code of every refused record (``E_SCHEMA`` ...), and ``quarantined``, how
    many of them were newly kept in the quarantine. A whole request refused before its
    records were read (bad credentials, signature, size) comes with one code and ``dataset``
    None (or the requested one). ``system`` is always a configured system's name."""


@hookspec
def hub_delivery_succeeded(event: DeliveryEvent) -> None:
    """Called after a target acknowledged a delivery and the receipt was committed."""


@hookspec
def hub_delivery_retried(event: DeliveryEvent, next_attempt_at: float) -> None:
    """Called after a delivery attempt failed transiently and a retry was scheduled."""


@hookspec
def hub_delivery_dead_lettered(event: DeliveryEvent, reason: str) -> None:
    """Called after a delivery was moved to the dead-letter store (permanent error or the
    retry budget spent)."""


@hookspec
def hub_deliveries_settled(events: Sequence[tuple[str, DeliveryEvent, float | str]]) -> None:
    """Called once per settle write after it was committed, with one ``(kind, event, extra)``
    entry per delivery it settled: the deliveries of one or more units (a unit is one record,
    or a batch of up to the transport's ``max_batch``), of any targets, each unit's in its
    order: ``kind`` ``ok`` (extra ``""``), ``retry`` (extra the next attempt's time) or
    ``dead`` (extra the reason). The same deliveries also go to the three per-delivery hooks
    above; a plugin implements either those or this one (one call per settle write instead
    of one call per delivery through the plugin manager)."""


# --------------------------------------------------------------------------- health
# Called by the monitoring plugin (and /readyz): quick answers, no hammering of peers.


@hookspec
def hub_adapter_health(
    hub: Any, fresh: frozenset[str]
) -> Awaitable[list[AdapterHealth]] | list[AdapterHealth] | None:
    """Return the health of the adapters, transports or peers this plugin knows, as
    :class:`hub.events.AdapterHealth` items (one per system it speaks for).

    Called by the monitoring plugin at most once per ``monitoring.probe_interval`` seconds,
    never per request. ``fresh`` names the targets that settled a delivery within that
    interval: real traffic already shows their state, so implementations should not probe them
    again (report nothing or a cached answer). A probe must be cheap (a TCP connect, a ping)
    and bounded by a short timeout. Implemented by the monitoring plugin itself (generic
    reachability of each target's endpoint) and by adapters that can say more.
    """


@hookspec
def hub_readiness(hub: Any) -> Awaitable[dict[str, Any]] | dict[str, Any] | None:
    """Called on every ``GET /readyz``: return extra sections for the readiness document
    (cached values only, no network). A ``problems`` list in the result makes the hub not
    ready; other keys are merged into the document (``targets`` entries are merged per
    target). Implemented by the monitoring plugin (store file, schema version, target health).
    """
