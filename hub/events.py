"""Lifecycle events passed to observer hooks (``hub_messages_accepted`` and friends)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AcceptedMessage", "AdapterHealth", "DeliveryEvent"]


@dataclass(frozen=True, slots=True)
class AcceptedMessage:
    """A message that was durably committed and acknowledged to its source."""

    message_id: str
    source: str
    dataset: str
    targets: tuple[str, ...]
    duplicate: bool = False
    #: W3C traceparent the message carries (the source's, or one the hub started)
    traceparent: str | None = None


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
    #: when the hub accepted the message (end-to-end latency = settled - accepted_at)
    accepted_at: float | None = None
    #: the message's W3C traceparent (logs carry its trace id)
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class AdapterHealth:
    """What a plugin says about one system's adapter, transport or endpoint
    (``hub_adapter_health``). ``status``: ``up``, ``degraded``, ``down`` or ``unknown``."""

    system: str
    status: str
    detail: str = ""
    #: what produced it: ``probe`` (an active check) or the reporting plugin's name
    source: str = "probe"
