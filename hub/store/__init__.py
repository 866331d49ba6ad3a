"""Durable storage of messages, deliveries and traces behind one :class:`Store` protocol."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hub.store.base import (
    ClaimedDelivery,
    DeadLetterInfo,
    DeliveryInfo,
    DeliveryState,
    EnqueueResult,
    LedgerEntry,
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
    UndeliveredInfo,
)

if TYPE_CHECKING:
    from hub.config import HubConfig

__all__ = [
    "ClaimedDelivery",
    "DeadLetterInfo",
    "DeliveryInfo",
    "DeliveryState",
    "EnqueueResult",
    "LedgerEntry",
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
    "UndeliveredInfo",
    "make_store",
    "store_for_config",
]


def make_store(
    kind: str,
    path: Path,
    *,
    durability: str = "full",
    settle_sync: str = "relaxed",
    max_group: int = 2000,
    dsn: str | None = None,
    schema: str = "public",
    pool_size: int = 10,
    timeout: float = 5.0,
) -> Store:
    """Build (not open) the store a config names."""
    if kind == "memory":
        from hub.store.memory import MemoryStore

        return MemoryStore()
    if kind == "sqlite":
        from hub.store.sqlite import SQLiteStore

        return SQLiteStore(
            path, durability=durability, settle_sync=settle_sync, max_group=max_group
        )
    if kind == "postgres":
        from hub.store.postgres import PostgresStore

        if not dsn:
            raise ValueError("the postgres store needs a dsn")
        return PostgresStore(
            dsn,
            schema=schema,
            pool_size=pool_size,
            timeout=timeout,
            max_group=max_group,
            settle_sync=settle_sync,
        )
    raise ValueError(f"unknown store kind {kind!r}")


def store_for_config(cfg: HubConfig) -> Store:
    """Build (not open) the store ``cfg.store`` describes."""
    st = cfg.store
    return make_store(
        st.kind,
        cfg.store_path(),
        durability=st.durability,
        settle_sync=st.settle_sync,
        max_group=st.max_group,
        dsn=st.dsn,
        schema=st.db_schema,
        pool_size=st.pool_size,
        timeout=st.timeout,
    )
