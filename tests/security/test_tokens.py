"""Bearer tokens on a real SQLite security database, the Authenticator, and the CLI."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.errors import AuthError, BadParameter, ConfigError, NotFound
from security.audit import AuditLog
from security.roles import Role
from security.secdb import SQLiteSecurityDB
from security.tokens import Authenticator, TokenService, TokenSettings, bearer_token, parse_expiry
from tests.conftest import Clock

PEPPER = b"a-server-pepper-of-32-bytes-long"


async def _service(tmp_path: Path, clock: Clock, pepper: bytes | None = PEPPER):
    db = SQLiteSecurityDB(tmp_path / "security.db")
    await db.open()
    audit = AuditLog(db, clock=clock)
    return db, audit, TokenService(db, pepper=pepper, audit=audit, clock=clock)


async def test_a_token_authenticates_to_its_principal(tmp_path: Path, clock: Clock) -> None:
    db, audit, svc = await _service(tmp_path, clock)
    issued = await svc.create(name="市场监管局 系统", roles=["system"], system="dept-a",
                              department="scjgj")  # fmt: skip
    auth = Authenticator(svc)
    p = await auth.authenticate(f"Bearer {issued.token}")
    rows = await svc.list()
    report = await audit.verify()
    entries = await db.audit_page(0, 100, 100)
    await db.close()
    assert (p.id, p.roles, p.system, p.department, p.via) == (
        issued.id, frozenset({Role.SYSTEM}), "dept-a", "scjgj", "token",
    )  # fmt: skip
    assert rows[0].last_used_at == clock.now
    assert [e.action for e in entries] == ["token.created", "token.used"]
    assert entries[1].outcome == "ok" and entries[1].actor_id == issued.id
    assert report.ok
    assert issued.token not in repr(issued)


async def test_only_a_hash_of_the_token_is_stored(tmp_path: Path, clock: Clock) -> None:
    db, _, svc = await _service(tmp_path, clock)
    issued = await svc.create(name="ops", roles=["ops"])
    await db.close()
    raw = (tmp_path / "security.db").read_bytes()
    wal = tmp_path / "security.db-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    secret = issued.token.split("_", 2)[2]
    assert secret.encode() not in raw
    conn = sqlite3.connect(tmp_path / "security.db")
    (stored,) = conn.execute("SELECT token_hash FROM tokens").fetchone()
    conn.close()
    assert stored.startswith("hmac-sha256:")
    assert stored != "sha256:" + hashlib.sha256(issued.token.encode()).hexdigest()


@pytest.mark.parametrize(
    "header",
    [None, "", "Basic abc", "Bearer ", "Bearer jgh_nothex_zzzz", "Bearer a.b.c"],
)
async def test_missing_or_malformed_headers_are_refused(
    tmp_path: Path, clock: Clock, header: str | None
) -> None:
    db, _, svc = await _service(tmp_path, clock)
    with pytest.raises(AuthError) as err:
        await Authenticator(svc).authenticate(header)
    await db.close()
    assert err.value.code == "E_AUTH" and err.value.status == 401
    assert err.value.field == "Authorization"


async def test_unknown_revoked_and_expired_tokens_are_refused_and_audited(
    tmp_path: Path, clock: Clock
) -> None:
    db, audit, svc = await _service(tmp_path, clock)
    auth = Authenticator(svc)
    good = await svc.create(name="r", roles=["requester"], department="dept-a")
    short = await svc.create(name="s", roles=["requester"], department="dept-a",
                             expires_at=clock.now + 60)  # fmt: skip
    await auth.authenticate(f"Bearer {short.token}")
    forged = good.token[:-4] + ("AAAA" if not good.token.endswith("AAAA") else "BBBB")
    unknown = "jgh_000000000000_" + "x" * 43
    await svc.revoke(good.id)
    clock.advance(61)
    reasons = {}
    for name, token in {"forged": forged, "unknown": unknown, "revoked": good.token,
                        "expired": short.token}.items():  # fmt: skip
        with pytest.raises(AuthError) as err:
            await auth.authenticate(f"bearer {token}")
        assert err.value.code == "E_AUTH"
        reasons[name] = err.value.message
    denied = [e for e in await db.audit_page(0, 100, 100) if e.outcome == "denied"]
    report = await audit.verify()
    await db.close()
    assert "unknown token" in reasons["forged"] and "unknown token" in reasons["unknown"]
    assert "revoked" in reasons["revoked"] and "expired" in reasons["expired"]
    assert [e.object for e in denied] == [good.id, "000000000000", good.id, short.id]
    assert report.ok


async def test_revoking_twice_or_an_unknown_id_is_not_found(tmp_path: Path, clock: Clock) -> None:
    db, _, svc = await _service(tmp_path, clock)
    t = await svc.create(name="a", roles=["admin"])
    await svc.revoke(t.id)
    with pytest.raises(NotFound) as err:
        await svc.revoke(t.id)
    await db.close()
    assert err.value.code == "E_NOT_FOUND" and err.value.field == "id"


async def test_tokens_hashed_without_pepper_keep_working_after_one_is_set(
    tmp_path: Path, clock: Clock
) -> None:
    db, _, plain = await _service(tmp_path, clock, pepper=None)
    old = await plain.create(name="old", roles=["ops"])
    peppered = TokenService(db, pepper=PEPPER, clock=clock)
    new = await peppered.create(name="new", roles=["ops"])
    assert (await peppered.authenticate_token(old.token)).id == old.id
    assert (await peppered.authenticate_token(new.token)).id == new.id
    with pytest.raises(AuthError):  # an HMAC token cannot verify once the pepper is gone
        await plain.authenticate_token(new.token)
    await db.close()


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"roles": ["system"]}, "system"),
        ({"roles": ["ops"], "system": "dept-a"}, "system"),
        ({"roles": ["reviewer"]}, "department"),
        ({"roles": []}, "role"),
        ({"roles": ["root"]}, "roles"),
        ({"roles": ["ops"], "expires_at": 1.0}, "expires"),
    ],
)
async def test_invalid_tokens_are_not_created(
    tmp_path: Path, clock: Clock, kw: dict[str, object], field: str
) -> None:
    db, _, svc = await _service(tmp_path, clock)
    with pytest.raises(BadParameter) as err:
        await svc.create(name="x", **kw)  # type: ignore[arg-type]
    await db.close()
    assert err.value.code == "E_PARAM" and err.value.field == field


async def test_use_interval_limits_writes_per_token(tmp_path: Path, clock: Clock) -> None:
    db, _, svc = await _service(tmp_path, clock)
    svc.use_interval = 60
    t = await svc.create(name="sys", roles=["system"], system="s1")
    for _ in range(5):
        await svc.authenticate_token(t.token)
        clock.advance(1)
    clock.advance(60)
    await svc.authenticate_token(t.token)
    used = [e for e in await db.audit_page(0, 100, 100) if e.action == "token.used"]
    await db.close()
    assert len(used) == 2


def test_expiry_and_header_parsing() -> None:
    assert parse_expiry("90d", 1000.0) == 1000.0 + 90 * 86400
    assert parse_expiry("12h", 0.0) == 43200 and parse_expiry(None, 0.0) is None
    assert parse_expiry("2026-12-31", 0.0) == 1798761600.0  # 2027-01-01T00:00Z
    with pytest.raises(BadParameter):
        parse_expiry("soon", 0.0)
    assert bearer_token("Bearer  abc ") == "abc"


def test_a_short_pepper_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PEPPER", "short")
    with pytest.raises(ConfigError) as err:
        TokenSettings(pepper_env="TEST_PEPPER").pepper()
    assert err.value.code == "E_CONFIG"
    monkeypatch.setenv("TEST_PEPPER", PEPPER.decode())
    assert TokenSettings(pepper_env="TEST_PEPPER").pepper() == PEPPER


# --------------------------------------------------------------------------- CLI


def test_tokens_cli_create_list_revoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JGHUB_TOKEN_PEPPER", PEPPER.decode())
    runner = CliRunner()
    dbp = str(tmp_path / "security.db")
    args = ["--name", "卫健委审核", "--department", "wjw", "--role", "reviewer", "--expires", "30d"]
    res = runner.invoke(app, ["tokens", "create", *args, "--db", dbp])
    assert res.exit_code == 0, res.output
    token_id = res.stdout.split("token id: ")[1].split()[0]
    token = res.stdout.split("token:    ")[1].split()[0]
    assert token.startswith(f"jgh_{token_id}_")

    listed = runner.invoke(app, ["tokens", "list", "--db", dbp])
    assert listed.exit_code == 0 and token_id in listed.stdout and "active" in listed.stdout
    assert token.split("_", 2)[2] not in listed.stdout and "hmac" not in listed.stdout

    bad = runner.invoke(app, ["tokens", "create", "--name", "x", "--role", "system",
                              "--db", dbp])  # fmt: skip
    assert bad.exit_code == 1 and "E_PARAM" in bad.output and "system" in bad.output

    assert runner.invoke(app, ["tokens", "revoke", token_id, "--db", dbp]).exit_code == 0
    again = runner.invoke(app, ["tokens", "revoke", token_id, "--db", dbp])
    assert again.exit_code == 1 and "E_NOT_FOUND" in again.output
    listed = runner.invoke(app, ["tokens", "list", "--db", dbp, "--json"])
    assert '"revoked": "' in listed.stdout and '"revoked": "-"' not in listed.stdout

    verified = runner.invoke(app, ["audit", "verify", "--db", dbp])
    assert verified.exit_code == 0 and "2 entries" in verified.stdout  # created, revoked


def test_tokens_cli_on_a_missing_database(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["tokens", "list", "--db", str(tmp_path / "none.db")])
    assert res.exit_code == 1 and "E_NOT_FOUND" in res.output
    assert not (tmp_path / "none.db").exists()
