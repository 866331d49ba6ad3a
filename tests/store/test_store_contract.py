"""One test suite for every Store implementation (memory, SQLite; PostgreSQL joins later)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import orjson
import pytest

from hub.envelope import Envelope, new_message_id
from hub.store import DeliveryState, NewMessage, Outcome, Store, TargetRef
from hub.store.sqlite import SQLiteStore
from tests.conftest import Clock


def msg(
    i: int,
    *,
    key: str | None = None,
    targets: tuple[str, ...] = ("t1",),
    ordered: bool = False,
    partition: str | None = None,
    source: str = "src",
) -> NewMessage:
    return NewMessage(
        Envelope(
            message_id=new_message_id(),
            source=source,
            dataset="inspection",
            dataset_version="1.0",
            created_at=1.0,
            payload=orjson.dumps({"i": i}),
            idempotency_key=key,
            partition_key=partition,
        ),
        [TargetRef(t, "r1", ordered) for t in targets],
    )


async def test_enqueue_then_claim_returns_payload(store: Store) -> None:
    [res] = await store.enqueue([msg(1)])
    assert not res.duplicate
    claimed = await store.claim("t1", 10, 30, "node-a")
    assert [c.message_id for c in claimed] == [res.message_id]
    assert orjson.loads(claimed[0].payload) == {"i": 1}
    assert claimed[0].attempt == 1 and claimed[0].route == "r1"
    assert await store.claim("t1", 10, 30, "node-a") == []  # leased, not due


async def test_one_delivery_per_target(store: Store) -> None:
    [res] = await store.enqueue([msg(1, targets=("t1", "t2"))])
    assert len(await store.claim("t1", 10, 30, "n")) == 1
    assert len(await store.claim("t2", 10, 30, "n")) == 1
    tr = await store.trace(res.message_id)
    assert tr is not None and sorted(d.target for d in tr.deliveries) == ["t1", "t2"]


async def test_idempotency_key_returns_original_id(store: Store) -> None:
    [first] = await store.enqueue([msg(1, key="k1")])
    [again] = await store.enqueue([msg(2, key="k1")])
    assert again.duplicate and again.message_id == first.message_id
    # same key from another source is a different message
    [other] = await store.enqueue([msg(3, key="k1", source="other")])
    assert not other.duplicate and other.message_id != first.message_id
    # duplicates inside one call
    a, b = await store.enqueue([msg(4, key="k2"), msg(5, key="k2")])
    assert not a.duplicate and b.duplicate and b.message_id == a.message_id
    assert await store.lookup_idempotency("src", "k1") == first.message_id
    assert await store.lookup_idempotency("src", "nope") is None
    # nothing routed twice: exactly one delivery per distinct message
    claimed = await store.claim("t1", 100, 30, "n")
    assert len(claimed) == 3


async def test_reused_key_with_other_payload_is_a_conflict(store: Store) -> None:
    [first] = await store.enqueue([msg(1, key="k")])
    [same] = await store.enqueue([msg(1, key="k")])
    [other] = await store.enqueue([msg(2, key="k")])
    assert same.duplicate and not same.conflict
    assert other.duplicate and other.conflict and other.message_id == first.message_id
    a, b = await store.enqueue([msg(3, key="k2"), msg(4, key="k2")])  # within one call
    assert b.conflict and b.message_id == a.message_id
    assert (await store.counts())["messages"] == 2


async def test_ack_marks_delivered_and_traces(store: Store, clock: Clock) -> None:
    [res] = await store.enqueue([msg(1)])
    [c] = await store.claim("t1", 10, 30, "n")
    clock.advance(0.25)
    await store.settle([Outcome(c.delivery_id, "ack", clock(), 1, 200, "ok", 3.5)])
    tr = await store.trace(res.message_id)
    assert tr is not None
    assert tr.deliveries[0].state == DeliveryState.DELIVERED
    assert tr.status() == "delivered"
    assert [e.step for e in tr.events] == ["delivered"]
    assert tr.events[0].status == 200 and tr.events[0].target == "t1"
    [st] = await store.route_stats()
    assert (st.delivered, st.pending, st.dead) == (1, 0, 0)
    assert st.p50_ms == pytest.approx(250.0, abs=1.0)


async def test_retry_is_due_at_next_attempt_time(store: Store, clock: Clock) -> None:
    await store.enqueue([msg(1)])
    [c] = await store.claim("t1", 10, 30, "n")
    await store.settle(
        [Outcome(c.delivery_id, "retry", clock(), 1, 503, "busy", next_at=clock() + 10)]
    )
    assert await store.claim("t1", 10, 30, "n") == []
    assert await store.next_due_at("t1") == pytest.approx(clock() + 10)
    clock.advance(10)
    [again] = await store.claim("t1", 10, 30, "n")
    assert again.delivery_id == c.delivery_id and again.attempt == 2
    [st] = await store.route_stats()
    assert st.retries == 1


async def test_dead_letter_then_replay_then_delivered(store: Store, clock: Clock) -> None:
    [res] = await store.enqueue([msg(1)])
    [c] = await store.claim("t1", 10, 30, "n")
    await store.settle([Outcome(c.delivery_id, "dead", clock(), 1, 400, "bad field x")])
    [dl] = await store.dead_letters()
    assert dl.message_id == res.message_id and dl.reason == "bad field x"
    assert dl.last_status == 400 and dl.target == "t1"
    assert await store.dead_letters(target="other") == []
    assert await store.claim("t1", 10, 30, "n") == []
    assert await store.replay([dl.delivery_id], clock()) == 1
    assert await store.replay([dl.delivery_id], clock()) == 0  # not dead any more
    [c2] = await store.claim("t1", 10, 30, "n")
    assert c2.attempt == 1
    await store.settle([Outcome(c2.delivery_id, "ack", clock(), 1, 200)])
    tr = await store.trace(res.message_id)
    assert tr is not None
    assert [e.step for e in tr.events] == ["dead-lettered", "replayed", "delivered"]
    assert await store.dead_letters() == []


async def test_undelivered_lists_waiting_deliveries_with_payloads(
    store: Store, clock: Clock
) -> None:
    """Pending, in flight and dead deliveries of one target, oldest first, bounded; delivered
    and discarded ones and other targets' are left out."""
    results = await store.enqueue([msg(i, targets=("t1", "t2")) for i in range(5)])
    ids = [r.message_id for r in results]
    c0, c1, _ = await store.claim("t1", 3, 30, "n")  # 0, 1, 2 in flight
    await store.settle(
        [
            Outcome(c0.delivery_id, "ack", clock(), 1, 200),
            Outcome(c1.delivery_id, "dead", clock(), 1, 400, "refused"),
        ]
    )
    waiting = await store.undelivered("t1")
    assert [w.message_id for w in waiting] == [ids[1], ids[2], ids[3], ids[4]]
    assert [w.state for w in waiting] == [
        DeliveryState.DEAD,
        DeliveryState.INFLIGHT,
        DeliveryState.PENDING,
        DeliveryState.PENDING,
    ]
    first = waiting[0]
    assert orjson.loads(first.payload) == {"i": 1}
    assert first.dataset == "inspection" and first.route == "r1" and first.attempts == 1
    assert first.accepted_at > 0
    assert [w.message_id for w in await store.undelivered("t1", limit=2)] == ids[1:3]
    assert len(await store.undelivered("t2")) == 5
    assert await store.undelivered("nobody") == []
    await store.discard([c1.delivery_id], clock(), "given up")
    assert [w.message_id for w in await store.undelivered("t1")] == ids[2:]


