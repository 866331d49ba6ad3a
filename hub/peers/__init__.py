"""Simulated peer systems (real aiohttp servers on 127.0.0.1) for tests and the demo."""

from __future__ import annotations

import socket

from aiohttp import web

__all__ = ["bound_port"]


def bound_port(site: web.TCPSite) -> int:
    """The port a started site listens on (useful after binding port 0)."""
    server = site._server
    sockets: list[socket.socket] = list(getattr(server, "sockets", None) or [])
    if not sockets:
        raise RuntimeError("site is not listening")
    return int(sockets[0].getsockname()[1])
