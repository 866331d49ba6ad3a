"""The API with the ``security:`` and ``keys:`` sections: every route refuses every role it
should (table-driven from the route table below and security.roles.POLICY), inbound RFC 9421
signatures with every rejection case, mutual TLS identity, outbound signing, and the audit log
recording refusals — all over real HTTP on 127.0.0.1 with real keys made at test time."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization

from contracts.samples import sample_inspection
from hub.api import HUB_KEY, create_app
from hub.config import load_config
from hub.fastpath import FastAppRunner
from hub.runtime import Hub
from security.httpsig import sign_request, verify_request
from security.keystore import Keystore, ManagedKey
from security.roles import POLICY, Role
from security.signing import generate_key, private_pem
from tests.helpers import wait_until, write_config
from tests.security.test_x509 import issue, make_pki

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]
RECORDS = "/v1/systems/dept-a/records"


@dataclass
class Keys:
    dept_a: Any  # the department's signing key (its private half stays with the department)
    dept_b: Any
    hub: Any


def _pem_files(tmp: Path) -> Keys:
    keys = Keys(
        generate_key("ed25519", "dept-a-1"),
        generate_key("ed25519", "dept-b-1"),
        generate_key("ed25519", "hub-1"),
    )
    kdir = tmp / "keys"
    kdir.mkdir()
    for k in (keys.dept_a, keys.dept_b):
        (kdir / f"{k.key_id}.pub.pem").write_bytes(k.public_pem())
    (kdir / "hub-1.pem").write_bytes(private_pem(keys.hub))
    return keys


def secure_config(
    tmp: Path, *, targets: dict[str, Any] | None = None, revoked: bool = False, **kw: Any
) -> tuple[Path, Keys]:
    keys = _pem_files(tmp)
    path = write_config(
        tmp,
        targets or {},
        source_extra={"inbound": {"signed": True}},
        **kw,
    )
    doc = yaml.safe_load(path.read_text())
    doc["keys"] = {
        "own": [{"id": "hub-1", "algorithm": "ed25519", "private_key": "keys/hub-1.pem"}],
        "peers": {
            "dept-a": [
                {
                    "id": "dept-a-1",
                    "algorithm": "ed25519",
                    "public_key": "keys/dept-a-1.pub.pem",
                    "revoked": revoked,
                }
            ],
            "dept-b": [
                {"id": "dept-b-1", "algorithm": "ed25519", "public_key": "keys/dept-b-1.pub.pem"}
            ],
        },
    }
    doc["security"] = {
        "db": {"path": "data/security.db", "durability": "normal"},
        "tokens": {"pepper_env": None},
        "audit": {"checkpoint_key": "hub-1", "checkpoint_every": 50},
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path, keys


async def _token(
    hub: Hub, role: str, *, system: str | None = None, dept: str = "330100-scj"
) -> str:
    tokens = hub.guard.authenticator.tokens
    issued = await tokens.create(
        name=f"{role}-{system or dept}", roles=[role], department=dept, system=system
    )
    return str(issued.token)


def signed_headers(signer: Any, url: str, body: bytes, **kw: Any) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    sign_request("POST", url, headers, body, signer=signer, **kw)
    return headers


@pytest.fixture
async def api(tmp_path: Path, hub_client: Any) -> AsyncIterator[tuple[TestClient[Any, Any], Keys]]:
    path, keys = secure_config(tmp_path)
    cfg = load_config(path)
    client = await hub_client(create_app(cfg, hub=Hub(cfg)))
    yield client, keys
    await client.close()


# --------------------------------------------------------------------------- roles on routes

#: every route of the API: (method, path, action the policy checks, system in scope)
ROUTES = [
    ("POST", RECORDS, "records.send", "dept-a"),
    ("GET", "/v1/systems/dept-a/quarantine", "messages.read", "dept-a"),
    ("GET", "/v1/subjects/91330106MA2B3C4D5E", "messages.read", None),
    ("GET", "/v1/dlq", "dlq.read", None),
    ("POST", "/v1/dlq/1/replay", "dlq.replay", None),
    ("POST", "/v1/dlq/1/discard", "dlq.discard", None),
    ("GET", "/v1/stats", "monitoring.read", None),
]


async def test_every_route_refuses_every_role_it_should(
    api: tuple[TestClient[Any, Any], Keys],
) -> None:
    client, keys = api
    hub: Hub = client.app[HUB_KEY]  # type: ignore[index]
    principals = {
        "system-own": await _token(hub, "system", system="dept-a"),
        "system-other": await _token(hub, "system", system="dept-b"),
        **{r.value: await _token(hub, r.value) for r in Role if r is not Role.SYSTEM},
    }
    checked = 0
    for method, path, action, system in ROUTES:
        for who, token in principals.items():
            role = Role.SYSTEM if who.startswith("system") else Role(who)
            own_system = (
                "dept-a" if who == "system-own" else ("dept-b" if who == "system-other" else None)
            )
            rules = POLICY[action]
            allowed = role in rules and (
                rules[role].value == "any"
                or (
                    rules[role].value == "own_system"
                    and system is not None
                    and own_system == system
                )
            )
            headers = {"Authorization": f"Bearer {token}"}
            body = b""
            if method == "POST" and path == RECORDS:
                body = orjson.dumps(sample_inspection(1))
                headers.update(signed_headers(keys.dept_a, str(client.make_url(path)), body))
                headers["Authorization"] = f"Bearer {token}"
            r = await client.request(method, path, data=body, headers=headers)
            doc = await r.json()
            if allowed:
                assert r.status not in (401, 403), (method, path, who, doc)
            else:
                assert r.status == 403 and doc["code"] == "E_FORBIDDEN", (method, path, who, doc)
            checked += 1
        # no credential at all: 401 everywhere
        r = await client.request(method, path, data=b"{}")
        assert r.status == 401 and (await r.json())["code"] == "E_AUTH", (method, path)
    assert checked == len(ROUTES) * len(principals)
    # the policy table and the route table agree on what exists
    assert {a for _, _, a, _ in ROUTES} <= set(POLICY)
    # health checks stay open (load balancers carry no credentials)
    assert (await client.get("/healthz")).status == 200
    # refusals are in the audit log
    report = await hub.guard.audit.verify()
    assert report.ok
    denied = [e async for e in _entries(hub) if e["action"] == "access.denied"]
    assert len(denied) >= 10


async def _entries(hub: Hub) -> AsyncIterator[dict[str, Any]]:
    import datetime as dt

    async for line in hub.guard.audit.export(dt.date(2000, 1, 1), dt.date(2100, 1, 1)):
        doc = orjson.loads(line)
        if doc.get("type", "entry") == "entry" and "action" in doc:
            yield doc


async def test_message_payload_only_with_payload_read(
    api: tuple[TestClient[Any, Any], Keys],
) -> None:
    client, keys = api
    hub: Hub = client.app[HUB_KEY]  # type: ignore[index]
    body = orjson.dumps(sample_inspection(2))
    url = str(client.make_url(RECORDS))
    r = await client.post(
        RECORDS,
        data=body,
        headers=signed_headers(keys.dept_a, url, body)
        | {"Authorization": f"Bearer {await _token(hub, 'system', system='dept-a')}"},
    )
    assert r.status == 202, await r.json()
    mid = (await r.json())["id"]
    ops = {"Authorization": f"Bearer {await _token(hub, 'ops')}"}
    doc = await (await client.get(f"/v1/messages/{mid}", headers=ops)).json()
    assert doc["payload"] is None and "payload.read" in doc["payload_withheld"]
    own = {"Authorization": f"Bearer {await _token(hub, 'system', system='dept-a')}"}
    doc = await (await client.get(f"/v1/messages/{mid}", headers=own)).json()
    assert doc["payload"]["inspection_no"] == sample_inspection(2)["inspection_no"]
    other = {"Authorization": f"Bearer {await _token(hub, 'system', system='dept-b')}"}
    r = await client.get(f"/v1/messages/{mid}", headers=other)
    assert r.status == 404  # another system is not told the message exists
    req = {"Authorization": f"Bearer {await _token(hub, 'requester')}"}
    assert (await client.get(f"/v1/messages/{mid}", headers=req)).status == 404


# --------------------------------------------------------------------------- signatures


async def test_inbound_signature_cases(api: tuple[TestClient[Any, Any], Keys]) -> None:
    client, keys = api
    hub: Hub = client.app[HUB_KEY]  # type: ignore[index]
    token = await _token(hub, "system", system="dept-a")
    auth = {"Authorization": f"Bearer {token}"}
    url = str(client.make_url(RECORDS))

    async def post(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        r = await client.post(RECORDS, data=body, headers={**headers, **auth})
        return r.status, await r.json()

    good = orjson.dumps(sample_inspection(3))
    h = signed_headers(keys.dept_a, url, good)
    status, doc = await post(good, h)
    assert status == 202, doc
    # the same signed request again: its nonce was used
    status, doc = await post(good, h)
    assert (status, doc["code"], doc["field"]) == (401, "E_REPLAY", "nonce")
    other = orjson.dumps(sample_inspection(4))
    cases: list[tuple[str, bytes, dict[str, str], str, str | None]] = []
    # body changed after signing
    cases.append(
        ("changed body", other, signed_headers(keys.dept_a, url, good), "E_SIGNATURE", None)
    )
    # signed by another system's key
    cases.append(
        ("wrong key", other, signed_headers(keys.dept_b, url, other), "E_SIGNATURE", "keyid")
    )
    # a key nobody knows
    cases.append(
        (
            "unknown key",
            other,
            signed_headers(generate_key("ed25519", "x-9"), url, other),
            "E_SIGNATURE",
            None,
        )
    )
    # a forged signature: the right key id, another private key
    forged = generate_key("ed25519", "dept-a-1")
    cases.append(("bad signature", other, signed_headers(forged, url, other), "E_SIGNATURE", None))
    # stale: created ten minutes ago
    cases.append(
        (
            "stale",
            other,
            signed_headers(keys.dept_a, url, other, created=time.time() - 600),
            "E_EXPIRED",
            "created",
        )
    )
    # unsigned, but this system must sign
    cases.append(
        ("unsigned", other, {"Content-Type": "application/json"}, "E_SIGNATURE", "Signature")
    )
    # digest header replaced to match the new body, signature over the old digest
    h2 = signed_headers(keys.dept_a, url, good)
    import base64
    import hashlib

    h2["Content-Digest"] = (
        "sha-256=:" + base64.b64encode(hashlib.sha256(other).digest()).decode() + ":"
    )
    cases.append(("digest swapped", other, h2, "E_SIGNATURE", None))
    for name, body, headers, code, field in cases:
        status, doc = await post(body, headers)
        assert status == 401 and doc["code"] == code, (name, doc)
        if field is not None:
            assert doc["field"] == field, (name, doc)
    counts = await hub.store.counts()
    assert counts["messages"] == 1  # nothing refused entered the queue
    rejected = [e async for e in _entries(hub) if e["action"] == "signature.rejected"]
    assert len(rejected) == len(cases) + 1  # + the replay


def _forged_headers(url: str, body: bytes) -> dict[str, str]:
    """Signed with dept-a's key id by another private key."""
    return signed_headers(generate_key("ed25519", "dept-a-1"), url, body)


