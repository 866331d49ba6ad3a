"""``http_pull`` against a real department API server (hub.peers.dept_api) and a real hub on
SQLite: everything collected once across pages, the cursor saved only after the commit, updates
as new versions, outages and throttling survived."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from contracts.samples import sample_inspection
from hub.errors import ConfigError
from hub.events import AcceptedMessage
from hub.peers.dept_api import DeptApi
from hub.plugins import hookimpl
from hub.runtime import Hub
from hub.transports.http_pull import HttpPullSource, dig, record_key
from tests.helpers import config, wait_until

BASE = datetime.fromisoformat("2024-06-01T10:00:00+08:00")


def rec(i: int, minutes: int) -> dict[str, Any]:
    """A canonical inspection record whose 报送时间 (submitted_at) is its update time."""
    r = sample_inspection(i)
    r["submitted_at"] = (BASE + timedelta(minutes=minutes)).isoformat()
    return r


def source(url: str, **extra: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "kind": "http_pull",
        "url": url,
        "records_path": "data.rows",
        "id_field": "inspection_no",
        "updated_field": "submitted_at",
        "since_param": "gxsjq",
        "token_param": "pageToken",
        "next_token_path": "data.nextPageToken",
        "page_size_param": "ys",
        "page_size": 10,
        "interval": 0.05,
        "min_backoff": 0.01,
        "max_backoff": 0.05,
    }
    opts.update(extra)
    return {"inbound": {"source": opts}}


def stored(db: Path) -> list[tuple[str, dict[str, Any]]]:
    """(idempotency key, payload) of every stored message, read from the SQLite file."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT idem_key, payload FROM messages ORDER BY seq").fetchall()
    finally:
        con.close()
    return [(k, orjson.loads(p)) for k, p in rows]


@pytest.fixture
async def api() -> AsyncIterator[DeptApi]:
    a = DeptApi(max_page=100)
    await a.start()
    yield a
    await a.stop()


async def cursor(hub: Hub) -> Any:
    raw = await hub.store.get_state("source:dept-a", "cursor")
    return orjson.loads(raw) if raw else None


async def test_updated_since_takes_every_record_once_across_a_shared_timestamp(
    tmp_path: Path, api: DeptApi
) -> None:
    # 20 records one minute apart, then 25 sharing one timestamp (more than a page of 10,
    # so they straddle several page boundaries), then 12 more.
    for i in range(20):
        api.put(rec(i, i))
    for i in range(20, 45):
        api.put(rec(i, 100))
    for i in range(45, 57):
        api.put(rec(i, 200 + i))
    cfg = config(tmp_path, {}, source_extra=source(api.url))
    async with Hub(cfg) as hub:

        async def done() -> bool:
            c = await cursor(hub)
            return c is not None and c["since"] == rec(56, 256)["submitted_at"]

        await wait_until(done, what="the cursor at the last record")
        assert (await hub.store.counts())["messages"] == 57
    got = stored(tmp_path / "data" / "hub.db")
    keys = [k for k, _ in got]
    assert len(keys) == len(set(keys)) == 57
    assert {p["inspection_no"] for _, p in got} == set(api.records())
    assert keys[0] == f"{rec(0, 0)['inspection_no']}@{rec(0, 0)['submitted_at']}"
    # the page was widened to move past the 25 equal timestamps, then narrowed again
    sizes = [int(q["ys"]) for q in api.queries]
    assert max(sizes) > 10 and sizes[-1] == 10
    assert not await_quarantine_sync(tmp_path)


def await_quarantine_sync(tmp: Path) -> list[Any]:
    con = sqlite3.connect(tmp / "data" / "hub.db")
    try:
        return con.execute("SELECT qkey, code FROM quarantine").fetchall()
    finally:
        con.close()


