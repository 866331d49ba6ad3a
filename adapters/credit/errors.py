"""Errors of the credit adapter (codes listed in :data:`hub.errors.ERROR_CODES`)."""

from __future__ import annotations

from hub.errors import HubError

__all__ = ["CreditRejected"]


class CreditRejected(HubError):
    """The credit platform refused a record (its own code, e.g. ``XY4001``, and field are in
    the message); the delivery is dead-lettered, nothing is lost (``jghub dlq replay``)."""

    code = "E_CREDIT_REJECT"
    status = 422
    title = "Refused by the credit platform"