async def test_expired_lease_returns_work(store: Store, clock: Clock) -> None:
    """A worker that claimed and died: after the lease, another node claims the work."""
    await store.enqueue([msg(1)])
    [c] = await store.claim("t1", 10, 5, "dead-node")
    clock.advance(4.9)
    assert await store.claim("t1", 10, 5, "live-node") == []
    clock.advance(0.2)
    [again] = await store.claim("t1", 10, 5, "live-node")
    assert again.delivery_id == c.delivery_id and again.attempt == 2


async def test_late_answer_of_an_older_attempt_is_fenced(store: Store, clock: Clock) -> None:
    """Attempt 1 outlived its lease and attempt 2 was claimed: attempt 1's late failure must
    not undo attempt 2; a success counts from either."""
    await store.enqueue([msg(1, ordered=True, partition="p"), msg(2, ordered=True, partition="p")])
    [c1] = await store.claim("t1", 10, 5, "a")
    clock.advance(6)
    [c2] = await store.claim("t1", 10, 5, "b")
    assert c2.delivery_id == c1.delivery_id and c2.attempt == 2
    await store.settle([Outcome(c1.delivery_id, "dead", clock(), 1, None, "timeout")])
    await store.settle([Outcome(c1.delivery_id, "retry", clock(), 1, 503, "x", next_at=0)])
    assert await store.dead_letters() == []
    await store.settle([Outcome(c2.delivery_id, "ack", clock(), 2, 200)])
    tr = await store.trace(c1.message_id)
    assert tr is not None and tr.deliveries[0].state is DeliveryState.DELIVERED
    assert [e.step for e in tr.events] == ["dead-lettered", "retry", "delivered"]  # all traced
    [nxt] = await store.claim("t1", 10, 5, "b")  # the partition moved on
    assert nxt.delivery_id != c1.delivery_id
    # a late success of an older attempt still counts
    clock.advance(6)
    [again] = await store.claim("t1", 10, 5, "c")
    await store.settle([Outcome(nxt.delivery_id, "ack", clock(), 1, 200)])
    assert (await store.counts())["delivered"] == 2
    assert again.delivery_id == nxt.delivery_id


