"""The data-sharing plugin (数据共享): catalog, workflow, governed access and subscriptions as a
first-class part of the hub, registered through the ``jghub.plugins`` entry point like every
built-in feature.

Per hub it builds a :class:`SharingService` (``hub_instance_plugins``), adds the sharing routes
(``hub_setup_app``, see :mod:`hub.sharing.api`) and starts the subscriptions and the refresh
job with the hub (``hub_startup`` / ``hub_shutdown``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from hub.config import validate_loaded_section
from hub.errors import AuthError
from hub.plugins import hookimpl
from hub.sharing.access import GovernedReader, StoreCounters
from hub.sharing.catalog import Catalog, CatalogResource, SharingSettings, build_catalog
from hub.sharing.enforce import CursorCodec
from hub.sharing.proxy import ProviderProxy
from hub.sharing.quota import QuotaMeter
from hub.sharing.subscriptions import Subscriptions
from hub.sharing.workflow import SharingWorkflow

__all__ = ["SharingService"]

log = logging.getLogger("jghub.sharing")


def _settings(hub: Any) -> SharingSettings:
    cfg = hub.config
    file = cfg.source_file or Path(cfg.base_dir) / "hub.yaml"
    data = cfg.sharing or {}
    settings: SharingSettings = validate_loaded_section(
        SharingSettings, data, file if cfg.source_file else None, ("sharing",), name=str(file)
    )
    return settings


def _catalog(hub: Any, settings: SharingSettings) -> Catalog:
    groups: list[tuple[str, list[CatalogResource]]] = [
        ("hub file sharing.catalog", settings.catalog)
    ]
    for spec in hub.registry.datasets.specs.values():
        if isinstance(spec.catalog, CatalogResource):
            groups.append((f"dataset file {spec.name}", [spec.catalog]))
    for impl in hub.pm.hook.hub_register_catalog.get_hookimpls():
        got = impl.function()
        if got:
            groups.append((f"plugin {impl.plugin_name}", list(got)))
    return build_catalog(groups, hub.registry.datasets.names())


class SharingService:
    """Everything data sharing needs for one hub."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.settings = _settings(hub)
        self.catalog = _catalog(hub, self.settings)
        cal = hub.config.work_calendar()
        workdays = self.settings.review_workdays

        def deadline(now: float) -> float:
            when = dt.datetime.fromtimestamp(now, dt.UTC)
            return float(cal.deadline_workdays(when, workdays).timestamp())

        self.workflow = SharingWorkflow(
            hub.store,
            self.catalog,
            dataset_versions={n: s.version for n, s in hub.registry.datasets.specs.items()},
            deadline=deadline,
            audit=self._audit,
            clock=hub.clock,
        )
        self.meter = QuotaMeter(StoreCounters(hub.store), hub.config.calendar)
        self.proxies = {
            r.dataset: ProviderProxy(r.code, r.proxy)
            for r in self.catalog.resources.values()
            if r.proxy is not None
        }
        guard = hub.guard
        self.reader = GovernedReader(
            hub.store, lambda ds: guard.ciphers.get(ds), self.meter, self.proxies
        )
        self.subscriptions = Subscriptions(
            hub,
            self.workflow,
            hub.clock,
            self.settings.subscription_retry,
            self.settings.subscription_circuit,
        )
        self.codec: CursorCodec | None = None
        self._task: asyncio.Task[None] | None = None

    async def _audit(
        self,
        action: str,
        principal: Any,
        obj: str,
        details: Mapping[str, Any],
        outcome: str = "ok",
    ) -> None:
        await self.hub.guard.record(action, principal, object=obj, outcome=outcome, details=details)

    async def principal(self, authorization: str | None) -> Any:
        """The authenticated caller; data sharing needs the ``security:`` section."""
        if not self.hub.guard.enabled:
            raise AuthError(
                "data sharing needs credentials: configure the security: section",
                field="Authorization",
            )
        return await self.hub.guard.principal(authorization)

    async def start(self) -> None:
        secret = await self.hub.store.get_state("sharing", "cursor-secret")
        if secret is None:
            await self.hub.store.put_state("sharing", "cursor-secret", secrets.token_hex(32))
            secret = await self.hub.store.get_state("sharing", "cursor-secret")
        assert secret is not None
        self.codec = CursorCodec(bytes.fromhex(secret))
        await self.subscriptions.load()
        self._task = asyncio.create_task(self._refresh_loop(), name="jghub-sharing-refresh")

    async def stop(self) -> None:
        for proxy in self.proxies.values():
            await proxy.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_seconds)
            try:
                await self.subscriptions.refresh()
            except Exception:
                log.exception("refreshing the subscriptions failed; trying again")

    async def overdue_counts(self) -> dict[str, int]:
        """Overdue applications by provider department (``jghub_sharing_applications_overdue``)."""
        return dict(Counter(a.provider for a in await self.workflow.overdue()))


class _HubPlugin:
    """The per-hub half of the plugin (its hooks see only this hub)."""

    def __init__(self, service: SharingService) -> None:
        self.service = service

    @hookimpl
    def hub_setup_app(self, hub: Any, app: Any) -> None:
        if hub is not self.service.hub:
            return
        from hub.sharing.api import setup_routes

        setup_routes(app, self.service)
        if hub.role == "ingest":  # hub_startup is not called there: start with the app
            service = self.service

            async def run(app: Any) -> AsyncIterator[None]:
                await service.start()
                yield
                await service.stop()

            app.cleanup_ctx.append(run)

    @hookimpl
    async def hub_startup(self, hub: Any) -> None:
        if hub is self.service.hub:
            await self.service.start()

    @hookimpl
    async def hub_shutdown(self, hub: Any) -> None:
        if hub is self.service.hub:
            await self.service.stop()


@hookimpl
def hub_instance_plugins(hub: Any) -> list[object]:
    service = SharingService(hub)
    hub.sharing = service
    return [_HubPlugin(service)]
