"""Unified identity (统一身份认证): JWT bearer tokens from the provincial identity provider.

:class:`OidcVerifier` checks a JWT's signature against the provider's JWKS (from a URL, fetched
with aiohttp and cached, or from a file), its issuer, audience and expiry (PyJWT), and maps its
claims to a :class:`~security.roles.Principal` with the configured claim names and role
mapping. An unknown ``kid`` triggers one refresh of the JWKS (at most every
``min_refresh_seconds``, so a flood of made-up key ids cannot hammer the provider); a refresh
that fails keeps the cached keys.

Every refusal is :class:`~hub.errors.AuthError` (E_AUTH, 401) naming what failed (``exp``,
``iss``, ``aud``, ``kid``, ``signature``, or the missing claim). A token's first successful use
is audited as ``login``; refusals as ``login`` with outcome ``denied``.

Config (``security.oidc`` in hub.yaml)::

    oidc:
      issuer: https://id.example.gov.cn/realms/province
      audience: jghub
      jwks_url: https://id.example.gov.cn/realms/province/protocol/openid-connect/certs
      algorithms: [RS256, ES256]
      department_claim: dept_code          # dotted paths allowed: org.code
      roles_claim: realm_access.roles
      role_map: {jghub-reviewer: reviewer, jghub-requester: requester, jghub-ops: ops}
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.errors import AuthError
from security.audit import Actor, AuditLog
from security.roles import Principal, Role

__all__ = ["OidcSettings", "OidcVerifier"]


class OidcSettings(BaseModel):
    """``security.oidc`` in hub.yaml: the identity provider and how its claims map."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(description="expected 'iss'")
    audience: str | list[str] = Field(description="expected 'aud' (one of)")
    jwks_url: str | None = Field(None, description="the provider's JWKS endpoint")
    jwks_file: Path | None = Field(None, description="or a JWKS file")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"], min_length=1)
    leeway: float = Field(30.0, ge=0, le=300, description="clock skew allowed (seconds)")
    cache_seconds: float = Field(3600.0, gt=0, description="refetch the JWKS after this")
    min_refresh_seconds: float = Field(
        30.0, ge=0, description="least time between refetches caused by unknown key ids"
    )
    timeout: float = Field(5.0, gt=0, description="JWKS fetch timeout (seconds)")
    id_claim: str = "sub"
    name_claim: str = "name"
    department_claim: str = Field("department", description="claim holding the department")
    roles_claim: str = Field("roles", description="claim holding roles (list or 'a b c')")
    system_claim: str | None = Field(None, description="claim naming the system (role system)")
    role_map: dict[str, Role] = Field(
        default_factory=dict,
        description="provider role name -> jghub role; empty: jghub role names as they are",
    )

    @model_validator(mode="after")
    def _one_source(self) -> OidcSettings:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("give exactly one of jwks_url and jwks_file")
        return self


def _claim(claims: dict[str, Any], path: str) -> Any:
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


