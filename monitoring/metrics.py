"""Prometheus metrics of one hub, on its own :class:`CollectorRegistry` (no globals).

Counters and histograms are fed by the observer hooks (``hub_messages_accepted``,
``hub_records_rejected``, ``hub_delivery_*``); queue depths, circuit states, target health and
source failures are read at scrape time by :class:`_StateCollector`. Every name is listed in
:data:`METRICS` and documented in ``docs/monitoring.md``; labels are low-cardinality only
(configured system, target and dataset names, error codes, fixed state names; never message
ids).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub import __version__
from hub.events import AcceptedMessage, DeliveryEvent
from monitoring.relay import CounterValues

#: the dispatcher's outcome kinds (``Hub.notify_deliveries``) → the ``outcome`` label
_OUTCOMES = {"ok": "succeeded", "retry": "retried", "dead": "dead_lettered"}

if TYPE_CHECKING:
    from monitoring.monitor import Monitor

__all__ = ["METRICS", "SIGNATURE_CODES", "HubMetrics", "MetricDoc"]


@dataclass(frozen=True, slots=True)
class MetricDoc:
    """One metric of the catalogue: its name, type, labels, meaning, and whether it is
    emitted today (``False``: designed now, emitted when its feature lands)."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str
    emitted: bool = True


#: codes raised by hub.guard's inbound check (RFC 9421 signature, freshness, nonce, TLS)
SIGNATURE_CODES = frozenset({"E_SIGNATURE", "E_EXPIRED", "E_REPLAY", "E_CERT"})

#: latency buckets in seconds: 1 ms .. 10 min (end-to-end includes retries)
_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600)

