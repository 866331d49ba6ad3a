"""What the outbound transports to signing platforms (``national``, ``market``) share: one
client session, the hub's own key required (the platform refuses unsigned requests), the hub
attached at start-up, and the quarantine of records the platform refused, in the name of the
department that sent them.

Each platform keeps its own options, request shapes, answer parsing and error codes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from hub.errors import ConfigError
from hub.specs import OutboundItem, Signer
from hub.store import QuarantinedRecord

if TYPE_CHECKING:
    from hub.runtime import Hub

__all__ = ["Refusal", "SignedPlatformTransport"]

#: a record the platform refused: (the delivery, the platform's field or None, the reason)
Refusal = tuple[OutboundItem, str | None, str]


class SignedPlatformTransport:
    """Base of a transport to a platform that requires signed requests. ``options`` needs
    ``batch_size``, ``concurrency`` and ``timeout``; a subclass names the platform in
    :attr:`platform` (for the start-up error)."""

    #: how the start-up error names the peer ("the national system", "the market platform")
    platform = "the platform"
    #: where a failed quarantine is logged
    log = logging.getLogger("jghub.platforms")

    def __init__(self, target: str, options: Any) -> None:
        self.target = target
        self.options = options
        self.max_batch: int = options.batch_size
        self.concurrency: int = options.concurrency
        self._session: aiohttp.ClientSession | None = None
        self._signer: Callable[[], Signer] | None = None
        self.hub: Hub | None = None

    def set_signer(self, current: Callable[[], Signer] | None) -> None:
        """The hub's own key; the platform refuses unsigned requests."""
        if current is None:
            raise ConfigError(
                f"target {self.target}: {self.platform} requires signed requests; give the "
                "hub an own key (keys.own in the hub file)",
                field="keys.own",
            )
        self._signer = current

    def attach(self, hub: Hub) -> None:
        """Give the transport its hub (the store keeps the quarantine)."""
        self.hub = hub

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=self.options.timeout),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def quarantine_refused(
        self, refused: Sequence[Refusal], *, code: str, kind: str, what: str
    ) -> None:
        """Put records the platform refused in the quarantine of the department that sent
        them (it reads it with ``GET /v1/systems/{system}/quarantine``), naming the platform's
        field as ``<target>.<field>``. ``kind`` prefixes the quarantine key
        (``<kind>:<message id>``), ``what`` describes the upload, ``code`` is our error code."""
        hub = self.hub
        if hub is None:
            return
        items = []
        for item, platform_field, reason in refused:
            trace = await hub.store.trace(item.message_id)
            if trace is None:
                continue
            items.append(
                QuarantinedRecord(
                    trace.source,
                    item.dataset,
                    f"{kind}:{item.message_id}",
                    f"{what} to {self.target}, message {item.message_id}",
                    code,
                    f"{self.target}.{platform_field}" if platform_field else None,
                    reason,
                    trace.payload.decode("utf-8", "replace"),
                    hub.clock(),
                )
            )
        try:
            await hub.store.quarantine(items)
        except Exception:  # the dead letter keeps the reason anyway
            self.log.exception(
                "could not quarantine %d records refused by %s", len(items), self.target
            )
