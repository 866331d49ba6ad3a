"""The work-order state machine, table-driven: every (state, event) pair is either the
documented transition or refused with ``E_ORDER_STATE`` naming order, state and event; and the
order book that enforces it on records, keeping each order's history in the hub's store (run
on the memory, SQLite and PostgreSQL stores)."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest

from hub.errors import HubError
from hub.store import Store
from hub.workdays import CalendarSettings

lifecycle = importlib.import_module("adapters.12345.lifecycle")
book_mod = importlib.import_module("adapters.12345.book")
deadlines = importlib.import_module("adapters.12345.deadlines")

#: the expected table, written out again (not read from the module) so a change shows here
EXPECTED = {
    "new": {"accept": "received"},
    "received": {"dispatch": "dispatched", "transfer": "dispatched", "close": "closed"},
    "dispatched": {
        "transfer": "dispatched",
        "sign": "signed",
        "return": "returned",
        "supervise": "dispatched",
    },
    "signed": {
        "handle": "handling",
        "reply": "replied",
        "return": "returned",
        "supervise": "signed",
        "extension_request": "signed",
    },
    "handling": {
        "handle": "handling",
        "reply": "replied",
        "supervise": "handling",
        "extension_request": "handling",
    },
    "replied": {"close": "closed", "supervise": "replied", "reopen": "dispatched"},
    "returned": {"dispatch": "dispatched", "transfer": "dispatched", "close": "closed"},
    "closed": {"revisit": "revisited", "reopen": "dispatched"},
    "revisited": {"evaluate": "evaluated", "reopen": "dispatched"},
    "evaluated": {"reopen": "dispatched"},
}

PAIRS = [(s, e) for s in lifecycle.STATES for e in lifecycle.EVENTS]


def test_the_table_is_the_documented_one() -> None:
    got: dict[str, dict[str, str]] = {}
    for (s, e), nxt in lifecycle.TRANSITIONS.items():
        got.setdefault(s, {})[e] = nxt
    assert got == EXPECTED


@pytest.mark.parametrize(("state", "event"), PAIRS)
def test_every_pair(state: str, event: str) -> None:
    want = EXPECTED.get(state, {}).get(event)
    if want is not None:
        got = lifecycle.next_state("ZJ-1", state, event, satisfaction="dissatisfied")
        assert got == want
        return
    with pytest.raises(HubError) as exc:
        lifecycle.next_state("ZJ12345-X-1", state, event)
    err = exc.value
    assert err.code == "E_ORDER_STATE" and err.status == 409
    assert "ZJ12345-X-1" in err.message and f"state {state}" in err.message
    assert f"event {event}" in err.message
    assert err.extra == {"order_no": "ZJ12345-X-1", "state": state, "attempted": event}


def test_reopen_after_evaluation_needs_dissatisfaction() -> None:
    with pytest.raises(HubError, match="dissatisfied"):
        lifecycle.next_state("ZJ-1", "evaluated", "reopen", satisfaction="satisfied")
    assert lifecycle.next_state("ZJ-1", "evaluated", "reopen", satisfaction="dissatisfied")


# --------------------------------------------------------------------------- the order book

NO = "ZJ12345-20261125-000001"


def order(**kw: Any) -> dict[str, Any]:
    return {
        "order_no": NO,
        "category": "complaint",
        "urgency": "general",
        "region_code": "330102",
        "department": "上城区市场监督管理局",
        "department_code": "SCJG330102",
        "received_at": "2026-11-25T09:30:00+08:00",
        "dispatched_at": "2026-11-25T09:35:00+08:00",
        **kw,
    }


def ev(n: int, event: str, at: str = "2026-11-25T10:00:00+08:00", **kw: Any) -> dict[str, Any]:
    return {
        "event_id": f"E{n}",
        "order_no": NO,
        "event": event,
        "occurred_at": at,
        "actor": "x",
        "department": "上城区市场监督管理局",
        "department_code": "SCJG330102",
        **kw,
    }


def new_book(store: Store | None) -> Any:
    book = book_mod.OrderBook()
    cal = CalendarSettings(holidays=["2026-10-01..2026-10-07"]).build()
    if store is not None:
        book.bind(store, cal, deadlines.DeadlineRules())
    return book


async def refused(book: Any, dataset: str, rec: dict[str, Any]) -> HubError:
    with pytest.raises(HubError) as exc:
        await book.check(dataset, rec)
    return exc.value


async def test_the_book_keeps_each_orders_history_durably(store: Store) -> None:
    book = new_book(store)
    assert await book.check("work_order", order()) is None
    for i, (event, extra) in enumerate(
        [("sign", {}), ("handle", {}), ("reply", {"opinion": "x"}), ("close", {"opinion": "y"})]
    ):
        await book.check("work_order_event", ev(i, event, **extra))
    # a new book on the same store (a restart) reads the same history
    again = new_book(store)
    got = await again.get(NO)
    assert got is not None and got["state"] == "closed"
    assert [e["name"] for e in got["events"]] == ["受理", "派单", "签收", "办理", "回复", "办结"]
    assert [e["to"] for e in got["events"]][-1] == "closed"
    assert await again.open_orders() == []  # closed: out of the open index
    err = await refused(again, "work_order_event", ev(9, "sign"))
    assert err.code == "E_ORDER_STATE" and "state closed" in err.message
    # re-sent (same event id): recognised, not a second step
    await again.check("work_order_event", ev(3, "close", opinion="y"))
    assert len(await again.history(NO)) == 6


async def test_the_book_refuses_with_reasons() -> None:
    book = new_book(None)  # unbound: in memory (``jghub check --live``)
    err = await refused(book, "work_order_event", ev(1, "sign"))
    assert err.code == "E_ORDER_STATE" and "state new" in err.message and err.field == "order_no"
    await book.check("work_order", order())
    await book.check("work_order", order())  # the same dispatch again: nothing changes
    assert len(await book.history(NO)) == 2
    err = await refused(book, "work_order_event", ev(2, "sign", previous_state="signed"))
    assert err.code == "E_ORDER_STATE" and err.field == "previous_state"
    err = await refused(book, "work_order_event", ev(3, "sign", department_code="SWJT330100"))
    assert err.code == "E_ORDER_STATE" and err.field == "department_code"
    err = await refused(book, "work_order_event", ev(4, "close", opinion="x"))
    assert err.code == "E_ORDER_STATE" and "event close" in err.message
    assert (await book.get(NO))["state"] == "dispatched"  # refusals change nothing


async def test_transfer_and_redispatch_move_the_order(store: Store) -> None:
    book = new_book(store)
    await book.check("work_order", order())
    # 退回 within 2 working days, then the centre dispatches it to the water company
    await book.check(
        "work_order_event", ev(1, "return", at="2026-11-26T10:00:00+08:00", reason="非本单位职责")
    )
    assert (await book.get(NO))["state"] == "returned"
    water = {"department": "杭州市水务集团", "department_code": "SWJT330100"}
    await book.check("work_order", order(dispatched_at="2026-11-26T11:00:00+08:00", **water))
    got = await book.get(NO)
    assert got["state"] == "dispatched" and got["department_code"] == "SWJT330100"
    assert got["events"][-1]["event"] == "dispatch"
    # the old department may not act on it any more
    err = await refused(book, "work_order_event", ev(2, "sign"))
    assert err.field == "department_code"
    # a new dispatch while it is signed elsewhere is impossible
    await book.check("work_order_event", ev(3, "sign", **water))
    err = await refused(book, "work_order", order(dispatched_at="2026-11-27T09:00:00+08:00"))
    assert err.code == "E_ORDER_STATE" and "event dispatch" in err.message


async def test_late_return_and_late_extension_are_refused() -> None:
    book = new_book(None)
    await book.check("work_order", order())  # dispatched Wed 2026-11-25, complaint: 15 days
    got = await book.get(NO)
    assert got["return_by"] == "2026-11-27T17:30:00+08:00"  # 2 working days
    assert got["answer_by"] == "2026-12-16T17:30:00+08:00"  # 15 working days
    err = await refused(
        book, "work_order_event", ev(1, "return", at="2026-11-30T09:00:00+08:00", reason="x")
    )
    assert err.code == "E_ORDER_DEADLINE" and "2026-11-27T17:30:00+08:00" in err.message
    await book.check("work_order_event", ev(2, "sign"))
    # 延期申请 on the deadline's eve (less than 1 working day before): refused
    err = await refused(
        book,
        "work_order_event",
        ev(3, "extension_request", at="2026-12-16T09:00:00+08:00", reason="需现场勘验"),
    )
    assert err.code == "E_ORDER_DEADLINE" and err.field == "occurred_at"
    # a day earlier it is in time; without a new deadline 5 working days are added
    await book.check(
        "work_order_event",
        ev(4, "extension_request", at="2026-12-15T09:00:00+08:00", reason="需现场勘验"),
    )
    assert (await book.get(NO))["answer_by"] == "2026-12-23T17:30:00+08:00"
    err = await refused(
        book,
        "work_order_event",
        ev(5, "extension_request", at="2026-12-15T10:00:00+08:00", reason="x",
           new_deadline="2026-12-01T17:30:00+08:00"),
    )  # fmt: skip
    assert err.code == "E_ORDER_DEADLINE" and err.field == "new_deadline"


async def test_the_scan_finds_passed_and_near_deadlines() -> None:
    import datetime as dt

    book = new_book(None)
    tz = dt.timezone(dt.timedelta(hours=8))
    await book.check("work_order", order(urgency="life_property"))  # sign by 09:50
    alerts = await book.scan(dt.datetime(2026, 11, 25, 9, 49, tzinfo=tz))
    assert alerts == [] and book.snapshot.open == {"SCJG330102": 1}
    alerts = await book.scan(dt.datetime(2026, 11, 25, 9, 51, tzinfo=tz))
    assert [a.kind for a in alerts] == ["sign_overdue"]
    assert book.snapshot.overdue == {"SCJG330102": 1}
    # once a 督办 for it is recorded, the same alert is not raised again
    await book.check(
        "work_order_event", ev(1, "supervise", reason="签收超时", supervision="sign_overdue")
    )
    assert await book.scan(dt.datetime(2026, 11, 25, 9, 52, tzinfo=tz)) == []
    await book.check("work_order_event", ev(2, "sign"))
    # four working hours before the answer deadline (2026-12-16 17:30): near
    alerts = await book.scan(dt.datetime(2026, 12, 16, 14, 0, tzinfo=tz))
    assert [a.kind for a in alerts] == ["answer_due_soon"] and book.snapshot.due_soon
    alerts = await book.scan(dt.datetime(2026, 12, 17, 9, 0, tzinfo=tz))
    assert [a.kind for a in alerts] == ["answer_overdue"]


async def test_two_processes_sharing_a_store_apply_one_step_at_a_time(store: Store) -> None:
    """Two books on one store stand for two ``serve --workers`` processes or two nodes: the
    same order signed by both at the same moment is signed once; the other step is refused
    with E_ORDER_STATE (it reads the state the first one wrote), never applied twice."""
    first, second = new_book(store), new_book(store)
    assert await first.check("work_order", order()) is None
    results = await asyncio.gather(
        *(
            book.check("work_order_event", ev(n, "sign"))
            for n, book in ((101, first), (102, second), (103, first), (104, second))
        ),
        return_exceptions=True,
    )
    refusals = [r for r in results if isinstance(r, HubError)]
    assert len(refusals) == 3 and all(r.code == "E_ORDER_STATE" for r in refusals)
    history = await new_book(store).history(NO)
    assert [e["event"] for e in history].count("sign") == 1
    # the lease is free again: a later step goes through at once
    await second.check("work_order_event", ev(105, "handle"))
    assert (await first.get(NO) or {})["state"] == "handling"


async def test_a_busy_book_refuses_with_a_retryable_store_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = new_book(store)
    monkeypatch.setattr(book_mod, "LEASE_WAIT_SECONDS", 0.05)
    assert await store.acquire_lease(book_mod.LEASE_NAME, "another-node", 30.0)
    err = await refused(book, "work_order", order())
    assert err.code == "E_STORE" and err.status == 503 and "busy" in err.message
    assert await book.get(NO) is None  # nothing written
    assert await store.release_lease(book_mod.LEASE_NAME, "another-node")
    assert await book.check("work_order", order()) is None
