"""12345 time limits in working days and hours, with the holidays and 调休 make-up days of the
calendar (the example hub file's 2026 calendar)."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest

from hub.workdays import CalendarSettings, WorkCalendar

deadlines = importlib.import_module("adapters.12345.deadlines")
demo = importlib.import_module("adapters.12345.demo")

TZ = dt.timezone(dt.timedelta(hours=8))
RULES = deadlines.DeadlineRules()


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    """The calendar of examples/platforms/12345/hub.yaml (国庆 2026-10-01..07, 10-10 a
    Saturday worked)."""
    import yaml

    doc = yaml.safe_load((demo.EXAMPLE / "hub.yaml").read_text(encoding="utf-8"))
    return CalendarSettings.model_validate(doc["calendar"]).build()


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=TZ)


def test_signing_limits_by_urgency(cal: WorkCalendar) -> None:
    friday_evening = at(2026, 11, 27, 20, 0)
    d = deadlines.compute_deadlines(cal, RULES, "help", "life_property", friday_evening)
    assert d.sign_by == at(2026, 11, 27, 20, 15)  # 15 minutes, night or not
    d = deadlines.compute_deadlines(cal, RULES, "help", "utilities", friday_evening)
    assert d.sign_by == at(2026, 11, 27, 20, 30)  # 水电气暖: 30 minutes
    d = deadlines.compute_deadlines(cal, RULES, "help", "general", friday_evening)
    assert d.sign_by == at(2026, 11, 30, 17, 30)  # 1 working day: Monday


def test_answer_limits_skip_the_national_day_holiday(cal: WorkCalendar) -> None:
    # dispatched Wednesday 2026-09-30, the day before 国庆
    sent = at(2026, 9, 30, 16, 0)
    d = deadlines.compute_deadlines(cal, RULES, "consultation", "general", sent)
    # 10-01..07 off; Saturday 10-10 is a make-up working day: 8, 9, 10, 12, 13
    assert d.answer_by == at(2026, 10, 13, 17, 30)
    d = deadlines.compute_deadlines(cal, RULES, "complaint", "general", sent)
    # 15 working days: 8 9 10 12 13 14 15 16 19 20 21 22 23 26 27
    assert d.answer_by == at(2026, 10, 27, 17, 30)
    assert d.return_by == at(2026, 10, 9, 17, 30)  # 退回: 2 working days (8, 9)
    assert d.sign_by == at(2026, 10, 8, 17, 30)


def test_the_same_order_without_holidays_is_due_earlier() -> None:
    plain = WorkCalendar()
    d = deadlines.compute_deadlines(plain, RULES, "consultation", "general", at(2026, 9, 30, 16))
    assert d.answer_by == at(2026, 10, 7, 17, 30)


def test_extension_must_be_asked_a_working_day_ahead(cal: WorkCalendar) -> None:
    deadline = at(2026, 10, 13, 17, 30)  # a Tuesday after 国庆
    # Monday 10-12 (1 working day before): in time; Saturday 10-10 (调休, a working day)
    # too; Tuesday itself: too late
    assert deadlines.extension_in_time(cal, RULES, at(2026, 10, 12, 17, 0), deadline)
    assert deadlines.extension_in_time(cal, RULES, at(2026, 10, 10, 9, 0), deadline)
    assert not deadlines.extension_in_time(cal, RULES, at(2026, 10, 13, 9, 0), deadline)
    # Sunday 10-11 is a rest day, but Monday is still a working day before the deadline
    assert deadlines.extension_in_time(cal, RULES, at(2026, 10, 11, 9, 0), deadline)


def test_rules_are_configurable_and_validated() -> None:
    rules = deadlines.DeadlineRules(answer_workdays={"consultation": 3, "complaint": 10})
    d = deadlines.compute_deadlines(WorkCalendar(), rules, "consultation", "general",
                                    at(2026, 11, 23, 10))  # fmt: skip
    assert d.answer_by == at(2026, 11, 26, 17, 30)
    # a category without its own limit gets the longest one
    d = deadlines.compute_deadlines(
        WorkCalendar(), rules, "report", "general", at(2026, 11, 23, 10)
    )
    assert d.answer_by == at(2026, 12, 7, 17, 30)
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        deadlines.DeadlineRules(return_workdays=0)