async def test_release_leases_of_one_owner(store: Store) -> None:
    await store.enqueue([msg(1), msg(2)])
    await store.claim("t1", 1, 60, "a")
    await store.claim("t1", 1, 60, "b")
    assert await store.release_leases("a") == 1
    assert len(await store.claim("t1", 10, 60, "c")) == 1
    assert await store.release_leases() == 2


async def test_ordered_partition_one_at_a_time(store: Store, clock: Clock) -> None:
    results = await store.enqueue(
        [msg(i, ordered=True, partition="p1" if i % 2 else "p2") for i in range(6)]
    )
    ids = [r.message_id for r in results]
    first = await store.claim("t1", 10, 30, "n")
    # one per partition: messages 0 (p2) and 1 (p1)
    assert sorted(c.message_id for c in first) == sorted(ids[:2])
    assert await store.claim("t1", 10, 30, "n") == []
    for c in first:
        await store.settle([Outcome(c.delivery_id, "ack", clock(), 1, 200)])
    second = await store.claim("t1", 10, 30, "n")
    assert sorted(c.message_id for c in second) == sorted(ids[2:4])


async def test_ordered_partition_held_by_dead_letter(store: Store, clock: Clock) -> None:
    await store.enqueue([msg(i, ordered=True, partition="p") for i in range(3)])
    [c0] = await store.claim("t1", 10, 30, "n")
    await store.settle([Outcome(c0.delivery_id, "dead", clock(), 1, 409, "version conflict")])
    assert await store.claim("t1", 10, 30, "n") == []  # held
    assert await store.discard([c0.delivery_id], clock(), "superseded") == 1
    [c1] = await store.claim("t1", 10, 30, "n")
    assert c1.delivery_id > c0.delivery_id
    assert (await store.counts())["discarded"] == 1


async def test_unordered_messages_not_held(store: Store, clock: Clock) -> None:
    await store.enqueue([msg(i, partition="p") for i in range(3)])
    assert len(await store.claim("t1", 10, 30, "n")) == 3


async def test_claim_limit_and_oldest_first(store: Store, clock: Clock) -> None:
    results = []
    for i in range(5):
        results += await store.enqueue([msg(i)])
        clock.advance(1)
    claimed = await store.claim("t1", 2, 30, "n")
    assert [c.message_id for c in claimed] == [r.message_id for r in results[:2]]


async def test_add_events_and_trace_of_unknown(store: Store, clock: Clock) -> None:
    from hub.store import TraceEvent

    [res] = await store.enqueue([msg(1)])
    await store.add_events(res.message_id, [TraceEvent(clock(), "transformed", "t1", detail="x")])
    tr = await store.trace(res.message_id)
    assert tr is not None and tr.events[0].step == "transformed"
    assert await store.trace("no-such-id") is None


async def test_counts(store: Store) -> None:
    await store.enqueue([msg(i, targets=("a", "b")) for i in range(3)])
    counts = await store.counts()
    assert counts["messages"] == 3 and counts["pending"] == 6


