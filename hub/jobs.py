"""Scheduled jobs that run on one hub node at a time.

Several nodes share a PostgreSQL store; a scheduled job (pruning by the retention policy, a
polling source's sync) must still run once, not once per node. Each job is guarded by a lease
row in the store (``Store.acquire_lease``): the node holding the unexpired lease runs
the job and renews the lease; when that node dies the lease runs out and another node takes the
job over. On a store without leases (SQLite, memory: one node) the job simply runs.

The retention policy has two jobs: :func:`retention_job` prunes finished messages and their
traces (one node of a shared store runs it); :func:`audit_archive_job` exports the audit log
(全程留痕, in each node's own security database) day by day to the archive folder. The audit
log itself is never deleted or shortened by either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from hub.store.base import Prunable

if TYPE_CHECKING:
    from hub.config import RetentionSettings
    from hub.store import Store
    from security.audit import AuditLog

__all__ = [
    "LeaseHolder",
    "SingletonJob",
    "archive_audit_once",
    "audit_archive_job",
    "prune_once",
    "retention_job",
]

log = logging.getLogger("jghub.jobs")


class LeaseHolder:
    """Takes and keeps one job's lease for a node (always held on a one-node store)."""

    def __init__(self, store: Store | None, job: str, owner: str, seconds: float) -> None:
        """``store=None``: the job works on this node's own state (e.g. its security
        database), so every node runs its own and no lease is taken."""
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
    """Runs ``fn`` every ``interval`` seconds on whichever node holds the job's lease
    (``store=None``: on this node, with no lease: the job's state is the node's own)."""

    def __init__(
        self,
        store: Store | None,
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


#: one archive file per UTC day of the audit log: ``audit-YYYY-MM-DD.jsonl``
_AUDIT_FILE = re.compile(r"^audit-(\d{4}-\d{2}-\d{2})\.jsonl$")


def _last_archived_day(folder: Path) -> date | None:
    days = [
        date.fromisoformat(m.group(1))
        for p in folder.glob("audit-*.jsonl")
        if (m := _AUDIT_FILE.match(p.name)) is not None
    ]
    return max(days) if days else None


async def archive_audit_once(
    audit: AuditLog, folder: Path, clock: Callable[[], float] = time.time
) -> list[Path]:
    """Export every whole UTC day of the audit log not yet archived in ``folder`` (the days
    after the newest ``audit-YYYY-MM-DD.jsonl`` there, up to yesterday) with
    :meth:`security.audit.AuditLog.export`, one file per day that has entries. Each file is
    re-verifiable offline (``jghub audit verify --export FILE``) and its header's ``prev_hash``
    is the last hash of the file before, so the days chain. The log is only read, never
    shortened. Files are written whole (temporary name, fsync, rename): a crash leaves no
    half file. Returns the files written."""
    head = await audit.db.audit_head()
    if head is None:
        return []
    yesterday = datetime.fromtimestamp(clock(), UTC).date() - timedelta(days=1)
    last = _last_archived_day(folder) if folder.is_dir() else None
    if last is not None:
        day = last + timedelta(days=1)
    else:
        [first] = await audit.db.audit_page(0, head[0], 1)
        day = date.fromisoformat(first.at[:10])
    written: list[Path] = []
    while day <= yesterday:
        lines = [line async for line in audit.export(day, day)]
        if len(lines) > 1:  # the header, then entries: a day without entries has no file
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"audit-{day.isoformat()}.jsonl"
            tmp = path.with_name(path.name + ".tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            written.append(path)
        day += timedelta(days=1)
    return written


def audit_archive_job(
    audit: AuditLog | None,
    settings: RetentionSettings,
    base_dir: Path,
    owner: str,
    clock: Callable[[], float],
) -> SingletonJob | None:
    """The audit archiving job of the retention policy (``archive_dir/audit/``), or None when
    there is no audit log (no ``security:`` section), no ``archive_dir`` or
    ``audit_archive: false``. Every node runs its own: the audit log lives in the node's own
    security database."""
    if audit is None or settings.archive_dir is None or not settings.audit_archive:
        return None
    folder = settings.archive_dir
    if not folder.is_absolute():
        folder = base_dir / folder
    folder = folder / "audit"

    async def run() -> None:
        for path in await archive_audit_once(audit, folder, clock):
            log.info("retention: archived the audit log of %s", path.name[6:16])

    return SingletonJob(None, "audit-archive", owner, settings.interval_seconds, run)
