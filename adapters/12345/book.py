"""The hub's record of every 12345 work order (工单台账): its state, deadlines and history,
kept durably in the hub's store (``Store.get_state`` / ``put_state``, scope
``hotline12345``, one value per order plus an index of open orders), so it survives restarts
and works on the SQLite, PostgreSQL and memory stores alike.

:meth:`OrderBook.check` is the governance comparator ``hotline12345_lifecycle``: every
``work_order`` and ``work_order_event`` record a system sends passes through it before it is
committed. It refuses impossible transitions (``E_ORDER_STATE``) and late extensions or
returns (``E_ORDER_DEADLINE``) and records the accepted step in the order's history.

Check-then-commit: the step is recorded before the record's commit. If that commit fails the
sender is told so (5xx) and sends the same event again; the book recognises its ``event_id``
and lets it through, so the history never holds a step twice and the sender never gets stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from hub.errors import StoreUnavailable
from hub.workdays import WorkCalendar

from .deadlines import (
    DeadlineRules,
    compute_deadlines,
    extension_in_time,
    return_in_time,
)
from .errors import OrderDeadlineError, OrderStateError
from .lifecycle import EVENT_NAMES, OPEN_STATES, next_state

__all__ = ["COMPARATOR", "SCOPE", "Alert", "BookSnapshot", "OrderBook"]

#: the store-wide lease serialising steps across processes and nodes (see OrderBook._book_lease)
LEASE_NAME = "hotline12345:order-book"
#: a holder that died frees the lease after this long
LEASE_TTL_SECONDS = 30.0
#: how long a step waits for the lease before it is refused with E_STORE (503, sent again)
LEASE_WAIT_SECONDS = 10.0

#: name of the governance comparator (``governance.<dataset>.compare: [{rule: ...}]``)
COMPARATOR = "hotline12345_lifecycle"
#: store state scope of the book
SCOPE = "hotline12345"
_INDEX = "__open__"

#: events that must name the department holding the order (its department_code must match):
#: the department's own steps, and 督办, 回访, 评价 about its handling
_HOLDER_EVENTS = frozenset(
    {"sign", "handle", "reply", "extension_request", "return", "close", "supervise", "revisit",
     "evaluate"}
)  # fmt: skip
#: states in which the department is answering (答复时限 runs)
_ANSWERING = frozenset({"dispatched", "signed", "handling"})


def _when(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def _iso(value: dt.datetime) -> str:
    return value.isoformat()


@dataclass(frozen=True, slots=True)
class Alert:
    """A deadline the watch found passed or near: ``kind`` is ``sign_overdue`` (签收超时),
    ``answer_overdue`` (办理超期) or ``answer_due_soon`` (临期预警)."""

    order_no: str
    department: str
    department_code: str
    kind: str
    deadline: dt.datetime


@dataclass
class BookSnapshot:
    """Counts by department code at the last scan (for the metrics)."""

    at: float = 0.0
    open: dict[str, int] = field(default_factory=dict)
    overdue: dict[str, int] = field(default_factory=dict)
    due_soon: dict[str, int] = field(default_factory=dict)


class OrderBook:
    """One hub's work orders. Built once per plugin registry (every hub loads its own) and
    bound to the hub's store with :meth:`bind`; unbound (``jghub check --live``) it keeps
    orders in memory."""

    def __init__(self) -> None:
        self.store: Any = None
        self.calendar = WorkCalendar()
        self.rules = DeadlineRules()
        self._memory: dict[str, str] = {}
        self._lock = asyncio.Lock()
        #: this book's name as a holder of the store-wide lease (one per process and book)
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.snapshot = BookSnapshot()
        #: 督办 events emitted, by (department code, kind)
        self.supervisions: dict[tuple[str, str], int] = {}

    def bind(self, store: Any, calendar: WorkCalendar, rules: DeadlineRules) -> None:
        self.store = store
        self.calendar = calendar
        self.rules = rules

    # ------------------------------------------------------------------ storage

    async def _get(self, key: str) -> str | None:
        if self.store is None:
            return self._memory.get(key)
        value: str | None = await self.store.get_state(SCOPE, key)
        return value

    async def _put(self, key: str, value: str) -> None:
        if self.store is None:
            self._memory[key] = value
        else:
            await self.store.put_state(SCOPE, key, value)

    async def get(self, order_no: str) -> dict[str, Any] | None:
        """The order as the hub knows it (state, department, deadlines, ``events``), or None."""
        raw = await self._get(order_no)
        return None if raw is None else dict(orjson.loads(raw))

    async def history(self, order_no: str) -> list[dict[str, Any]]:
        """The order's steps in the order they were accepted (empty when unknown)."""
        order = await self.get(order_no)
        return list(order["events"]) if order else []

    async def open_orders(self) -> list[dict[str, Any]]:
        raw = await self._get(_INDEX)
        numbers: list[str] = orjson.loads(raw) if raw else []
        out = []
        for no in numbers:
            order = await self.get(no)
            if order is not None:
                out.append(order)
        return out

    async def _save(self, order: dict[str, Any], was_open: bool) -> None:
        await self._put(order["order_no"], orjson.dumps(order).decode())
        is_open = order["state"] in OPEN_STATES
        if is_open != was_open:
            raw = await self._get(_INDEX)
            numbers: list[str] = orjson.loads(raw) if raw else []
            if is_open and order["order_no"] not in numbers:
                numbers.append(order["order_no"])
            elif not is_open and order["order_no"] in numbers:
                numbers.remove(order["order_no"])
            await self._put(_INDEX, orjson.dumps(numbers).decode())

    @contextlib.asynccontextmanager
    async def _book_lease(self) -> AsyncIterator[None]:
        """Hold the book's lease in the hub store while a step is checked and written, so
        that ``serve --workers`` processes and nodes sharing a PostgreSQL store apply one
        step at a time (the in-process lock alone would let two processes read the same
        state and both move it). A book without a store has only this process."""
        if self.store is None:
            yield
            return
        deadline = asyncio.get_running_loop().time() + LEASE_WAIT_SECONDS
        delay = 0.002
        while not await self.store.acquire_lease(LEASE_NAME, self._owner, LEASE_TTL_SECONDS):
            if asyncio.get_running_loop().time() >= deadline:
                raise StoreUnavailable(
                    "the 12345 order book is busy (another process holds its lease); "
                    "nothing was accepted, send again",
                    field="order_no",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            await self.store.release_lease(LEASE_NAME, self._owner)

    # ------------------------------------------------------------------ the comparator

    async def check(self, dataset: str, rec: dict[str, Any]) -> str | None:
        """Governance comparator: record the step, or raise ``E_ORDER_STATE`` /
        ``E_ORDER_DEADLINE``. It never returns a mismatch text (which the hub would report as
        ``E_MISMATCH``): a refusal is raised with its own code, so always None."""
        async with self._lock, self._book_lease():
            if dataset == "work_order":
                await self._work_order(rec)
            elif dataset == "work_order_event":
                await self._event(rec)
        return None

    def _dispatch(self, order: dict[str, Any], rec: Mapping[str, Any], at: dt.datetime) -> None:
        order["department"] = rec["department"]
        order["department_code"] = rec["department_code"]
        order["dispatched_at"] = _iso(at)
        d = compute_deadlines(self.calendar, self.rules, order["category"], order["urgency"], at)
        order["sign_by"] = _iso(d.sign_by)
        order["answer_by"] = _iso(d.answer_by)
        order["return_by"] = _iso(d.return_by)
        order["signed_at"] = None
        order["alerts"] = []

    @staticmethod
    def _step(
        order: dict[str, Any], event_id: str, event: str, before: str, at: dt.datetime, **more: Any
    ) -> None:
        order["events"].append(
            {
                "event_id": event_id,
                "event": event,
                "name": EVENT_NAMES[event],
                "from": before,
                "to": order["state"],
                "at": _iso(at),
                "department_code": order["department_code"],
                **{k: v for k, v in more.items() if v is not None},
            }
        )
        order["event_ids"].append(event_id)

    async def _work_order(self, rec: Mapping[str, Any]) -> None:
        no = str(rec["order_no"])
        dispatched = _when(rec["dispatched_at"])
        order = await self.get(no)
        if order is None:
            order = {
                "order_no": no,
                "state": "received",
                "category": rec["category"],
                "urgency": rec["urgency"],
                "region_code": rec["region_code"],
                "department": rec["department"],
                "department_code": rec["department_code"],
                "received_at": _iso(_when(rec["received_at"])),
                "closed_at": None,
                "satisfaction": None,
                "events": [],
                "event_ids": [],
            }
            self._step(order, f"{no}:accept", "accept", "new", _when(rec["received_at"]))
            order["state"] = "dispatched"
            self._dispatch(order, rec, dispatched)
            self._step(
                order, f"{no}:dispatch:{_iso(dispatched)}", "dispatch", "received", dispatched
            )
            await self._save(order, False)
            return
        if (
            order["department_code"] == rec["department_code"]
            and _when(order["dispatched_at"]) == dispatched
        ):
            return  # the same dispatch sent again
        before = order["state"]
        event = "transfer" if before == "dispatched" else "dispatch"
        order["state"] = next_state(no, before, event)
        self._dispatch(order, rec, dispatched)
        self._step(order, f"{no}:{event}:{_iso(dispatched)}", event, before, dispatched)
        await self._save(order, before in OPEN_STATES)

    async def _event(self, rec: Mapping[str, Any]) -> None:
        no = str(rec["order_no"])
        event = str(rec["event"])
        at = _when(rec["occurred_at"])
        order = await self.get(no)
        if order is None:
            raise OrderStateError(
                f"work order {no}: event {event} ({EVENT_NAMES.get(event, '?')}) for an order "
                "the hub has no record of (state new); its work order must come first",
                field="order_no",
                order_no=no,
                state="new",
                attempted=event,
            )
        if rec["event_id"] in order["event_ids"]:
            return  # sent again: already in the history
        before = order["state"]
        given = rec.get("previous_state")
        if given is not None and given != before:
            raise OrderStateError(
                f"work order {no}: the sender says it is in state {given}, the hub's record "
                f"says {before}; event {event} refused",
                field="previous_state",
                order_no=no,
                state=before,
                attempted=event,
            )
        if event in _HOLDER_EVENTS and rec["department_code"] != order["department_code"]:
            raise OrderStateError(
                f"work order {no}: event {event} names department {rec['department_code']}, "
                f"but the order is with {order['department_code']} ({order['department']})",
                field="department_code",
                order_no=no,
                state=before,
                attempted=event,
            )
        nxt = next_state(no, before, event, satisfaction=order.get("satisfaction"))
        if event == "extension_request":
            answer_by = _when(order["answer_by"])
            if not extension_in_time(self.calendar, self.rules, at, answer_by):
                raise OrderDeadlineError(
                    f"work order {no}: 延期申请 at {_iso(at)} is less than "
                    f"{self.rules.extension_notice_workdays} working day(s) before the "
                    f"deadline {_iso(answer_by)}",
                    field="occurred_at",
                    order_no=no,
                    deadline=_iso(answer_by),
                )
            new = rec.get("new_deadline")
            extended = (
                _when(new)
                if new is not None
                else self.calendar.deadline_workdays(
                    answer_by, self.rules.extension_default_workdays
                )
            )
            if extended <= answer_by:
                raise OrderDeadlineError(
                    f"work order {no}: new_deadline {_iso(extended)} is not after the "
                    f"deadline {_iso(answer_by)}",
                    field="new_deadline",
                    order_no=no,
                    deadline=_iso(answer_by),
                )
            order["answer_by"] = _iso(extended)
            order["alerts"] = [a for a in order["alerts"] if not a.startswith("answer_")]
        elif event == "return":
            return_by = _when(order["return_by"])
            if not return_in_time(at, return_by):
                raise OrderDeadlineError(
                    f"work order {no}: 退回 at {_iso(at)} is after the return limit "
                    f"{_iso(return_by)} ({self.rules.return_workdays} working days after 派单)",
                    field="occurred_at",
                    order_no=no,
                    deadline=_iso(return_by),
                )
        order["state"] = nxt
        if event in ("dispatch", "transfer", "reopen"):
            self._dispatch(order, rec, at)
            order["closed_at"] = None
            order["satisfaction"] = None
        elif event == "sign":
            order["signed_at"] = _iso(at)
        elif event == "close":
            order["closed_at"] = _iso(at)
        elif event == "evaluate":
            order["satisfaction"] = rec.get("satisfaction")
        elif event == "supervise" and rec.get("supervision"):
            order["alerts"].append(rec["supervision"])
        self._step(
            order,
            str(rec["event_id"]),
            event,
            before,
            at,
            actor=rec.get("actor"),
            supervision=rec.get("supervision"),
        )
        await self._save(order, before in OPEN_STATES)

    # ------------------------------------------------------------------ deadlines

    async def scan(self, now: dt.datetime) -> list[Alert]:
        """Find the deadlines passed or near at ``now`` that have no 督办 yet, and refresh
        :attr:`snapshot` (open, overdue and near-deadline counts by department)."""
        snap = BookSnapshot(at=now.timestamp())
        alerts: list[Alert] = []
        near = self.rules.near_deadline_hours
        for order in await self.open_orders():
            dept = order["department_code"]
            snap.open[dept] = snap.open.get(dept, 0) + 1
            state = order["state"]
            if state not in _ANSWERING:
                continue
            sign_by = _when(order["sign_by"])
            answer_by = _when(order["answer_by"])
            found: list[tuple[str, dt.datetime]] = []
            if state == "dispatched" and now > sign_by:
                found.append(("sign_overdue", sign_by))
            if now > answer_by:
                found.append(("answer_overdue", answer_by))
            elif self.calendar.work_hours_between(now, answer_by) <= near:
                found.append(("answer_due_soon", answer_by))
            if any(k.endswith("overdue") for k, _ in found):
                snap.overdue[dept] = snap.overdue.get(dept, 0) + 1
            elif found:
                snap.due_soon[dept] = snap.due_soon.get(dept, 0) + 1
            for kind, deadline in found:
                if kind not in order["alerts"]:
                    alerts.append(
                        Alert(order["order_no"], order["department"], dept, kind, deadline)
                    )
        self.snapshot = snap
        return alerts
