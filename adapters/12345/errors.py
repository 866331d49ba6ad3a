"""Errors of the 12345 hotline adapter (codes listed in :data:`hub.errors.ERROR_CODES`)."""

from __future__ import annotations

from hub.errors import HubError

__all__ = ["AttachmentChecksumError", "OrderDeadlineError", "OrderStateError"]


class OrderStateError(HubError):
    """A work-order event that the order's current state does not allow (签收 of a closed
    order, 评价 before 回访 ...), or an event for an order the hub never saw. The message
    names the order, its state and the attempted event; the record is quarantined."""

    code = "E_ORDER_STATE"
    status = 409
    title = "Impossible work-order transition"


class OrderDeadlineError(HubError):
    """A work-order event that is only allowed within a time limit came too late: an
    extension (延期申请) asked less than the required working days before the deadline, or a
    misrouted order returned (退回) after the return period."""

    code = "E_ORDER_DEADLINE"
    status = 409
    title = "Work-order time limit passed"


class AttachmentChecksumError(HubError):
    """An attachment's bytes (inline or fetched from its reference) do not match the SHA-256
    checksum or the size the work order gives for it."""

    code = "E_ATTACHMENT_CHECKSUM"
    status = 422
    title = "Attachment checksum mismatch"