async def test_updates_arrive_as_new_versions_and_rereads_are_duplicates(
    tmp_path: Path, api: DeptApi
) -> None:
    for i in range(15):
        api.put(rec(i, i))
    cfg = config(tmp_path, {}, source_extra=source(api.url))
    async with Hub(cfg) as hub:
        await wait_until(lambda: _count(hub, 15), what="15 records collected")
        changed = {**rec(3, 3), "submitted_at": (BASE + timedelta(minutes=500)).isoformat()}
        changed["inspection_result"] = "5"
        api.put(changed)
        await wait_until(lambda: _count(hub, 16), what="the updated version")
        # the cursor was lost (a crash right after a commit): everything is read again, and
        # recognised — no new message
        await hub.store.put_state("source:dept-a", "cursor", "")
        served = api.served
        await wait_until(lambda: api.served >= served + 16, what="a full re-read")
        await wait_until(done_with(hub, changed["submitted_at"]), what="the cursor restored")
        assert (await hub.store.counts())["messages"] == 16
    got = stored(tmp_path / "data" / "hub.db")
    versions = [p for _, p in got if p["inspection_no"] == changed["inspection_no"]]
    assert [v["inspection_result"] for v in versions] == [rec(3, 3)["inspection_result"], "5"]
    assert got[-1][0] == f"{changed['inspection_no']}@{changed['submitted_at']}"


def done_with(hub: Hub, since: str) -> Any:
    async def check() -> bool:
        c = await cursor(hub)
        return c is not None and c["since"] == since

    return check


async def _count(hub: Hub, n: int) -> bool:
    return bool((await hub.store.counts())["messages"] == n)


class CursorAtCommit:
    """Reads the saved cursor from the SQLite file each time records are committed (the hook
    runs after the commit and before ``ingest`` returns to the source)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.seen: list[tuple[int, str | None]] = []

    @hookimpl
    def hub_messages_accepted(self, messages: list[AcceptedMessage]) -> None:
        con = sqlite3.connect(self.db)
        try:
            row = con.execute(
                "SELECT value FROM source_state WHERE scope = 'source:dept-a' AND key = 'cursor'"
            ).fetchone()
        finally:
            con.close()
        self.seen.append((len(messages), row[0] if row else None))


async def test_cursor_is_saved_only_after_the_commit(tmp_path: Path, api: DeptApi) -> None:
    for i in range(30):
        api.put(rec(i, i))
    cfg = config(tmp_path, {}, source_extra=source(api.url))
    probe = CursorAtCommit(tmp_path / "data" / "hub.db")
    async with Hub(cfg, extra_plugins=[probe]) as hub:
        await wait_until(done_with(hub, rec(29, 29)["submitted_at"]), what="all pages")
    # pages of ten from an inclusive "since": each repeats the record at the cursor, which is
    # skipped; at each commit the saved cursor still named the page before
    assert [n for n, _ in probe.seen] == [10, 9, 9, 2]
    sinces = [orjson.loads(c)["since"] if c else None for _, c in probe.seen]
    assert sinces == [None, *(rec(i, i)["submitted_at"] for i in (9, 18, 27))]


async def test_page_token_mode_with_bearer_token(tmp_path: Path, api: DeptApi) -> None:
    api.token = "s3cret"
    for i in range(23):
        api.put(rec(i, i))
    cfg = config(tmp_path, {}, source_extra=source(api.url, mode="page_token", token="s3cret"))
    async with Hub(cfg) as hub:
        await wait_until(lambda: _state_is(hub, "23"), what="the page token after the last record")
        api.put(rec(23, 23))
        api.put({**rec(5, 5), "submitted_at": (BASE + timedelta(minutes=99)).isoformat()})
        await wait_until(lambda: _state_is(hub, "25"), what="two more changes")
        await wait_until(lambda: _count(hub, 25), what="25 messages")
        assert (await hub.store.counts())["messages"] == 25
    assert all(q.get("ys") == "10" for q in api.queries)
    assert api.queries[0].get("pageToken") is None and api.queries[1]["pageToken"] == "10"


async def _state_is(hub: Hub, value: str) -> bool:
    return await hub.store.get_state("source:dept-a", "cursor") == value


async def test_outage_and_throttling_then_recovery(tmp_path: Path, api: DeptApi) -> None:
    for i in range(12):
        api.put(rec(i, i))
    api.fail_next(3, 503)
    api.throttle_next(2, "0")
    cfg = config(tmp_path, {}, source_extra=source(api.url))
    async with Hub(cfg) as hub:
        src = hub._sources[0].source
        assert isinstance(src, HttpPullSource)
        await wait_until(lambda: _count(hub, 12), what="records after the outage")
        await api.go_down()
        api.put(rec(12, 12))
        await wait_until(lambda: src.last_error is not None, what="a refused connection")
        assert "Connect" in str(src.last_error)
        await api.come_up()
        await wait_until(lambda: _count(hub, 13), what="the record written during the outage")
        assert hub._sources[0].failures == 0  # transient failures never restarted the source
    assert api.requests >= 6  # two 429s, three 503s, then the good answers


async def test_retry_after_is_honoured(tmp_path: Path, api: DeptApi) -> None:
    """Throttled with ``Retry-After: 0`` and a 30 s own backoff: collecting within the wait
    proves the system's Retry-After was taken instead of the backoff."""
    api.put(rec(0, 0))
    api.throttle_next(3, "0")
    cfg = config(tmp_path, {}, source_extra=source(api.url, min_backoff=30, max_backoff=60))
    async with Hub(cfg) as hub:
        src = hub._sources[0].source
        assert isinstance(src, HttpPullSource)
        await wait_until(lambda: _count(hub, 1), what="the record after three 429s")
        assert src.last_wait == 0.0 and api.requests >= 4


