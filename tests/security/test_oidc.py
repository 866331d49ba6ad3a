"""JWT bearer tokens from the identity provider: tokens signed at test time (RS256, ES256),
the JWKS served by a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from hub.errors import AuthError
from security.audit import AuditLog
from security.oidc import OidcSettings, OidcVerifier
from security.roles import Role
from security.secdb import SQLiteSecurityDB
from security.tokens import Authenticator, TokenService

ISS = "https://id.example.gov.cn/realms/province"


@dataclass
class Idp:
    """A tiny identity provider: keys, a JWKS it serves, and a fetch counter."""

    keys: dict[str, Any] = field(default_factory=dict)  # kid -> (alg, private key)
    published: list[str] = field(default_factory=list)
    fetches: int = 0
    url: str = ""

    def add(self, kid: str, alg: str, publish: bool = True) -> None:
        key: Any = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.keys[kid] = (alg, key)
        if publish:
            self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid in self.published:
            alg, key = self.keys[kid]
            algo = jwt.get_algorithm_by_name(alg)
            jwk = json.loads(algo.to_jwk(key.public_key()))
            out.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        return {"keys": out}

    def token(self, kid: str = "k-rsa", **over: Any) -> str:
        alg, key = self.keys[kid]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISS,
            "aud": "jghub",
            "sub": "u-1001",
            "name": "李四",
            "exp": now + 600,
            "iat": now,
            "dept_code": "scjgj",
            "realm_access": {"roles": ["jghub-reviewer", "offline_access"]},
        }
        claims.update(over)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
async def idp(aiohttp_server: Any) -> AsyncIterator[Idp]:
    state = Idp()
    state.add("k-rsa", "RS256")
    state.add("k-ec", "ES256")

    async def jwks(request: web.Request) -> web.Response:
        state.fetches += 1
        return web.json_response(state.jwks())

    app = web.Application()
    app.router.add_get("/certs", jwks)
    server = await aiohttp_server(app, host="127.0.0.1")
    state.url = str(server.make_url("/certs"))
    yield state


def settings(idp: Idp, **over: Any) -> OidcSettings:
    doc: dict[str, Any] = {
        "issuer": ISS,
        "audience": "jghub",
        "jwks_url": idp.url,
        "department_claim": "dept_code",
        "roles_claim": "realm_access.roles",
        "role_map": {"jghub-reviewer": "reviewer", "jghub-ops": "ops"},
        "min_refresh_seconds": 0,
    }
    doc.update(over)
    return OidcSettings.model_validate(doc)


async def test_rs256_and_es256_tokens_map_to_principals(idp: Idp, tmp_path: Path) -> None:
    db = SQLiteSecurityDB(tmp_path / "security.db")
    await db.open()
    audit = AuditLog(db)
    v = OidcVerifier(settings(idp), audit=audit)
    try:
        p = await v.authenticate_token(idp.token("k-rsa"))
        q = await v.authenticate_token(idp.token("k-ec", sub="u-2", dept_code="wjw"))
        await v.authenticate_token(idp.token("k-rsa"))  # cached keys, no new fetch
        entries = await db.audit_page(0, 10, 10)
    finally:
        await v.close()
        await db.close()
    assert (p.id, p.name, p.department, p.roles, p.via) == (
        "oidc:u-1001", "李四", "scjgj", frozenset({Role.REVIEWER}), "oidc",
    )  # fmt: skip
    assert (q.id, q.department) == ("oidc:u-2", "wjw")
    assert idp.fetches == 1
    assert [(e.action, e.actor_id) for e in entries] == [
        ("login", "oidc:u-1001"), ("login", "oidc:u-2"),
    ]  # fmt: skip


async def test_the_authenticator_sends_jwts_to_the_provider(idp: Idp, tmp_path: Path) -> None:
    db = SQLiteSecurityDB(tmp_path / "security.db")
    await db.open()
    v = OidcVerifier(settings(idp))
    try:
        auth = Authenticator(TokenService(db), jwt=v)
        p = await auth.authenticate(f"Bearer {idp.token()}")
    finally:
        await v.close()
        await db.close()
    assert p.via == "oidc" and p.department == "scjgj"


def _forged(idp: Idp) -> str:
    """Signed by a key the provider never published, under a published kid."""
    idp.add("rogue", "RS256", publish=False)
    good = idp.token("k-rsa")
    rogue = idp.token("rogue")
    return good.rsplit(".", 1)[0] + "." + rogue.rsplit(".", 1)[1]


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (_forged, "signature"),
        (lambda idp: idp.token(iss="https://evil.example"), "iss"),
        (lambda idp: idp.token(aud="another-app"), "aud"),
        (lambda idp: idp.token(exp=int(time.time()) - 3600), "exp"),
        (lambda idp: idp.token(exp=None), "exp"),
        (lambda idp: idp.token(dept_code=None), "dept_code"),
        (lambda idp: idp.token(realm_access=None), "realm_access.roles"),
        (lambda idp: idp.token(realm_access={"roles": ["offline_access"]}), "realm_access.roles"),
        (lambda idp: idp.token(sub=None), "sub"),
        (lambda idp: (idp.add("k-new", "ES256", publish=False), idp.token("k-new"))[1], "kid"),
        (lambda idp: "not.a.jwt", "Authorization"),
        (lambda idp: jwt.encode({"iss": ISS}, "s" * 32, algorithm="HS256"), "alg"),
    ],
    ids=["bad-signature", "wrong-issuer", "wrong-audience", "expired", "no-exp",
         "no-department", "no-roles", "no-known-role", "no-subject", "unknown-kid",
         "garbage", "hs256"],
)  # fmt: skip
async def test_bad_tokens_are_refused_naming_what_failed(idp: Idp, make: Any, field: str) -> None:
    v = OidcVerifier(settings(idp))
    try:
        token = make(idp)
        with pytest.raises(AuthError) as err:
            await v.authenticate_token(token)
    finally:
        await v.close()
    assert err.value.code == "E_AUTH" and err.value.status == 401
    assert err.value.field == field, err.value.message


async def test_an_unknown_kid_refreshes_the_jwks_once(idp: Idp) -> None:
    v = OidcVerifier(settings(idp))
    try:
        await v.authenticate_token(idp.token("k-rsa"))
        idp.add("k-2027", "ES256")  # the provider rotates: a new key is published
        p = await v.authenticate_token(idp.token("k-2027"))
        assert idp.fetches == 2 and p.id == "oidc:u-1001"
        # unknown kids do not refetch more often than min_refresh_seconds
        slow = OidcVerifier(settings(idp, min_refresh_seconds=3600))
        await slow.authenticate_token(idp.token("k-rsa"))
        idp.add("k-late", "ES256", publish=False)
        for _ in range(3):
            with pytest.raises(AuthError):
                await slow.authenticate_token(idp.token("k-late"))
        await slow.close()
    finally:
        await v.close()
    assert idp.fetches == 3


async def test_a_jwks_file_and_a_provider_that_is_down(idp: Idp, tmp_path: Path) -> None:
    f = tmp_path / "jwks.json"
    f.write_text(json.dumps(idp.jwks()))
    v = OidcVerifier(settings(idp, jwks_url=None, jwks_file="jwks.json"), base_dir=tmp_path)
    p = await v.authenticate_token(idp.token("k-ec"))
    assert p.roles == {Role.REVIEWER}
    down = OidcVerifier(settings(idp, jwks_url="http://127.0.0.1:9/certs", timeout=2))
    with pytest.raises(AuthError) as err:
        await down.authenticate_token(idp.token())
    await down.close()
    assert err.value.field == "kid" and "cannot be loaded" in err.value.message


async def test_roles_without_a_map_and_system_claim(idp: Idp) -> None:
    s = settings(idp, role_map={}, roles_claim="roles", system_claim="sys")
    v = OidcVerifier(s)
    try:
        p = await v.authenticate_token(idp.token(roles="system requester", sys="dept-a"))
        with pytest.raises(AuthError) as err:
            await v.authenticate_token(idp.token(roles=["system"]))
    finally:
        await v.close()
    assert p.roles == {Role.SYSTEM, Role.REQUESTER} and p.system == "dept-a"
    assert err.value.field == "sys"


def test_settings_need_exactly_one_jwks_source() -> None:
    with pytest.raises(ValidationError):
        OidcSettings(issuer=ISS, audience="jghub")
    with pytest.raises(ValidationError):
        OidcSettings(issuer=ISS, audience="jghub", jwks_url="http://x", jwks_file=Path("f"))