METRICS: tuple[MetricDoc, ...] = (
    MetricDoc("jghub_build_info", "gauge", ("version", "node"), "always 1; the hub's version"),
    MetricDoc(
        "jghub_records_accepted_total",
        "counter",
        ("system", "dataset"),
        "records durably committed (duplicates not counted)",
    ),
    MetricDoc(
        "jghub_records_duplicate_total",
        "counter",
        ("system", "dataset"),
        "records re-sent under a known idempotency / business key (acknowledged, not stored)",
    ),
    MetricDoc(
        "jghub_records_rejected_total",
        "counter",
        ("system", "dataset", "code"),
        "records or whole requests refused, by stable error code (dataset '' when unknown)",
    ),
    MetricDoc(
        "jghub_records_quarantined_total",
        "counter",
        ("system", "dataset"),
        "refused records newly kept in the quarantine (隔离区)",
    ),
    MetricDoc(
        "jghub_signature_failures_total",
        "counter",
        ("system", "code"),
        "inbound requests refused by hub.guard: signature, expiry, replay, certificate",
    ),
    MetricDoc(
        "jghub_deliveries_total",
        "counter",
        ("target", "outcome"),
        "delivery attempts by outcome: succeeded, retried, dead_lettered",
    ),
    MetricDoc(
        "jghub_delivery_attempt_seconds",
        "histogram",
        ("target",),
        "duration of one delivery request to the target (per attempt)",
    ),
    MetricDoc(
        "jghub_end_to_end_seconds",
        "histogram",
        ("target",),
        "from acceptance by the hub to acknowledgement by the target (retries included)",
    ),
    MetricDoc(
        "jghub_queue_depth",
        "gauge",
        ("target", "state"),
        "deliveries waiting (pending) or being sent (inflight)",
    ),
    MetricDoc(
        "jghub_queue_oldest_due_age_seconds",
        "gauge",
        ("target",),
        "how long the oldest due delivery has waited past its due time (0: none due)",
    ),
    MetricDoc("jghub_dead_letters", "gauge", ("target",), "dead letters awaiting an operator"),
    MetricDoc(
        "jghub_circuit_state",
        "gauge",
        ("target", "state"),
        "1 for the breaker's current state (closed, open, half-open), else 0",
    ),
    MetricDoc("jghub_circuit_opened_total", "counter", ("target",), "times the circuit opened"),
    MetricDoc(
        "jghub_target_health",
        "gauge",
        ("target", "state"),
        "1 for the target's current health (up, degraded, down, circuit_open), else 0",
    ),
    MetricDoc(
        "jghub_adapter_up",
        "gauge",
        ("system", "reporter"),
        "1 when hub_adapter_health says up (or degraded), 0 when down",
    ),
    MetricDoc(
        "jghub_source_failures",
        "gauge",
        ("system", "kind"),
        "failures in a row of an inbound source (SourceRunner.failures; 0 once it ingests)",
    ),
    MetricDoc("jghub_store_up", "gauge", (), "1 when the store answers and takes writes"),
    MetricDoc("jghub_dispatcher_running", "gauge", (), "1 when the dispatcher runs"),
    MetricDoc(
        "jghub_ingest_workers",
        "gauge",
        (),
        "extra ingest processes (serve --workers) whose counts this node's /metrics includes",
    ),
    MetricDoc(
        "jghub_certificate_expiry_days",
        "gauge",
        ("certificate", "subject", "use", "system"),
        "days until a certificate the hub knows expires: certificate = first 16 hex of its "
        "SHA-256, use = listen | client_ca | outbound_ca | outbound_client, system = the "
        "target of an outbound certificate ('' for the listener)",
    ),
    MetricDoc(
        "jghub_key_expiry_days",
        "gauge",
        ("key_id",),
        "days until a key of the keystore ends (valid_until); keys without an end are absent",
    ),
    MetricDoc(
        "jghub_credit_disclosures_overdue_total",
        "counter",
        ("target", "dataset"),
        "双公示 records (licences, penalties) that reached the credit platform more than 7 "
        "working days after their decision (公示超期); counted by the credit adapter's transport",
    ),
    MetricDoc(
        "jghub_credit_disclosures_waiting_overdue",
        "gauge",
        ("target", "dataset"),
        "双公示 records still waiting for the credit platform (queued, in retry or dead-lettered) "
        "whose 7-working-day disclosure deadline has passed, at the last deadline check",
    ),
    MetricDoc(
        "jghub_credit_disclosures_waiting_due_soon",
        "gauge",
        ("target", "dataset"),
        "双公示 records still waiting for the credit platform whose disclosure deadline is today "
        "or the next working day, at the last deadline check",
    ),
    # 12345 hotline (adapters/12345): set by its deadline watch on this registry
    MetricDoc(
        "jghub_12345_orders_overdue",
        "gauge",
        ("department",),
        "12345 hotline work orders (工单) past their signing (签收) or answer (答复) deadline, "
        "by department code, at the last deadline check",
    ),
    MetricDoc(
        "jghub_12345_orders_open",
        "gauge",
        ("department",),
        "12345 work orders not yet closed (办结), by department code",
    ),
    MetricDoc(
        "jghub_12345_orders_due_soon",
        "gauge",
        ("department",),
        "12345 work orders within the near-deadline window (临期) of their answer deadline",
    ),
    MetricDoc(
        "jghub_12345_supervisions_total",
        "counter",
        ("department", "kind"),
        "督办 (supervision) events the deadline watch emitted: sign_overdue, answer_overdue, "
        "answer_due_soon",
    ),
    # data sharing (hub/sharing): read from the store at scrape time
    MetricDoc(
        "jghub_sharing_applications_overdue",
        "gauge",
        ("department",),
        "data-sharing applications (共享申请) still open past the provider's deadline "
        "(sharing.review_workdays working days), by provider department",
    ),
)