# --------------------------------------------------------------------------- SQLite specifics


async def test_sqlite_group_commit_many_callers_one_transaction(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "g.db")
    await s.open()
    try:
        results = await asyncio.gather(*(s.enqueue([msg(i)]) for i in range(200)))
        assert len({r[0].message_id for r in results}) == 200
        commits, _ops = s.group_commit_stats
        assert commits < 20  # 200 concurrent callers shared a few transactions
    finally:
        await s.close()


async def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "r.db")
    await s.open()
    [res] = await s.enqueue([msg(1, key="k")])
    await s.close()
    s2 = SQLiteStore(tmp_path / "r.db")
    await s2.open()
    try:
        assert await s2.lookup_idempotency("src", "k") == res.message_id
        [again] = await s2.enqueue([msg(2, key="k")])
        assert again.duplicate
        [new] = await s2.enqueue([msg(3)])
        assert len(await s2.claim("t1", 10, 30, "n")) == 2 and not new.duplicate
    finally:
        await s2.close()


async def test_sqlite_failing_operation_does_not_fail_neighbours(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "f.db")
    await s.open()
    try:
        bad = msg(1)
        bad.envelope.payload = None  # type: ignore[assignment]  # violates NOT NULL
        good = [s.enqueue([msg(i)]) for i in range(20)]
        results = await asyncio.gather(s.enqueue([bad]), *good, return_exceptions=True)
        assert isinstance(results[0], Exception)
        assert all(not isinstance(r, Exception) for r in results[1:])
        assert (await s.counts())["messages"] == 20
    finally:
        await s.close()


