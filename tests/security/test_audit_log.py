"""The tamper-evident audit log on a real SQLite file: the chain, signed checkpoints (Ed25519
keys made at test time), and every kind of tampering an attacker with the file could try."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from datetime import date
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.errors import BadParameter, StateError
from security.audit import Actor, AuditLog, entry_hash, verifier_from_keys, verify_export
from security.roles import Principal, Role
from security.secdb import SQLiteSecurityDB
from tests.conftest import Clock


class Ed25519Key:
    """The hub's own checkpoint key (real Ed25519, made per test)."""

    algorithm = "ed25519"

    def __init__(self, key_id: str = "hub-2026") -> None:
        self.key_id = key_id
        self._key = Ed25519PrivateKey.generate()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def verify(self, data: bytes, signature: bytes) -> None:
        self._key.public_key().verify(signature, data)


ALICE = Actor("tok-alice", "dept-a", "reviewer")


async def _open(path: Path) -> SQLiteSecurityDB:
    db = SQLiteSecurityDB(path)
    await db.open()
    return db


async def _filled(
    tmp_path: Path, n: int = 10, every: int = 4, *, key: Ed25519Key | None = None
) -> tuple[SQLiteSecurityDB, AuditLog, Ed25519Key]:
    key = key or Ed25519Key()
    db = await _open(tmp_path / "security.db")
    log = AuditLog(
        db,
        checkpoint_every=every,
        signer=key,
        verify=verifier_from_keys({key.key_id: key}),
        clock=Clock(),
    )
    for i in range(n):
        await log.append(
            "data.access",
            actor=ALICE,
            object="inspection",
            details={"i": i, "fields": ["检查结果"]},
        )
    return db, log, key


