"""The working-day calendar (工作日历): deadlines in working days and working hours.

Several parts of the hub count time the way the administration does: a data-sharing provider
has 10 working days (工作日) to review an application, a 12345 work order has a deadline in
working days or working hours by category, and 双公示 records must be disclosed within 7
working days of the decision. Weekends are not working days, statutory holidays (法定节假日)
are not either, and some weekend days are make-up working days (调休上班). The holidays change
every year, so they come from configuration (``calendar:`` in ``hub.yaml``)::

    calendar:
      timezone: Asia/Shanghai
      hours: "09:00-17:30"            # the working window for deadlines in hours
      holidays:                        # single days or inclusive ranges
        - 2026-01-01
        - 2026-10-01..2026-10-08
      workdays:                        # 调休: weekend days that are working days
        - 2026-09-27

Conventions (the usual reading of "within N working days"): the day of the event does not
count; the deadline is the end of the N-th working day after it. Working hours count only
inside the working window of working days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.errors import ConfigError

__all__ = ["CalendarSettings", "WorkCalendar"]

_MAX_SCAN_DAYS = 3660  # ten years: a calendar with no working day is a configuration error


def _parse_days(items: Iterable[str | dt.date], what: str) -> frozenset[dt.date]:
    days: set[dt.date] = set()
    for item in items:
        if isinstance(item, dt.date):
            days.add(item)
            continue
        text = str(item).strip()
        try:
            if ".." in text:
                a, b = (dt.date.fromisoformat(p.strip()) for p in text.split("..", 1))
                if b < a:
                    raise ValueError("range ends before it starts")
                days.update(a + dt.timedelta(days=i) for i in range((b - a).days + 1))
            else:
                days.add(dt.date.fromisoformat(text))
        except ValueError as exc:
            raise ConfigError(
                f"calendar.{what}: {text!r} is not a date (YYYY-MM-DD) or a range "
                f"(YYYY-MM-DD..YYYY-MM-DD): {exc}",
                field=f"calendar.{what}",
            ) from exc
    return frozenset(days)


def _parse_hours(text: str) -> tuple[dt.time, dt.time]:
    try:
        a, b = (dt.time.fromisoformat(p.strip()) for p in text.split("-", 1))
    except ValueError as exc:
        raise ConfigError(
            f"calendar.hours: {text!r} is not a window like 09:00-17:30", field="calendar.hours"
        ) from exc
    if b <= a:
        raise ConfigError(f"calendar.hours: {text!r} ends before it starts", field="calendar.hours")
    return a, b


class CalendarSettings(BaseModel):
    """``calendar:`` in ``hub.yaml``: holidays and make-up working days (docs: hub/workdays.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field("Asia/Shanghai", description="the calendar's time zone")
    hours: str = Field("09:00-17:30", description="working window for deadlines in hours")
    holidays: list[str] = Field(
        default_factory=list,
        description="法定节假日: days (YYYY-MM-DD) or ranges (YYYY-MM-DD..YYYY-MM-DD)",
    )
    workdays: list[str] = Field(
        default_factory=list, description="调休上班: weekend days that are working days"
    )

    @field_validator("holidays", "workdays", mode="before")
    @classmethod
    def _dates_as_text(cls, v: object) -> object:
        # YAML reads 2026-10-01 as a date; keep the text form
        if isinstance(v, list):
            return [x.isoformat() if isinstance(x, dt.date) else x for x in v]
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except Exception as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("hours")
    @classmethod
    def _window(cls, v: str) -> str:
        try:
            _parse_hours(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return v

    def build(self) -> WorkCalendar:
        start, end = _parse_hours(self.hours)
        return WorkCalendar(
            holidays=_parse_days(self.holidays, "holidays"),
            extra_workdays=_parse_days(self.workdays, "workdays"),
            day_start=start,
            day_end=end,
            tz=ZoneInfo(self.timezone),
        )


@dataclass(frozen=True)
class WorkCalendar:
    """Working days and hours; see the module docstring for the conventions."""

    holidays: frozenset[dt.date] = frozenset()
    extra_workdays: frozenset[dt.date] = frozenset()
    day_start: dt.time = dt.time(9, 0)
    day_end: dt.time = dt.time(17, 30)
    tz: dt.tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))

    def is_workday(self, day: dt.date) -> bool:
        if day in self.extra_workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def next_workday(self, day: dt.date) -> dt.date:
        """The first working day strictly after ``day``."""
        d = day
        for _ in range(_MAX_SCAN_DAYS):
            d += dt.timedelta(days=1)
            if self.is_workday(d):
                return d
        raise ConfigError("calendar: no working day in ten years", field="calendar")

    def add_workdays(self, day: dt.date, n: int) -> dt.date:
        """The N-th working day after ``day`` (``day`` itself does not count); n=0 is ``day``."""
        if n < 0:
            raise ValueError("n must be >= 0")
        d = day
        for _ in range(n):
            d = self.next_workday(d)
        return d

    def workdays_between(self, start: dt.date, end: dt.date) -> int:
        """Working days in (start, end]: how many working days have passed since ``start``."""
        if end <= start:
            return 0
        return sum(
            1
            for i in range(1, (end - start).days + 1)
            if self.is_workday(start + dt.timedelta(days=i))
        )

    def local(self, when: dt.datetime) -> dt.datetime:
        if when.tzinfo is None:
            raise ValueError("datetime must be timezone-aware")
        return when.astimezone(self.tz)

    def deadline_workdays(self, when: dt.datetime, n: int) -> dt.datetime:
        """End of the N-th working day after ``when`` (local end of working hours)."""
        day = self.add_workdays(self.local(when).date(), n)
        return dt.datetime.combine(day, self.day_end, tzinfo=self.tz)

    def add_work_hours(self, when: dt.datetime, hours: float) -> dt.datetime:
        """``when`` plus ``hours`` counted only inside working windows of working days."""
        if hours < 0:
            raise ValueError("hours must be >= 0")
        t = self.local(when)
        remaining = dt.timedelta(hours=hours)
        day = t.date()
        # move to the next moment inside a working window
        if not self.is_workday(day) or t.timetz().replace(tzinfo=None) >= self.day_end:
            day = self.next_workday(day)
            t = dt.datetime.combine(day, self.day_start, tzinfo=self.tz)
        elif t.timetz().replace(tzinfo=None) < self.day_start:
            t = dt.datetime.combine(day, self.day_start, tzinfo=self.tz)
        for _ in range(_MAX_SCAN_DAYS):
            end = dt.datetime.combine(t.date(), self.day_end, tzinfo=self.tz)
            left_today = end - t
            if remaining <= left_today:
                return t + remaining
            remaining -= left_today
            t = dt.datetime.combine(self.next_workday(t.date()), self.day_start, tzinfo=self.tz)
        raise ConfigError("calendar: deadline beyond ten years", field="calendar")

    def work_hours_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """Working hours elapsed from ``start`` to ``end`` (0 when end <= start)."""
        a, b = self.local(start), self.local(end)
        if b <= a:
            return 0.0
        total = dt.timedelta()
        day = a.date()
        while day <= b.date():
            if self.is_workday(day):
                lo = max(a, dt.datetime.combine(day, self.day_start, tzinfo=self.tz))
                hi = min(b, dt.datetime.combine(day, self.day_end, tzinfo=self.tz))
                if hi > lo:
                    total += hi - lo
            day += dt.timedelta(days=1)
        return total.total_seconds() / 3600.0