async def test_sqlite_refuses_unknown_schema_version(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "v.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(RuntimeError, match="schema version 99"):
        await SQLiteStore(path).open()


async def test_sqlite_closed_store_refuses_writes_with_e_store(tmp_path: Path) -> None:
    from hub.errors import StoreUnavailable

    s = SQLiteStore(tmp_path / "c.db")
    await s.open()
    assert s.problems() == []
    await s.close()
    with pytest.raises(StoreUnavailable) as exc:
        await s.enqueue([msg(1)])
    assert exc.value.code == "E_STORE" and exc.value.status == 503
    assert s.problems() == ["store is not open"]


async def test_sqlite_writer_failure_fails_waiters_not_hangs(tmp_path: Path) -> None:
    """If the write connection itself breaks, every waiting caller gets an error (nothing
    acknowledged) and later writes are refused, instead of waiting forever."""
    from hub.errors import StoreUnavailable

    s = SQLiteStore(tmp_path / "w.db")
    await s.open()
    try:

        def broken(conn: sqlite3.Connection) -> None:
            conn.close()  # the connection is lost mid-transaction: even ROLLBACK fails now
            raise OSError("simulated loss of the connection")

        with pytest.raises(Exception, match=r"closed database|simulated loss"):
            await s._write(broken)
        await asyncio.sleep(0.05)
        assert s.problems() and "writer stopped" in s.problems()[0]
        with pytest.raises(StoreUnavailable):
            await s.enqueue([msg(1)])
    finally:
        await s.close()


async def test_sqlite_parks_deliveries_behind_an_unfinished_head(tmp_path: Path) -> None:
    """Queued behind a dead head, the rest of a partition is parked: no claim walks over it
    and the dispatcher is not told to come back at once."""
    from hub.store.sqlite import PARKED

    clock = Clock()
    s = SQLiteStore(tmp_path / "p.db", clock=clock)
    await s.open()
    try:
        await s.enqueue([msg(i, ordered=True, partition="p") for i in range(3)])
        await s.enqueue([msg(9, ordered=True, partition="q")])
        rows = s._rconn.execute(  # type: ignore[union-attr]
            "SELECT partition_key, next_at FROM deliveries ORDER BY id"
        ).fetchall()
        assert [(p, n >= PARKED) for p, n in rows] == [
            ("p", False),
            ("p", True),
            ("p", True),
            ("q", False),
        ]
        heads = await s.claim("t1", 10, 30, "n")
        assert len(heads) == 2
        p_head = next(c for c in heads if c.partition_key == "p")
        q_head = next(c for c in heads if c.partition_key == "q")
        await s.settle(
            [
                Outcome(p_head.delivery_id, "dead", clock(), 1, 409, "conflict"),
                Outcome(q_head.delivery_id, "ack", clock(), 1, 200),
            ]
        )
        assert await s.claim("t1", 10, 30, "n") == []
        due = await s.next_due_at("t1")
        assert due is not None and due >= PARKED
        await s.discard([p_head.delivery_id], clock(), "superseded")
        [second] = await s.claim("t1", 10, 30, "n")
        assert second.delivery_id == p_head.delivery_id + 1
        await s.settle([Outcome(second.delivery_id, "ack", clock(), 1, 200)])
        [third] = await s.claim("t1", 10, 30, "n")
        assert third.delivery_id == p_head.delivery_id + 2
    finally:
        await s.close()


def test_sqlite_store_used_from_two_event_loops(tmp_path: Path) -> None:
    """Enqueues are merged per event loop; a second loop still gets its commits."""
    import threading

    s = SQLiteStore(tmp_path / "two.db")
    results: list[str] = []

    async def first() -> None:
        await s.open()
        [r] = await s.enqueue([msg(1)])
        results.append(r.message_id)

    asyncio.run(first())

    def other_loop() -> None:
        async def go() -> None:
            [r] = await s.enqueue([msg(2)])
            results.append(r.message_id)

        asyncio.run(go())

    t = threading.Thread(target=other_loop)
    t.start()
    t.join(timeout=10)
    assert len(results) == 2 and results[0] != results[1]

    async def last() -> None:
        assert (await s.counts())["messages"] == 2
        await s.close()

    asyncio.run(last())


async def test_lease_is_held_by_one_owner_until_it_expires_or_is_released(
    store: Store, clock: Clock
) -> None:
    """A named lease (the lock a scheduled job takes): one owner at a time, renewable by its
    owner, free again once it expires or is released."""
    assert await store.acquire_lease("national:pull", "node-a", 30)
    assert not await store.acquire_lease("national:pull", "node-b", 30)
    assert await store.acquire_lease("national:reconcile", "node-b", 30)  # another name
    assert await store.acquire_lease("national:pull", "node-a", 30)  # renewed by its owner
    clock.advance(29)
    assert not await store.acquire_lease("national:pull", "node-b", 30)
    clock.advance(2)  # the renewal ran out: a dead node's lease returns
    assert await store.acquire_lease("national:pull", "node-b", 30)
    assert not await store.release_lease("national:pull", "node-a")  # not a's any more
    assert await store.release_lease("national:pull", "node-b")
    assert await store.acquire_lease("national:pull", "node-a", 30)


async def test_retention_prunes_finished_messages_only(
    store: Store, clock: Clock, tmp_path: Path
) -> None:
    """The retention policy prunes the same way on every store (the embedded SQLite default
    as on PostgreSQL): finished messages older than ``trace_days``, with their deliveries and
    trace, archived first; dead letters, pending work and younger messages stay."""
    from hub.config import RetentionSettings
    from hub.jobs import prune_once
    from hub.store.base import Prunable

    assert isinstance(store, Prunable)
    old = await store.enqueue([msg(i, key=f"old-{i}") for i in range(6)])
    claimed = await store.claim("t1", 10, 10 * 86400, "n")  # a long lease: stays inflight
    await store.settle(
        [Outcome(c.delivery_id, "ack", clock(), 1, 200) for c in claimed[:3]]
        + [Outcome(claimed[3].delivery_id, "dead", clock(), 1, 400, "bad")]
        + [Outcome(claimed[4].delivery_id, "dead", clock(), 1, 400, "bad")]
    )  # 3 delivered, 2 dead letters (one is then discarded), 1 still inflight
    assert await store.discard([claimed[4].delivery_id], clock(), "test") == 1
    clock.advance(3 * 86400)
    [recent] = await store.enqueue([msg(9)])
    [c] = await store.claim("t1", 10, 30, "n")
    await store.settle([Outcome(c.delivery_id, "ack", clock(), 1, 200)])
    settings = RetentionSettings(trace_days=2, batch=2)  # batches of two: three rounds
    archive = tmp_path / "archive"
    assert await prune_once(store, settings, archive, clock) == 4
    gone = [old[i] for i in (0, 1, 2, 4)]
    for r in gone:
        assert await store.trace(r.message_id) is None
    assert await store.trace(old[3].message_id) is not None  # dead letters are never pruned
    assert await store.trace(old[5].message_id) is not None  # nor pending work
    assert await store.trace(recent.message_id) is not None  # nor anything younger
    assert await store.lookup_idempotency("src", "old-0") is None  # its key went with it
    assert await store.lookup_idempotency("src", "old-3") == old[3].message_id
    [archived] = list(archive.glob("pruned-*.ndjson"))
    lines = [orjson.loads(x) for x in archived.read_bytes().splitlines()]
    assert sorted(x["message_id"] for x in lines) == sorted(r.message_id for r in gone)
    assert sorted(x["delivered"] for x in lines) == [0, 1, 1, 1]  # the discarded one: 0
    assert all(x["source"] == "src" and x["dataset"] == "inspection" for x in lines)
    counts = await store.counts()
    assert counts["messages"] == 3 and counts["delivered"] == 1 and counts["dead"] == 1
    assert await prune_once(store, settings, None, clock) == 0


# --------------------------------------------------------------------------- settle_sync


_CRASH_AFTER_SETTLE = """
import asyncio, os, sys
import orjson
from tests.store.test_store_contract import msg
from hub.store import Outcome
from hub.store.sqlite import SQLiteStore

async def main() -> None:
    s = SQLiteStore(sys.argv[1], settle_sync=sys.argv[2])
    await s.open()
    await s.enqueue([msg(i) for i in range(3)])
    a, b, c = await s.claim("t1", 10, 30, "n")
    await s.settle(
        [
            Outcome(a.delivery_id, "ack", 5.0, 1, 200, "ok", 1.5),
            Outcome(b.delivery_id, "retry", 5.0, 1, 503, "busy", next_at=4e9),
            Outcome(c.delivery_id, "dead", 5.0, 1, 422, "refused"),
        ]
    )
    print(orjson.dumps([a.message_id, b.message_id, c.message_id, s.nosync_commits]).decode())
    sys.stdout.flush()
    os._exit(9)  # the process dies: no close(), no checkpoint, threads killed

asyncio.run(main())
"""


@pytest.mark.parametrize("settle_sync", ["relaxed", "full"])
async def test_sqlite_settle_survives_a_process_crash(tmp_path: Path, settle_sync: str) -> None:
    """A settle committed without fsync (``relaxed``) is still there when the process that
    made it dies right after: the WAL frames are in the OS's page cache (only a power cut
    could lose them, and then the delivery is sent again). ``full`` keeps the same result."""
    import subprocess
    import sys

    path = tmp_path / "crash.db"
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _CRASH_AFTER_SETTLE, str(path), settle_sync],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 9, proc.stderr
    acked, retried, dead, nosync = orjson.loads(proc.stdout.strip().splitlines()[-1])
    # claims commit without fsync in both modes; the relaxed settle adds one more
    assert nosync >= (2 if settle_sync == "relaxed" else 1)
    s = SQLiteStore(path)
    await s.open()
    try:
        states = {}
        for mid in (acked, retried, dead):
            tr = await s.trace(mid)
            assert tr is not None
            states[mid] = (tr.deliveries[0].state, [e.step for e in tr.events])
        assert states[acked] == (DeliveryState.DELIVERED, ["delivered"])
        assert states[retried][1] == ["retry"]
        assert states[dead] == (DeliveryState.DEAD, ["dead-lettered"])
        assert await s.claim("t1", 10, 30, "n") == []  # nothing is due again
    finally:
        await s.close()


