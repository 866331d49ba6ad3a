"""The per-hub monitor: metrics, target health, sparkline samples and the routes it serves.

One :class:`Monitor` is built for every :class:`hub.runtime.Hub` (``hub_instance_plugins``) and
registered into that hub's own plugin manager, so it sees only its hub's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from hub.breaker import BreakerState
from hub.config import validate_section
from hub.events import AcceptedMessage, AdapterHealth, DeliveryEvent
from hub.plugins import acall, hookimpl
from hub.store import TargetQueue
from monitoring.certs import CertificateCatalog, KnownCertificate, configured_certificate_files
from monitoring.metrics import HubMetrics, days_until
from monitoring.relay import NodeRelay, WorkerRelay, relay_address
from monitoring.settings import MonitoringSettings

if TYPE_CHECKING:
    from aiohttp import web

    from hub.runtime import Hub

__all__ = ["HealthBoard", "Monitor", "Snapshot", "load_settings", "trace_id"]

log = logging.getLogger("jghub.monitoring")
deliveries_log = logging.getLogger("jghub.deliveries")


def load_settings(hub: Any) -> MonitoringSettings:
    """The hub file's ``monitoring:`` section, validated (errors name file, line and key)."""
    cfg = hub.config
    file = cfg.source_file or cfg.base_dir / "hub.yaml"
    data = cfg.monitoring or {}
    got: MonitoringSettings = validate_section(
        MonitoringSettings, dict(data), file, None, ("monitoring",)
    )
    return got


def trace_id(traceparent: str | None) -> str | None:
    """The 32-hex trace id of a W3C traceparent (what log search and tracing UIs key on)."""
    if not traceparent or traceparent.count("-") != 3:
        return None
    return traceparent.split("-")[1]


@dataclass(slots=True)
class Snapshot:
    """What the store said at ``at`` (refreshed before each scrape and dashboard view)."""

    at: float = 0.0
    store_ok: bool = True
    store_error: str | None = None
    queues: dict[str, TargetQueue] = field(default_factory=dict)
    #: data-sharing applications past their deadline, by provider department (hub.sharing)
    sharing_overdue: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _TargetSeen:
    last_ok: float | None = None
    last_fail: float | None = None
    last_detail: str = ""
    last_status: int | None = None


class HealthBoard:
    """What is known about each target and adapter: real traffic first, probes second."""

    def __init__(self, hub: Hub, settings: MonitoringSettings) -> None:
        self.hub = hub
        self.settings = settings
        self.seen: dict[str, _TargetSeen] = {name: _TargetSeen() for name in hub.targets}
        #: (system, reporter) -> the last report of hub_adapter_health
        self.adapters: dict[tuple[str, str], AdapterHealth] = {}
        self.reported_at: dict[tuple[str, str], float] = {}
        self.queue_age: dict[str, float] = {}

    def traffic(
        self, target: str, ok: bool, at: float, detail: str = "", status: int | None = None
    ) -> None:
        """A delivery outcome: ``ok`` when the target answered (even with an error)."""
        s = self.seen.setdefault(target, _TargetSeen())
        if ok:
            s.last_ok = at
        else:
            s.last_fail = at
            s.last_detail = detail
            s.last_status = status

    def fresh(self, now: float) -> frozenset[str]:
        """Targets whose state real traffic showed within the probe interval."""
        horizon = now - self.settings.probe_interval
        return frozenset(
            name
            for name, s in self.seen.items()
            if max(s.last_ok or 0.0, s.last_fail or 0.0) >= horizon
        )

    def report(self, items: Sequence[AdapterHealth], at: float) -> None:
        for h in items:
            self.adapters[(h.system, h.source)] = h
            self.reported_at[(h.system, h.source)] = at

    def state(self, target: str) -> str:
        """``up``, ``degraded``, ``down`` or ``circuit_open``."""
        t = self.hub.targets.get(target)
        if t is not None and t.breaker.state is not BreakerState.CLOSED:
            return "circuit_open"
        seen = self.seen.get(target, _TargetSeen())
        last_ok = seen.last_ok or 0.0
        reports = [
            (h, self.reported_at.get(key, 0.0))
            for key, h in self.adapters.items()
            if key[0] == target
        ]
        # a probe's "down" counts until traffic gets through after it
        if any(h.status == "down" and at > last_ok for h, at in reports):
            return "down"
        failing = t is not None and t.breaker.failures > 0
        if failing and (seen.last_fail or 0.0) > last_ok:
            return "down" if seen.last_status is None else "degraded"
        if failing or any(h.status == "degraded" for h, _ in reports):
            return "degraded"
        if self.queue_age.get(target, 0.0) > self.settings.queue_age_degraded:
            return "degraded"
        return "up"

    def detail(self, target: str) -> str:
        """A short reason for the state (last error or probe detail)."""
        seen = self.seen.get(target)
        reports = [h for (system, _), h in self.adapters.items() if system == target]
        bits = [f"{h.source}: {h.detail}" for h in reports if h.status != "up" and h.detail]
        if seen is not None and seen.last_detail and (seen.last_fail or 0) > (seen.last_ok or 0):
            bits.insert(0, seen.last_detail)
        return "; ".join(bits)[:300]


