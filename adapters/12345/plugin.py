"""The ``hotline12345`` plugin (entry point ``hotline12345 = "adapters.12345.plugin"`` of the
``jghub.plugins`` group; the package name ``12345`` is not an identifier, so it is loaded by
entry point or ``importlib``, never by an ``import`` statement).

It provides:

* the datasets ``work_order`` and ``work_order_event`` (:mod:`.contracts`);
* the adapter type ``hotline12345`` (JSON, like ``json``) whose ``adapter_options`` carry the
  time limits and the deadline watch (:class:`HotlineOptions`); the 12345 platform's system
  file names it;
* the governance comparator ``hotline12345_lifecycle`` (:class:`.book.OrderBook`) that
  enforces the state machine and keeps each order's history in the hub's store;
* per hub, the deadline watch (:class:`HotlineWatch`): every ``check_interval`` seconds it
  finds passed and near deadlines, emits a 督办 (supervision) event record into the hub as
  the ``watch_source`` system (routed and delivered like any other record), and feeds the
  metrics ``jghub_12345_orders_open`` / ``_overdue`` / ``_due_soon`` and
  ``jghub_12345_supervisions_total`` on the monitoring plugin's per-hub registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field

from hub.errors import ConfigError
from hub.json_adapter import JsonAdapter
from hub.plugins import hookimpl
from hub.specs import AdapterSpec, ComparatorSpec, DatasetSpec, TransformFunctionSpec

from .book import COMPARATOR, Alert, OrderBook
from .contracts import DATASETS
from .deadlines import DeadlineRules

__all__ = [
    "HotlineAdapter",
    "HotlineOptions",
    "HotlineWatch",
    "book_of",
    "platform_time",
    "watch_of",
]

log = logging.getLogger("jghub.hotline12345")

_DATASETS = frozenset(d.name for d in DATASETS)

_KIND_NAMES = {
    "sign_overdue": "签收超时",
    "answer_overdue": "办理超期",
    "answer_due_soon": "临期预警",
}


class HotlineOptions(BaseModel):
    """``adapter_options`` of the 12345 platform's system (``adapter: hotline12345``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    watch_source: str | None = Field(
        "hotline-watch",
        description="system the deadline watch emits its 督办 events as (a system whose "
        "inbound datasets include work_order_event); null: metrics only, no events",
    )
    check_interval: float = Field(60.0, gt=0, description="seconds between deadline checks")
    supervisor: str = Field("12345热线督办 (jghub deadline watch)", description="督办 actor name")
    deadlines: DeadlineRules = Field(default_factory=DeadlineRules)


class HotlineAdapter(JsonAdapter):
    """JSON in and out (the platform's own schema is reached by ``mapping``); carries the
    options of the hub's 12345 features."""

    def __init__(self, system: str, options: HotlineOptions) -> None:
        super().__init__(system)
        self.options = options


def book_of(hub: Any) -> OrderBook:
    """The order book of a hub (its comparator's object)."""
    spec = hub.registry.comparators.get(COMPARATOR, wanted_by="hotline12345")
    book = getattr(spec.check, "__self__", None)
    if not isinstance(book, OrderBook):
        raise ConfigError(
            f"comparator {COMPARATOR!r} is not the 12345 order book", field=COMPARATOR
        )
    return book


def watch_of(hub: Any) -> HotlineWatch | None:
    """The deadline watch of a hub, or None when it runs no 12345 platform."""
    for p in hub.pm.get_plugins():
        if isinstance(p, HotlineWatch) and p.hub is hub:
            return p
    return None


class _Collector(Collector):
    """The 12345 gauges, read from the book's last scan at scrape time."""

    def __init__(self, book: OrderBook) -> None:
        self.book = book

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        from monitoring.metrics import METRICS

        helps = {m.name: m.help for m in METRICS}
        snap = self.book.snapshot
        for name, values in (
            ("jghub_12345_orders_open", snap.open),
            ("jghub_12345_orders_overdue", snap.overdue),
            ("jghub_12345_orders_due_soon", snap.due_soon),
        ):
            fam = GaugeMetricFamily(name, helps[name], labels=["department"])
            for dept in sorted(set(snap.open) | set(values)):
                fam.add_metric([dept], values.get(dept, 0))
            yield fam
        sup = CounterMetricFamily(
            "jghub_12345_supervisions",
            helps["jghub_12345_supervisions_total"],
            labels=["department", "kind"],
        )
        for (dept, kind), n in sorted(self.book.supervisions.items()):
            sup.add_metric([dept, kind], n)
        yield sup