async def test_sqlite_settle_sync_decides_whether_settles_fsync(tmp_path: Path) -> None:
    """``settle_sync: relaxed`` settles commit with ``synchronous=NORMAL``; ``full`` settles
    (and ingest in both modes) commit with ``synchronous=FULL``."""
    counts = {}
    for mode in ("relaxed", "full"):
        s = SQLiteStore(tmp_path / f"{mode}.db", settle_sync=mode)
        await s.open()
        try:
            nosync0 = s.nosync_commits
            await s.enqueue([msg(1), msg(2)])
            assert s.nosync_commits == nosync0  # ingest always fsyncs
            claimed = await s.claim("t1", 10, 30, "n")
            after_claim = s.nosync_commits
            assert after_claim == nosync0 + 1  # a claim never needs the fsync
            await s.settle([Outcome(c.delivery_id, "ack", 2.0, 1, 200) for c in claimed])
            counts[mode] = s.nosync_commits - after_claim
        finally:
            await s.close()
    assert counts == {"relaxed": 1, "full": 0}
    with pytest.raises(ValueError, match="settle_sync"):
        SQLiteStore(tmp_path / "x.db", settle_sync="sometimes")


async def test_sqlite_operator_replay_and_discard_always_fsync(tmp_path: Path) -> None:
    """Dead-letter replays and discards by an operator are not settles: they keep the fsync
    even with ``settle_sync: relaxed``."""
    s = SQLiteStore(tmp_path / "op.db")
    await s.open()
    try:
        await s.enqueue([msg(1), msg(2)])
        a, b = await s.claim("t1", 10, 30, "n")
        await s.settle(
            [
                Outcome(a.delivery_id, "dead", 2.0, 1, 422, "refused"),
                Outcome(b.delivery_id, "dead", 2.0, 1, 422, "refused"),
            ]
        )
        before = s.nosync_commits
        commits_before = s.group_commit_stats[0]
        assert await s.replay([a.delivery_id], 3.0) == 1
        assert await s.discard([b.delivery_id], 3.0, "superseded") == 1
        assert s.group_commit_stats[0] == commits_before + 2
        assert s.nosync_commits == before
    finally:
        await s.close()


