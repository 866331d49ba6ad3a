"""Per-grant daily quotas (配额): requests per day and records per day.

Public interface::

    Quota(requests_per_day: int | None = None, records_per_day: int | None = None)
    CounterStore (Protocol)                  # durable counters, supplied by the store
        async add(grant_id, day, requests, records) -> Usage   # atomic add, returns totals
        async get(grant_id, day) -> Usage
    MemoryCounterStore()                     # the in-memory implementation (tests, one node)
    QuotaMeter(counters, timezone="Asia/Shanghai" | ZoneInfo | CalendarSettings)
        .day_of(now) -> date                 # the calendar day (日) of ``now`` in the zone
        .retry_after(now) -> int             # whole seconds until the next day starts there
        async .admit(grant_id, quota, want_records, now) -> Admission
            # counts one request and reserves up to ``want_records`` records; QuotaExceeded
            # (E_QUOTA, 429, ``retry_after``) when the requests or records are used up
        async .settle(admission, used_records) -> Usage   # gives back what was not served
        async .usage(grant_id, now) -> Usage
    QuotaExceeded(HubError): code E_QUOTA, status 429, .retry_after (the HTTP Retry-After)

How a query uses it: ``a = await meter.admit(grant, quota, want_records=limit, now=now)``,
serve at most ``a.records_allowed`` records (a page smaller than asked for when the day's
records are nearly used up), then ``await meter.settle(a, served)``. The reservation is
taken before any record is read, so concurrent requests (several nodes) cannot together
exceed the records quota; a crash between admit and settle only ever under-serves. A bulk
download admits with ``want_records`` = the records it may stream and stops there.

The day boundary is midnight in the calendar's time zone (``calendar.timezone`` in hub.yaml,
Asia/Shanghai by default), not UTC: a requester in 杭州 gets a fresh quota at 00:00 local time.
A refused request still counts against the requests counter (the counter is added to
atomically and then compared), which is harmless: the day's requests are already used up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

from hub.errors import HubError
from hub.workdays import CalendarSettings

__all__ = [
    "Admission",
    "CounterStore",
    "MemoryCounterStore",
    "Quota",
    "QuotaExceeded",
    "QuotaMeter",
    "Usage",
]


class QuotaExceeded(HubError):
    """The grant's requests or records for the day are used up; ``retry_after`` seconds until
    the next day in the calendar's time zone (the HTTP ``Retry-After`` header)."""

    code = "E_QUOTA"
    status = 429
    title = "Quota exceeded"

    def __init__(self, message: str, *, retry_after: int, field: str | None = None) -> None:
        super().__init__(message, field=field, retry_after=retry_after)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Quota:
    """A grant's daily limits; ``None`` means unlimited."""

    requests_per_day: int | None = None
    records_per_day: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_day", "records_per_day"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ValueError(f"{name} must be a whole number >= 0 or None, not {v!r}")


@dataclass(frozen=True, slots=True)
class Usage:
    """What a grant used on one day."""

    requests: int = 0
    records: int = 0


@dataclass(frozen=True, slots=True)
class Admission:
    """One admitted request: the day it counts on and the records it may serve."""

    grant_id: str
    day: dt.date
    records_allowed: int | None  # None: no records quota
    usage: Usage  # totals after admission (the reservation included)


class CounterStore(Protocol):
    """Durable per-grant, per-day counters. ``add`` must be atomic (one
    ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` in SQL) and may be given negative
    amounts (to return an unused reservation)."""

    async def add(self, grant_id: str, day: dt.date, requests: int, records: int) -> Usage: ...

    async def get(self, grant_id: str, day: dt.date) -> Usage: ...


