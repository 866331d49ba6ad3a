"""Data sharing (数据共享) in the store: one contract for the memory, SQLite and PostgreSQL
stores — sharing objects with optimistic concurrency, application histories, quota counters
shared by every caller, and the governed read of a dataset's current records (a version
replaced by a newer one of its business key is left out)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import orjson
import pytest

from hub.envelope import Envelope, new_message_id
from hub.store import NewMessage, Store, TargetRef
from hub.store.base import ShareEvent, ShareRecord
from hub.store.sqlite import SCHEMA_VERSION, SQLiteStore


def app(id: str, *, rev: int = 1, state: str = "submitted", **kw: object) -> ShareRecord:
    base: dict[str, object] = {
        "kind": "application",
        "id": id,
        "rev": rev,
        "state": state,
        "dataset": "inspection",
        "provider": "330100-scj",
        "holder": "330100-swj",
        "created_at": 10.0,
        "updated_at": 10.0,
        "doc": {"purpose": "监管", "fields": ["a", "b"], "nested": {"n": 1}},
        "due_at": 100.0,
    }
    base.update(kw)
    return ShareRecord(**base)  # type: ignore[arg-type]


async def test_insert_get_update_with_revisions(store: Store) -> None:
    ev = ShareEvent("a1", 10.0, "tok1", "application.create", "submitted", "", {"x": [1]})
    assert await store.share_put(app("a1"), expect_rev=0, events=[ev])
    assert not await store.share_put(app("a1"), expect_rev=0)  # the id exists
    got = await store.share_get("application", "a1")
    assert got == app("a1")
    assert await store.share_get("application", "nope") is None
    assert await store.share_get("grant", "a1") is None  # kinds are separate tables
    # an update names the revision it read; a stale one loses and changes nothing
    moved = app("a1", rev=2, state="accepted", updated_at=20.0, due_at=None)
    ev2 = ShareEvent("a1", 20.0, "tok2", "application.accept", "accepted", "受理")
    assert await store.share_put(moved, expect_rev=1, events=[ev2])
    stale = app("a1", rev=2, state="rejected")
    assert not await store.share_put(stale, expect_rev=1, events=[ev2])
    got = await store.share_get("application", "a1")
    assert got is not None and (got.state, got.rev, got.due_at) == ("accepted", 2, None)
    assert got.doc == {"purpose": "监管", "fields": ["a", "b"], "nested": {"n": 1}}
    # the history holds both written steps, not the lost one
    history = await store.share_events("a1")
    assert [(e.action, e.state, e.reason) for e in history] == [
        ("application.create", "submitted", ""),
        ("application.accept", "accepted", "受理"),
    ]
    assert history[0].details == {"x": [1]} and history[0].actor == "tok1"
    assert await store.share_events("nope") == []


async def test_list_filters(store: Store) -> None:
    await store.share_put(app("a1", created_at=1.0, due_at=50.0), expect_rev=0)
    await store.share_put(app("a2", created_at=2.0, holder="other", due_at=150.0), expect_rev=0)
    await store.share_put(
        app("a3", created_at=3.0, state="approved", dataset="penalty", due_at=None), expect_rev=0
    )
    grant = app("g1", kind="grant", state="active", due_at=None)
    await store.share_put(grant, expect_rev=0)
    ids = [r.id for r in await store.share_list("application")]
    assert ids == ["a1", "a2", "a3"]  # oldest first
    assert [r.id for r in await store.share_list("application", holder="other")] == ["a2"]
    assert [r.id for r in await store.share_list("application", dataset="penalty")] == ["a3"]
    assert [r.id for r in await store.share_list("application", states=["approved"])] == ["a3"]
    open_ = await store.share_list("application", states=["submitted", "accepted"])
    assert [r.id for r in open_] == ["a1", "a2"]
    assert [r.id for r in await store.share_list("application", due_before=100.0)] == ["a1"]
    assert [r.id for r in await store.share_list("application", limit=1)] == ["a1"]
    assert [r.id for r in await store.share_list("grant", provider="330100-scj")] == ["g1"]
    assert await store.share_list("subscription") == []
    with pytest.raises(ValueError):
        await store.share_list("nonsense")


async def test_quota_counters_add_up_per_grant_and_day(store: Store) -> None:
    assert await store.quota_add("g1", "2026-01-05", 0, 0) == (0, 0)
    assert await store.quota_add("g1", "2026-01-05", 1, 30) == (1, 30)
    got = await asyncio.gather(*(store.quota_add("g1", "2026-01-05", 1, 10) for _ in range(20)))
    assert max(got) == (21, 230) and len(set(got)) == 20  # atomic: every caller a new total
    assert await store.quota_add("g1", "2026-01-06", 1, 1) == (1, 1)  # a new day starts at 0
    assert await store.quota_add("g2", "2026-01-05", 0, 0) == (0, 0)
    assert await store.quota_add("g1", "2026-01-05", 0, 0) == (21, 230)


def rec(i: int, dataset: str = "inspection", *, bkey: str | None = None, v: int = 0) -> NewMessage:
    return NewMessage(
        Envelope(new_message_id(), "src", dataset, "1.0", 1.0, orjson.dumps({"i": i, "v": v})),
        [TargetRef("t1", "r1")],
        business_key=bkey,
        version=None if bkey is None else f"{v:04d}",
    )


async def test_current_records_leave_out_replaced_versions(store: Store) -> None:
    await store.enqueue([rec(1, bkey="k1"), rec(2), rec(3, "penalty"), rec(4, bkey="k2")])
    await store.enqueue([rec(1, bkey="k1", v=1)])  # a new version of k1 replaces the first
    await store.enqueue([rec(1, bkey="k1", v=1)])  # an identical copy: a duplicate, not stored
    # a new version and a newer one in one call: only the newest is current
    await store.enqueue([rec(4, bkey="k2", v=1), rec(4, bkey="k2", v=2)])
    page = await store.current_records("inspection")
    assert [orjson.loads(p) for _, p in page] == [
        {"i": 2, "v": 0},
        {"i": 1, "v": 1},
        {"i": 4, "v": 2},
    ]
    positions = [pos for pos, _ in page]
    assert positions == sorted(positions)
    # paging by cursor: after the first position, at most one
    nxt = await store.current_records("inspection", after=positions[0], limit=1)
    assert [pos for pos, _ in nxt] == [positions[1]]
    assert await store.current_records("inspection", after=positions[-1]) == []
    assert [orjson.loads(p)["i"] for _, p in await store.current_records("penalty")] == [3]
    assert await store.current_records("nothing") == []


async def test_sqlite_file_of_version_2_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    s = SQLiteStore(path)
    await s.open()
    [res] = await s.enqueue([rec(1)])
    await s.close()
    # turn the file back into a version-2 file (no sharing tables, version 2)
    conn = sqlite3.connect(path)
    for table in (
        "share_applications",
        "share_grants",
        "share_subscriptions",
        "share_application_events",
        "share_quota",
        "superseded",
    ):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    s = SQLiteStore(path)
    await s.open()
    try:
        assert await s.schema_version() == (SCHEMA_VERSION, SCHEMA_VERSION) == (3, 3)
        assert [orjson.loads(p) for _, p in await s.current_records("inspection")] == [
            {"i": 1, "v": 0}
        ]
        assert await s.share_put(app("a1"), expect_rev=0)
        assert (await s.trace(res.message_id)) is not None
    finally:
        await s.close()
