"""The doorbell: wakes a node's dispatcher when another process of the same node committed
work for a target (ingest worker processes, ``jghub dlq replay``).

A Linux abstract-namespace Unix datagram socket named after the store file: no file to clean
up, no path-length trouble. A ring carries target names, one per line. Ringing is best effort:
when nobody listens the datagram is dropped and the dispatcher's idle poll still finds the work
within ``dispatcher.idle_poll_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["DoorbellListener", "doorbell_address", "ring"]

log = logging.getLogger("jghub.doorbell")


def doorbell_address(store_path: Path) -> str:
    """The abstract socket name for the node that owns ``store_path``."""
    digest = hashlib.sha256(str(store_path.resolve()).encode()).hexdigest()[:24]
    return f"\0jghub-doorbell-{digest}"


def ring(address: str, targets: Iterable[str]) -> bool:
    """Send target names to the node's dispatcher; False when nobody listens."""
    data = "\n".join(sorted(set(targets))).encode()
    if not data:
        return True
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            s.sendto(data[:60_000], address)
    except OSError:  # no listener, its queue is full, or no descriptor left (EMFILE)
        return False
    return True


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_ring: Callable[[list[str]], None]) -> None:
        self.on_ring = on_ring

    def datagram_received(self, data: bytes, addr: object) -> None:
        names = [n for n in data.decode("utf-8", "replace").split("\n") if n]
        try:
            self.on_ring(names)
        except Exception:  # a bad datagram must not stop the listener
            log.exception("doorbell handler failed")


class DoorbellListener:
    """Listens for rings while the node runs."""

    def __init__(self, address: str, on_ring: Callable[[list[str]], None]) -> None:
        self.address = address
        self.on_ring = on_ring
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(self.address)
        except OSError:
            sock.close()
            log.warning("doorbell %r is taken; relying on the idle poll", self.address[1:])
            return
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self.on_ring), sock=sock
        )
        self._transport = transport

    async def close(self) -> None:
        if self._transport is not None:
            with contextlib.suppress(Exception):
                self._transport.close()
            self._transport = None