async def test_concurrent_signed_requests_are_verified_in_batches_with_the_same_answers(
    api: tuple[TestClient[Any, Any], Keys],
) -> None:
    """Requests that reach verification together are checked in one batch off the event loop
    (``Guard.verifier``): a bad signature among good ones is refused with its own code and
    field, and a replay within the batch is refused as a replay."""
    from hub.errors import ReplayError, SignatureError

    client, keys = api
    hub: Hub = client.app[HUB_KEY]  # type: ignore[index]
    system = hub.systems["dept-a"].config
    url = str(client.make_url(RECORDS))
    good = [orjson.dumps(sample_inspection(i)) for i in range(20, 24)]
    signed = [signed_headers(keys.dept_a, url, b) for b in good]
    other = orjson.dumps(sample_inspection(30))
    requests = [
        (signed[0], good[0]),
        (_forged_headers(url, other), other),
        (signed[1], good[1]),
        (signed[0], good[0]),  # a replay of the first request, in the same batch
        (signed[2], good[3]),  # a body that is not the one signed
        (signed[3], good[3]),
    ]
    batches = hub.guard.verifier.batches

    async def verify(headers: dict[str, str], body: bytes) -> Any:
        try:
            # claims=None: the guard remembers the nonce itself (the store's nonce table)
            return await hub.guard.verify_inbound(
                system, "POST", url, headers, body, peer_identity=None
            )
        except (SignatureError, ReplayError) as err:
            return (err.code, err.field)

    got = await asyncio.gather(*(verify(h, b) for h, b in requests))
    assert hub.guard.verifier.batches == batches + 1
    assert got == [
        "dept-a-1",
        ("E_SIGNATURE", "Signature"),
        "dept-a-1",
        ("E_REPLAY", "nonce"),
        ("E_SIGNATURE", "Content-Digest"),
        "dept-a-1",
    ]


