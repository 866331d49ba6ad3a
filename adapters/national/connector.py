"""The national connector's jobs: pull what the nation issues, reconcile (对账), resync the
catalog, and the schedule that runs them on one node at a time.

Built per national system by the plugin's ``hub_startup`` (or by the CLI for one-off runs).
It talks to the nation through the system's :class:`~adapters.national.transport.
NationalTransport` (one signed session) and to the hub through ``hub.ingest_records`` and the
store.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.national.errors import ReconcileError
from adapters.national.simulator import day_digest
from adapters.national.transport import NationalTransport
from hub.errors import StateError

if TYPE_CHECKING:
    from apscheduler.events import JobExecutionEvent
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

    from hub.runtime import Hub

__all__ = [
    "CHINA_TZ",
    "DatasetReconciliation",
    "NationalAdapterOptions",
    "NationalConnector",
    "ReconcileError",
    "ReconcileReport",
    "ScheduleSettings",
    "cron_trigger",
]

log = logging.getLogger("jghub.national")

#: 对账 days are China Standard Time days.
CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "CST")


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_RANGE = re.compile(r"^(\*|[0-7](?:-[0-7])?)(?:/([1-9]\d*))?$")


def _crontab_weekdays(field: str) -> str:
    """The crontab weekday field (0 or 7 = Sunday) in APScheduler 3's terms, whose numbers
    start at Monday: numbers become names, ranges and steps lists of names."""
    if field == "*":
        return field
    out: list[str] = []
    for part in field.split(","):
        m = _DOW_RANGE.match(part)
        if m is None:  # names (mon-fri), or a syntax error APScheduler reports
            out.append(part)
            continue
        span, step = m.group(1), int(m.group(2) or 1)
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            first, last = (int(x) for x in span.split("-"))
        else:
            first = last = int(span)
            if m.group(2):  # "n/step" means n to the end of the week
                last = 6
        if first > last:
            raise ValueError(f"weekday range {part!r} runs backwards")
        out.extend(_WEEKDAYS[d % 7] for d in range(first, last + 1, step))
    return ",".join(dict.fromkeys(out))


def cron_trigger(expr: str) -> CronTrigger:
    """An APScheduler trigger from a crontab line in China time: five fields (minute hour
    day month weekday) or six with seconds first (second minute hour day month weekday).
    Weekdays count as in crontab: 0 and 7 are Sunday."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ValueError(
            f"{expr!r} has {len(fields)} fields; a crontab line has 5 (or 6 with seconds)"
        )
    second, minute, hour, day, month, weekday = fields
    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_crontab_weekdays(weekday),
        timezone=CHINA_TZ,
    )