async def test_sqlite_rows_without_nullable_columns_are_stored_the_same(tmp_path: Path) -> None:
    """A job whose rows have no idempotency key, partition key or subject is inserted with the
    statements that leave those columns out (``_nonull``); a job that mixes both kinds uses the
    full statements for all its rows, in order. Either way the stored rows are the same: NULLs,
    BLOB payloads and digests, delivery ids in the order of the messages."""
    s = SQLiteStore(tmp_path / "n.db")
    await s.open()
    try:
        plain = await s.enqueue([msg(i, targets=("t1", "t2")) for i in range(3)])
        subject = msg(5)
        subject.subject = "91350200776049653A"
        mixed = await s.enqueue(
            [
                msg(3),
                msg(4, key="k4", partition="p4", targets=("t1", "t2")),
                subject,
                msg(6, targets=("t2",), ordered=True, partition="p6"),
                msg(7),
            ]
        )
    finally:
        await s.close()
    conn = sqlite3.connect(tmp_path / "n.db")
    rows = conn.execute(
        "SELECT id, idem_key, partition_key, subject, typeof(payload), typeof(digest), payload"
        " FROM messages ORDER BY seq"
    ).fetchall()
    dels = conn.execute(
        "SELECT m.id, d.target, d.ordered, d.partition_key FROM deliveries d"
        " JOIN messages m ON m.seq = d.msg ORDER BY d.id"
    ).fetchall()
    conn.close()
    ids = [r.message_id for r in plain + mixed]
    assert [r[0] for r in rows] == ids
    assert [r[1:4] for r in rows] == [
        (None, None, None),
        (None, None, None),
        (None, None, None),
        (None, None, None),
        ("k4", "p4", None),
        (None, None, "91350200776049653A"),
        (None, "p6", None),
        (None, None, None),
    ]
    assert {r[4:6] for r in rows} == {("blob", "blob")}
    assert [orjson.loads(r[6]) for r in rows] == [{"i": i} for i in range(8)]
    assert dels == [
        (ids[0], "t1", 0, None),
        (ids[0], "t2", 0, None),
        (ids[1], "t1", 0, None),
        (ids[1], "t2", 0, None),
        (ids[2], "t1", 0, None),
        (ids[2], "t2", 0, None),
        (ids[3], "t1", 0, None),
        (ids[4], "t1", 0, "p4"),
        (ids[4], "t2", 0, "p4"),
        (ids[5], "t1", 0, None),
        (ids[6], "t2", 1, "p6"),
        (ids[7], "t1", 0, None),
    ]


