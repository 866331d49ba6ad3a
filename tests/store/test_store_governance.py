"""Store contract, governance part: business keys, governance notes, subjects, quarantine and
source state — for every Store implementation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from hub.envelope import Envelope, new_message_id
from hub.store import NewMessage, QuarantinedRecord, Store, TargetRef
from hub.store.sqlite import SCHEMA_VERSION, SQLiteStore
from tests.conftest import Clock


def rec(
    payload: dict[str, object],
    *,
    bkey: str | None = None,
    version: str | None = None,
    key: str | None = None,
    source: str = "dept-a",
    notes: tuple[str, ...] = (),
    subject: str | None = None,
) -> NewMessage:
    env = Envelope(
        new_message_id(), source, "penalty", "1.0", 1.0, orjson.dumps(payload), key, None, None
    )
    return NewMessage(
        env,
        [TargetRef("t1", "r1")],
        business_key=bkey,
        version=version,
        notes=notes,
        subject=subject,
    )


async def test_identical_copy_of_a_business_key_is_a_duplicate(store: Store) -> None:
    [first] = await store.enqueue([rec({"no": "罚字〔2026〕1号", "amount": 100}, bkey="1号")])
    [copy] = await store.enqueue([rec({"no": "罚字〔2026〕1号", "amount": 100}, bkey="1号")])
    assert copy.duplicate and copy.message_id == first.message_id and not copy.stale
    assert len(await store.claim("t1", 10, 30, "n")) == 1  # routed once


async def test_changed_version_replaces_and_is_delivered(store: Store) -> None:
    [v1] = await store.enqueue([rec({"amount": 100}, bkey="k", version="2026-01-01")])
    [v2] = await store.enqueue([rec({"amount": 200}, bkey="k", version="2026-02-01")])
    assert not v2.duplicate and v2.replaces == v1.message_id
    # an older version arriving late is stale: not stored, not routed
    [old] = await store.enqueue([rec({"amount": 150}, bkey="k", version="2026-01-15")])
    assert old.duplicate and old.stale and old.message_id == v2.message_id
    # without versions, arrival order decides: a change replaces
    [v3] = await store.enqueue([rec({"amount": 300}, bkey="k")])
    assert v3.replaces == v2.message_id
    assert len(await store.claim("t1", 10, 30, "n")) == 3


async def test_business_keys_are_per_source_and_within_one_call(store: Store) -> None:
    a, b, c = await store.enqueue(
        [
            rec({"x": 1}, bkey="k"),
            rec({"x": 1}, bkey="k"),
            rec({"x": 1}, bkey="k", source="dept-b"),
        ]
    )
    assert not a.duplicate and b.duplicate and b.message_id == a.message_id
    assert not c.duplicate


async def test_notes_are_traced_and_subject_linked(store: Store) -> None:
    uscc = "91330106MA2B3C4D5E"
    [r] = await store.enqueue(
        [rec({"x": 1}, notes=("trimmed: name", "linked: uscc"), subject=uscc)]
    )
    await store.enqueue([rec({"x": 2}, subject="other")])
    tr = await store.trace(r.message_id)
    assert tr is not None
    assert [(e.step, e.detail) for e in tr.events] == [("governed", "trimmed: name; linked: uscc")]
    links = await store.subject_messages(uscc)
    assert [(link.message_id, link.source, link.dataset) for link in links] == [
        (r.message_id, "dept-a", "penalty")
    ]
    assert await store.subject_messages("nobody") == []


async def test_quarantine_keeps_reasons_once_per_key(store: Store) -> None:
    q = QuarantinedRecord(
        "dept-a",
        "penalty",
        "file.csv#3",
        "file.csv line 3",
        "E_SCHEMA",
        "uscc",
        "uscc: check digit wrong",
        '{"uscc": "123"}',
        5.0,
    )
    assert await store.quarantine([q]) == 1
    assert await store.quarantine([q]) == 0  # re-sent after a crash: kept once
    other = QuarantinedRecord("dept-b", "penalty", "x", "api", "E_MAPPING", None, "bad", "{}", 6.0)
    assert await store.quarantine([other]) == 1
    mine = await store.quarantined("dept-a")
    assert [(x.code, x.field, x.raw) for x in mine] == [("E_SCHEMA", "uscc", '{"uscc": "123"}')]
    everything = await store.quarantined()
    assert [x.source for x in everything] == ["dept-a", "dept-b"]
    assert await store.quarantined(after=everything[0].id) == [everything[1]]


async def test_source_state_round_trip(store: Store) -> None:
    assert await store.get_state("dept-a", "cursor") is None
    await store.put_state("dept-a", "cursor", "2026-11-01T00:00:00")
    await store.put_state("dept-a", "cursor", "2026-11-02T00:00:00")
    assert await store.get_state("dept-a", "cursor") == "2026-11-02T00:00:00"
    assert await store.get_state("dept-b", "cursor") is None


async def test_sqlite_migrates_a_version_1_file(tmp_path: Path) -> None:
    """A store file written by the first release (schema 1) is upgraded in place."""
    path = tmp_path / "old.db"
    s = SQLiteStore(path)
    await s.open()
    [r] = await s.enqueue([rec({"x": 1})])
    await s.close()
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TABLE business_keys; DROP TABLE source_state; DROP TABLE quarantine;"
        "DROP TABLE nonces;"
        "DROP INDEX messages_subject; ALTER TABLE messages DROP COLUMN subject;"
        "ALTER TABLE messages DROP COLUMN digest;"
        "PRAGMA user_version = 1;"
    )
    conn.close()
    s = SQLiteStore(path)
    await s.open()
    try:
        assert (await s.trace(r.message_id)) is not None
        await s.put_state("a", "b", "c")
        assert await s.get_state("a", "b") == "c"
    finally:
        await s.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


async def test_nonce_is_remembered_until_it_expires(store: Store, clock: Clock) -> None:
    now = clock()
    assert await store.remember_nonce("dept-a-1", "n1", now + 300)
    assert not await store.remember_nonce("dept-a-1", "n1", now + 300)  # a replay
    assert await store.remember_nonce("dept-b-1", "n1", now + 300)  # another key's nonce
    clock.advance(301)
    assert await store.remember_nonce("dept-a-1", "n1", clock() + 300)  # expired: new again


async def test_enqueue_commits_a_signed_requests_nonce_with_its_messages(
    store: Store, clock: Clock
) -> None:
    """``enqueue(nonce=...)``: the nonce is remembered in the messages' transaction; a replay
    stores none of its messages (and does not disturb another caller's in the same group)."""
    import asyncio

    import pytest

    from hub.errors import ReplayError
    from hub.store.base import NonceClaim

    now = clock()
    first = NonceClaim("dept-a-1", "n-1", now + 300)
    [ok] = await store.enqueue([rec({"amount": 1})], nonce=first)
    assert first.settled and not ok.duplicate
    again = NonceClaim("dept-a-1", "n-1", now + 300)
    with pytest.raises(ReplayError) as caught:
        await store.enqueue([rec({"amount": 2})], nonce=again)
    assert (caught.value.code, caught.value.field) == ("E_REPLAY", "nonce") and again.settled
    assert (await store.counts())["messages"] == 1  # the replay stored nothing
    # two callers at once (merged into one writer job by the SQLite store): one replay
    fresh = NonceClaim("dept-a-1", "n-2", now + 300)
    replayed = NonceClaim("dept-a-1", "n-1", now + 300)
    got = await asyncio.gather(
        store.enqueue([rec({"amount": 3}), rec({"amount": 4})], nonce=fresh),
        store.enqueue([rec({"amount": 5})], nonce=replayed),
        return_exceptions=True,
    )
    assert isinstance(got[0], list) and len(got[0]) == 2
    assert isinstance(got[1], ReplayError)
    assert (await store.counts())["messages"] == 3
    # the nonces committed with the messages are known to remember_nonce (one cache)
    assert not await store.remember_nonce("dept-a-1", "n-2", now + 300)
    # a nonce with nothing to store is remembered alone
    alone = NonceClaim("dept-a-1", "n-3", now + 300)
    assert await store.enqueue([], nonce=alone) == [] and alone.settled
    assert not await store.remember_nonce("dept-a-1", "n-3", now + 300)
