"""The 双公示 disclosure deadline: a licence or penalty decision must reach the credit platform
within 7 working days (工作日) of the decision (the common provincial rule). Working days come
from the hub's calendar (``calendar:`` in hub.yaml, :class:`hub.workdays.WorkCalendar`): the
day of the decision does not count, the deadline is the end of the 7th working day after it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hub.workdays import WorkCalendar

__all__ = ["DISCLOSURE_WORKDAYS", "Lateness", "disclosure_deadline", "lateness", "parse_day"]

#: working days allowed between the decision and its disclosure
DISCLOSURE_WORKDAYS = 7


def parse_day(value: object) -> dt.date | None:
    """A date written ``YYYY-MM-DD`` or ``YYYY/MM/DD`` (the credit templates' form), or None."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10].replace("/", "-"))
    except ValueError:
        return None


def disclosure_deadline(
    calendar: WorkCalendar, decided: dt.date, workdays: int = DISCLOSURE_WORKDAYS
) -> dt.date:
    """The last day a decision of ``decided`` may be disclosed on."""
    return calendar.add_workdays(decided, workdays)


@dataclass(frozen=True, slots=True)
class Lateness:
    """How a disclosure on ``disclosed`` stands against the deadline of its decision."""

    decided: dt.date
    deadline: dt.date
    disclosed: dt.date
    #: working days past the deadline (0: in time)
    days_late: int

    @property
    def overdue(self) -> bool:
        return self.days_late > 0

    def note(self) -> str:
        """The trace note of an overdue disclosure (公示超期)."""
        return (
            f"公示超期 (disclosure overdue): decided {self.decided}, deadline {self.deadline} "
            f"({DISCLOSURE_WORKDAYS} working days), disclosed {self.disclosed}, "
            f"{self.days_late} working day(s) late"
        )


def lateness(
    calendar: WorkCalendar,
    decided: dt.date,
    disclosed: dt.date,
    workdays: int = DISCLOSURE_WORKDAYS,
) -> Lateness:
    """Compare a disclosure day with the deadline of its decision."""
    deadline = disclosure_deadline(calendar, decided, workdays)
    late = calendar.workdays_between(deadline, disclosed) if disclosed > deadline else 0
    if disclosed > deadline and late == 0:
        late = 1  # disclosed on a holiday after the deadline: still late
    return Lateness(decided, deadline, disclosed, late)
