"""The 双公示 disclosure deadline: 7 working days after the decision, on the calendar of the
example hub file (2026 holidays and 调休 make-up working days)."""

from __future__ import annotations

import datetime as dt

import pytest

from adapters.credit.demo import EXAMPLE
from adapters.credit.disclosure import disclosure_deadline, lateness, parse_day
from hub.config import load_config
from hub.workdays import WorkCalendar

D = dt.date


@pytest.fixture(scope="module")
def calendar() -> WorkCalendar:
    return load_config(EXAMPLE / "hub.yaml").work_calendar()


def test_deadline_skips_weekends_and_the_national_day_holiday(calendar: WorkCalendar) -> None:
    # decided Tue 29 Sep: 30 Sep, (1-7 Oct holiday), 8, 9, Sat 10 Oct (调休), 12, 13, 14 Oct
    assert disclosure_deadline(calendar, D(2026, 9, 29)) == D(2026, 10, 14)
    # the same decision on a calendar without holidays: 7 weekdays later
    assert disclosure_deadline(WorkCalendar(), D(2026, 9, 29)) == D(2026, 10, 8)
    # decided Fri 18 Sep: Sun 20 Sep is a make-up working day, 25-27 Sep a holiday
    assert disclosure_deadline(calendar, D(2026, 9, 18)) == D(2026, 9, 29)


def test_lateness_counts_working_days_after_the_deadline(calendar: WorkCalendar) -> None:
    decided = D(2026, 9, 29)
    assert not lateness(calendar, decided, D(2026, 10, 14)).overdue  # the last day is in time
    assert not lateness(calendar, decided, D(2026, 10, 3)).overdue  # during the holiday
    one = lateness(calendar, decided, D(2026, 10, 15))
    assert one.overdue and one.days_late == 1
    assert "deadline 2026-10-14" in one.note() and one.note().startswith("公示超期")
    assert lateness(calendar, decided, D(2026, 10, 17)).days_late == 2  # Sat: 15, 16 Oct
    # after the deadline but on a holiday: late, though no working day has passed since
    late = lateness(calendar, D(2026, 9, 18), D(2026, 10, 2))
    assert late.deadline == D(2026, 9, 29) and late.days_late == 1  # 30 Sep


def test_decision_dates_in_both_written_forms() -> None:
    assert parse_day("2026/11/16") == parse_day("2026-11-16") == D(2026, 11, 16)
    assert parse_day("2026/13/01") is None and parse_day(None) is None and parse_day("") is None
