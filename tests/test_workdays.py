"""The working-day calendar (工作日历): weekends, holidays, 调休 and working hours."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from hub.config import HubConfig
from hub.errors import ConfigError
from hub.workdays import CalendarSettings

TZ = ZoneInfo("Asia/Shanghai")

# 2026 National Day: 10-01..10-08 off, Sunday 09-27 and Saturday 10-10 make-up working days
NATIONAL_DAY = CalendarSettings(
    holidays=["2026-10-01..2026-10-08"], workdays=["2026-09-27", "2026-10-10"]
).build()


def test_weekends_holidays_and_makeup_days() -> None:
    cal = NATIONAL_DAY
    assert cal.is_workday(dt.date(2026, 9, 30))  # Wednesday
    assert not cal.is_workday(dt.date(2026, 10, 5))  # Monday in the holiday
    assert cal.is_workday(dt.date(2026, 9, 27))  # Sunday, 调休
    assert not cal.is_workday(dt.date(2026, 10, 11))  # ordinary Sunday


def test_ten_working_days_across_the_national_day_holiday() -> None:
    # filed Tuesday 09-29: 09-30, 10-09(Fri), 10-10(Sat make-up), 10-12..16, 10-19, 10-20
    assert NATIONAL_DAY.add_workdays(dt.date(2026, 9, 29), 10) == dt.date(2026, 10, 20)
    assert NATIONAL_DAY.workdays_between(dt.date(2026, 9, 29), dt.date(2026, 10, 20)) == 10
    assert NATIONAL_DAY.add_workdays(dt.date(2026, 9, 29), 0) == dt.date(2026, 9, 29)


def test_seven_working_day_disclosure_deadline_is_end_of_day() -> None:
    decided = dt.datetime(2026, 11, 27, 15, 0, tzinfo=TZ)  # Friday
    deadline = CalendarSettings().build().deadline_workdays(decided, 7)
    assert deadline == dt.datetime(2026, 12, 8, 17, 30, tzinfo=TZ)


def test_working_hours_skip_nights_and_weekends() -> None:
    cal = CalendarSettings(hours="09:00-17:00").build()
    fri_4pm = dt.datetime(2026, 11, 27, 16, 0, tzinfo=TZ)
    # 1 h on Friday, 3 h on Monday
    assert cal.add_work_hours(fri_4pm, 4) == dt.datetime(2026, 11, 30, 12, 0, tzinfo=TZ)
    sat = dt.datetime(2026, 11, 28, 10, 0, tzinfo=TZ)
    assert cal.add_work_hours(sat, 2) == dt.datetime(2026, 11, 30, 11, 0, tzinfo=TZ)
    assert cal.work_hours_between(fri_4pm, dt.datetime(2026, 11, 30, 12, 0, tzinfo=TZ)) == 4.0
    # a UTC instant is read in the calendar's zone
    utc = dt.datetime(2026, 11, 30, 0, 30, tzinfo=dt.UTC)  # 08:30 in Shanghai
    assert cal.add_work_hours(utc, 1) == dt.datetime(2026, 11, 30, 10, 0, tzinfo=TZ)


def test_bad_calendar_config_names_the_field() -> None:
    with pytest.raises(ConfigError) as e:
        CalendarSettings(holidays=["2026-13-01"]).build()
    assert e.value.field == "calendar.holidays"
    with pytest.raises(ValueError, match="hours"):
        CalendarSettings(hours="18:00-09:00")
    with pytest.raises(ValueError, match="time zone"):
        CalendarSettings(timezone="Mars/Olympus")


def test_hub_yaml_calendar_section_reads_yaml_dates() -> None:
    cfg = HubConfig.model_validate(
        {"calendar": {"holidays": [dt.date(2026, 1, 1)], "workdays": ["2026-01-04"]}}
    )
    cal = cfg.work_calendar()
    assert not cal.is_workday(dt.date(2026, 1, 1))
    assert cal.is_workday(dt.date(2026, 1, 4))
