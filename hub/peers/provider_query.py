"""A simulated provider system that keeps its data itself (提供方自有系统): a real aiohttp server on
127.0.0.1 answering the paging contract of proxied catalog resources (:mod:`hub.sharing.proxy`)
the way a department's query interface would.

* ``GET /query?after=&limit=`` with ``Authorization: Bearer <token>``: the records after
  ``after`` in position order, at most ``limit``; 401 with a problem document for a wrong
  token, 400 for bad parameters;
* ``broken``: answers 200 with a body that does not follow the contract;
* ``go_down()`` / ``come_up()``: connection refused while down;
* ``seen``: the query strings it was asked (the hub must send nothing of the requester's query).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from hub.peers import PeerServer

__all__ = ["ProviderQueryService"]


@dataclass
class ProviderQueryService(PeerServer):
    """Start with ``await svc.start()``; ``svc.url`` is the query endpoint."""

    records: list[dict[str, Any]] = field(default_factory=list)
    token: str = "provider-query-token-0123456789"
    port: int = 0
    broken: bool = False
    seen: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.down = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/query"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/query", self._query)
        return app

    async def _query(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.query))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response(
                {"code": "UNAUTHORIZED", "detail": "bad token"},
                status=401,
                content_type="application/problem+json",
            )
        try:
            after = int(request.query.get("after", "0"))
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return web.json_response({"detail": "after and limit are integers"}, status=400)
        if self.broken:
            return web.json_response({"rows": self.records[:limit]})
        items = [
            {"position": i, "record": rec}
            for i, rec in enumerate(self.records, start=1)
            if i > after
        ][: max(0, limit)]
        return web.json_response({"items": items})