async def test_a_bad_answer_fails_the_source_with_E_SOURCE(tmp_path: Path, api: DeptApi) -> None:
    api.put(rec(0, 0))
    cfg = config(tmp_path, {}, source_extra=source(api.url, records_path="data.items"))
    async with Hub(cfg) as hub:
        runner = hub._sources[0]
        runner.min_backoff = 0.01
        await wait_until(lambda: runner.last_error is not None, what="the source failing")
        assert "E_SOURCE" in str(runner.last_error) and "records_path" in str(runner.last_error)
        assert (await hub.store.counts())["messages"] == 0
    api.token = "other"
    cfg = config(tmp_path, {}, source_extra=source(api.url))
    async with Hub(cfg) as hub:
        runner = hub._sources[0]
        await wait_until(lambda: runner.last_error is not None, what="401 fails the source")
        assert "HTTP 401" in str(runner.last_error)


async def test_rejected_records_are_quarantined_and_the_cursor_moves_on(
    tmp_path: Path, api: DeptApi
) -> None:
    api.put(rec(0, 0))
    api.put({**rec(1, 1), "region_code": "99"})
    api.put(rec(2, 2))
    cfg = config(tmp_path, {}, source_extra=source(api.url))
    async with Hub(cfg) as hub:
        await wait_until(done_with(hub, rec(2, 2)["submitted_at"]), what="the cursor at the end")
        [q] = await hub.store.quarantined("dept-a")
        assert q.code == "E_SCHEMA" and q.key == f"{rec(1, 1)['inspection_no']}@" + str(
            rec(1, 1)["submitted_at"]
        )
        assert q.origin.startswith("gxsjq=None")
        assert (await hub.store.counts())["messages"] == 2


def test_options_are_checked_at_start(tmp_path: Path) -> None:
    cfg = config(tmp_path, {}, source_extra=source("http://127.0.0.1:9/x", pgae_size=3))
    with pytest.raises(ConfigError, match=r"inbound\.source\.pgae_size: unknown key"):
        Hub(cfg)
    cfg = config(tmp_path, {}, source_extra=source("http://127.0.0.1:9/x", updated_field=None))
    with pytest.raises(ConfigError, match="updated_since needs updated_field"):
        Hub(cfg)


def test_keys_and_paths() -> None:
    r = {"id": 7, "meta": {"updated": "2024-01-01T00:00:00Z"}, "rows": [{"a": 1}]}
    assert record_key(r, "id", "meta.updated") == "7@2024-01-01T00:00:00Z"
    assert record_key(r, "id", None) == "7"
    assert record_key({"x": 1}, "id", "t").startswith("sha256:")
    assert dig(r, "rows.0.a") == 1 and dig(r, "rows.5.a") is None and dig(r, "") is r