class OidcVerifier:
    """JWT → :class:`Principal` for one identity provider (implements ``BearerVerifier``).

    Give it the aiohttp ``ClientSession`` of the app (one per upstream) or let it make its own;
    :meth:`close` closes only a session it made.
    """

    def __init__(
        self,
        settings: OidcSettings,
        *,
        session: aiohttp.ClientSession | None = None,
        audit: AuditLog | None = None,
        base_dir: Path = Path("."),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.audit = audit
        self._session = session
        self._own_session = session is None
        self._file = None
        if settings.jwks_file is not None:
            f = settings.jwks_file
            self._file = f if f.is_absolute() else base_dir / f
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.fetches = 0  # how many times the JWKS was loaded (for metrics)

    async def close(self) -> None:
        """Close the HTTP session if this verifier opened it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ keys

    async def _load(self) -> dict[str, Any]:
        if self._file is not None:
            text = await asyncio.to_thread(self._file.read_bytes)
            import orjson

            doc: dict[str, Any] = orjson.loads(text)
            return doc
        if self._session is None:
            self._session = aiohttp.ClientSession()
        assert self.settings.jwks_url is not None
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        async with self._session.get(self.settings.jwks_url, timeout=timeout) as resp:
            resp.raise_for_status()
            got: dict[str, Any] = await resp.json(content_type=None)
            return got

    async def _refresh(self) -> None:
        try:
            doc = await self._load()
            keyset = jwt.PyJWKSet.from_dict(doc)
        except (OSError, ValueError, aiohttp.ClientError, TimeoutError, jwt.PyJWTError):
            if not self._keys:
                raise AuthError(
                    "the identity provider's keys (JWKS) cannot be loaded", field="kid"
                ) from None
            return  # keep serving the cached keys; try again on the next miss
        finally:
            self._fetched_at = self._clock()
            self.fetches += 1
        self._keys = {k.key_id: k for k in keyset.keys if k.key_id}
        if len(keyset.keys) == 1 and not keyset.keys[0].key_id:
            self._keys[""] = keyset.keys[0]

    async def _key(self, kid: str) -> jwt.PyJWK:
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self.settings.cache_seconds
        if kid in self._keys and not stale:
            return self._keys[kid]
        async with self._lock:
            now = self._clock()
            since = None if self._fetched_at is None else now - self._fetched_at
            due = since is None or since >= self.settings.cache_seconds
            may_retry = since is None or since >= self.settings.min_refresh_seconds
            if due or (kid not in self._keys and may_retry):
                await self._refresh()
        key = self._keys.get(kid)
        if key is None:
            raise AuthError(f"the JWT's key id {kid!r} is not one of the provider's", field="kid")
        return key

    # ------------------------------------------------------------------ tokens

    async def _deny(self, reason: str, field: str) -> AuthError:
        if self.audit is not None:
            await self.audit.append(
                "login",
                actor=Actor("oidc:unknown"),
                outcome="denied",
                details={"reason": reason, "field": field},
            )
        return AuthError(f"JWT refused: {reason}", field=field)

    async def authenticate_token(self, token: str) -> Principal:
        """Verify a JWT and map it to a principal, or raise AuthError (E_AUTH)."""
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise await self._deny("not a JWT", "Authorization") from None
        alg = header.get("alg")
        if alg not in s.algorithms:
            raise await self._deny(f"algorithm {alg!r} is not accepted", "alg")
        try:
            key = await self._key(str(header.get("kid") or ""))
        except AuthError as err:
            raise await self._deny(err.message, "kid") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=s.algorithms,
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway,
                options={"require": ["exp", "iss", "aud", s.id_claim]},
            )
        except jwt.ExpiredSignatureError:
            raise await self._deny("the token has expired", "exp") from None
        except jwt.ImmatureSignatureError:
            raise await self._deny("the token is not valid yet", "nbf") from None
        except jwt.InvalidAudienceError:
            raise await self._deny("wrong audience", "aud") from None
        except jwt.InvalidIssuerError:
            raise await self._deny("wrong issuer", "iss") from None
        except jwt.MissingRequiredClaimError as exc:
            raise await self._deny(f"claim {exc.claim!r} is missing", exc.claim) from None
        except jwt.InvalidSignatureError:
            raise await self._deny("the signature does not verify", "signature") from None
        except jwt.PyJWTError as exc:
            raise await self._deny(f"invalid token ({exc})", "Authorization") from None
        principal = await self._principal(claims)
        digest = hashlib.sha256(token.encode()).hexdigest()
        if digest not in self._seen:
            self._seen[digest] = None
            if len(self._seen) > 10_000:
                self._seen.popitem(last=False)
            if self.audit is not None:
                await self.audit.append(
                    "login",
                    actor=Actor.of(principal),
                    details={"iss": claims.get("iss"), "jti": claims.get("jti")},
                )
        return principal

    async def _principal(self, claims: dict[str, Any]) -> Principal:
        s = self.settings
        subject = _claim(claims, s.id_claim)
        department = _claim(claims, s.department_claim)
        if not isinstance(department, str) or not department:
            raise await self._deny(f"claim {s.department_claim!r} is missing", s.department_claim)
        raw = _claim(claims, s.roles_claim)
        names = raw.split() if isinstance(raw, str) else raw
        if not isinstance(names, list):
            raise await self._deny(f"claim {s.roles_claim!r} is missing", s.roles_claim)
        roles: set[Role] = set()
        for n in names:
            if not isinstance(n, str):
                continue
            if s.role_map:
                if n in s.role_map:
                    roles.add(s.role_map[n])
            elif n in {r.value for r in Role}:
                roles.add(Role(n))
        if not roles:
            raise await self._deny(
                f"claim {s.roles_claim!r} holds no role jghub knows", s.roles_claim
            )
        system = _claim(claims, s.system_claim) if s.system_claim else None
        if Role.SYSTEM in roles and not isinstance(system, str):
            raise await self._deny("role system needs the system claim", s.system_claim or "system")
        name = _claim(claims, s.name_claim)
        return Principal(
            id=f"oidc:{subject}",
            name=name if isinstance(name, str) else str(subject),
            roles=frozenset(roles),
            department=department,
            system=system if isinstance(system, str) else None,
            via="oidc",
        )
