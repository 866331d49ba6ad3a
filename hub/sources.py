"""Running inbound sources: the hub collects records from systems that do not post them
(动态采集 polling an API, 批量交换 batch files, a 前置库 staging table, a message queue).

Each configured ``inbound.source`` becomes one :class:`SourceRunner`: a background task on the
node that runs the source, restarts it with a backoff when it fails, and stops it when the hub
stops. The source sees the hub only through :class:`HubSourceContext`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hub.specs import InboundSource

if TYPE_CHECKING:
    from hub.runtime import Hub, IngestResult

__all__ = ["HubSourceContext", "SourceRunner"]

log = logging.getLogger("jghub.sources")


class HubSourceContext:
    """What a running source may do: ingest, keep a cursor, wait. See
    :class:`hub.specs.SourceContext` for the contract."""

    def __init__(self, hub: Hub, system: str, stopping: asyncio.Event) -> None:
        self.hub = hub
        self.system = system
        self.stopping = stopping
        self._scope = f"source:{system}"
        #: ingests that committed (a runner clears its failure count on progress)
        self.ingests = 0

    async def ingest(
        self,
        records: Sequence[Any],
        *,
        keys: Sequence[str] | None = None,
        dataset: str | None = None,
        origin: str = "",
        traceparent: str | None = None,
    ) -> IngestResult:
        result = await self.hub.ingest_records(
            self.system,
            records,
            dataset=dataset,
            keys=keys,
            origin=origin or self.system,
            traceparent=traceparent,
            single=False,
        )
        self.ingests += 1
        return result

    async def get_state(self, key: str) -> str | None:
        return await self.hub.store.get_state(self._scope, key)

    async def put_state(self, key: str, value: str) -> None:
        await self.hub.store.put_state(self._scope, key, value)

    def verify_detached(self, payload: bytes, signature: str) -> str:
        return self.hub.guard.verify_detached(self.system, payload, signature)

    async def sleep(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), max(0.0, seconds))
        return self.stopping.is_set()


class SourceRunner:
    """Runs one source as a task; restarts it after a failure with a doubling backoff."""

    def __init__(
        self,
        hub: Hub,
        system: str,
        kind: str,
        source: InboundSource,
        *,
        min_backoff: float = 0.5,
        max_backoff: float = 60.0,
    ) -> None:
        self.hub = hub
        self.system = system
        self.kind = kind
        self.source = source
        self.stopping = asyncio.Event()
        self.ctx = HubSourceContext(hub, system, self.stopping)
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.task: asyncio.Task[None] | None = None
        #: failures since the source last made progress, and the last one's text (for health)
        self._failures = 0
        self._ingests_at_failure = 0
        self.last_error: str | None = None

    @property
    def failures(self) -> int:
        """Failures in a row: cleared once the source commits records again."""
        return 0 if self.ctx.ingests > self._ingests_at_failure else self._failures

    def start(self) -> None:
        self.stopping.clear()
        self.task = asyncio.create_task(self._lead(), name=f"jghub-source-{self.system}")

    async def _lead(self) -> None:
        """On a store shared by several nodes a source runs on one node at a time: the one
        holding its lease (renewed every third of ``LEASE_SECONDS``). A node that loses the lease
        (it could not renew it in time) stops the source; another node takes it over."""
        from hub.jobs import LeaseHolder

        lease = LeaseHolder(
            self.hub.store, f"source:{self.system}", self.hub.node_id, self.LEASE_SECONDS
        )
        if lease.leases is None:
            await self._run(self.stopping)
            return
        renew = self.LEASE_SECONDS / 3
        try:
            while not self.stopping.is_set():
                if not await lease.acquire():
                    await self.ctx.sleep(renew)
                    continue
                term = asyncio.Event()
                self.ctx.stopping = term
                runner = asyncio.create_task(self._run(term))
                while not runner.done():
                    await asyncio.wait({runner}, timeout=renew)
                    if runner.done():
                        break
                    if self.stopping.is_set() or not await lease.acquire():
                        term.set()
                        await runner
                self.ctx.stopping = self.stopping
                await runner
        finally:
            await lease.release()

    #: how long a node's claim on a source lasts without renewal (shared stores)
    LEASE_SECONDS = 30.0

    async def _run(self, term: asyncio.Event) -> None:
        backoff = self.min_backoff
        while not term.is_set() and not self.stopping.is_set():
            try:
                await self.source.run(self.ctx)
                if not self.stopping.is_set():  # a source that returns is run again
                    await self.ctx.sleep(self.min_backoff)
                backoff = self.min_backoff
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failures = self.failures + 1
                self._ingests_at_failure = self.ctx.ingests
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception(
                    "source %s of %s failed (%d in a row); restarting in %.1f s",
                    self.kind,
                    self.system,
                    self.failures,
                    backoff,
                )
                await self.ctx.sleep(backoff)
                backoff = min(self.max_backoff, backoff * 2)

    async def stop(self, timeout: float = 10.0) -> None:
        """Ask the source to stop; cancel it if it does not within ``timeout``."""
        self.stopping.set()
        self.ctx.stopping.set()
        task, self.task = self.task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception:
            log.exception("source %s of %s ended with an error", self.kind, self.system)