def _tamper(path: Path, *sql: str) -> None:
    """What someone with write access to the file does (triggers dropped first)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    for s in sql:
        conn.execute(s)
    conn.close()


async def test_an_untouched_log_verifies(tmp_path: Path) -> None:
    db, log, _ = await _filled(tmp_path, n=10, every=4)
    report = await log.verify()
    await db.close()
    assert report.ok, report
    assert (report.entries, report.head_seq) == (10, 10)
    assert report.checkpoints == 2 and report.checkpoints_verified == 2
    assert report.last_signed_seq == 8 and report.unsigned_tail == 2
    assert "OK" in str(report)


async def test_entries_chain_and_hash_as_documented(tmp_path: Path) -> None:
    db, _log, _ = await _filled(tmp_path, n=3)
    rows = await db.audit_page(0, 3, 10)
    await db.close()
    assert rows[0].prev_hash == "0" * 64
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    assert all(entry_hash("sha256", r) == r.hash for r in rows)
    assert rows[0].at == "2027-01-15T08:00:00.000000Z"  # the Clock's start, in UTC


async def test_the_application_cannot_update_or_delete_entries(tmp_path: Path) -> None:
    db, _, _ = await _filled(tmp_path, n=2)
    await db.close()
    conn = sqlite3.connect(tmp_path / "security.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET outcome = 'ok' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit WHERE seq = 1")
    conn.close()


@pytest.mark.parametrize(
    ("sql", "bad_seq", "words"),
    [
        (
            ["UPDATE audit SET details = '{\"i\":99}' WHERE seq = 5"],
            5,
            "was changed",
        ),
        (["DELETE FROM audit WHERE seq = 6"], 6, "missing"),
        (
            # swap the contents of entries 3 and 4 (every column but seq)
            [
                "UPDATE audit SET seq = -3 WHERE seq = 3",
                "UPDATE audit SET seq = 3 WHERE seq = 4",
                "UPDATE audit SET seq = 4 WHERE seq = -3",
            ],
            3,
            "",
        ),
        (["UPDATE audit SET outcome = 'denied' WHERE seq = 10"], 10, "was changed"),
        (["UPDATE audit SET actor_department = 'dept-b' WHERE seq = 1"], 1, "was changed"),
        (
            # insert an entry in the middle: renumber 7..10 up by one, put a row at 7
            [
                "UPDATE audit SET seq = seq + 100 WHERE seq >= 7",
                "UPDATE audit SET seq = seq - 99 WHERE seq >= 107",
                "INSERT INTO audit SELECT 7, at, actor_id, actor_department, actor_role, action,"
                " object, outcome, details, prev_hash, hash FROM audit WHERE seq = 6",
            ],
            7,
            "",
        ),
        (["DELETE FROM audit WHERE seq >= 9"], 9, "removed from the end"),
    ],
    ids=[
        "edit-details",
        "delete-row",
        "swap-rows",
        "edit-last",
        "edit-actor",
        "insert",
        "truncate",
    ],
)
async def test_tampering_is_detected_and_named(
    tmp_path: Path, sql: list[str], bad_seq: int, words: str
) -> None:
    db, log, _ = await _filled(tmp_path, n=10, every=5)
    await db.close()
    _tamper(tmp_path / "security.db", *sql)
    db = await _open(tmp_path / "security.db")
    log.db = db
    report = await log.verify()
    await db.close()
    assert not report.ok
    assert report.first_bad_seq == bad_seq, report.problems
    assert words in (report.problem or "")
    assert f"BAD at entry {bad_seq}" in str(report)


async def test_a_rewritten_history_is_caught_by_the_signed_checkpoint(tmp_path: Path) -> None:
    """An attacker edits entry 2 and recomputes every hash after it: the chain is whole again,
    but entry 4's hash no longer matches what the hub signed."""
    db, log, _ = await _filled(tmp_path, n=6, every=4)
    rows = await db.audit_page(0, 6, 10)
    await db.close()
    stmts, prev = [], rows[0].hash
    from dataclasses import replace

    for r in rows[1:]:
        details = '{"i":42}' if r.seq == 2 else r.details
        e = replace(r, details=details, prev_hash=prev)
        e = replace(e, hash=entry_hash("sha256", e))
        stmts.append(
            f"UPDATE audit SET details = '{e.details}', prev_hash = '{e.prev_hash}', "
            f"hash = '{e.hash}' WHERE seq = {e.seq}"
        )
        prev = e.hash
    _tamper(tmp_path / "security.db", *stmts)
    db = await _open(tmp_path / "security.db")
    log.db = db
    report = await log.verify()
    await db.close()
    assert not report.ok
    assert report.first_bad_seq == 4
    assert "signed checkpoint" in (report.problem or "")


async def test_a_forged_checkpoint_is_detected(tmp_path: Path) -> None:
    db, log, _ = await _filled(tmp_path, n=8, every=4)
    await db.close()
    forged = base64.b64encode(Ed25519Key().sign(b"whatever")).decode()
    _tamper(
        tmp_path / "security.db",
        f"UPDATE audit_checkpoints SET signature = '{forged}' WHERE seq = 8",
    )
    db = await _open(tmp_path / "security.db")
    log.db = db
    report = await log.verify()
    await db.close()
    assert not report.ok
    assert report.first_bad_seq == 8
    assert "does not verify" in (report.problem or "")
    assert report.checkpoints_verified == 1


async def test_a_checkpoint_by_an_unknown_key_does_not_verify(tmp_path: Path) -> None:
    db, log, _ = await _filled(tmp_path, n=4, every=4)
    log.verifier = verifier_from_keys({"someone-else": Ed25519Key("someone-else")})
    report = await log.verify()
    await db.close()
    assert not report.ok and report.first_bad_seq == 4


async def test_on_demand_checkpoint_covers_the_tail(tmp_path: Path) -> None:
    db, log, _ = await _filled(tmp_path, n=6, every=4)
    cp = await log.checkpoint()
    report = await log.verify()
    await db.close()
    assert cp is not None and cp.seq == 6
    assert report.ok and report.unsigned_tail == 0 and report.checkpoints_verified == 2


