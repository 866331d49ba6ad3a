"""The work-order (工单) state machine of the 12345 hotline (国办发〔2020〕53号 and provincial
rules): 受理 → 派单/转办 → 签收 → 办理 → 回复 → 办结 → 回访 → 评价, with 督办, 延期申请 and
退回 on the way and 发回重办 when the requester is not satisfied.

:data:`TRANSITIONS` is the whole table: ``(state, event) -> next state``. Anything not in it is
impossible and :func:`next_state` raises :class:`OrderStateError` (``E_ORDER_STATE``) naming
the order, the state and the event. The table is data so that the documentation
(``docs/adapters/12345.md``) and the table-driven tests read the same thing.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from .errors import OrderStateError

__all__ = [
    "EVENTS",
    "EVENT_NAMES",
    "OPEN_STATES",
    "STATES",
    "STATE_NAMES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Event",
    "State",
    "allowed_events",
    "next_state",
]

State = Literal[
    "new",  # not known to the hub yet
    "received",  # 已受理
    "dispatched",  # 已派单 (派单/转办 to a department, awaiting 签收)
    "signed",  # 已签收
    "handling",  # 办理中
    "replied",  # 已答复 (回复)
    "returned",  # 已退回 (misrouted, back at the 12345 centre)
    "closed",  # 已办结
    "revisited",  # 已回访
    "evaluated",  # 已评价
]

Event = Literal[
    "accept",  # 受理
    "dispatch",  # 派单
    "transfer",  # 转办
    "sign",  # 签收
    "handle",  # 办理
    "reply",  # 回复
    "supervise",  # 督办
    "extension_request",  # 延期申请
    "return",  # 退回
    "close",  # 办结
    "revisit",  # 回访
    "evaluate",  # 评价
    "reopen",  # 发回重办
]

STATES: Final[tuple[str, ...]] = get_args(State)
EVENTS: Final[tuple[str, ...]] = get_args(Event)

STATE_NAMES: Final[dict[str, str]] = {
    "new": "未受理",
    "received": "已受理",
    "dispatched": "已派单",
    "signed": "已签收",
    "handling": "办理中",
    "replied": "已答复",
    "returned": "已退回",
    "closed": "已办结",
    "revisited": "已回访",
    "evaluated": "已评价",
}

EVENT_NAMES: Final[dict[str, str]] = {
    "accept": "受理",
    "dispatch": "派单",
    "transfer": "转办",
    "sign": "签收",
    "handle": "办理",
    "reply": "回复",
    "supervise": "督办",
    "extension_request": "延期申请",
    "return": "退回",
    "close": "办结",
    "revisit": "回访",
    "evaluate": "评价",
    "reopen": "发回重办",
}

#: (state, event) -> next state. 督办 and 延期申请 leave the state as it is.
TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    ("new", "accept"): "received",
    # the 12345 centre answers a consultation itself (直接办结) or dispatches it
    ("received", "dispatch"): "dispatched",
    ("received", "transfer"): "dispatched",
    ("received", "close"): "closed",
    # at the department, before 签收
    ("dispatched", "transfer"): "dispatched",
    ("dispatched", "sign"): "signed",
    ("dispatched", "return"): "returned",
    ("dispatched", "supervise"): "dispatched",
    # signed: handling starts, or the department finds it is not theirs
    ("signed", "handle"): "handling",
    ("signed", "reply"): "replied",
    ("signed", "return"): "returned",
    ("signed", "supervise"): "signed",
    ("signed", "extension_request"): "signed",
    ("handling", "handle"): "handling",
    ("handling", "reply"): "replied",
    ("handling", "supervise"): "handling",
    ("handling", "extension_request"): "handling",
    # the answer given: the department closes it (办结), or the centre sends it back
    ("replied", "close"): "closed",
    ("replied", "supervise"): "replied",
    ("replied", "reopen"): "dispatched",
    # misrouted: back at the centre, which dispatches again or closes it itself
    ("returned", "dispatch"): "dispatched",
    ("returned", "transfer"): "dispatched",
    ("returned", "close"): "closed",
    # after 办结: 回访, then 评价; dissatisfaction sends it back (发回重办)
    ("closed", "revisit"): "revisited",
    ("closed", "reopen"): "dispatched",
    ("revisited", "evaluate"): "evaluated",
    ("revisited", "reopen"): "dispatched",
    ("evaluated", "reopen"): "dispatched",
}

#: states in which the order is still being worked on (deadlines run, counted as open)
OPEN_STATES: Final[frozenset[str]] = frozenset(
    {"received", "dispatched", "signed", "handling", "replied", "returned"}
)
#: states after which nothing but 发回重办 can happen
TERMINAL_STATES: Final[frozenset[str]] = frozenset({"evaluated"})


def allowed_events(state: str) -> list[str]:
    """The events the table allows in ``state``, in table order."""
    return [e for (s, e) in TRANSITIONS if s == state]


def next_state(order_no: str, state: str, event: str, *, satisfaction: str | None = None) -> str:
    """The state after ``event``; raises :class:`OrderStateError` when the table has no such
    transition. 发回重办 after 评价 needs a dissatisfied evaluation (不满意)."""
    nxt = TRANSITIONS.get((state, event))
    if nxt is None:
        allowed = ", ".join(f"{e} ({EVENT_NAMES[e]})" for e in allowed_events(state)) or "none"
        raise OrderStateError(
            f"work order {order_no}: event {event} ({EVENT_NAMES.get(event, '?')}) is "
            f"impossible in state {state} ({STATE_NAMES.get(state, '?')}); allowed: {allowed}",
            field="event",
            order_no=order_no,
            state=state,
            attempted=event,
        )
    if state == "evaluated" and event == "reopen" and satisfaction != "dissatisfied":
        raise OrderStateError(
            f"work order {order_no}: event reopen (发回重办) after 评价 needs a dissatisfied "
            f"evaluation (不满意); the order was evaluated {satisfaction or 'satisfied'}",
            field="event",
            order_no=order_no,
            state=state,
            attempted=event,
        )
    return nxt
