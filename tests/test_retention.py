"""The retention policy's second half: the audit log (全程留痕) is archived separately, a file
per UTC day, re-verifiable offline with ``jghub audit verify --export``, and never deleted; a
real hub on the embedded SQLite store prunes its delivered messages and archives its audit log
at start (one node, no lease)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner

from contracts.samples import sample_inspection
from hub.cli import app
from hub.config import RetentionSettings, load_config
from hub.jobs import archive_audit_once, audit_archive_job
from hub.peers.sink import Sink
from hub.runtime import Hub
from security.audit import Actor, AuditLog, verifier_from_keys
from security.secdb import SQLiteSecurityDB
from tests.conftest import Clock
from tests.helpers import wait_until, write_config

DAY = 86400.0
ALICE = Actor("tok-alice", "dept-a", "reviewer")


class _Key:
    """The hub's own checkpoint key (real Ed25519, made per test)."""

    algorithm = "ed25519"
    key_id = "hub-2026"

    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def verify(self, data: bytes, signature: bytes) -> None:
        self.private.public_key().verify(signature, data)


async def _append(log: AuditLog, n: int, tag: str) -> None:
    for i in range(n):
        await log.append("data.access", actor=ALICE, object="inspection", details={tag: i})


def _verify_cli(path: Path, pub: Path) -> str:
    res = CliRunner().invoke(
        app,
        ["audit", "verify", "--export", str(path), "--public-key", f"hub-2026={pub}",
         "--require-signatures"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return res.stdout


async def test_audit_log_is_archived_by_day_verifiable_offline_never_deleted(
    tmp_path: Path,
) -> None:
    key = _Key()
    pub = tmp_path / "hub.pub.pem"
    pub.write_bytes(
        key.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    clock = Clock(1_800_000_000.0)  # 2027-01-15 08:00 UTC
    db = SQLiteSecurityDB(tmp_path / "security.db")
    await db.open()
    try:
        log = AuditLog(
            db,
            checkpoint_every=2,
            signer=key,
            verify=verifier_from_keys({key.key_id: key}),
            clock=clock,
        )
        await _append(log, 3, "d15")
        clock.advance(2 * DAY)  # nothing on the 16th
        await _append(log, 4, "d17")
        clock.advance(DAY)
        await _append(log, 1, "d18")  # today: not a whole day yet, not archived
        folder = tmp_path / "archive" / "audit"

        written = await archive_audit_once(log, folder, clock)
        assert [p.name for p in written] == ["audit-2027-01-15.jsonl", "audit-2027-01-17.jsonl"]
        assert sorted(p.name for p in folder.iterdir()) == [p.name for p in written]  # no .tmp
        first, second = ([orjson.loads(x) for x in p.read_bytes().splitlines()] for p in written)
        assert [e["seq"] for e in first if e["type"] == "entry"] == [1, 2, 3]
        assert [e["seq"] for e in second if e["type"] == "entry"] == [4, 5, 6, 7]
        # the days chain: each file starts where the one before ended
        assert second[0]["prev_hash"] == [e for e in first if e["type"] == "entry"][-1]["hash"]
        # an inspector re-verifies each file offline, signatures included
        assert "3 entries" in _verify_cli(written[0], pub)
        assert "4 entries" in _verify_cli(written[1], pub)

        # a second run the same day writes nothing; the next day archives only the new day
        assert await archive_audit_once(log, folder, clock) == []
        clock.advance(DAY)
        [third] = await archive_audit_once(log, folder, clock)
        assert third.name == "audit-2027-01-18.jsonl"
        kinds = [orjson.loads(x)["type"] for x in third.read_bytes().splitlines()]
        assert kinds == ["header", "entry", "checkpoint"]  # entry 8 and its signed checkpoint
        assert "1 entries" in _verify_cli(third, pub)

        # archiving never deletes: the whole log is still there and still verifies
        report = await log.verify()
        assert report.ok and report.entries == 8 and report.head_seq == 8

        # a tampered archive file is caught offline
        doc = [orjson.loads(x) for x in written[1].read_bytes().splitlines()]
        doc[2]["details"] = {"d17": 99}
        bad = tmp_path / "bad.jsonl"
        bad.write_bytes(b"\n".join(orjson.dumps(x) for x in doc))
        res = CliRunner().invoke(app, ["audit", "verify", "--export", str(bad)])
        assert res.exit_code == 1 and "entry 5" in res.output
    finally:
        await db.close()


def test_audit_archive_job_needs_an_audit_log_and_an_archive_dir(tmp_path: Path) -> None:
    with_dir = RetentionSettings(archive_dir=Path("archive"))
    assert audit_archive_job(None, with_dir, tmp_path, "n", time.time) is None
    db = SQLiteSecurityDB(tmp_path / "security.db")
    log = AuditLog(db)
    assert audit_archive_job(log, RetentionSettings(), tmp_path, "n", time.time) is None
    off = RetentionSettings(archive_dir=Path("archive"), audit_archive=False)
    assert audit_archive_job(log, off, tmp_path, "n", time.time) is None
    job = audit_archive_job(log, with_dir, tmp_path, "n", time.time)
    assert job is not None and job.lease.leases is None  # every node archives its own log


async def test_sqlite_hub_prunes_and_archives_the_audit_log_at_start(tmp_path: Path) -> None:
    """A real hub on the embedded SQLite store: delivered messages older than ``trace_days``
    are pruned (summaries archived first), the audit log is exported by day to
    ``archive_dir/audit`` and keeps every entry."""
    sink = Sink("national")
    await sink.start()
    try:
        path = write_config(tmp_path, {"national": {"url": sink.url}})
        doc = yaml.safe_load(path.read_text())
        doc["security"] = {
            "db": {"path": "data/security.db", "durability": "normal"},
            "tokens": {"pepper_env": None},
        }
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        cfg = load_config(path)
        async with Hub(cfg) as hub:  # first run: no retention policy
            res = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(30)])
            assert len(res.ids) == 30
            await wait_until(lambda: len(sink.applied) == 30, what="30 deliveries")
            await wait_until(lambda: _delivered(hub, 30), what="deliveries settled in the store")
            before = await hub.guard.audit.verify()
        assert before.ok and before.entries >= 1  # the first start audited the onboarding
        doc["retention"] = {"trace_days": 1, "archive_dir": "archive"}
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        cfg = load_config(path)
        later = Clock(time.time() + 2 * DAY)  # two days on: the messages are past trace_days
        async with Hub(cfg, clock=later) as hub:
            archive = tmp_path / "archive"
            await wait_until(
                lambda: _counts(hub, "messages", 0), timeout=30, what="messages pruned"
            )
            audit_dir = archive / "audit"
            await wait_until(
                lambda: any(audit_dir.glob("audit-*.jsonl")), timeout=30, what="audit archived"
            )
            [pruned] = list(archive.glob("pruned-*.ndjson"))
            lines = [orjson.loads(x) for x in pruned.read_bytes().splitlines()]
            assert sorted(x["message_id"] for x in lines) == sorted(res.ids)
            [today] = list(audit_dir.glob("audit-*.jsonl"))
            assert today.name == f"audit-{datetime.now(UTC).date().isoformat()}.jsonl"
            after = await hub.guard.audit.verify()
            assert after.ok and after.entries >= before.entries  # nothing deleted
            res_cli = CliRunner().invoke(app, ["audit", "verify", "--export", str(today)])
            assert res_cli.exit_code == 0, res_cli.output
            exported = [orjson.loads(x) for x in today.read_bytes().splitlines()]
            assert sum(e["type"] == "entry" for e in exported) == after.entries
    finally:
        await sink.stop()


async def _delivered(hub: Hub, n: int) -> bool:
    return (await hub.store.counts())["delivered"] == n


async def _counts(hub: Hub, key: str, n: int) -> bool:
    return (await hub.store.counts())[key] == n