async def test_concurrent_signed_posts_answer_as_one_at_a_time(
    api: tuple[TestClient[Any, Any], Keys],
) -> None:
    """The same over HTTP, the requests sent at once: every good one is stored, the forged one
    is refused (E_SIGNATURE), and of a request sent twice one copy is stored, the other is
    refused as a replay (E_REPLAY, field nonce)."""
    client, keys = api
    hub: Hub = client.app[HUB_KEY]  # type: ignore[index]
    auth = {"Authorization": f"Bearer {await _token(hub, 'system', system='dept-a')}"}
    url = str(client.make_url(RECORDS))
    bodies = [orjson.dumps(sample_inspection(i)) for i in range(40, 44)]
    twice = signed_headers(keys.dept_a, url, bodies[0])
    other = orjson.dumps(sample_inspection(50))
    requests = [(twice, bodies[0]), (twice, bodies[0]), (_forged_headers(url, other), other)]
    requests += [(signed_headers(keys.dept_a, url, b), b) for b in bodies[1:]]

    async def post(headers: dict[str, str], body: bytes) -> tuple[int, str | None, str | None]:
        r = await client.post(RECORDS, data=body, headers={**headers, **auth})
        doc = await r.json()
        return r.status, doc.get("code"), doc.get("field")

    got = await asyncio.gather(*(post(h, b) for h, b in requests))
    assert sorted(got[:2]) == [(202, None, None), (401, "E_REPLAY", "nonce")]
    assert got[2] == (401, "E_SIGNATURE", "Signature")
    assert got[3:] == [(202, None, None)] * 3
    assert (await hub.store.counts())["messages"] == 4