@dataclass(slots=True)
class Series:
    """Sparkline samples of one target: deliveries per sample, mean latency (ms), queue."""

    throughput: deque[float]
    latency_ms: deque[float]
    queue: deque[float]


class Monitor:
    """Everything monitoring keeps for one hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.settings = load_settings(hub)
        self.metrics = HubMetrics(self)
        self.health = HealthBoard(hub, self.settings)
        self.snapshot = Snapshot()
        n = self.settings.samples
        self.series: dict[str, Series] = {
            name: Series(deque(maxlen=n), deque(maxlen=n), deque(maxlen=n)) for name in hub.targets
        }
        self.sources: dict[str, deque[float]] = {name: deque(maxlen=n) for name in hub.systems}
        self._last_counts: dict[str, tuple[float, float, float]] = {}
        self._last_accepted: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._certs: CertificateCatalog | None = None
        #: the node's end of the metrics relay (serve --workers), or None
        self.node_relay: NodeRelay | None = None
        #: an ingest worker's end of the metrics relay, or None
        self.worker_relay: WorkerRelay | None = None
        for name in hub.targets:
            self.metrics.prepare_target(name)

    # ------------------------------------------------------------------ hooks (this hub only)

    @hookimpl
    def hub_messages_accepted(self, messages: Sequence[AcceptedMessage]) -> None:
        self.metrics.on_accepted(messages)
        if deliveries_log.isEnabledFor(logging.DEBUG):
            for m in messages:
                deliveries_log.debug(
                    "accepted",
                    extra={
                        "message_id": m.message_id,
                        "trace_id": trace_id(m.traceparent),
                        "system": m.source,
                        "dataset": m.dataset,
                        "duplicate": m.duplicate,
                    },
                )

    @hookimpl
    def hub_records_rejected(
        self, system: str, dataset: str | None, codes: Sequence[str], quarantined: int
    ) -> None:
        self.metrics.on_rejected(system, dataset, codes, quarantined)

    @hookimpl
    def hub_deliveries_settled(
        self, events: Sequence[tuple[str, DeliveryEvent, float | str]]
    ) -> None:
        """Deliveries settled together (one settle write: one or more units), in one call (a
        batch of 500 is one call, not 500): the same counters, histograms, target health and
        log lines as one call each."""
        now = self.hub.clock()
        self.metrics.on_deliveries(events, now)
        health = self.health
        for kind, event, _extra in events:
            if kind == "ok":
                health.traffic(event.target, True, now)
            elif kind == "retry":
                # a 429 or a 4xx answer still shows the target is reachable
                reached = event.status is not None and event.status < 500
                detail = f"{event.status or ''} {event.detail}".strip()
                health.traffic(event.target, reached, now, detail, event.status)
        debug = deliveries_log.isEnabledFor(logging.DEBUG)  # successes log at DEBUG only
        if debug or deliveries_log.isEnabledFor(logging.WARNING):
            for kind, event, extra in events:
                if debug or kind != "ok":
                    self._log_outcome(kind, event, extra)

    def _log_outcome(self, kind: str, event: DeliveryEvent, extra: float | str) -> None:
        if kind == "ok":
            self._log(logging.DEBUG, "delivered", event)
        elif kind == "retry":
            self._log(logging.INFO, "delivery retried", event, next_attempt_at=float(extra))
        else:
            self._log(logging.WARNING, "dead-lettered", event, reason=str(extra))

    def _log(self, level: int, what: str, ev: DeliveryEvent, **more: Any) -> None:
        if not deliveries_log.isEnabledFor(level):
            return
        deliveries_log.log(
            level,
            what,
            extra={
                "message_id": ev.message_id,
                "trace_id": trace_id(ev.traceparent),
                "traceparent": ev.traceparent,
                "target": ev.target,
                "route": ev.route,
                "attempt": ev.attempt,
                "status": ev.status,
                "latency_ms": round(ev.latency_ms, 3),
                **more,
            },
        )

    @hookimpl
    def hub_setup_app(self, hub: Any, app: web.Application) -> None:
        if hub is not self.hub:
            return
        from monitoring.dashboard import add_routes

        add_routes(app, self)
        if getattr(hub, "role", "node") == "ingest":
            app.cleanup_ctx.append(self._worker_relay_ctx)

    async def _worker_relay_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """An ingest worker stays connected to its node's metrics relay while it runs."""
        self.worker_relay = WorkerRelay(
            relay_address(self.hub.config.store_path()), self.metrics.local_counts
        )
        self.worker_relay.start()
        yield
        await self.worker_relay.close()
        self.worker_relay = None

    @hookimpl
    async def hub_startup(self, hub: Any) -> None:
        if hub is not self.hub:
            return
        self._stopping.clear()
        relay = NodeRelay(
            relay_address(self.hub.config.store_path()), self._relay_expose, self._relay_overview
        )
        if await relay.start():
            self.node_relay = relay
        await self.refresh()
        self._tasks = [
            asyncio.create_task(self._every(self.settings.probe_interval, self.probe)),
            asyncio.create_task(self._every(self.settings.sample_interval, self.sample)),
        ]

    @hookimpl
    async def hub_shutdown(self, hub: Any) -> None:
        if hub is not self.hub:
            return
        self._stopping.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        if self.node_relay is not None:
            await self.node_relay.close()
            self.node_relay = None

    async def collect_workers(self) -> None:
        """Fetch the ingest workers' counters (serve --workers) into the metrics."""
        if self.node_relay is not None:
            self.metrics.remote = await self.node_relay.collect()

    async def exposition(self) -> bytes:
        """What ``/metrics`` answers: the node's registry with its workers' counts added."""
        await self.refresh()
        await self.collect_workers()
        return self.metrics.exposition()

    async def _relay_expose(self) -> bytes:
        return await self.exposition()

    async def _relay_overview(self) -> bytes:
        from monitoring.dashboard import overview_data

        return orjson.dumps(await overview_data(self))

    @hookimpl
    async def hub_readiness(self, hub: Any) -> dict[str, Any]:
        if hub is not self.hub:
            return {}
        problems: list[str] = []
        out: dict[str, Any] = {"problems": problems}
        store = self.hub.store
        missing = self._store_file_problem()
        if missing:
            problems.append(missing)
        schema = getattr(store, "schema_version", None)
        if schema is not None:
            try:
                found, expected = await schema()
                out["migrations"] = {"found": found, "expected": expected}
                if found != expected:
                    problems.append(f"store schema version {found}, this jghub needs {expected}")
            except Exception as exc:
                problems.append(f"store: {exc}")
        await self.refresh()
        out["targets"] = {
            name: {
                "health": self.health.state(name),
                "detail": self.health.detail(name),
                "pending": q.pending if (q := self.snapshot.queues.get(name)) else 0,
                "dead": q.dead if q else 0,
            }
            for name in self.hub.targets
        }
        out["adapters"] = [
            {"system": h.system, "status": h.status, "reporter": h.source, "detail": h.detail}
            for h in self.health.adapters.values()
        ]
        return out

    # ------------------------------------------------------------------ background work

    async def _every(self, seconds: float, job: Any) -> None:
        while not self._stopping.is_set():
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("monitoring job %s failed", getattr(job, "__name__", job))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    async def refresh(self) -> Snapshot:
        """Read queue depths from the store (two queries on partial indexes)."""
        now = self.hub.clock()
        snap = Snapshot(at=now)
        problems = list(self.hub.store.problems())
        missing = self._store_file_problem()
        if missing:
            problems.append(missing)
        try:
            stats = getattr(self.hub.store, "queue_stats", None)
            if stats is not None:
                snap.queues = {q.target: q for q in await stats()}
        except Exception as exc:
            problems.append(str(exc))
        sharing = getattr(self.hub, "sharing", None)
        if sharing is not None:
            try:
                snap.sharing_overdue = await sharing.overdue_counts()
            except Exception as exc:
                problems.append(f"sharing: {exc}")
        snap.store_ok = not problems
        snap.store_error = "; ".join(problems) or None
        for name, q in snap.queues.items():
            self.health.queue_age[name] = q.oldest_due_age(now)
        self.snapshot = snap
        return snap

    def _store_file_problem(self) -> str | None:
        """A file store whose file vanished writes into a ghost: the data is gone on restart."""
        path = getattr(self.hub.store, "path", None)
        if isinstance(path, Path) and not path.exists():
            return f"store file {path} is missing (volume unmounted or file moved)"
        return None

    async def probe(self) -> None:
        """Ask every plugin for adapter health (targets with fresh traffic are skipped)."""
        now = self.hub.clock()
        fresh = self.health.fresh(now)
        results = await acall(self.hub.pm.hook.hub_adapter_health, hub=self.hub, fresh=fresh)
        for items in results:
            self.health.report(items or [], now)

    async def sample(self) -> None:
        """One sparkline point per target: deliveries since the last sample, their mean
        latency, and the queue depth."""
        await self.refresh()
        await self.collect_workers()
        for name, s in self.series.items():
            ok = _value(self.metrics.deliveries, name, "succeeded")
            lat_sum, lat_n = _hist(self.metrics.attempt_seconds, name)
            last = self._last_counts.get(name, (ok, lat_sum, lat_n))
            self._last_counts[name] = (ok, lat_sum, lat_n)
            s.throughput.append(ok - last[0])
            dn = lat_n - last[2]
            s.latency_ms.append((lat_sum - last[1]) / dn * 1000.0 if dn else 0.0)
            q = self.snapshot.queues.get(name)
            s.queue.append(float(q.pending + q.inflight) if q else 0.0)
        accepted = self.metrics.totals(self.metrics.accepted)
        for system, d in self.sources.items():
            total = sum(v for (sys, _), v in accepted.items() if sys == system)
            d.append(total - self._last_accepted.get(system, total))
            self._last_accepted[system] = total

    # ------------------------------------------------------------------ certificates, keys

    def certificate_days(self) -> list[tuple[KnownCertificate, float]]:
        """Days to expiry of every certificate the hub knows: the listener's chain, the CAs
        of its client certificates, and the targets' outbound CA and client certificates."""
        if self._certs is None:
            outbound = {name: dict(t.config.outbound or {}) for name, t in self.hub.targets.items()}
            self._certs = CertificateCatalog(
                configured_certificate_files(
                    self.hub.config.listen.tls, outbound, self.hub.config.base_dir
                )
            )
        return self._certs.days(self.hub.clock())

    def key_days(self) -> dict[str, float]:
        """Days until each keystore key with a ``valid_until`` ends."""
        ks = self.hub.guard.keystore
        out: dict[str, float] = {}
        if ks is None:
            return out
        for k in ks.entries():
            until = getattr(k, "valid_until", None)
            if until is None:
                continue
            if isinstance(until, dt.datetime):
                out[str(k.key_id)] = round(days_until(until), 3)
            elif isinstance(until, (int, float)):
                out[str(k.key_id)] = round(days_until(float(until)), 3)
        return out


def _value(counter: Any, *labels: str) -> float:
    for metric in counter.collect():
        for s in metric.samples:
            if s.name.endswith("_total") and tuple(s.labels.values()) == labels:
                return float(s.value)
    return 0.0


def _hist(hist: Any, target: str) -> tuple[float, float]:
    total = n = 0.0
    for metric in hist.collect():
        for s in metric.samples:
            if s.labels.get("target") != target:
                continue
            if s.name.endswith("_sum"):
                total = s.value
            elif s.name.endswith("_count"):
                n = s.value
    return total, n
