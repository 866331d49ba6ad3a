"""Rows of the data-sharing tables (数据共享) as the SQL stores write and read them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from hub.store.base import ShareEvent, ShareRecord

__all__ = [
    "SHARE_TABLES",
    "share_event",
    "share_event_row",
    "share_record",
    "share_row",
    "share_table",
]


SHARE_TABLES = {
    "application": "share_applications",
    "grant": "share_grants",
    "subscription": "share_subscriptions",
}


def share_table(kind: str) -> str:
    """The table of a sharing kind (a fixed name: never text from a request)."""
    try:
        return SHARE_TABLES[kind]
    except KeyError:
        raise ValueError(f"unknown sharing kind {kind!r}") from None


def share_row(r: ShareRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "rev": r.rev,
        "state": r.state,
        "dataset": r.dataset,
        "provider": r.provider,
        "holder": r.holder,
        "due_at": r.due_at,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "doc": orjson.dumps(r.doc).decode(),
    }


def share_record(kind: str, r: Sequence[Any]) -> ShareRecord:
    return ShareRecord(
        kind, r[0], int(r[1]), r[2], r[3], r[4], r[5], r[7], r[8], orjson.loads(r[9]), r[6]
    )


def share_event_row(e: ShareEvent) -> tuple[Any, ...]:
    return (
        e.application_id,
        e.at,
        e.actor,
        e.action,
        e.state,
        e.reason,
        orjson.dumps(e.details).decode(),
    )


def share_event(r: Sequence[Any]) -> ShareEvent:
    return ShareEvent(r[0], float(r[1]), r[2], r[3], r[4], r[5], orjson.loads(r[6]))
