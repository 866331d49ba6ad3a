"""Simulated peer systems (real aiohttp servers on 127.0.0.1) for tests and the demo."""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass

import aiohttp
from aiohttp import web

__all__ = ["ClientPeer", "PeerFaults", "PeerServer", "ThrottledFaults", "bound_port"]


def bound_port(site: web.TCPSite) -> int:
    """The port a started site listens on (useful after binding port 0)."""
    server = site._server
    sockets: list[socket.socket] = list(getattr(server, "sockets", None) or [])
    if not sockets:
        raise RuntimeError("site is not listening")
    return int(sockets[0].getsockname()[1])


class PeerServer(ABC):
    """The lifecycle a simulated peer shares: listen on 127.0.0.1 (``port`` 0 picks a free
    one), go down like a host that vanished (listener closed, keep-alive connections dropped)
    and come back on the same port. A peer provides :meth:`app` and the attributes below."""

    port: int
    down: bool = False
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None

    @abstractmethod
    def app(self) -> web.Application:
        """The peer's own routes."""

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await self.come_up()

    async def come_up(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        if self.port == 0:
            self.port = bound_port(self._site)
        self.down = False

    async def go_down(self) -> None:
        """Stop listening: new connections are refused until :meth:`come_up`."""
        self.down = True
        if self._site is not None:
            await self._site.stop()
            self._site = None
        # Stopping the listener leaves keep-alive connections open; a host that went down
        # would drop them too.
        if self._runner is not None and self._runner.server is not None:
            for conn in list(self._runner.server.connections):
                if conn.transport is not None:
                    conn.transport.close()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class ClientPeer(PeerServer):
    """A peer that also calls out (pushes to the hub, fetches attachments) over one client
    session: opened by :meth:`start` (``client_timeout`` seconds a request), or on first use of
    :meth:`client`, and closed by :meth:`stop`."""

    client_timeout: float = 10.0
    _session: aiohttp.ClientSession | None = None

    def client(self) -> aiohttp.ClientSession:
        """The peer's client session (opened now if it is not yet)."""
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.client_timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def start(self) -> None:
        await super().start()
        self.client()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await super().stop()


@dataclass
class PeerFaults:
    """The fault knobs every simulated platform has; tests change them while it runs. A
    platform's own behaviour class adds its own knobs and answers with its own codes.
    Counters (``fail_next`` ...) count requests down to zero: :meth:`take`."""

    #: the next N requests are answered 503 (the platform's maintenance / busy code)
    fail_next: int = 0
    #: seconds a request signature is fresh
    tolerance: float = 300.0

    def take(self, counter: str) -> bool:
        """Whether the fault ``counter`` names applies to this request: True (and one less
        to go) while it is above zero."""
        left: int = getattr(self, counter)
        if left <= 0:
            return False
        setattr(self, counter, left - 1)
        return True


@dataclass
class ThrottledFaults(PeerFaults):
    """:class:`PeerFaults` of a platform that also rate-limits."""

    #: the next N requests are answered 429 with ``Retry-After: retry_after``
    throttle: int = 0
    retry_after: str = "1"