class MemoryCounterStore:
    """Counters in a dict (one process; tests). Old days are dropped as new ones come."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, dt.date], Usage] = {}
        self._lock = asyncio.Lock()

    async def add(self, grant_id: str, day: dt.date, requests: int, records: int) -> Usage:
        async with self._lock:
            old = self._counts.get((grant_id, day), Usage())
            new = Usage(old.requests + requests, old.records + records)
            self._counts[(grant_id, day)] = new
            stale = [k for k in self._counts if k[1] < day - dt.timedelta(days=2)]
            for k in stale:
                del self._counts[k]
            return new

    async def get(self, grant_id: str, day: dt.date) -> Usage:
        return self._counts.get((grant_id, day), Usage())


def _zone(tz: str | ZoneInfo | CalendarSettings) -> ZoneInfo:
    if isinstance(tz, CalendarSettings):
        return ZoneInfo(tz.timezone)
    if isinstance(tz, ZoneInfo):
        return tz
    return ZoneInfo(tz)


class QuotaMeter:
    """Applies :class:`Quota` limits over a :class:`CounterStore`, one counter per grant and
    calendar day."""

    def __init__(
        self, counters: CounterStore, timezone: str | ZoneInfo | CalendarSettings = "Asia/Shanghai"
    ) -> None:
        self.counters = counters
        self.zone = _zone(timezone)

    @staticmethod
    def _aware(now: dt.datetime) -> dt.datetime:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now

    def day_of(self, now: dt.datetime) -> dt.date:
        """The calendar day ``now`` falls on in the meter's time zone."""
        return self._aware(now).astimezone(self.zone).date()

    def retry_after(self, now: dt.datetime) -> int:
        """Whole seconds (at least 1) until the next day begins in the meter's time zone."""
        local = self._aware(now).astimezone(self.zone)
        midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), self.zone)
        # in UTC: subtracting two times of one zone ignores a DST change between them
        gap = midnight.astimezone(dt.UTC) - local.astimezone(dt.UTC)
        return max(1, math.ceil(gap.total_seconds()))

    async def usage(self, grant_id: str, now: dt.datetime) -> Usage:
        return await self.counters.get(grant_id, self.day_of(now))

    async def admit(
        self, grant_id: str, quota: Quota, want_records: int, now: dt.datetime
    ) -> Admission:
        """Count one request for ``grant_id`` today and reserve up to ``want_records``
        records; raise :class:`QuotaExceeded` when the day's requests are used up or no
        record is left."""
        if want_records < 0:
            raise ValueError("want_records must be >= 0")
        day = self.day_of(now)
        want = want_records if quota.records_per_day is not None else 0
        total = await self.counters.add(grant_id, day, 1, want)
        limit = quota.requests_per_day
        if limit is not None and total.requests > limit:
            total = await self.counters.add(grant_id, day, 0, -want)
            raise QuotaExceeded(
                f"grant {grant_id}: the {limit} requests per day are used up "
                f"({self.day_of(now).isoformat()})",
                retry_after=self.retry_after(now),
                field="requests_per_day",
            )
        if quota.records_per_day is None:
            return Admission(grant_id, day, None, total)
        over = total.records - quota.records_per_day
        allowed = want - max(0, over)
        if allowed <= 0 and want_records > 0:
            total = await self.counters.add(grant_id, day, 0, -want)
            raise QuotaExceeded(
                f"grant {grant_id}: the {quota.records_per_day} records per day are used up "
                f"({day.isoformat()})",
                retry_after=self.retry_after(now),
                field="records_per_day",
            )
        allowed = max(0, allowed)
        if allowed < want:
            total = await self.counters.add(grant_id, day, 0, allowed - want)
        return Admission(grant_id, day, allowed, total)

    async def settle(self, admission: Admission, used_records: int) -> Usage:
        """Give back the reserved records that were not served (``used_records`` is what the
        response actually held; it may not exceed the reservation)."""
        if admission.records_allowed is None:
            return await self.counters.get(admission.grant_id, admission.day)
        if not 0 <= used_records <= admission.records_allowed:
            raise ValueError(
                f"served {used_records} records but {admission.records_allowed} were reserved"
            )
        unused = admission.records_allowed - used_records
        if unused == 0:
            return await self.counters.get(admission.grant_id, admission.day)
        return await self.counters.add(admission.grant_id, admission.day, 0, -unused)
