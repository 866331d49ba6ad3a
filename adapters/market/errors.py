"""Errors of the market supervision platform adapter (codes listed in
:data:`hub.errors.ERROR_CODES`)."""

from __future__ import annotations

import orjson

from hub.errors import HubError

__all__ = ["FeedError", "MarketRejected", "platform_said"]


def platform_said(body: bytes) -> str:
    """What the platform's error answer says (``code (field f): msg``), for messages and dead
    letters; the raw start of the body when it is not the platform's JSON error."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode("utf-8", "replace")
    if isinstance(doc, dict):
        field = f" (field {doc['field']})" if doc.get("field") else ""
        return f"platform code {doc.get('code', '?')}{field}: {doc.get('msg', '')}"[:300]
    return str(doc)[:300]


class MarketRejected(HubError):
    """The market platform refused a record (a 检查结果 upload): the message carries the
    platform's code and field; the delivery is dead-lettered and the record quarantined for
    the department that sent it."""

    code = "E_MARKET_REJECT"
    status = 422
    title = "Refused by the market supervision platform"


class FeedError(HubError):
    """A page of a platform feed cannot be used: its signature does not verify, it is not the
    documented shape, or its cursor does not move forward. Nothing of the page is ingested and
    the cursor stays, so the page is read again once the platform serves a good one."""

    code = "E_MARKET_FEED"
    status = 502
    title = "Market platform feed page unusable"
