"""Durable storage of messages, deliveries and traces behind one :class:`Store` protocol."""

from __future__ import annotations

from pathlib import Path

from hub.store.base import (
    ClaimedDelivery,
    DeadLetterInfo,
    DeliveryInfo,
    DeliveryState,
    EnqueueResult,
    MessageTrace,
    NewMessage,
    Outcome,
    QuarantinedRecord,
    RouteStats,
    Store,
    SubjectLink,
    TargetQueue,
    TargetRef,
    TraceEvent,
)

__all__ = [
    "ClaimedDelivery",
    "DeadLetterInfo",
    "DeliveryInfo",
    "DeliveryState",
    "EnqueueResult",
    "MessageTrace",
    "NewMessage",
    "Outcome",
    "QuarantinedRecord",
    "RouteStats",
    "Store",
    "SubjectLink",
    "TargetQueue",
    "TargetRef",
    "TraceEvent",
    "make_store",
]


def make_store(kind: str, path: Path, *, durability: str = "full", max_group: int = 2000) -> Store:
    """Build (not open) the store a config names."""
    if kind == "memory":
        from hub.store.memory import MemoryStore

        return MemoryStore()
    if kind == "sqlite":
        from hub.store.sqlite import SQLiteStore

        return SQLiteStore(path, durability=durability, max_group=max_group)
    raise ValueError(f"unknown store kind {kind!r}")