class ScheduleSettings(BaseModel):
    """One scheduled job: a crontab line in China time, ``minute hour day month weekday``, or
    with seconds first (``*/10 * * * * *``: every ten seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str = Field(description="crontab expression, e.g. '*/5 * * * *' (6 fields: seconds)")
    misfire_grace_seconds: int = Field(
        300, ge=1, description="a run missed by less than this still runs (once: coalesced)"
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, v: str) -> str:
        try:
            cron_trigger(v)
        except ValueError as exc:
            raise ValueError(f"not a crontab expression: {exc}") from None
        return v


class NationalAdapterOptions(BaseModel):
    """``adapter_options`` of the national system (``adapter: national``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issued_dataset: str = Field("national_issued", description="dataset of pulled items")
    page_size: int = Field(100, ge=1, le=1000, description="issued items per pull request")
    schedules: dict[str, ScheduleSettings] = Field(
        default_factory=dict, description="jobs by name: pull, reconcile, resync"
    )
    lock_seconds: float = Field(600.0, gt=0, description="lease a running job holds")
    reconcile_resend: bool = Field(True, description="the daily job re-sends missing records")

    @field_validator("schedules")
    @classmethod
    def _known_jobs(cls, v: dict[str, ScheduleSettings]) -> dict[str, ScheduleSettings]:
        unknown = set(v) - {"pull", "reconcile", "resync"}
        if unknown:
            raise ValueError(f"unknown jobs {sorted(unknown)}; allowed: pull, reconcile, resync")
        return v


@dataclass
class DatasetReconciliation:
    """对账 of one national dataset for one day."""

    dataset: str
    ours_count: int
    ours_digest: str
    theirs_count: int
    theirs_digest: str
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    resent: int = 0
    clean_after: bool = False

    @property
    def clean(self) -> bool:
        return self.ours_count == self.theirs_count and self.ours_digest == self.theirs_digest


@dataclass
class ReconcileReport:
    """The result of :meth:`NationalConnector.reconcile`."""

    day: str
    datasets: list[DatasetReconciliation]

    @property
    def clean(self) -> bool:
        """True when both sides agree (before or after re-sending)."""
        return all(d.clean or d.clean_after for d in self.datasets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "clean": self.clean,
            "datasets": [{**asdict(d), "clean": d.clean} for d in self.datasets],
        }


class NationalConnector:
    """Pull, reconcile, resync and the schedule of one national system of ``hub``."""

    def __init__(self, hub: Hub, system: str, options: NationalAdapterOptions) -> None:
        target = hub.targets.get(system)
        if target is None or not isinstance(target.transport, NationalTransport):
            raise StateError(
                f"system {system!r} needs 'outbound: {{transport: national, ...}}'",
                field="outbound.transport",
            )
        self.hub = hub
        self.system = system
        self.options = options
        self.transport: NationalTransport = target.transport
        self._scheduler: AsyncIOScheduler | None = None
        #: per job name: runs on this node, runs skipped because another node held the
        #: lease, and runs APScheduler dropped as missed beyond ``misfire_grace_seconds``
        self.job_runs: dict[str, int] = {}
        self.job_skips: dict[str, int] = {}
        self.job_misses: dict[str, int] = {}

    # ------------------------------------------------------------------ receiving

    async def pull_once(self) -> int:
        """Pull issued items after the saved cursor until the feed is empty: each page is
        committed (``ingest_records``, keyed by 下发编号 so a re-read is a duplicate), then
        acknowledged to the nation, then the cursor saved. Returns items committed."""
        scope = f"national:{self.system}"
        total = 0
        while True:
            cursor = await self.hub.store.get_state(scope, "issued_cursor") or "0"
            res, doc = await self.transport.request(
                "GET", "/issued", query={"cursor": cursor, "limit": str(self.options.page_size)}
            )
            if not res.ok or not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
                raise StateError(
                    f"pulling issued items from {self.system} failed: {res.status} {res.detail}",
                    field="issued",
                )
            items = doc["items"]
            if not items:
                return total
            keys = [str(i.get("xfbh", "")) for i in items]
            result = await self.hub.ingest_records(
                self.system,
                items,
                dataset=self.options.issued_dataset,
                keys=keys,
                origin=f"national feed cursor {cursor}",
                single=False,
            )
            total += len(result.ids) - len(result.duplicates)
            taken = [keys[i] for i in result.indexes]
            if taken:
                ack, _ = await self.transport.request("POST", "/issued/ack", {"ids": taken})
                if not ack.ok:
                    raise StateError(
                        f"acknowledging {len(taken)} items to {self.system} failed: "
                        f"{ack.status} {ack.detail}",
                        field="issued/ack",
                    )
            await self.hub.store.put_state(scope, "issued_cursor", str(doc.get("nextCursor")))

    # ------------------------------------------------------------------ 对账

    async def reconcile(self, day: str, *, resend: bool = True) -> ReconcileReport:
        """Compare our ledger with the national side for ``day`` (YYYY-MM-DD) per dataset;
        with ``resend`` re-send exactly the records the nation lacks (or holds differently),
        then compare again. The report is kept in the store (``national:<system>:reconcile``)."""
        dt.date.fromisoformat(day)
        ledger = self.transport.ledger
        assert ledger is not None, "connector not attached"
        res, doc = await self.transport.request("GET", "/reconcile", query={"date": day})
        if not res.ok or not isinstance(doc, dict):
            raise StateError(
                f"reconciliation query failed: {res.status} {res.detail}", field="date"
            )
        theirs_all = doc.get("datasets", {})
        out: list[DatasetReconciliation] = []
        for route in self.transport.options.datasets.values():
            if route.kind != "behaviour" or route.path is None:
                continue
            ours = {r.record_id: r for r in await ledger.day(route.path, day)}
            theirs = theirs_all.get(route.path, {"count": 0, "digest": day_digest({})})
            rec = DatasetReconciliation(
                route.path,
                len(ours),
                day_digest({k: r.digest for k, r in ours.items()}),
                int(theirs.get("count", 0)),
                str(theirs.get("digest", "")),
            )
            if not rec.clean:
                res, ids = await self.transport.request(
                    "GET", f"/reconcile/{route.path}", query={"date": day}
                )
                held = {
                    str(r["jlid"]): str(r["zy"])
                    for r in (ids or {}).get("records", [])
                    if isinstance(r, dict)
                }
                rec.missing = [k for k, r in ours.items() if held.get(k) != r.digest]
                rec.extra = sorted(set(held) - set(ours))
                if resend and rec.missing:
                    rec.resent = await self._resend(route.path, [ours[k] for k in rec.missing])
                    _, doc2 = await self.transport.request("GET", "/reconcile", query={"date": day})
                    now = (doc2 or {}).get("datasets", {}).get(route.path, {})
                    rec.clean_after = (
                        now.get("count") == rec.ours_count and now.get("digest") == rec.ours_digest
                    )
            out.append(rec)
        report = ReconcileReport(day, out)
        await self.hub.store.put_state(
            f"national:{self.system}:reconcile", day, orjson.dumps(report.to_dict()).decode()
        )
        return report

    async def _resend(self, path: str, records: list[Any]) -> int:
        sent = 0
        step = self.transport.max_batch
        for i in range(0, len(records), step):
            chunk = records[i : i + step]
            res, per = await self.transport.upload(
                path, [(r.record_id, r.body) for r in chunk], f"reconcile-{uuid.uuid4()}"
            )
            if per is None:
                raise StateError(f"re-sending to {self.system} failed: {res.detail}", field=path)
            sent += sum(1 for r in per if isinstance(r, dict) and r.get("zt") == "1")
            for r in chunk:
                await self.hub.store.add_events(r.record_id, [_event(self.hub, self.system, path)])
        return sent

    # ------------------------------------------------------------------ catalog resync

    async def resync_catalog(self) -> dict[str, int]:
        """Rebuild the national view of the catalog from ours: every item whose national
        version or digest differs from our latest accepted one is replaced wholesale. Items
        only the nation holds are counted (``extra``), never deleted."""
        ledger = self.transport.ledger
        assert ledger is not None, "connector not attached"
        res, doc = await self.transport.request("GET", "/catalog/items")
        if not res.ok or not isinstance(doc, dict):
            raise StateError(f"reading the national catalog failed: {res.detail}", field="catalog")
        theirs = {str(i["sxbm"]): i for i in doc.get("items", [])}
        ours = await ledger.catalog()
        stale = [
            e.body
            for e in ours
            if e.code not in theirs
            or theirs[e.code].get("bbh") != e.version
            or theirs[e.code].get("zy") != e.digest
        ]
        replaced = 0
        if stale:
            res, answer = await self.transport.request("POST", "/catalog/resync", {"items": stale})
            if not res.ok or not isinstance(answer, dict):
                raise StateError(f"catalog resync failed: {res.detail}", field="catalog")
            replaced = sum(1 for r in answer.get("results", []) if r.get("code") == "0")
        ours_codes = {e.code for e in ours}
        return {
            "ours": len(ours),
            "replaced": replaced,
            "extra": len([c for c in theirs if c not in ours_codes]),
        }

    # ------------------------------------------------------------------ schedule

    async def run_job(self, name: str) -> bool:
        """Run job ``name`` if this node can take its lease (no other node runs it now);
        False when another node holds it."""
        store = self.hub.store
        lease = f"national:{self.system}:{name}"
        owner = self.hub.node_id
        if not await store.acquire_lease(lease, owner, self.options.lock_seconds):
            self.job_skips[name] = self.job_skips.get(name, 0) + 1
            log.info("job %s skipped: another node holds its lease", lease)
            return False
        try:
            await self._jobs()[name]()
            self.job_runs[name] = self.job_runs.get(name, 0) + 1
        finally:
            await store.release_lease(lease, owner)
        return True

    def _jobs(self) -> dict[str, Callable[[], Awaitable[Any]]]:
        async def reconcile_yesterday() -> None:
            day = (dt.datetime.now(CHINA_TZ).date() - dt.timedelta(days=1)).isoformat()
            report = await self.reconcile(day, resend=self.options.reconcile_resend)
            if not report.clean:
                log.warning("对账 %s for %s: differences remain", day, self.system)

        return {
            "pull": self.pull_once,
            "reconcile": reconcile_yesterday,
            "resync": self.resync_catalog,
        }

    def start_schedule(self) -> None:
        """Start APScheduler with the configured jobs (cron, misfire grace, coalesced, one
        instance at a time; across nodes the store lease keeps it to one)."""
        if not self.options.schedules:
            return
        from apscheduler.events import EVENT_JOB_MISSED
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        sched = AsyncIOScheduler(timezone=CHINA_TZ)
        sched.add_listener(self._missed, EVENT_JOB_MISSED)
        for name, s in self.options.schedules.items():
            sched.add_job(
                self._guarded,
                cron_trigger(s.cron),
                args=[name],
                id=f"national:{self.system}:{name}",
                misfire_grace_time=s.misfire_grace_seconds,
                coalesce=True,
                max_instances=1,
            )
        sched.start()
        self._scheduler = sched

    @property
    def scheduler(self) -> AsyncIOScheduler | None:
        """The running APScheduler (None when no schedule runs)."""
        return self._scheduler

    def _missed(self, event: JobExecutionEvent) -> None:
        name = str(event.job_id).rsplit(":", 1)[-1]
        self.job_misses[name] = self.job_misses.get(name, 0) + 1
        log.warning(
            "national job %s missed its run at %s by more than its misfire grace: skipped",
            event.job_id,
            event.scheduled_run_time,
        )

    def scheduled_jobs(self) -> list[str]:
        """Ids of the scheduled jobs (empty when no schedule runs)."""
        return [j.id for j in self._scheduler.get_jobs()] if self._scheduler else []

    async def _guarded(self, name: str) -> None:
        try:
            await self.run_job(name)
        except Exception:
            log.exception("national job %s of %s failed", name, self.system)

    def stop_schedule(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None


def _event(hub: Hub, system: str, path: str) -> Any:
    from hub.store import TraceEvent

    return TraceEvent(hub.clock(), "reconcile", system, detail=f"re-sent to {path} by 对账")
