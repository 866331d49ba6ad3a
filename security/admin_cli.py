"""``jghub tokens …`` and ``jghub audit …``: typer sub-apps mounted by ``hub.cli``.

Both work on the security database file directly (``--db``, default ``data/security.db`` or
``$JGHUB_SECURITY_DB``), so they run on an operator's machine or an inspector's copy without a
running hub. Exit codes follow ``hub.cli``: 0 success, 1 the command ran and found a problem
(a tampered log, an unknown token), 2 usage error.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from hub.errors import BadParameter, HubError, NotFound
from security.audit import Actor, AuditLog, CheckpointVerifier, verify_export
from security.secdb import SQLiteSecurityDB
from security.tokens import TokenService, TokenSettings, parse_expiry

__all__ = ["audit_app", "mount", "tokens_app"]

T = TypeVar("T")

tokens_app = typer.Typer(
    help="Bearer tokens for people and systems: create (shown once), list, revoke.",
    no_args_is_help=True,
)
audit_app = typer.Typer(
    help="The tamper-evident audit log (全程留痕): verify, export for inspectors.",
    no_args_is_help=True,
)


def mount(app: typer.Typer) -> None:
    """Add ``tokens`` and ``audit`` to the ``jghub`` command line."""
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(audit_app, name="audit")


DbOpt = Annotated[
    Path,
    typer.Option("--db", help="security database file", envvar="JGHUB_SECURITY_DB"),
]
PepperOpt = Annotated[
    str,
    typer.Option(help="environment variable holding the token pepper (HMAC key)"),
]


def _fail(message: str | HubError) -> None:
    typer.echo(str(message), err=True)
    raise typer.Exit(1)


def _run(db_path: Path, fn: Callable[[SQLiteSecurityDB], Awaitable[T]], *, create: bool) -> T:
    if not create and not db_path.exists():
        _fail(NotFound(f"no security database at {db_path}", field="db"))

    async def run() -> T:
        db = SQLiteSecurityDB(db_path)
        await db.open()
        try:
            return await fn(db)
        finally:
            await db.close()

    try:
        return asyncio.run(run())
    except HubError as err:
        _fail(err)
        raise  # unreachable


def _cli_actor() -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(f"cli:{user}", None, "admin")


def _service(db: SQLiteSecurityDB, pepper_env: str) -> TokenService:
    settings = TokenSettings(pepper_env=pepper_env or None)
    return TokenService(db, pepper=settings.pepper(), audit=AuditLog(db))


def _ts(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# --------------------------------------------------------------------------- tokens


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="who or what the token is for")],
    role: Annotated[
        list[str], typer.Option(help="system, requester, reviewer, ops, admin (repeatable)")
    ],
    department: Annotated[str | None, typer.Option(help="department (tenant) it acts for")] = None,
    system: Annotated[str | None, typer.Option(help="system name (role system only)")] = None,
    grant: Annotated[
        list[str] | None, typer.Option(help="extra granted action, e.g. payload.read")
    ] = None,
    expires: Annotated[str | None, typer.Option(help="90d, 12h, 30m or a date 2026-12-31")] = None,
    db: DbOpt = Path("data/security.db"),
    pepper_env: PepperOpt = "JGHUB_TOKEN_PEPPER",
) -> None:
    """Create a token and print it once (only its hash is kept)."""

    async def run(sdb: SQLiteSecurityDB) -> tuple[str, str]:
        svc = _service(sdb, pepper_env)
        issued = await svc.create(
            name=name,
            roles=role,
            department=department,
            system=system,
            grants=grant or (),
            expires_at=parse_expiry(expires, time.time()),
            actor=_cli_actor(),
        )
        return issued.id, issued.token

    token_id, token = _run(db, run, create=True)
    typer.echo(f"token id: {token_id}")
    typer.echo(f"token:    {token}")
    typer.echo("store it now: it is not kept and cannot be shown again", err=True)


@tokens_app.command("list")
def tokens_list(
    db: DbOpt = Path("data/security.db"),
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """List tokens (never their secrets or hashes)."""
    rows = _run(db, lambda s: s.token_list(), create=False)
    for r in rows:
        doc = {
            "id": r.id,
            "name": r.name,
            "department": r.department,
            "roles": list(r.roles),
            "system": r.system,
            "grants": list(r.grants),
            "created": _ts(r.created_at),
            "expires": _ts(r.expires_at),
            "revoked": _ts(r.revoked_at),
            "last_used": _ts(r.last_used_at),
        }
        if as_json:
            typer.echo(json.dumps(doc, ensure_ascii=False))
        else:
            state = "revoked" if r.revoked_at else "active"
            typer.echo(
                f"{r.id}  {state:7}  {r.name}  dept={r.department or '-'}  "
                f"roles={','.join(r.roles)}  system={r.system or '-'}  "
                f"expires={doc['expires']}  last_used={doc['last_used']}"
            )
    if not rows and not as_json:
        typer.echo("no tokens")


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="token id (from tokens list)")],
    db: DbOpt = Path("data/security.db"),
    pepper_env: PepperOpt = "JGHUB_TOKEN_PEPPER",
) -> None:
    """Revoke a token at once."""
    _run(db, lambda s: _service(s, pepper_env).revoke(token_id, actor=_cli_actor()), create=False)
    typer.echo(f"revoked {token_id}")


# --------------------------------------------------------------------------- audit


def _public_key_verifier(specs: list[str]) -> CheckpointVerifier | None:
    """``ID=FILE`` pairs of PEM public keys (Ed25519, or ECDSA P-256 with SHA-256)."""
    if not specs:
        return None
    keys: dict[str, object] = {}
    for spec in specs:
        key_id, sep, file = spec.partition("=")
        if not sep or not key_id or not file:
            raise BadParameter(f"--public-key takes ID=FILE, got {spec!r}", field="public-key")
        try:
            keys[key_id] = load_pem_public_key(Path(file).read_bytes())
        except (OSError, ValueError) as exc:
            raise BadParameter(
                f"{file}: not a PEM public key ({exc})", field="public-key"
            ) from None

    def verify(key_id: str, data: bytes, signature: bytes) -> None:
        key = keys.get(key_id)
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif key is None:
            raise InvalidSignature(f"no public key given for {key_id!r}")
        else:
            raise InvalidSignature(f"key {key_id!r}: only Ed25519 and ECDSA keys are supported")

    return verify


PublicKeyOpt = Annotated[
    list[str] | None,
    typer.Option("--public-key", help="ID=FILE: the hub's PEM public key that signed checkpoints"),
]


@audit_app.command("verify")
def audit_verify(
    db: DbOpt = Path("data/security.db"),
    export_file: Annotated[
        Path | None, typer.Option("--export", help="verify an export file instead of --db")
    ] = None,
    public_key: PublicKeyOpt = None,
    require_signatures: Annotated[
        bool, typer.Option(help="fail when checkpoint signatures cannot be checked")
    ] = False,
) -> None:
    """Verify the hash chain and signed checkpoints; exit 1 naming the first bad entry."""
    try:
        verifier = _public_key_verifier(public_key or [])
    except HubError as err:
        _fail(err)
        raise
    if export_file is not None:
        try:
            with export_file.open("rb") as f:
                report = verify_export(f, verifier)
        except (OSError, HubError) as err:
            _fail(str(err))
            raise
    else:
        report = _run(db, lambda s: AuditLog(s, verify=verifier).verify(), create=False)
    if not report.ok:
        for seq, text in report.problems[:20]:
            typer.echo(f"entry {seq}: {text}", err=True)
        _fail(str(report))
    typer.echo(str(report))
    if require_signatures and not report.signatures_checked:
        _fail("checkpoint signatures were not checked (give --public-key)")


@audit_app.command("export")
def audit_export(
    from_: Annotated[str, typer.Option("--from", help="first day (UTC), e.g. 2026-01-01")],
    to: Annotated[str, typer.Option("--to", help="last day (UTC), inclusive")],
    db: DbOpt = Path("data/security.db"),
    out: Annotated[Path | None, typer.Option("--out", help="file (default: stdout)")] = None,
) -> None:
    """Export entries and checkpoints of a period as JSON Lines, re-verifiable offline."""
    try:
        start, end = date.fromisoformat(from_), date.fromisoformat(to)
    except ValueError as exc:
        _fail(BadParameter(f"dates are YYYY-MM-DD: {exc}", field="from/to"))
        raise

    async def run(s: SQLiteSecurityDB) -> int:
        n = 0
        fh = sys.stdout if out is None else out.open("w", encoding="utf-8")
        try:
            async for line in AuditLog(s).export(start, end):
                fh.write(line + "\n")
                n += 1
        finally:
            if out is not None:
                fh.close()
        return n

    n = _run(db, run, create=False)
    if out is not None:
        typer.echo(f"wrote {n - 1} line(s) after the header to {out}", err=True)
