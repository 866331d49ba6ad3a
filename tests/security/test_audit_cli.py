"""``jghub audit verify`` and ``jghub audit export`` on real files, in-process (CliRunner)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner

from hub.cli import app
from security.audit import Actor, AuditLog
from security.secdb import SQLiteSecurityDB
from tests.conftest import Clock


class _Key:
    key_id, algorithm = "hub-2026", "ed25519"

    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


def _make_log(path: Path, key: _Key, n: int = 7) -> None:
    async def run() -> None:
        db = SQLiteSecurityDB(path)
        await db.open()
        log = AuditLog(db, checkpoint_every=3, signer=key, clock=Clock())
        for i in range(n):
            await log.append("grant.issued", actor=Actor("tok1", "dept-a", "reviewer"),
                             object=f"grant-{i}")  # fmt: skip
        await db.close()

    asyncio.run(run())


def test_verify_and_export_then_verify_the_export(tmp_path: Path) -> None:
    key = _Key()
    dbp = tmp_path / "security.db"
    _make_log(dbp, key)
    pub = tmp_path / "hub.pub.pem"
    pub.write_bytes(
        key.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", "--db", str(dbp), "--public-key",
                             f"hub-2026={pub}", "--require-signatures"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "7 entries" in ok.stdout and "2/2 checkpoint signature(s) verified" in ok.stdout

    unsigned = runner.invoke(app, ["audit", "verify", "--db", str(dbp), "--require-signatures"])
    assert unsigned.exit_code == 1 and "not checked" in unsigned.output

    out = tmp_path / "export.jsonl"
    exp = runner.invoke(app, ["audit", "export", "--db", str(dbp), "--from", "2027-01-01",
                              "--to", "2027-12-31", "--out", str(out)])  # fmt: skip
    assert exp.exit_code == 0, exp.output
    lines = out.read_text().splitlines()
    assert orjson.loads(lines[0])["last_seq"] == 7 and len(lines) == 1 + 7 + 2
    again = runner.invoke(app, ["audit", "verify", "--export", str(out), "--public-key",
                                f"hub-2026={pub}"])  # fmt: skip
    assert again.exit_code == 0 and "2/2" in again.stdout

    to_stdout = runner.invoke(app, ["audit", "export", "--db", str(dbp), "--from",
                                    "2027-01-15", "--to", "2027-01-15"])  # fmt: skip
    assert to_stdout.exit_code == 0 and to_stdout.stdout.count('"type":"entry"') == 7


def test_verify_exits_1_naming_the_first_bad_entry(tmp_path: Path) -> None:
    dbp = tmp_path / "security.db"
    _make_log(dbp, _Key())
    conn = sqlite3.connect(dbp, isolation_level=None)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET object = 'grant-x' WHERE seq = 5")
    conn.close()
    res = CliRunner().invoke(app, ["audit", "verify", "--db", str(dbp)])
    assert res.exit_code == 1
    assert "BAD at entry 5" in res.output and "entry 5 was changed" in res.output


def test_verify_with_a_wrong_public_key_fails(tmp_path: Path) -> None:
    dbp = tmp_path / "security.db"
    _make_log(dbp, _Key())
    other = tmp_path / "other.pem"
    other.write_bytes(
        _Key().private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    res = CliRunner().invoke(app, ["audit", "verify", "--db", str(dbp), "--public-key",
                                   f"hub-2026={other}"])  # fmt: skip
    assert res.exit_code == 1 and "BAD at entry 3" in res.output and "does not verify" in res.output


def test_bad_arguments(tmp_path: Path) -> None:
    runner = CliRunner()
    dbp = tmp_path / "security.db"
    _make_log(dbp, _Key(), n=1)
    res = runner.invoke(app, ["audit", "export", "--db", str(dbp), "--from", "2027-13-01",
                              "--to", "2027-12-31"])  # fmt: skip
    assert res.exit_code == 1 and "E_PARAM" in res.output
    res = runner.invoke(app, ["audit", "export", "--db", str(dbp), "--from", "2027-12-01",
                              "--to", "2027-01-31"])  # fmt: skip
    assert res.exit_code == 1 and "before" in res.output
    res = runner.invoke(app, ["audit", "verify", "--db", str(dbp), "--public-key", "nokey"])
    assert res.exit_code == 1 and "ID=FILE" in res.output
    res = runner.invoke(app, ["audit", "verify", "--db", str(tmp_path / "missing.db")])
    assert res.exit_code == 1 and "E_NOT_FOUND" in res.output