async def test_concurrent_appends_keep_one_linear_chain(tmp_path: Path) -> None:
    """50 appends from this loop and 50 through a second connection to the same file."""
    db1 = await _open(tmp_path / "security.db")
    db2 = await _open(tmp_path / "security.db")
    log1, log2 = AuditLog(db1), AuditLog(db2)
    await asyncio.gather(
        *[log1.append("dlq.replay", actor=ALICE, object=str(i)) for i in range(50)],
        *[log2.append("dlq.discard", actor=ALICE, object=str(i)) for i in range(50)],
    )
    report = await log1.verify()
    await db1.close()
    await db2.close()
    assert report.ok, report.problems
    assert report.entries == 100


async def test_sm3_chain_verifies_and_its_hash_is_sm3(tmp_path: Path) -> None:
    db = await _open(tmp_path / "security.db")
    log = AuditLog(db, hash_name="sm3")
    e = await log.append("login", actor=ALICE)
    report = await log.verify()
    # the same entry under SHA-256 would give another hash
    assert e.hash != entry_hash("sha256", e) and e.hash == entry_hash("sm3", e)
    assert report.ok
    with pytest.raises(StateError) as err:
        await AuditLog(db, hash_name="sha256").append("login", actor=ALICE)
    await db.close()
    assert err.value.code == "E_STATE" and err.value.field == "hash"


async def test_unknown_actions_and_outcomes_are_refused(tmp_path: Path) -> None:
    db = await _open(tmp_path / "security.db")
    log = AuditLog(db)
    with pytest.raises(BadParameter) as err:
        await log.append("payload.stolen", actor=ALICE)
    assert err.value.code == "E_PARAM" and err.value.field == "action"
    for ok in ("application.submitted", "decision.approved", "grant.revoked", "key.changed"):
        await log.append(ok, actor=ALICE)
    principal = Principal("tok1", "张三", frozenset({Role.REVIEWER, Role.REQUESTER}), "dept-a")
    e = await log.append("grant.issued", actor=principal)
    await db.close()
    assert (e.actor_id, e.actor_department, e.actor_role) == (
        "tok1",
        "dept-a",
        "requester,reviewer",
    )


async def test_export_reverifies_offline(tmp_path: Path) -> None:
    db, log, key = await _filled(tmp_path, n=9, every=4)
    lines = [line async for line in log.export(date(2027, 1, 1), date(2027, 12, 31))]
    empty = [line async for line in log.export(date(2026, 1, 1), date(2026, 12, 31))]
    await db.close()
    header = orjson.loads(lines[0])
    assert header["format"] == "jghub-audit-export/1" and header["hash_alg"] == "sha256"
    assert (header["first_seq"], header["last_seq"]) == (1, 9)
    kinds = [orjson.loads(x)["type"] for x in lines]
    assert kinds.count("entry") == 9 and kinds.count("checkpoint") == 2
    report = verify_export(lines, verifier_from_keys({key.key_id: key}))
    assert report.ok and report.checkpoints_verified == 2
    assert len(empty) == 1 and orjson.loads(empty[0])["first_seq"] is None

    # an inspector's copy that was edited, or lost a line, fails
    edited = [x.replace('"i":3', '"i":4') for x in lines]
    assert verify_export(edited).first_bad_seq == 4
    assert verify_export([x for x in lines if '"seq":9,' not in x or "checkpoint" in x]).ok is False


async def test_schema_version_is_checked_at_open(tmp_path: Path) -> None:
    db = await _open(tmp_path / "security.db")
    await db.close()
    conn = sqlite3.connect(tmp_path / "security.db")
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(StateError) as err:
        await _open(tmp_path / "security.db")
    assert err.value.code == "E_STATE" and "version 7" in err.value.message


async def test_details_must_be_json_and_the_db_meets_its_protocol(tmp_path: Path) -> None:
    from security.secdb import SecurityDB

    db = await _open(tmp_path / "security.db")
    assert isinstance(db, SecurityDB)
    with pytest.raises(BadParameter) as err:
        await AuditLog(db).append("login", actor=ALICE, details={"when": date(2026, 1, 1)})
    await db.close()
    assert err.value.field == "details"
