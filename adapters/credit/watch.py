"""The disclosure deadline watch: 双公示 records still waiting for the credit platform.

The ``credit`` transport flags an overdue disclosure (公示超期) only when it is finally
delivered. While the platform is down, or records sit in the queue, in retry or among the dead
letters, the watch tells ops that their deadline (7 working days after the decision, see
:mod:`adapters.credit.disclosure`) has passed or is about to:

* every ``deadline_check_interval`` seconds (default 300) it reads the target's undelivered
  deliveries (:meth:`hub.store.Store.undelivered`: pending, in flight and dead, oldest first,
  at most ``deadline_check_limit``), maps each record as the dispatcher would (field
  decryption, the route's transform, the target's outbound mapping) and reads its decision
  date from ``decision_fields``;
* it sets the gauges ``jghub_credit_disclosures_waiting_overdue{target,dataset}`` (deadline
  passed) and ``jghub_credit_disclosures_waiting_due_soon{target,dataset}`` (the deadline is
  today or the next working day) to the counts of this check, so they fall back to 0 once
  the records are delivered;
* it logs a WARNING per dataset with overdue records (target, dataset, count, the oldest
  decision date), and the counts appear per target in ``GET /readyz`` (detail, never a
  problem).

The watch runs as a :class:`hub.jobs.SingletonJob` per ``credit`` target on nodes only (not in
the extra ingest processes), on one node of a shared store (its lease).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from adapters.credit.disclosure import disclosure_deadline, parse_day
from hub.dispatcher import render_outbound

__all__ = ["DisclosureWatch", "WaitingReport", "waiting_gauges"]

log = logging.getLogger("jghub.credit.deadlines")

#: hub attribute holding the watches of a started hub, by target name
_ATTR = "credit_disclosure_watches"

OVERDUE = "jghub_credit_disclosures_waiting_overdue"
DUE_SOON = "jghub_credit_disclosures_waiting_due_soon"


def waiting_gauges(hub: Any) -> tuple[Any, Any] | None:
    """The (overdue, due soon) gauges in the hub's monitoring registry (one pair per hub,
    created on first use), or None when the monitoring plugin is not loaded."""
    for plugin in hub.pm.get_plugins():
        metrics = getattr(plugin, "metrics", None)
        registry = getattr(metrics, "registry", None)
        if metrics is None or registry is None:
            continue
        if getattr(plugin, "hub", hub) is not hub:
            continue
        pair = getattr(metrics, "credit_waiting", None)
        if pair is None:
            from prometheus_client import Gauge

            from monitoring.metrics import METRICS

            docs = {m.name: m for m in METRICS}
            pair = tuple(
                Gauge(name, docs[name].help, docs[name].labels, registry=registry)
                for name in (OVERDUE, DUE_SOON)
            )
            metrics.credit_waiting = pair
        return pair
    return None


@dataclass
class WaitingReport:
    """What one check found for one target: counts by dataset, the oldest overdue decision."""

    overdue: dict[str, int] = field(default_factory=dict)
    due_soon: dict[str, int] = field(default_factory=dict)
    oldest_overdue: dict[str, dt.date] = field(default_factory=dict)
    #: undelivered deliveries read (at most the limit)
    read: int = 0
    #: records whose decision date could not be read (unmappable, missing, malformed)
    unreadable: int = 0
    checked_at: dt.date | None = None


class DisclosureWatch:
    """Checks the waiting disclosures of one ``credit`` target; :meth:`check_once` is the job."""

    def __init__(self, hub: Any, target: str) -> None:
        self.hub = hub
        self.target = target
        rt = hub.targets[target]
        self.options = rt.transport.credit
        self.calendar = hub.config.work_calendar()
        self.gauges = waiting_gauges(hub)
        self.last = WaitingReport()
        self.job: Any = None
        if self.gauges is not None:
            for ds in self.options.decision_fields:
                for gauge in self.gauges:
                    gauge.labels(target, ds).set(0)  # the series exist at zero

    def start(self) -> None:
        from hub.jobs import SingletonJob

        self.job = SingletonJob(
            self.hub.store,
            f"credit-deadlines:{self.target}",
            self.hub.node_id,
            self.options.deadline_check_interval,
            self.check_once,
        )
        self.job.start()

    async def stop(self) -> None:
        if self.job is not None:
            await self.job.stop()
            self.job = None

    def _decision_field(self, fields: dict[str, str], w: Any) -> Any:
        """The mapped record's decision date field, as the dispatcher would send it."""
        hub, rt = self.hub, self.hub.targets[self.target]
        body = render_outbound(
            w.payload,
            hub.outbound_route(w.route, self.target).transform,
            rt.mappings.get(w.dataset),
            hub.guard.ciphers.get(w.dataset),
            rt.adapter,
        )
        return body.get(fields[w.dataset]) if isinstance(body, dict) else None

    async def check_once(self) -> WaitingReport:
        """One check: count the waiting records past or near their deadline, set the gauges,
        warn about overdue ones. Returns what it found."""
        fields = self.options.decision_fields
        report = WaitingReport()
        today = dt.datetime.fromtimestamp(self.hub.clock(), self.calendar.tz).date()
        report.checked_at = today
        soon = self.calendar.add_workdays(today, 1)
        waiting = await self.hub.store.undelivered(self.target, self.options.deadline_check_limit)
        report.read = len(waiting)
        for w in waiting:
            if w.dataset not in fields:
                continue
            try:
                decided = parse_day(self._decision_field(fields, w))
            except Exception:  # a record the mapping cannot take: its delivery says why
                decided = None
            if decided is None:
                report.unreadable += 1
                continue
            deadline = disclosure_deadline(self.calendar, decided, self.options.disclosure_workdays)
            if today > deadline:
                report.overdue[w.dataset] = report.overdue.get(w.dataset, 0) + 1
                oldest = report.oldest_overdue.get(w.dataset)
                if oldest is None or decided < oldest:
                    report.oldest_overdue[w.dataset] = decided
            elif deadline <= soon:
                report.due_soon[w.dataset] = report.due_soon.get(w.dataset, 0) + 1
        if self.gauges is not None:
            overdue, due_soon = self.gauges
            for ds in sorted(set(fields) | set(report.overdue) | set(report.due_soon)):
                overdue.labels(self.target, ds).set(report.overdue.get(ds, 0))
                due_soon.labels(self.target, ds).set(report.due_soon.get(ds, 0))
        for ds, n in sorted(report.overdue.items()):
            log.warning(
                "公示超期 (disclosure overdue) still waiting: target %s dataset %s: %d record(s) "
                "not yet delivered past their %d-working-day deadline, oldest decided %s",
                self.target,
                ds,
                n,
                self.options.disclosure_workdays,
                report.oldest_overdue[ds],
            )
        if report.read >= self.options.deadline_check_limit:
            log.warning(
                "credit deadline check of %s read only the oldest %d undelivered deliveries "
                "(deadline_check_limit)",
                self.target,
                report.read,
            )
        self.last = report
        return report

    def readiness(self) -> dict[str, int]:
        """The last check's totals, for ``GET /readyz`` (detail, not a problem)."""
        return {
            "disclosures_waiting_overdue": sum(self.last.overdue.values()),
            "disclosures_waiting_due_soon": sum(self.last.due_soon.values()),
        }


def watches(hub: Any) -> dict[str, DisclosureWatch]:
    """The disclosure watches of a started hub, by target."""
    found: dict[str, DisclosureWatch] = getattr(hub, _ATTR, {})
    return found


def build_watches(hub: Any) -> dict[str, DisclosureWatch]:
    """A watch per ``credit`` target with ``decision_fields`` (kept on the hub)."""
    from adapters.credit.transport import CreditTransport

    out = {
        name: DisclosureWatch(hub, name)
        for name, t in hub.targets.items()
        if isinstance(t.transport, CreditTransport) and t.transport.credit.decision_fields
    }
    setattr(hub, _ATTR, out)
    return out
