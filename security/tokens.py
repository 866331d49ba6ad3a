"""Bearer tokens for people and systems, and :class:`Authenticator` — the one call an aiohttp
handler makes: ``principal = await auth.authenticate(request.headers.get("Authorization"))``.

A token looks like ``jgh_<id>_<secret>``: ``id`` (12 hex digits) is public and names the token
in lists and the audit log; ``secret`` is 256 bits from :mod:`secrets`. The token is shown once,
when created; the database keeps only ``hmac-sha256:<hex>`` (HMAC with a server *pepper* read
from an environment variable, so a stolen database alone cannot be used to test guesses) or
``sha256:<hex>`` when no pepper is configured. The scheme is stored with the hash, so turning
the pepper on later keeps older tokens working (re-issue them to move them to HMAC).

Authentication failures are :class:`~hub.errors.AuthError` (E_AUTH, 401) with
``field="Authorization"``; an unknown, wrongly hashed, revoked or expired token is audited as
``token.used`` with outcome ``denied``. Successful use is audited as ``token.used`` too, at most
once per token every ``use_interval`` seconds (0: every use), which is also how often
``last_used_at`` is written.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from hub.errors import AuthError, BadParameter, ConfigError, NotFound
from security.audit import Actor, AuditLog
from security.roles import Principal, Role, parse_roles
from security.secdb import SecurityDB, TokenRow

__all__ = [
    "Authenticator",
    "BearerVerifier",
    "IssuedToken",
    "TokenService",
    "TokenSettings",
    "bearer_token",
    "parse_expiry",
]

_TOKEN = re.compile(r"^jgh_([0-9a-f]{12})_([A-Za-z0-9_-]{32,})$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class TokenSettings(BaseModel):
    """``security.tokens`` in hub.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pepper_env: str | None = Field(
        "JGHUB_TOKEN_PEPPER",
        description="environment variable holding the HMAC pepper (unset: plain SHA-256)",
    )
    use_interval: float = Field(
        0.0, ge=0, description="seconds between recorded uses of one token (0: every use)"
    )

    def pepper(self) -> bytes | None:
        """The pepper from the environment, or None."""
        if self.pepper_env is None:
            return None
        value = os.environ.get(self.pepper_env)
        if value is not None and len(value) < 16:
            raise ConfigError(
                f"{self.pepper_env} must hold at least 16 characters", field="pepper_env"
            )
        return value.encode() if value else None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly created token: ``token`` is the secret, shown this once and never stored."""

    id: str
    token: str
    row: TokenRow

    def __repr__(self) -> str:  # never print the secret by accident
        return f"IssuedToken(id={self.id!r}, token='jgh_{self.id}_…')"


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (E_AUTH when absent)."""
    if not header or not header.strip():
        raise AuthError("no Authorization header (Bearer token)", field="Authorization")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the Authorization header is not 'Bearer <token>'", field="Authorization")
    return token.strip()


def parse_expiry(text: str | None, now: float) -> float | None:
    """``90d`` / ``12h`` / ``30m`` from now, or a date ``2026-12-31`` (end of that UTC day)."""
    if text is None or text == "":
        return None
    m = re.fullmatch(r"(\d+)([dhm])", text.strip())
    if m:
        unit = {"d": 86400, "h": 3600, "m": 60}[m.group(2)]
        return now + int(m.group(1)) * unit
    try:
        d = date.fromisoformat(text.strip())
    except ValueError:
        raise BadParameter(
            f"expiry {text!r} is neither a duration (90d, 12h, 30m) nor a date (2026-12-31)",
            field="expires",
        ) from None
    end = datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(days=1)
    return end.timestamp()


def _hash(token: str, pepper: bytes | None) -> str:
    if pepper is None:
        return "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    return "hmac-sha256:" + hmac.new(pepper, token.encode(), hashlib.sha256).hexdigest()


def _hash_like(stored: str, token: str, pepper: bytes | None) -> str | None:
    scheme = stored.partition(":")[0]
    if scheme == "sha256":
        return _hash(token, None)
    if scheme == "hmac-sha256" and pepper is not None:
        return _hash(token, pepper)
    return None  # an HMAC token while the pepper is not configured cannot verify


