"""Time limits (办理时限) of a work order, in working days and hours of the hub's calendar
(工作日历, ``calendar:`` in ``hub.yaml``, :class:`hub.workdays.WorkCalendar`).

Defaults follow the common provincial rules (DOMAIN.md "12345 hotline work order"):

* 签收 (signing) after 派单: 15 minutes when life or property is in danger, 30 minutes for
  water, power, gas and heating (水电气暖) — wall-clock minutes, emergencies do not wait for
  office hours — and 1 working day for everything else;
* 答复 (answer) after 派单: consultations (咨询) 5 working days, complaints (投诉) 15; the
  other categories are configurable (defaults: 求助 5, 举报 15, 建议 10);
* 延期申请 (extension) at least 1 working day before the answer deadline;
* 退回 (misrouted order sent back) within 2 working days of 派单.

All of it is configurable in the platform system's ``adapter_options`` (:class:`DeadlineRules`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from hub.workdays import WorkCalendar

__all__ = ["DeadlineRules", "Deadlines", "compute_deadlines", "extension_in_time", "return_in_time"]


class DeadlineRules(BaseModel):
    """The time limits; every field has the provincial default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sign_minutes_life_property: int = Field(15, ge=1, description="签收: 危及生命财产安全")
    sign_minutes_utilities: int = Field(30, ge=1, description="签收: 水电气暖")
    sign_workdays_general: int = Field(1, ge=1, description="签收: 一般 (working days)")
    answer_workdays: dict[str, int] = Field(
        default_factory=lambda: {
            "consultation": 5,
            "help": 5,
            "complaint": 15,
            "report": 15,
            "suggestion": 10,
        },
        description="答复时限 by category (working days after 派单)",
    )
    extension_notice_workdays: int = Field(
        1, ge=0, description="延期申请 at least this many working days before the deadline"
    )
    extension_default_workdays: int = Field(
        5, ge=1, description="extension granted when 延期申请 names no new deadline"
    )
    return_workdays: int = Field(2, ge=1, description="退回 within this many working days")
    near_deadline_hours: float = Field(
        4.0, ge=0, description="临期: working hours before the answer deadline that warn"
    )


@dataclass(frozen=True, slots=True)
class Deadlines:
    sign_by: dt.datetime  # 签收时限
    answer_by: dt.datetime  # 答复时限
    return_by: dt.datetime  # 退回时限


def compute_deadlines(
    cal: WorkCalendar, rules: DeadlineRules, category: str, urgency: str, dispatched_at: dt.datetime
) -> Deadlines:
    """The limits of an order dispatched at ``dispatched_at``."""
    if urgency == "life_property":
        sign_by = cal.local(dispatched_at) + dt.timedelta(minutes=rules.sign_minutes_life_property)
    elif urgency == "utilities":
        sign_by = cal.local(dispatched_at) + dt.timedelta(minutes=rules.sign_minutes_utilities)
    else:
        sign_by = cal.deadline_workdays(dispatched_at, rules.sign_workdays_general)
    days = rules.answer_workdays.get(category, max(rules.answer_workdays.values()))
    return Deadlines(
        sign_by=sign_by,
        answer_by=cal.deadline_workdays(dispatched_at, days),
        return_by=cal.deadline_workdays(dispatched_at, rules.return_workdays),
    )


def extension_in_time(
    cal: WorkCalendar, rules: DeadlineRules, asked_at: dt.datetime, answer_by: dt.datetime
) -> bool:
    """An extension asked at ``asked_at`` is in time when at least
    ``extension_notice_workdays`` full working days remain before the deadline's day."""
    asked_day = cal.local(asked_at).date()
    return (
        cal.add_workdays(asked_day, rules.extension_notice_workdays) <= cal.local(answer_by).date()
        and asked_at <= answer_by
    )


def return_in_time(returned_at: dt.datetime, return_by: dt.datetime) -> bool:
    return returned_at <= return_by
