"""Mutual TLS with a real aiohttp server and client on 127.0.0.1, certificates made now."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from hub.errors import ConfigError
from security.httpsig import sign_request, verify_request
from security.keystore import Keystore, ManagedKey
from security.signing import generate_key
from security.tls import (
    TlsClientSettings,
    TlsServerSettings,
    client_context,
    peer_identity,
    server_context,
)
from tests.security.test_x509 import Pki, issue

START = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)  # OpenSSL checks against the real clock


def _pki(name: str) -> Pki:
    root = issue(f"{name} Root", ca=True, days=3650, not_before=START)
    return Pki(root, issue(f"{name} Issuing", root, ca=True, path_length=0, not_before=START))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pki")
    ours, theirs = _pki("省政务CA"), _pki("别的CA")
    out: dict[str, Path] = {}
    out["ca"], _ = ours.root.write(tmp, "ca")
    out["other_ca"], _ = theirs.root.write(tmp, "other-ca")
    hub = issue(
        "hub", ours.intermediate, dns="localhost", ip="127.0.0.1", server=True, not_before=START
    )
    out["hub_crt"], out["hub_key"] = hub.write(tmp, "hub", (ours.intermediate,))
    dept_a = issue(
        "dept-a", ours.intermediate, uri="urn:jghub:system:dept-a", client=True, not_before=START
    )
    out["a_crt"], out["a_key"] = dept_a.write(tmp, "dept-a", (ours.intermediate,))
    dept_b = issue("dept-b", ours.intermediate, client=True, not_before=START)
    out["b_crt"], out["b_key"] = dept_b.write(tmp, "dept-b", (ours.intermediate,))
    rogue = issue(
        "dept-a", theirs.intermediate, uri="urn:jghub:system:dept-a", client=True, not_before=START
    )
    out["rogue_crt"], out["rogue_key"] = rogue.write(tmp, "rogue", (theirs.intermediate,))
    return out


KEY = generate_key("ed25519", "dept-a-1")
KEYS = Keystore([ManagedKey(KEY, owner="urn:jghub:system:dept-a")])
seen: list[str | None] = []


async def _records(request: web.Request) -> web.Response:
    identity = peer_identity(request.transport)
    seen.append(identity)
    body = await request.read()
    sig = verify_request(
        request.method, str(request.url), request.headers, body, keys=KEYS, now=time.time()
    )
    return web.json_response(
        {"identity": identity, "owner": sig.owner, "same": identity == sig.owner}
    )


async def _serve(files: dict[str, Path], client_auth: str) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/records", _records)
    runner = web.AppRunner(app)
    await runner.setup()
    ctx = server_context(
        TlsServerSettings(
            cert=files["hub_crt"],
            key=files["hub_key"],
            client_ca=[files["ca"]],
            client_auth=client_auth,
        )  # type: ignore[arg-type]
    )
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}/v1/records"
    finally:
        await runner.cleanup()


@pytest.fixture
async def required(files: dict[str, Path]) -> AsyncIterator[str]:
    seen.clear()
    async for url in _serve(files, "required"):
        yield url


@pytest.fixture
async def optional(files: dict[str, Path]) -> AsyncIterator[str]:
    seen.clear()
    async for url in _serve(files, "optional"):
        yield url


async def _post(url: str, files: dict[str, Path], who: str | None, ca: str = "ca") -> object:
    settings = TlsClientSettings(
        ca=[files[ca]],
        cert=files[f"{who}_crt"] if who else None,
        key=files[f"{who}_key"] if who else None,
    )
    body = b'{"n": 1}'
    headers = {"Content-Type": "application/json"}
    sign_request("POST", url, headers, body, signer=KEY)
    connector = aiohttp.TCPConnector(ssl=client_context(settings))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(url, data=body, headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_mutual_tls_accepted_and_identity_matches_key_owner(
    required: str, files: dict[str, Path]
) -> None:
    got = await _post(required, files, "a")
    assert got == {
        "identity": "urn:jghub:system:dept-a",
        "owner": "urn:jghub:system:dept-a",
        "same": True,
    }


async def test_identity_falls_back_to_cn(required: str, files: dict[str, Path]) -> None:
    got = await _post(required, files, "b")
    assert got == {"identity": "dept-b", "owner": "urn:jghub:system:dept-a", "same": False}


async def test_no_client_certificate_is_refused(required: str, files: dict[str, Path]) -> None:
    with pytest.raises(aiohttp.ClientError):
        await _post(required, files, None)
    assert seen == []  # the handler never ran


async def test_client_certificate_of_another_ca_is_refused(
    required: str, files: dict[str, Path]
) -> None:
    with pytest.raises(aiohttp.ClientError):
        await _post(required, files, "rogue")
    assert seen == []


async def test_optional_client_auth_lets_anonymous_in(
    optional: str, files: dict[str, Path]
) -> None:
    got = await _post(optional, files, None)
    assert got == {"identity": None, "owner": "urn:jghub:system:dept-a", "same": False}
    with pytest.raises(aiohttp.ClientError):  # a certificate, if sent, must still be trusted
        await _post(optional, files, "rogue")


async def test_client_refuses_a_server_of_an_unknown_ca(
    required: str, files: dict[str, Path]
) -> None:
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _post(required, files, "a", ca="other_ca")


def test_context_config_errors(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="client_ca names no CA"):
        server_context(
            TlsServerSettings(cert=files["hub_crt"], key=files["hub_key"], client_auth="required")
        )
    with pytest.raises(ConfigError, match="cannot load certificate"):
        server_context(TlsServerSettings(cert=files["hub_crt"], key=files["a_key"]))
    with pytest.raises(ConfigError, match="both cert and key"):
        client_context(TlsClientSettings(cert=files["a_crt"]))
    with pytest.raises(ConfigError, match="NOPE_TLS is not set"):
        client_context(
            TlsClientSettings(cert=files["a_crt"], key=files["a_key"], passphrase_env="NOPE_TLS")
        )
    ctx = client_context(TlsClientSettings())
    assert ctx.check_hostname and ctx.minimum_version.name == "TLSv1_2"