class TokenService:
    """Create, list, revoke and check bearer tokens stored in a :class:`SecurityDB`."""

    def __init__(
        self,
        db: SecurityDB,
        *,
        pepper: bytes | None = None,
        audit: AuditLog | None = None,
        use_interval: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self._pepper = pepper
        self.audit = audit
        self.use_interval = use_interval
        self.clock = clock
        self._recorded: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"TokenService({self.db!r}, pepper={'set' if self._pepper else 'none'})"

    async def create(
        self,
        *,
        name: str,
        roles: Iterable[str | Role],
        department: str | None = None,
        system: str | None = None,
        grants: Iterable[str] = (),
        expires_at: float | None = None,
        actor: Actor | None = None,
    ) -> IssuedToken:
        """Issue a token. ``system`` is required with role ``system`` (and only then);
        ``department`` is required for requesters and reviewers (their tenant)."""
        rs = parse_roles([str(r) for r in roles])
        if not rs:
            raise BadParameter("a token needs at least one role", field="role")
        if not name.strip():
            raise BadParameter("a token needs a name", field="name")
        if (Role.SYSTEM in rs) != (system is not None):
            raise BadParameter(
                "--system is required with role system and only with it", field="system"
            )
        if system is not None and not _NAME.match(system):
            raise BadParameter(f"invalid system name {system!r}", field="system")
        if rs & {Role.REQUESTER, Role.REVIEWER} and not department:
            raise BadParameter("requesters and reviewers need a department", field="department")
        now = self.clock()
        if expires_at is not None and expires_at <= now:
            raise BadParameter("the expiry is in the past", field="expires")
        token_id = secrets.token_hex(6)
        token = f"jgh_{token_id}_{secrets.token_urlsafe(32)}"
        row = TokenRow(
            id=token_id,
            token_hash=_hash(token, self._pepper),
            name=name.strip(),
            department=department,
            roles=tuple(sorted(r.value for r in rs)),
            system=system,
            grants=tuple(sorted(set(grants))),
            created_at=now,
            expires_at=expires_at,
            revoked_at=None,
            last_used_at=None,
        )
        await self.db.token_insert(row)
        if self.audit is not None:
            await self.audit.append(
                "token.created",
                actor=actor or Actor("cli"),
                object=token_id,
                details={
                    "name": row.name,
                    "department": department,
                    "roles": list(row.roles),
                    "system": system,
                    "grants": list(row.grants),
                    "expires_at": expires_at,
                },
            )
        return IssuedToken(token_id, token, row)

    async def list(self) -> list[TokenRow]:
        """Every token (hashes only), oldest first."""
        return await self.db.token_list()

    async def revoke(self, token_id: str, *, actor: Actor | None = None) -> None:
        """Revoke a token at once (E_NOT_FOUND when unknown or already revoked)."""
        if not await self.db.token_revoke(token_id, self.clock()):
            raise NotFound(f"no active token {token_id!r}", field="id")
        if self.audit is not None:
            await self.audit.append("token.revoked", actor=actor or Actor("cli"), object=token_id)

    async def _deny(self, token_id: str | None, reason: str) -> AuthError:
        if self.audit is not None:
            await self.audit.append(
                "token.used",
                actor=Actor(f"token:{token_id}" if token_id else "anonymous"),
                object=token_id,
                outcome="denied",
                details={"reason": reason},
            )
        return AuthError(f"bearer token refused: {reason}", field="Authorization")

    async def authenticate_token(self, token: str) -> Principal:
        """The principal of a ``jgh_…`` token, or AuthError (E_AUTH)."""
        m = _TOKEN.match(token)
        if m is None:
            raise await self._deny(None, "not a jghub token")
        token_id = m.group(1)
        row = await self.db.token_get(token_id)
        expected = _hash_like(row.token_hash, token, self._pepper) if row else None
        if row is None or expected is None or not hmac.compare_digest(expected, row.token_hash):
            raise await self._deny(token_id, "unknown token")
        now = self.clock()
        if row.revoked_at is not None:
            raise await self._deny(token_id, "the token was revoked")
        if row.expires_at is not None and now >= row.expires_at:
            raise await self._deny(token_id, "the token has expired")
        principal = Principal(
            id=row.id,
            name=row.name,
            roles=parse_roles(row.roles),
            department=row.department,
            system=row.system,
            grants=frozenset(row.grants),
            via="token",
        )
        last = self._recorded.get(token_id)
        if last is None or now - last >= self.use_interval:
            self._recorded[token_id] = now
            await self.db.token_touch(token_id, now)
            if self.audit is not None:
                await self.audit.append("token.used", actor=Actor.of(principal), object=token_id)
        return principal


class BearerVerifier(Protocol):
    """Turns a bearer token into a principal (the OIDC/JWT verifier implements this)."""

    async def authenticate_token(self, token: str) -> Principal: ...


class Authenticator:
    """``Authorization`` header → :class:`Principal`: a ``jgh_…`` token is looked up in the
    token store; anything shaped like a JWT goes to the configured identity provider (统一身份
    认证) when there is one. Every refusal is AuthError (E_AUTH, 401)."""

    def __init__(self, tokens: TokenService, jwt: BearerVerifier | None = None) -> None:
        self.tokens = tokens
        self.jwt = jwt

    async def authenticate(self, authorization_header: str | None) -> Principal:
        """Authenticate one request; call ``security.roles.authorize`` next."""
        token = bearer_token(authorization_header)
        if token.startswith("jgh_"):
            return await self.tokens.authenticate_token(token)
        if self.jwt is not None and token.count(".") == 2:
            return await self.jwt.authenticate_token(token)
        raise AuthError(
            "the bearer token is neither a jghub token nor a JWT", field="Authorization"
        )
