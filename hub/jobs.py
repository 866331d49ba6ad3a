"""Scheduled jobs that run on one hub node at a time.

Several nodes share a PostgreSQL store; a scheduled job (pruning by the retention policy, a
polling source's sync) must still run once, not once per node. Each job is guarded by a lease
row in the store (``Store.acquire_lease``): the node holding the unexpired lease runs
the job and renews the lease; when that node dies the lease runs out and another node takes the
job over. On a store without leases (SQLite, memory: one node) the job simply runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from hub.store.base import Prunable

if TYPE_CHECKING:
    from hub.config import RetentionSettings
    from hub.store import Store

__all__ = ["LeaseHolder", "SingletonJob", "prune_once", "retention_job"]

log = logging.getLogger("jghub.jobs")


class LeaseHolder:
    """Takes and keeps one job's lease for a node (always held on a one-node store)."""

    def __init__(self, store: Store, job: str, owner: str, seconds: float) -> None:
        # a store several nodes share (PostgreSQL) needs the lease; on a one-node store (SQLite,
        # memory) this node is the only one, so the job is always its own
        self.leases = store if getattr(store, "shared_by_nodes", False) else None
        self.job = job
        self.owner = owner
        self.seconds = seconds

    async def acquire(self) -> bool:
        """Take or renew the lease; False when another node holds it (or the store is down)."""
        if self.leases is None:
            return True
        try:
            return await self.leases.acquire_lease(self.job, self.owner, self.seconds)
        except Exception as exc:  # the store is unreachable: we cannot know, so we do not lead
            log.warning("could not renew the lease of job %s: %s", self.job, exc)
            return False

    async def release(self) -> None:
        if self.leases is not None:
            with contextlib.suppress(Exception):
                await self.leases.release_lease(self.job, self.owner)


class SingletonJob:
    """Runs ``fn`` every ``interval`` seconds on whichever node holds the job's lease."""

    def __init__(
        self,
        store: Store,
        name: str,
        owner: str,
        interval: float,
        fn: Callable[[], Awaitable[object]],
    ) -> None:
        self.name = name
        self.interval = interval
        self.fn = fn
        # the lease outlives one interval, so the holder keeps it from run to run
        self.lease = LeaseHolder(store, f"job:{name}", owner, max(30.0, interval * 2.5))
        self.runs = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name=f"jghub-job:{self.name}")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.lease.release()

    async def _loop(self) -> None:
        while not self._stop.is_set():
            if await self.lease.acquire():
                try:
                    await self.fn()
                    self.runs += 1
                except Exception:
                    log.exception(
                        "scheduled job %s failed; next run in %.0f s", self.name, self.interval
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)


async def prune_once(
    store: Store,
    settings: RetentionSettings,
    archive_dir: Path | None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Apply the retention policy once: prune finished messages older than ``trace_days``
    in batches, writing a summary line of each to ``archive_dir`` first (when set). The audit
    log lives in the security database and is never touched. Returns how many were pruned."""
    if settings.trace_days <= 0 or not isinstance(store, Prunable):
        return 0
    before = clock() - settings.trace_days * 86400.0
    total = 0
    while True:
        sink = (lambda rows: _archive(archive_dir, rows)) if archive_dir is not None else None
        pruned = await store.prune(before, settings.batch, sink)
        if not pruned:
            return total
        total += len(pruned)
        if len(pruned) < settings.batch:
            return total


def _archive(folder: Path, rows: list[dict[str, Any]]) -> None:
    """Append pruned messages' summaries to one NDJSON file per UTC day of pruning, before the
    delete commits: a crash in between archives those rows again on the next run (lines may
    repeat, never go missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    with (folder / f"pruned-{day}.ndjson").open("ab") as fh:
        for row in rows:
            fh.write(orjson.dumps(row) + b"\n")


def retention_job(
    store: Store,
    settings: RetentionSettings,
    base_dir: Path,
    owner: str,
    clock: Callable[[], float],
) -> SingletonJob | None:
    """The pruning job of the retention policy, or None when nothing is ever pruned."""
    if settings.trace_days <= 0 or not isinstance(store, Prunable):
        return None
    folder = settings.archive_dir
    if folder is not None and not folder.is_absolute():
        folder = base_dir / folder

    async def run() -> None:
        n = await prune_once(store, settings, folder, clock)
        if n:
            log.info(
                "retention: pruned %d delivered messages older than %g days", n, settings.trace_days
            )

    return SingletonJob(store, "retention", owner, settings.interval_seconds, run)
