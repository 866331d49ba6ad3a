"""Days to expiry of every certificate the hub knows, with certificates made at test time:
the listener's chain and its client CAs over a real /metrics scrape; outbound CA and client
certificates through the catalogue (no transport takes ``outbound.tls`` yet)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from hub.api import create_app
from hub.config import load_config
from hub.runtime import Hub
from monitoring.certs import CertificateCatalog, configured_certificate_files
from security.x509 import fingerprint
from tests.helpers import write_config
from tests.monitoring.helpers import samples, value
from tests.security.test_x509 import Issued, issue

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]


def _expiring_in(days: int, name: str, issuer: Issued | None = None, **kw: Any) -> Issued:
    """A certificate that ends ``days`` days from now (issued a day ago)."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    return issue(name, issuer, not_before=start, days=days + 1, **kw)


def _fp(c: Issued) -> str:
    return fingerprint(c.cert).removeprefix("SHA256:")[:16]


async def test_listener_chain_and_client_cas_each_get_a_series(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    root = _expiring_in(3000, "省政务CA Root", ca=True)
    inter = _expiring_in(400, "省政务CA Issuing", root, ca=True, path_length=0)
    leaf = _expiring_in(20, "hub.example", inter, dns="hub.example", server=True)
    tls = tmp_path / "tls"
    tls.mkdir()
    crt, key = leaf.write(tls, "hub", chain=(inter,))
    other_ca = _expiring_in(5, "部门CA", ca=True)
    (tls / "clients.pem").write_bytes(
        root.cert.public_bytes(_pem()) + other_ca.cert.public_bytes(_pem())
    )
    path = write_config(tmp_path, {})
    doc = yaml.safe_load(path.read_text())
    doc["listen"]["tls"] = {
        "cert": "tls/hub.crt",
        "key": "tls/hub.key",
        "client_ca": ["tls/clients.pem"],
        "client_auth": "optional",
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    cfg = load_config(path)
    client = await aiohttp_client(create_app(cfg, hub=Hub(cfg)))
    got = samples(await (await client.get("/metrics")).text())

    def days(c: Issued, use: str, subject: str) -> float:
        return value(
            got,
            "jghub_certificate_expiry_days",
            certificate=_fp(c),
            subject=subject,
            use=use,
            system="",
        )

    assert 19.9 < days(leaf, "listen", "hub.example") <= 20.0
    assert 399.9 < days(inter, "listen", "省政务CA Issuing") <= 400.0
    assert 2999.9 < days(root, "client_ca", "省政务CA Root") <= 3000.0
    assert 4.9 < days(other_ca, "client_ca", "部门CA") <= 5.0
    series = [k for k in got if k[0] == "jghub_certificate_expiry_days"]
    assert len(series) == 4  # one per certificate, nothing per request or per peer
    assert crt.is_file() and key.is_file()


def test_outbound_ca_and_client_certificates_and_renewal(tmp_path: Path) -> None:
    ca = _expiring_in(900, "部门B CA", ca=True)
    client = _expiring_in(12, "urn:jghub:hub", ca, uri="urn:jghub:hub", client=True)
    ca.write(tmp_path, "dept-b-ca")
    client.write(tmp_path, "hub-client")
    files = configured_certificate_files(
        None,
        {
            "dept-b": {
                "transport": "http_json",
                "tls": {"ca": ["dept-b-ca.crt"], "cert": "hub-client.crt", "key": "x"},
            },
            "plain": {"transport": "http_json", "url": "http://127.0.0.1:9/"},
        },
        tmp_path,
    )
    assert files == [
        ("outbound_ca", "dept-b", tmp_path / "dept-b-ca.crt"),
        ("outbound_client", "dept-b", tmp_path / "hub-client.crt"),
    ]
    catalog = CertificateCatalog(files)
    now = dt.datetime.now(dt.UTC).timestamp()
    got = {(c.use, c.system, c.subject): d for c, d in catalog.days(now)}
    assert got[("outbound_ca", "dept-b", "部门B CA")] == pytest.approx(900, abs=0.1)
    assert got[("outbound_client", "dept-b", "urn:jghub:hub")] == pytest.approx(12, abs=0.1)

    # the client certificate is renewed in place: the next scrape reports the new one
    renewed = _expiring_in(365, "urn:jghub:hub", ca, uri="urn:jghub:hub", client=True)
    renewed.write(tmp_path, "hub-client")
    st = (tmp_path / "hub-client.crt").stat()
    os.utime(tmp_path / "hub-client.crt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    again = {(c.use, c.fingerprint): d for c, d in catalog.days(now)}
    assert again[("outbound_client", _fp(renewed))] == pytest.approx(365, abs=0.1)
    assert ("outbound_client", _fp(client)) not in again


def test_unreadable_certificate_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate")
    catalog = CertificateCatalog(
        configured_certificate_files(
            {"cert": "missing.crt", "client_ca": ["junk.pem"]}, {}, tmp_path
        )
    )
    assert catalog.certificates() == []


def _pem() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.PEM
