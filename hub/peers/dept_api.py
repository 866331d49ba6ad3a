"""A simulated department REST API the hub polls (动态采集): a real aiohttp server on 127.0.0.1.

It answers like the department systems do, in their own envelope::

    GET /api/v1/jcxx?gxsjq=<更新时间起>&ys=<每页条数>          (updated-since, inclusive)
    GET /api/v1/jcxx?pageToken=<令牌>&ys=<每页条数>            (page tokens)
    -> {"code": "0000", "msg": "成功", "data": {"rows": [...], "nextPageToken": "..."}}

Records are kept with an id (``id_field``) and an update time (``updated_field``), both fields
of the record itself. Updated-since answers are sorted by (update time, id) and include the
given time; page tokens walk the change log (an update appends the record again), and the next
token is always given (the same token when nothing follows).

Warts on demand: ``fail_next(n, status)`` (5xx with the department's error envelope),
``throttle_next(n, retry_after)`` (429 with ``Retry-After``), ``latency`` seconds per answer,
``token`` (401 without the bearer token), ``go_down()`` / ``come_up()``. ``served`` counts the
records it answered with, ``requests`` the requests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from hub.peers import PeerServer

__all__ = ["DeptApi"]

Record = dict[str, Any]


@dataclass
class DeptApi(PeerServer):
    """Start with ``await api.start()``; ``api.url`` is the list endpoint."""

    name: str = "dept-api"
    id_field: str = "inspection_no"
    updated_field: str = "submitted_at"
    max_page: int = 1000
    latency: float = 0.0
    token: str | None = None
    port: int = 0
    requests: int = 0
    served: int = 0
    #: the query strings it was asked, in order
    queries: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._records: dict[str, Record] = {}
        self._log: list[str] = []  # change log of ids, for page tokens
        self._fail: list[int] = []
        self._throttle: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/jcxx"

    # ---------------------------------------------------------------- data

    def put(self, record: Record) -> None:
        """Add or update a record (keyed by ``id_field``); appends it to the change log."""
        rid = str(record[self.id_field])
        self._records[rid] = dict(record)
        self._log.append(rid)

    def records(self) -> dict[str, Record]:
        """The current version of every record by id."""
        return dict(self._records)

    # ---------------------------------------------------------------- warts

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` requests with ``status`` (5xx: the department is unwell)."""
        self._fail.extend([status] * n)

    def throttle_next(self, n: int, retry_after: str = "0") -> None:
        """Answer the next ``n`` requests with 429 and ``Retry-After: retry_after``."""
        self._throttle.extend([retry_after] * n)

    # ---------------------------------------------------------------- server

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/jcxx", self._list)
        return app

    async def _list(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.queries.append(dict(request.query))
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.token is not None and request.headers.get("Authorization") != (
            f"Bearer {self.token}"
        ):
            return web.json_response({"code": "4010", "msg": "令牌无效"}, status=401)
        if self._throttle:
            return web.json_response(
                {"code": "4290", "msg": "请求过于频繁"},
                status=429,
                headers={"Retry-After": self._throttle.pop(0)},
            )
        if self._fail:
            return web.json_response({"code": "5000", "msg": "系统繁忙"}, status=self._fail.pop(0))
        raw_size = request.query.get("ys", "50")
        if not raw_size.isdigit() or not 1 <= int(raw_size) <= self.max_page:
            return web.json_response({"code": "4000", "msg": "参数ys错误"}, status=400)
        size = int(raw_size)
        if "pageToken" in request.query or "gxsjq" not in request.query:
            rows, token = self._by_token(request.query.get("pageToken", ""), size)
            data: dict[str, Any] = {"rows": rows, "nextPageToken": token}
        else:
            since = request.query["gxsjq"]
            ordered = sorted(
                (r for r in self._records.values() if str(r[self.updated_field]) >= since),
                key=lambda r: (str(r[self.updated_field]), str(r[self.id_field])),
            )
            rows = ordered[:size]
            data = {"rows": rows, "total": len(ordered)}
        self.served += len(rows)
        return web.json_response({"code": "0000", "msg": "成功", "data": data})

    def _by_token(self, token: str, size: int) -> tuple[list[Record], str]:
        start = int(token) if token.isdigit() else 0
        ids = self._log[start : start + size]
        # The change log may name a record twice; each entry is the version current now.
        return [dict(self._records[i]) for i in ids], str(start + len(ids))
