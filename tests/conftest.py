"""Shared fixtures: stores of every kind, a movable clock, free ports."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hub.store import Store
from hub.store.memory import MemoryStore
from hub.store.sqlite import SQLiteStore


class Clock:
    """A clock tests move by hand (injected into stores; not a mock of our code)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


STORE_KINDS = ["memory", "sqlite", "postgres"]
#: the PostgreSQL the PostgreSQL store is tested on (the tests fail, never skip, without it)
PG_DSN = os.environ.get("JGHUB_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


async def drop_pg_schema(schema: str) -> None:
    """Drop a test's PostgreSQL schema and everything in it."""
    import psycopg
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema for one test (tests run side by side), dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    try:
        yield name
    finally:
        await drop_pg_schema(name)


@pytest.fixture(params=STORE_KINDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[Store]:
    s: Store
    schema = None
    if request.param == "memory":
        s = MemoryStore(clock=clock)
    elif request.param == "sqlite":
        s = SQLiteStore(tmp_path / "hub.db", clock=clock)
    else:
        from hub.store.postgres import PostgresStore

        schema = f"t_{uuid.uuid4().hex[:16]}"
        pg = PostgresStore(PG_DSN, schema=schema, clock=clock)
        await pg.migrate()
        s = pg
    try:
        await s.open()
        try:
            yield s
        finally:
            await s.close()
    finally:
        if schema is not None:
            await drop_pg_schema(schema)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- HTTP paths


class FastTestServer:
    """pytest-aiohttp's ``TestServer`` whose connections start on the hub's fast records path
    (``hub.fastpath.FastAppRunner``), as ``jghub serve`` runs (``listen.fast_records``)."""

    def __new__(cls, app: Any) -> Any:
        from aiohttp.test_utils import TestServer

        from hub.fastpath import FastAppRunner

        class _Server(TestServer):
            async def _make_runner(self, **kwargs: Any) -> Any:
                return FastAppRunner(self.app, **kwargs)

        return _Server(app)


@pytest.fixture(params=["aiohttp", "fast"])
def http_path(request: pytest.FixtureRequest) -> str:
    """How the hub's HTTP API is served: aiohttp alone, or with the fast records path."""
    return str(request.param)


@pytest.fixture
def hub_client(aiohttp_client: Any, http_path: str) -> Callable[[Any], Awaitable[Any]]:
    """``await hub_client(app)``: a test client of ``app`` served the ``http_path`` way."""

    async def make(app: Any) -> Any:
        return await aiohttp_client(FastTestServer(app) if http_path == "fast" else app)

    return make
