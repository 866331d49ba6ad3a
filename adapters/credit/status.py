"""联合奖惩: a department asks a subject's list status before it acts.

``GET /v1/credit/subjects/{subject}/status?system=<department system>`` answers from the list
entries the hub received from the credit platform and kept in its registry (the store's ledger,
written by the ``credit_registry`` transport): the subject's active entries (列入, not
expired), the entries removed or expired (history), and whether the departments should reward
(激励), punish (惩戒) or neither. The caller authenticates as the department system named by
``system=`` (its bearer token, or a ``system`` role token with the ``security:`` section) and
that system must be a recipient of the credit lists (a route of ``credit_list_entry`` to it);
every answer is audited (``data.access``, ``what: credit.status``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import orjson
from aiohttp import web

from adapters.credit.codes import ListAction, ListType
from adapters.credit.contracts import ListEntry
from hub.errors import BadParameter, ForbiddenError
from hub.store.base import LedgerEntry

__all__ = ["DEFAULT_BOOK", "ledger_entry", "list_recipients", "setup_routes", "subject_status"]

DEFAULT_BOOK = "credit:lists"


def ledger_entry(book: str, body: Any, at: float) -> LedgerEntry:
    """A delivered list entry (canonical JSON) as the ledger row of its subject: the ledger's
    ``dataset`` is the subject's USCC / ID number, ``key`` the entry id, ``version`` the
    entry's 数据更新时间 in milliseconds (an older version never replaces a newer one)."""
    entry = ListEntry.model_validate(body)
    raw = orjson.dumps(entry.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return LedgerEntry(
        book=book,
        dataset=entry.subject,
        key=entry.entry_id,
        day=entry.listed_on.isoformat(),
        digest=hashlib.sha256(raw).hexdigest(),
        body=raw,
        version=int(entry.updated_at.timestamp() * 1000),
        at=at,
    )


async def subject_status(
    store: Any, subject: str, today: dt.date, *, book: str = DEFAULT_BOOK
) -> dict[str, Any]:
    """The status document of one subject on ``today``."""
    active: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for row in await store.ledger_entries(book, subject):
        entry = ListEntry.model_validate_json(row.body)
        item = {
            "entry_id": entry.entry_id,
            "list_type": entry.list_type.value,
            "list_name": entry.list_type.label,
            "action": entry.action.value,
            "listed_on": entry.listed_on.isoformat(),
            "valid_until": entry.valid_until.isoformat() if entry.valid_until else None,
            "removed_on": entry.removed_on.isoformat() if entry.removed_on else None,
            "decided_by": entry.decided_by,
            "reason": entry.reason,
            "measures": entry.measures,
            "updated_at": entry.updated_at.isoformat(),
        }
        expired = entry.valid_until is not None and entry.valid_until < today
        if entry.action is ListAction.LISTED and not expired and entry.listed_on <= today:
            active.append(item)
        else:
            item["inactive_because"] = (
                "removed"
                if entry.action is ListAction.REMOVED
                else ("expired" if expired else "not yet effective")
            )
            history.append(item)
    punish = [a for a in active if not ListType(a["list_type"]).rewarding]
    reward = [a for a in active if ListType(a["list_type"]).rewarding]
    advice = "punish" if punish else "reward" if reward else "none"
    return {
        "subject": subject,
        "date": today.isoformat(),
        "listed": bool(active),
        "advice": advice,  # 惩戒 wins over 激励 when a subject is on both kinds of list
        "advice_label": {"punish": "惩戒", "reward": "激励", "none": "无"}[advice],
        "active": active,
        "history": history,
    }


def list_recipients(hub: Any) -> set[str]:
    """Department systems the credit lists are routed to (the registry target excluded)."""
    out: set[str] = set()
    for route in hub.config.routes:
        if route.dataset == "credit_list_entry":
            out.update(t.system for t in route.targets)
    return {
        s for s in out if getattr(hub.targets.get(s), "transport_name", None) != "credit_registry"
    }


def _check_subject(subject: str) -> str:
    from contracts.validators import id_card_error, uscc_error

    subject = subject.strip().upper()
    if uscc_error(subject) is None or id_card_error(subject) is None:
        return subject
    raise BadParameter(
        f"subject {subject!r} is neither a valid 统一社会信用代码 ({uscc_error(subject)}) nor a "
        f"valid 身份证号码 ({id_card_error(subject)})",
        field="subject",
    )


async def _get_status(request: web.Request) -> web.Response:
    # the records routes' own check (static token, or role policy with security:), reused so
    # that this route authenticates exactly like them
    from hub.api import HUB_KEY, _guard

    hub = request.app[HUB_KEY]
    system = request.query.get("system", "")
    if not system:
        raise BadParameter(
            "system= must name the department system asking (its credentials)", field="system"
        )
    rt = hub.system(system)  # unknown: E_UNKNOWN_SYSTEM
    principal = await _guard(request, "records.receive", system=system, static_for=rt)
    if system not in list_recipients(hub):
        raise ForbiddenError(
            f"system {system!r} does not receive the credit lists (no route of "
            "credit_list_entry to it)",
            field="system",
        )
    subject = _check_subject(request.match_info["subject"])
    calendar = hub.config.work_calendar()
    today = dt.datetime.fromtimestamp(hub.clock(), calendar.tz).date()
    from adapters.credit.transport import RegistryTransport

    book = next(
        (
            t.transport.options.book
            for t in hub.targets.values()
            if isinstance(t.transport, RegistryTransport)
        ),
        DEFAULT_BOOK,
    )
    doc = await subject_status(hub.store, subject, today, book=book)
    await hub.guard.record(
        "data.access",
        principal,
        object=f"subject {subject}",
        details={"what": "credit.status", "system": system, "listed": doc["listed"]},
    )
    return web.json_response(doc, dumps=lambda o: orjson.dumps(o).decode())


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/credit/subjects/{subject}/status", _get_status)