class HotlineWatch:
    """Per hub: checks deadlines on a schedule and emits 督办 events (a per-hub plugin, so
    its hooks see only this hub)."""

    def __init__(self, hub: Any, platform: str, options: HotlineOptions, book: OrderBook) -> None:
        self.hub = hub
        self.platform = platform
        self.options = options
        self.book = book
        self._task: asyncio.Task[None] | None = None
        self.checks = 0
        self.emitted: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()  # the schedule and a manual check never overlap

    @hookimpl
    def hub_startup(self, hub: Any) -> None:
        if hub is not self.hub:
            return
        self._register_metrics()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    @hookimpl
    def hub_setup_app(self, hub: Any, app: Any) -> None:
        if hub is not self.hub:
            return
        app.router.add_get("/v1/hotline12345/orders", self._get_open)
        app.router.add_get("/v1/hotline12345/orders/{order_no}", self._get_order)

    async def _allow(self, request: Any) -> None:
        # the orders belong to the platform: its own credentials, ops and admin may read
        # them (metadata: states, times, department codes; no requester data)
        from hub.api import _guard

        await _guard(request, "messages.read", system=self.platform)

    async def _get_order(self, request: Any) -> Any:
        """``GET /v1/hotline12345/orders/{order_no}``: the order's state, deadlines and
        history (全程留痕), or 404 ``E_NOT_FOUND``."""
        from aiohttp import web

        from hub.errors import NotFound

        await self._allow(request)
        no = request.match_info["order_no"]
        order = await self.book.get(no)
        if order is None:
            raise NotFound(f"no 12345 work order {no!r} is known to this hub", field="order_no")
        order.pop("event_ids", None)
        return web.json_response(order)

    async def _get_open(self, request: Any) -> Any:
        """``GET /v1/hotline12345/orders``: the open orders (state, department, deadlines)."""
        from aiohttp import web

        await self._allow(request)
        items = [
            {k: v for k, v in o.items() if k not in ("events", "event_ids")}
            for o in await self.book.open_orders()
        ]
        return web.json_response({"items": items})

    @hookimpl
    async def hub_shutdown(self, hub: Any) -> None:
        if hub is not self.hub or self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def _register_metrics(self) -> None:
        from monitoring.monitor import Monitor

        for p in self.hub.pm.get_plugins():
            if isinstance(p, Monitor) and p.hub is self.hub:
                p.metrics.registry.register(_Collector(self.book))

    async def _loop(self) -> None:
        while True:
            try:
                await self.check_now()
            except Exception:  # the next round tries again; a store fault must not end it
                log.exception("12345 deadline check failed")
            await asyncio.sleep(self.options.check_interval)

    async def check_now(self, now: dt.datetime | None = None) -> list[Alert]:
        """One deadline check at ``now`` (default: the hub's clock): refresh the metrics and
        emit a 督办 event for every deadline newly passed or near. Returns the alerts."""
        async with self._lock:
            return await self._check(now)

    async def _check(self, now: dt.datetime | None) -> list[Alert]:
        when = now or dt.datetime.fromtimestamp(self.hub.clock(), self.book.calendar.tz)
        alerts = await self.book.scan(when)
        self.checks += 1
        source = self.options.watch_source
        if source is None:
            return alerts
        for a in alerts:
            event = {
                "event_id": f"DB-{a.order_no}-{a.kind}-{a.deadline.strftime('%Y%m%d%H%M')}",
                "order_no": a.order_no,
                "event": "supervise",
                "occurred_at": when.isoformat(),
                "actor": self.options.supervisor,
                "department": a.department,
                "department_code": a.department_code,
                "reason": f"{_KIND_NAMES[a.kind]}: 时限 {a.deadline.isoformat()}",
                "supervision": a.kind,
            }
            res = await self.hub.ingest_records(
                source, [event], dataset="work_order_event", keys=[event["event_id"]],
                origin="hotline12345 deadline watch",
            )  # fmt: skip
            if res.errors:
                log.warning("督办 %s refused: %s", event["event_id"], res.errors[0].error)
                continue
            self.emitted.append(event)
            key = (a.department_code, a.kind)
            self.book.supervisions[key] = self.book.supervisions.get(key, 0) + 1
        return alerts