async def test_revoked_key_is_refused(tmp_path: Path, hub_client: Any) -> None:
    path, keys = secure_config(tmp_path, revoked=True)
    cfg = load_config(path)
    client = await hub_client(create_app(cfg, hub=Hub(cfg)))
    hub: Hub = client.app[HUB_KEY]  # type: ignore[index]
    body = orjson.dumps(sample_inspection(5))
    headers = signed_headers(keys.dept_a, str(client.make_url(RECORDS)), body)
    headers["Authorization"] = f"Bearer {await _token(hub, 'system', system='dept-a')}"
    r = await client.post(RECORDS, data=body, headers=headers)
    doc = await r.json()
    assert r.status == 401 and doc["code"] == "E_SIGNATURE" and "revoked" in doc["detail"]
    await client.close()


# --------------------------------------------------------------------------- mutual TLS


async def test_mtls_identity_must_match_the_system(tmp_path: Path, http_path: str) -> None:
    pki = make_pki()
    server = issue("127.0.0.1", pki.intermediate, server=True, ip="127.0.0.1")
    client_a = issue("dept-a", pki.intermediate, client=True)
    client_b = issue("dept-b", pki.intermediate, client=True)
    tls = tmp_path / "tls"
    tls.mkdir()
    server.write(tls, "server", (pki.intermediate,))
    a_crt, a_key = client_a.write(tls, "a", (pki.intermediate,))
    b_crt, b_key = client_b.write(tls, "b", (pki.intermediate,))
    ca = tls / "ca.crt"
    ca.write_bytes(pki.root.cert.public_bytes(serialization.Encoding.PEM))
    path, keys = secure_config(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["listen"]["tls"] = {
        "cert": "tls/server.crt",
        "key": "tls/server.key",
        "client_ca": ["tls/ca.crt"],
        "client_auth": "required",
    }
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    hub = Hub(cfg)
    app = create_app(cfg, hub=hub)
    # served both ways: the fast records path reads the peer's certificate from the TLS
    # transport as aiohttp's request does
    runner = (FastAppRunner if http_path == "fast" else web.AppRunner)(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=hub.guard.server_ssl_context())
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"https://127.0.0.1:{port}{RECORDS}"
    token = await _token(hub, "system", system="dept-a")
    try:
        for crt, key, expect in ((a_crt, a_key, 202), (b_crt, b_key, 401)):
            ctx = ssl.create_default_context(cafile=str(ca))
            ctx.load_cert_chain(crt, key)
            body = orjson.dumps(sample_inspection(6 if expect == 202 else 7))
            headers = signed_headers(keys.dept_a, url, body) | {"Authorization": f"Bearer {token}"}
            async with (
                aiohttp.ClientSession() as s,
                s.post(url, data=body, headers=headers, ssl=ctx) as r,
            ):
                got = await r.json()
                assert r.status == expect, got
                if expect == 401:
                    assert got["code"] == "E_AUTH" and got["field"] == "tls_identity"
                    assert "dept-b" in got["detail"]
        if http_path == "fast":  # the signed requests over TLS took the fast path
            assert runner.server.answered == 2  # type: ignore[union-attr]
        # an expired client certificate of the right system: refused in the handshake
        old = issue(
            "dept-a",
            pki.intermediate,
            client=True,
            not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=400),
            days=30,
        )
        o_crt, o_key = old.write(tls, "old", (pki.intermediate,))
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.load_cert_chain(o_crt, o_key)
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.ClientError):
                async with s.post(url, data=b"{}", ssl=ctx) as r:
                    await r.read()
        # no client certificate: the handshake itself fails
        ctx = ssl.create_default_context(cafile=str(ca))
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.ClientError):
                async with s.post(url, data=b"{}", ssl=ctx) as r:
                    await r.read()
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- outbound