class HubMetrics:
    """The metrics of one hub: counters fed by hooks, state read at scrape time."""

    def __init__(self, monitor: Monitor | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # ingest counters: not registered directly, _IngestCollector adds the workers' counts
        self.accepted = Counter(
            "jghub_records_accepted",
            _help("jghub_records_accepted_total"),
            ("system", "dataset"),
            registry=None,
        )
        self.duplicate = Counter(
            "jghub_records_duplicate",
            _help("jghub_records_duplicate_total"),
            ("system", "dataset"),
            registry=None,
        )
        self.rejected = Counter(
            "jghub_records_rejected",
            _help("jghub_records_rejected_total"),
            ("system", "dataset", "code"),
            registry=None,
        )
        self.quarantined = Counter(
            "jghub_records_quarantined",
            _help("jghub_records_quarantined_total"),
            ("system", "dataset"),
            registry=None,
        )
        self.signature_failures = Counter(
            "jghub_signature_failures",
            _help("jghub_signature_failures_total"),
            ("system", "code"),
            registry=None,
        )
        self.deliveries = Counter(
            "jghub_deliveries", _help("jghub_deliveries_total"), ("target", "outcome"), registry=r
        )
        self.attempt_seconds = Histogram(
            "jghub_delivery_attempt_seconds",
            _help("jghub_delivery_attempt_seconds"),
            ("target",),
            buckets=_BUCKETS,
            registry=r,
        )
        self.e2e_seconds = Histogram(
            "jghub_end_to_end_seconds",
            _help("jghub_end_to_end_seconds"),
            ("target",),
            buckets=_BUCKETS,
            registry=r,
        )
        self._delivery_series: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self._accepted_series: dict[tuple[bool, str, str], Any] = {}
        #: counters of the node's ingest worker processes (``serve --workers``), set by the
        #: monitor from the metrics relay before a scrape
        self.remote: CounterValues = {}
        r.register(_IngestCollector(self))
        if monitor is not None:
            r.register(_StateCollector(monitor))

    @property
    def ingest_counters(self) -> tuple[Counter, ...]:
        """The counters an ingest worker process also counts (merged across processes)."""
        return (
            self.accepted,
            self.duplicate,
            self.rejected,
            self.quarantined,
            self.signature_failures,
        )

    def local_counts(self) -> CounterValues:
        """This process's ingest counters: (name, label values) -> value."""
        out: CounterValues = {}
        for c in self.ingest_counters:
            for metric in c.collect():
                for smp in metric.samples:
                    if smp.name.endswith("_total"):
                        out[(metric.name, tuple(smp.labels.values()))] = float(smp.value)
        return out

    def totals(self, counter: Counter) -> dict[tuple[str, ...], float]:
        """One ingest counter's values by label values, this process and the workers."""
        out: dict[tuple[str, ...], float] = {}
        for (name, labels), v in self.local_counts().items():
            if name == counter._name:
                out[labels] = out.get(labels, 0.0) + v
        for (name, labels), v in self.remote.items():
            if name == counter._name:
                out[labels] = out.get(labels, 0.0) + v
        return out

    # ------------------------------------------------------------------ fed by hooks

    def on_accepted(self, messages: Sequence[AcceptedMessage]) -> None:
        # counted per (kind, source, dataset) and each labelled series looked up once: a batch
        # of 1,000 records is one or two inc() calls instead of 1,000 labels() lookups
        counts: dict[tuple[bool, str, str], int] = {}
        for m in messages:
            key = (m.duplicate, m.source, m.dataset)
            counts[key] = counts.get(key, 0) + 1
        for (duplicate, source, dataset), n in counts.items():
            series = self._accepted_series.get((duplicate, source, dataset))
            if series is None:
                series = self._accepted_series[(duplicate, source, dataset)] = (
                    self.duplicate if duplicate else self.accepted
                ).labels(source, dataset)
            series.inc(n)

    def on_rejected(
        self, system: str, dataset: str | None, codes: Sequence[str], quarantined: int
    ) -> None:
        for code in codes:
            self.rejected.labels(system, dataset or "", code).inc()
            if code in SIGNATURE_CODES:
                self.signature_failures.labels(system, code).inc()
        if quarantined:
            self.quarantined.labels(system, dataset or "").inc(quarantined)

    def on_deliveries(
        self, events: Sequence[tuple[str, DeliveryEvent, float | str]], now: float
    ) -> None:
        """Outcomes settled together (``ok``, ``retry``, ``dead`` as the dispatcher names
        them): the same values as :meth:`on_delivery` for each, with one counter increment
        per (target, outcome) for them instead of one per delivery."""
        counts: dict[tuple[str, str], tuple[Any, list[int]]] = {}
        attempts: dict[str, tuple[Any, list[float]]] = {}
        e2e: dict[str, tuple[Any, list[float]]] = {}
        for kind, event, _extra in events:
            outcome = _OUTCOMES[kind]
            target = event.target
            got = counts.get((target, outcome))
            if got is None:
                series = self._series(target, outcome)
                got = counts[(target, outcome)] = (series, [0])
            series = got[0]
            got[1][0] += 1
            if event.latency_ms:
                attempts.setdefault(target, (series[1], []))[1].append(event.latency_ms / 1000.0)
            if outcome == "succeeded" and event.accepted_at is not None:
                e2e.setdefault(target, (series[2], []))[1].append(max(0.0, now - event.accepted_at))
        for series, n in counts.values():
            series[0].inc(n[0])
        for child, values in attempts.values():
            observe_all(child, values)
        for child, values in e2e.values():
            observe_all(child, values)

    def _series(self, target: str, outcome: str) -> tuple[Any, Any, Any]:
        """The labelled series of (target, outcome), looked up once (``labels()`` costs more
        than ``inc()`` and ``observe()`` together)."""
        series = self._delivery_series.get((target, outcome))
        if series is None:
            series = self._delivery_series[(target, outcome)] = (
                self.deliveries.labels(target, outcome),
                self.attempt_seconds.labels(target),
                self.e2e_seconds.labels(target),
            )
        return series

    def on_delivery(self, outcome: str, event: DeliveryEvent, now: float) -> None:
        series = self._series(event.target, outcome)
        series[0].inc()
        if event.latency_ms:
            series[1].observe(event.latency_ms / 1000.0)
        if outcome == "succeeded" and event.accepted_at is not None:
            series[2].observe(max(0.0, now - event.accepted_at))

    def prepare_target(self, target: str) -> None:
        """Create a target's series at zero, so rates and alerts see it before its first
        delivery."""
        for outcome in ("succeeded", "retried", "dead_lettered"):
            self.deliveries.labels(target, outcome)
        self.attempt_seconds.labels(target)
        self.e2e_seconds.labels(target)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return bytes(generate_latest(self.registry))


def observe_all(histogram: Any, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for each of ``values``, with one update per bucket and one of
    the sum for all of them (a batch of 500 deliveries: a handful of locked increments instead
    of a thousand). The buckets and the count are those of one ``observe`` each; the sum is the
    same total (added once, so it may differ from 500 additions in the last bits of the
    float). A histogram without prometheus_client's known internals is fed one by one."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if (
        not isinstance(bounds, list)
        or not isinstance(buckets, list)
        or len(buckets) != len(bounds)
        or not bounds
        or bounds[-1] != math.inf
        or total is None
    ):
        for v in values:
            histogram.observe(v)
        return
    per_bucket: dict[int, int] = {}
    added = 0.0
    for v in values:
        if v != v:  # NaN: observe() counts it in no bucket; so does this
            histogram.observe(v)
            continue
        i = bisect.bisect_left(bounds, v)  # the first bound >= v, as observe() finds it
        per_bucket[i] = per_bucket.get(i, 0) + 1
        added += v
    total.inc(added)
    for i, n in per_bucket.items():
        buckets[i].inc(n)


def _help(name: str) -> str:
    for m in METRICS:
        if m.name == name:
            return m.help
    raise KeyError(name)


def _gauge(name: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, _help(name), labels=list(labels))


class _IngestCollector(Collector):
    """The ingest counters with the workers' counts added (one family per counter)."""

    def __init__(self, metrics: HubMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.core import CounterMetricFamily

        for counter in self.metrics.ingest_counters:
            fam = CounterMetricFamily(
                counter._name, counter._documentation, labels=list(counter._labelnames)
            )
            for labels, v in sorted(self.metrics.totals(counter).items()):
                fam.add_metric(list(labels), v)
            yield fam


class _StateCollector(Collector):
    """Reads the monitor's last snapshot of the store and the live dispatcher at scrape
    time (the snapshot is refreshed by :meth:`Monitor.refresh` before every scrape)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def describe(self) -> Iterable[Metric]:
        return []  # state metrics vary with the configuration; nothing to check up front

    def collect(self) -> Iterable[Metric]:
        mon = self.monitor
        hub = mon.hub
        snap = mon.snapshot
        info = _gauge("jghub_build_info", ("version", "node"))
        info.add_metric([__version__, hub.node_id], 1)
        yield info
        depth = _gauge("jghub_queue_depth", ("target", "state"))
        age = _gauge("jghub_queue_oldest_due_age_seconds", ("target",))
        dead = _gauge("jghub_dead_letters", ("target",))
        circuit = _gauge("jghub_circuit_state", ("target", "state"))
        opened = GaugeMetricFamily(
            "jghub_circuit_opened", _help("jghub_circuit_opened_total"), labels=["target"]
        )
        health = _gauge("jghub_target_health", ("target", "state"))
        for name, t in hub.targets.items():
            q = snap.queues.get(name)
            depth.add_metric([name, "pending"], q.pending if q else 0)
            depth.add_metric([name, "inflight"], q.inflight if q else 0)
            age.add_metric([name], q.oldest_due_age(snap.at) if q else 0.0)
            dead.add_metric([name], q.dead if q else 0)
            state = t.breaker.state.value
            for s in ("closed", "open", "half-open"):
                circuit.add_metric([name, s], 1.0 if s == state else 0.0)
            opened.add_metric([name], t.breaker.opened_count)
            now_health = mon.health.state(name)
            for s in ("up", "degraded", "down", "circuit_open"):
                health.add_metric([name, s], 1.0 if s == now_health else 0.0)
        yield from (depth, age, dead, circuit, health)
        yield _as_counter(opened, "jghub_circuit_opened")
        adapters = _gauge("jghub_adapter_up", ("system", "reporter"))
        for h in mon.health.adapters.values():
            if h.status != "unknown":
                adapters.add_metric([h.system, h.source], 0.0 if h.status == "down" else 1.0)
        yield adapters
        src = _gauge("jghub_source_failures", ("system", "kind"))
        for runner in getattr(hub, "_sources", ()):
            src.add_metric([runner.system, runner.kind], runner.failures)
        yield src
        store_up = _gauge("jghub_store_up")
        store_up.add_metric([], 1.0 if snap.store_ok else 0.0)
        yield store_up
        disp = _gauge("jghub_dispatcher_running")
        disp.add_metric([], 1.0 if hub.dispatcher.running else 0.0)
        yield disp
        workers = _gauge("jghub_ingest_workers")
        workers.add_metric([], len(mon.node_relay.workers) if mon.node_relay else 0)
        yield workers
        certs = _gauge("jghub_certificate_expiry_days", ("certificate", "subject", "use", "system"))
        for cert, days in mon.certificate_days():
            certs.add_metric([cert.fingerprint, cert.subject, cert.use, cert.system], days)
        yield certs
        overdue = _gauge("jghub_sharing_applications_overdue", ("department",))
        for dept, n in sorted(snap.sharing_overdue.items()):
            overdue.add_metric([dept], n)
        yield overdue
        keys = _gauge("jghub_key_expiry_days", ("key_id",))
        for key_id, days in mon.key_days().items():
            keys.add_metric([key_id], days)
        yield keys


def _as_counter(g: GaugeMetricFamily, name: str) -> Metric:
    """A counter family with the gauge's samples (the breaker keeps the count itself)."""
    from prometheus_client.core import CounterMetricFamily

    c = CounterMetricFamily(name, g.documentation, labels=["target"])
    for s in g.samples:
        c.add_metric([s.labels["target"]], s.value)
    return c


def days_until(when: dt.datetime | float) -> float:
    """Days from now until ``when`` (negative once past)."""
    ts = when.timestamp() if isinstance(when, dt.datetime) else float(when)
    return (ts - time.time()) / 86400.0