def _check_config(hub: Any) -> tuple[str, HotlineOptions] | None:
    """The platform system and its options; every system sending 12345 datasets must run the
    lifecycle comparator with ``on_mismatch: reject`` (else the history would miss steps)."""
    platform: tuple[str, HotlineOptions] | None = None
    for name, rt in hub.systems.items():
        if isinstance(rt.adapter, HotlineAdapter) and platform is None:
            platform = (name, rt.adapter.options)
        sent = set(rt.datasets) & _DATASETS
        for ds in sorted(sent):
            gov = rt.config.governance.get(ds)
            rules = {(r.rule, r.on_mismatch) for r in (gov.compare if gov else [])}
            if (COMPARATOR, "reject") not in rules:
                raise ConfigError(
                    f"{rt.config.source_file or name}: system {name} sends {ds} but its "
                    f"governance.{ds}.compare lacks {{rule: {COMPARATOR}, on_mismatch: reject}}; "
                    "the hub would not see the order's lifecycle",
                    field=f"governance.{ds}.compare",
                )
    if platform is not None:
        source = platform[1].watch_source
        rt = hub.systems.get(source) if source is not None else None
        if source is not None and (
            rt is None or rt.config.inbound is None or "work_order_event" not in rt.datasets
        ):
            raise ConfigError(
                f"system {platform[0]}: adapter_options.watch_source {source!r} is not a system "
                "whose inbound datasets include work_order_event",
                field="adapter_options.watch_source",
            )
    return platform


def platform_time(value: Any) -> str:
    """An ISO 8601 time as the platform writes times: ``yyyyMMddHHmmss`` in China Standard
    Time (``2026-11-28T09:30:00+08:00`` → ``20261128093000``)."""
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if when.tzinfo is None:
        when = when.replace(tzinfo=_CST)
    return when.astimezone(_CST).strftime("%Y%m%d%H%M%S")


_CST = dt.timezone(dt.timedelta(hours=8))


# --------------------------------------------------------------------------- hooks


@hookimpl
def hub_register_transform_functions() -> list[TransformFunctionSpec]:
    return [
        TransformFunctionSpec(
            "hotline12345_time",
            platform_time,
            "ISO time -> yyyyMMddHHmmss (China Standard Time), the 12345 platform's format",
            kind="value",
        )
    ]


@hookimpl
def hub_register_datasets() -> list[DatasetSpec]:
    return list(DATASETS)


@hookimpl
def hub_register_adapters() -> list[AdapterSpec]:
    return [
        AdapterSpec(
            "hotline12345",
            HotlineAdapter,
            HotlineOptions,
            "the 12345 hotline platform (JSON; time limits and deadline watch in adapter_options)",
        )
    ]


@hookimpl
def hub_register_comparators() -> list[ComparatorSpec]:
    # a fresh book per registry: every hub loads its own registry, so no state is shared
    book = OrderBook()
    return [
        ComparatorSpec(
            COMPARATOR,
            book.check,
            "12345 work-order state machine and history (E_ORDER_STATE, E_ORDER_DEADLINE)",
        )
    ]


@hookimpl
def hub_instance_plugins(hub: Any) -> list[object]:
    found = _check_config(hub)
    book = book_of(hub)
    options = found[1] if found else HotlineOptions()
    book.bind(hub.store, hub.config.work_calendar(), options.deadlines)
    if found is None or hub.role != "node":
        return []
    return [HotlineWatch(hub, found[0], options, book)]
