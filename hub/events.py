"""Lifecycle events passed to observer hooks (``hub_messages_accepted`` and friends)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AcceptedMessage", "DeliveryEvent"]


@dataclass(frozen=True, slots=True)
class AcceptedMessage:
    """A message that was durably committed and acknowledged to its source."""

    message_id: str
    source: str
    dataset: str
    targets: tuple[str, ...]
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """One delivery attempt's outcome for one (message, target)."""

    message_id: str
    target: str
    route: str
    attempt: int
    status: int | None
    detail: str
    latency_ms: float