async def _settle_two_ways(tmp_path: Path, grouped: bool) -> tuple[list[tuple], list[tuple]]:
    """Deliveries and events after the same outcomes, settled one call per outcome (the row by
    row statements) or in one call (acks sharing their values go through the grouped ones)."""
    clock = Clock()
    s = SQLiteStore(tmp_path / f"g{int(grouped)}.db", clock=clock)
    await s.open()
    try:
        await s.enqueue([msg(i) for i in range(8)])
        await s.enqueue([msg(10 + i, ordered=True, partition="p") for i in range(2)])
        claimed = await s.claim("t1", 100, 30, "n")
        ids = [c.delivery_id for c in claimed]
        assert len(ids) == 9  # the ordered partition's second message waits (parked)
        head = next(c.delivery_id for c in claimed if c.partition_key == "p")
        plain = [i for i in ids if i != head]
        # an earlier attempt of plain[0] was already dead-lettered: its late ack is fenced
        await s.settle([Outcome(plain[0], "dead", clock(), 1, 422, "bad")])
        at = clock()
        outcomes = [Outcome(i, "ack", at, 1, 200, "transform=identity", 3.5) for i in plain[:5]]
        outcomes += [
            Outcome(head, "ack", at, 1, 200, "transform=identity", 3.5),  # unparks its successor
            Outcome(plain[5], "ack", at + 1, 1, 201, "transform=identity; receipt=r", 4.0),
            Outcome(plain[6], "retry", at, 1, 503, "busy", 2.0, at + 10),
        ]
        if grouped:
            await s.settle(outcomes)
        else:
            for o in outcomes:
                await s.settle([o])
        conn = s._rconn
        assert conn is not None
        dels = conn.execute(
            "SELECT id, msg, state, attempts, retries, next_at, lease_owner, last_status, "
            "last_error, delivered_at, dead_at FROM deliveries ORDER BY id"
        ).fetchall()
        evs = conn.execute(
            "SELECT msg, at, step, target, attempt, status, latency_ms, detail FROM events "
            "ORDER BY msg, at, step"
        ).fetchall()
        assert len(await s.claim("t1", 100, 30, "n")) == 1  # the unparked successor
        return dels, evs
    finally:
        await s.close()


async def test_sqlite_grouped_settle_writes_what_row_by_row_settles_write(tmp_path: Path) -> None:
    one_by_one = await _settle_two_ways(tmp_path, grouped=False)
    grouped = await _settle_two_ways(tmp_path, grouped=True)
    assert grouped == one_by_one
    dels, evs = grouped
    assert sum(1 for d in dels if d[2] == DeliveryState.DELIVERED) == 6
    assert sum(1 for d in dels if d[2] == DeliveryState.DEAD) == 1  # the fenced late ack
    assert [e[2] for e in evs].count("delivered") == 7  # every answer is traced


async def test_sqlite_each_commit_runs_at_its_own_synchronous_level(tmp_path: Path) -> None:
    """The writer switches ``synchronous`` only when the level changes, yet every transaction
    runs at its own: NORMAL for claims and relaxed settles, FULL for anything else (and for
    the lone retry of a failed group), the connection's NORMAL under ``durability: normal``."""
    from hub.store.sqlite import _NoSync

    def level(c: sqlite3.Connection) -> int:
        return int(c.execute("PRAGMA synchronous").fetchone()[0])

    def failing(c: sqlite3.Connection) -> int:
        raise sqlite3.IntegrityError("no")

    for durability, normal, full in (("full", 1, 2), ("normal", 1, 1)):
        s = SQLiteStore(tmp_path / f"{durability}.db", durability=durability)
        await s.open()
        try:
            seen = [
                await s._write(_NoSync(level)),
                await s._write(_NoSync(level)),
                await s._write(level),
                await s._write(level),
                await s._write(_NoSync(level)),
                await s._write(level),
            ]
            assert seen == [normal, normal, full, full, normal, full]
            # a group of nothing but no-sync operations where one fails: the others are
            # retried alone, each again at its own level
            got = await asyncio.gather(
                s._write(_NoSync(level)), s._write(_NoSync(failing)), return_exceptions=True
            )
            assert got[0] == normal and isinstance(got[1], sqlite3.IntegrityError)
            assert await s._write(level) == full
        finally:
            await s.close()