async def test_outbound_deliveries_are_signed_with_the_hubs_key(tmp_path: Path) -> None:
    got: list[tuple[dict[str, str], bytes, str]] = []

    async def receive(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read(), str(request.url)))
        return web.json_response({"ok": True}, status=200)

    app = web.Application()
    app.router.add_post("/in", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        path, keys = secure_config(
            tmp_path, targets={"national": {"url": f"http://127.0.0.1:{port}/in", "sign": True}}
        )
        cfg = load_config(path)
        async with Hub(cfg) as hub:
            await hub.ingest_records("dept-a", [sample_inspection(8)])
            await wait_until(lambda: len(got) == 1)
        headers, body, url = got[0]
        from security.signing import Ed25519Signer

        public = Ed25519Signer("hub-1", public_key=keys.hub.private_key.public_key())  # type: ignore[attr-defined]
        sig = verify_request(
            "POST", url, headers, body, keys=Keystore([ManagedKey(public)]), now=time.time()
        )
        assert (
            sig.key_id == "hub-1"
            and orjson.loads(body)["inspection_no"] == sample_inspection(8)["inspection_no"]
        )
    finally:
        await runner.cleanup()


def test_sign_without_own_key_is_refused_at_start(tmp_path: Path) -> None:
    from hub.errors import ConfigError

    path = write_config(tmp_path, {"national": {"url": "http://127.0.0.1:9/in", "sign": True}})
    with pytest.raises(ConfigError, match=r"outbound\.sign needs one of the hub.s own keys"):
        Hub(load_config(path))


async def test_onboarding_and_key_changes_are_audited_at_start(tmp_path: Path) -> None:
    path, _ = secure_config(tmp_path)
    async with Hub(load_config(path)) as hub:
        first = [(e["action"], e["object"]) async for e in _entries(hub)]
    assert ("onboarding.changed", "system dept-a") in first
    assert ("key.changed", "key hub-1") in first
    # nothing changed: nothing new
    async with Hub(load_config(path)) as hub:
        again = [(e["action"], e["object"]) async for e in _entries(hub)]
    assert again == first
    # a department's file changes and a key is revoked: both are recorded
    dept = tmp_path / "systems" / "dept-a.yaml"
    doc = yaml.safe_load(dept.read_text())
    doc["title"] = "changed"
    dept.write_text(yaml.safe_dump(doc, allow_unicode=True))
    hub_doc = yaml.safe_load(path.read_text())
    hub_doc["keys"]["peers"]["dept-b"][0]["revoked"] = True
    path.write_text(yaml.safe_dump(hub_doc, allow_unicode=True))
    async with Hub(load_config(path)) as hub:
        entries = [e async for e in _entries(hub)]
        assert (await hub.guard.audit.verify()).ok
    new = [(e["action"], e["object"], e["details"]) for e in entries[len(first) :]]
    assert ("onboarding.changed", "system dept-a", {"change": "changed"}) in new
    assert ("key.changed", "key dept-b-1", {"change": "changed"}) in new


async def test_oidc_tokens_from_the_provincial_idp_reach_the_api(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    """统一身份认证: a JWT from the identity provider (JWKS file) is a principal; its roles
    decide what it may do like a token's."""
    import json

    import jwt as pyjwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(pyjwt.get_algorithm_by_name("RS256").to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(
        json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256"}]})
    )
    path, _ = secure_config(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["security"]["oidc"] = {
        "issuer": "https://id.example.gov.cn/realms/zj",
        "audience": "jghub",
        "jwks_file": str(tmp_path / "jwks.json"),
        "department_claim": "dept",
        "roles_claim": "roles",
        "role_map": {"jghub-ops": "ops"},
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    cfg = load_config(path)
    client = await aiohttp_client(create_app(cfg, hub=Hub(cfg)))

    def token(roles: list[str], **over: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://id.example.gov.cn/realms/zj",
            "aud": "jghub",
            "sub": "u-7",
            "name": "王五",
            "exp": now + 300,
            "iat": now,
            "dept": "zj-ywb",
            "roles": roles,
            **over,
        }
        return pyjwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})

    ops = {"Authorization": f"Bearer {token(['jghub-ops'])}"}
    assert (await client.get("/v1/dlq", headers=ops)).status == 200
    assert (await client.get("/v1/stats", headers=ops)).status == 200
    nobody = {"Authorization": f"Bearer {token(['some-other-app'])}"}
    r = await client.get("/v1/dlq", headers=nobody)
    assert r.status in (401, 403)
    expired = {"Authorization": f"Bearer {token(['jghub-ops'], exp=int(time.time()) - 600)}"}
    r = await client.get("/v1/dlq", headers=expired)
    assert r.status == 401 and (await r.json())["code"] == "E_AUTH"
    await client.close()


async def test_outbound_mutual_tls_to_a_target(tmp_path: Path) -> None:
    """A target that requires a client certificate: the hub presents its own (outbound.tls) and
    checks the target's certificate against the configured CA."""
    from security.tls import TlsServerSettings, peer_identity, server_context

    pki = make_pki()
    tls = tmp_path / "tls"
    tls.mkdir()
    s_crt, s_key = issue("127.0.0.1", pki.intermediate, server=True, ip="127.0.0.1").write(
        tls, "target", (pki.intermediate,)
    )
    c_crt, c_key = issue("jghub-hub", pki.intermediate, client=True).write(
        tls, "client", (pki.intermediate,)
    )
    ca = tls / "ca.crt"
    ca.write_bytes(pki.root.cert.public_bytes(serialization.Encoding.PEM))
    seen: list[str | None] = []

    async def receive(request: web.Request) -> web.Response:
        seen.append(peer_identity(request.transport))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/in", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    ctx = server_context(
        TlsServerSettings(cert=s_crt, key=s_key, client_ca=[ca], client_auth="required")
    )
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        target = {
            "url": f"https://127.0.0.1:{port}/in",
            "tls": {"ca": [str(ca)], "cert": str(c_crt), "key": str(c_key)},
        }
        cfg = load_config(write_config(tmp_path, {"dept-b": target}))
        async with Hub(cfg) as hub:
            await hub.ingest_records("dept-a", [sample_inspection(9)])
            await wait_until(lambda: len(seen) == 1)
        assert seen == ["jghub-hub"]
    finally:
        await runner.cleanup()
    bad = write_config(
        tmp_path / "bad", {"dept-b": {"url": "https://x/in", "tls": {"cafile": "x"}}}
    )
    from hub.errors import ConfigError

    with pytest.raises(ConfigError, match="cafile"):
        Hub(load_config(bad))


async def test_signed_request_commits_its_nonce_with_its_records(
    api: tuple[TestClient[Any, Any], Keys],
) -> None:
    """A signed request costs one store commit (the nonce goes into the records' transaction),
    and a request refused after its signature was checked still uses up its nonce: its replay
    is refused as a replay, not processed again (nothing quarantined twice)."""
    from hub.store.sqlite import SQLiteStore

    client, keys = api
    hub: Hub = client.app[HUB_KEY]  # type: ignore[index]
    assert isinstance(hub.store, SQLiteStore)
    auth = {"Authorization": f"Bearer {await _token(hub, 'system', system='dept-a')}"}
    url = str(client.make_url(RECORDS))

    async def post(body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        r = await client.post(RECORDS, data=body, headers={**headers, **auth})
        return r.status, await r.json()

    good = orjson.dumps(sample_inspection(7))
    commits, _ = hub.store.group_commit_stats
    status, doc = await post(good, signed_headers(keys.dept_a, url, good))
    assert status == 202, doc
    assert hub.store.group_commit_stats[0] == commits + 1  # nonce and record: one commit
    # an invalid record: refused (422) and quarantined once; its replay is E_REPLAY
    bad_record = dict(sample_inspection(8))
    bad_record["counterpart_code"] = "not-a-code"
    bad = orjson.dumps(bad_record)
    h = signed_headers(keys.dept_a, url, bad)
    status, doc = await post(bad, h)
    assert status == 422 and doc["code"] != "E_REPLAY", doc
    quarantined = len(await hub.store.quarantined())
    status, doc = await post(bad, h)
    assert (status, doc["code"], doc["field"]) == (401, "E_REPLAY", "nonce")
    assert len(await hub.store.quarantined()) == quarantined
    # a body that cannot even be decoded: refused, and its replay is a replay too
    junk = b'{"not json'
    h = signed_headers(keys.dept_a, url, junk)
    status, doc = await post(junk, h)
    assert status == 400, doc
    status, doc = await post(junk, h)
    assert (status, doc["code"]) == (401, "E_REPLAY")
    assert (await hub.store.counts())["messages"] == 1
    rejected = [e async for e in _entries(hub) if e["action"] == "signature.rejected"]
    assert len(rejected) == 2  # both replays audited


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("127.0.0.1:8080", "/v1/systems/dept-a/records"),
        ("Hub.Example.COM:80", "/v1/systems/dept-a/records?dataset=inspection"),
        ("hub.example:443", "/v1/systems/./dept-a/../dept-a/records"),
        ("[::1]:9000", "/v1/systems/dept-a/records?q=%E4%B8%AD&x=a%2Fb"),
        ("hub.example", "//other.example/v1/systems/dept-a/records"),
    ],
)
def test_the_signed_url_is_the_one_aiohttp_builds(host: str, target: str) -> None:
    """The URL a signature is checked against (``@target-uri``) is kept by scheme, Host and
    request target instead of being built anew: it must be ``str(request.url)`` exactly,
    normalisation included, also when it comes from the cache."""
    from aiohttp.test_utils import make_mocked_request

    from hub.api import _request_url

    for _ in range(2):  # built, then from the cache
        request = make_mocked_request("POST", target, headers={"Host": host})
        assert _request_url(request) == str(request.url)
