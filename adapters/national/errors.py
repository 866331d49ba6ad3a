"""Errors of the national connector (codes listed in :data:`hub.errors.ERROR_CODES`)."""

from __future__ import annotations

from hub.errors import HubError

__all__ = ["NationalRejected", "ReconcileError", "VersionConflict"]


class NationalRejected(HubError):
    """The national system refused a record; the message carries its national code and field
    (the record is dead-lettered and quarantined for the department that sent it)."""

    code = "E_NATIONAL_REJECT"
    status = 422
    title = "Refused by the national system"


class VersionConflict(HubError):
    """A catalog update conflicts with the national version and was not applied (the nation
    is ahead or differs, or ``on_conflict: dead_letter``); never overwritten silently."""

    code = "E_VERSION_CONFLICT"
    status = 409
    title = "Catalog version conflict"


class ReconcileError(HubError):
    """A reconciliation (对账) found differences it did not repair; ``jghub national
    reconcile`` exits non-zero with it."""

    code = "E_RECONCILE"
    status = 409
    title = "Reconciliation differences"
