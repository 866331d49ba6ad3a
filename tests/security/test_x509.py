"""X.509 chain validation with a CA, an intermediate and leaves made at test time.

The ``Pki`` helpers here are also used by the TLS tests."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hub.errors import CertificateError
from security.x509 import (
    ChainValidator,
    certificate_identity,
    days_to_expiry,
    fingerprint,
    load_certificates,
)

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def write(self, folder: Path, name: str, chain: tuple[Issued, ...] = ()) -> tuple[Path, Path]:
        """Write ``name.crt`` (leaf then chain) and ``name.key``; return both paths."""
        crt, key = folder / f"{name}.crt", folder / f"{name}.key"
        crt.write_bytes(
            b"".join(c.cert.public_bytes(serialization.Encoding.PEM) for c in (self, *chain))
        )
        key.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return crt, key


def issue(
    name: str,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    path_length: int | None = None,
    uri: str | None = None,
    dns: str | None = None,
    ip: str | None = None,
    client: bool = False,
    server: bool = False,
    not_before: dt.datetime = NOW - dt.timedelta(days=30),
    days: int = 365,
) -> Issued:
    """A certificate as a real CA would issue it (cryptography's verifier is strict)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name = issuer.cert.subject if issuer else subject
    signing_key = issuer.key if issuer else key
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), False
        )
    )
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), True)
        b = b.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    else:
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        b = b.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        usages += [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
        b = b.add_extension(x509.ExtendedKeyUsage(usages), False)
        names: list[x509.GeneralName] = []
        if uri:
            names.append(x509.UniformResourceIdentifier(uri))
        if dns:
            names.append(x509.DNSName(dns))
        if ip:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        if names:
            b = b.add_extension(x509.SubjectAlternativeName(names), False)
    return Issued(b.sign(signing_key, hashes.SHA256()), key)


@dataclass
class Pki:
    root: Issued
    intermediate: Issued


def make_pki(name: str = "省政务CA") -> Pki:
    root = issue(f"{name} Root", ca=True, days=3650, not_before=NOW - dt.timedelta(days=365))
    inter = issue(f"{name} Issuing", root, ca=True, path_length=0, days=1825)
    return Pki(root, inter)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def test_client_chain_validates_through_the_intermediate(pki: Pki) -> None:
    leaf = issue("dept-a", pki.intermediate, uri="urn:jghub:system:dept-a", client=True)
    validator = ChainValidator([pki.root.cert])
    chain = validator.verify_client(leaf.cert, [pki.intermediate.cert], at=NOW.timestamp())
    assert [c.subject for c in chain] == [
        leaf.cert.subject,
        pki.intermediate.cert.subject,
        pki.root.cert.subject,
    ]
    assert certificate_identity(leaf.cert) == "urn:jghub:system:dept-a"
    assert days_to_expiry(leaf.cert, NOW.timestamp()) == pytest.approx(335.0)
    assert fingerprint(leaf.cert).startswith("SHA256:") and len(fingerprint(leaf.cert)) == 71


def test_server_chain_checks_the_host_name(pki: Pki) -> None:
    leaf = issue("hub", pki.intermediate, dns="hub.example", ip="127.0.0.1", server=True)
    validator = ChainValidator([pki.root.cert])
    at = NOW.timestamp()
    assert len(validator.verify_server(leaf.cert, "hub.example", [pki.intermediate.cert], at=at))
    assert len(validator.verify_server(leaf.cert, "127.0.0.1", [pki.intermediate.cert], at=at))
    with pytest.raises(CertificateError) as info:
        validator.verify_server(leaf.cert, "other.example", [pki.intermediate.cert], at=at)
    assert info.value.code == "E_CERT" and "other.example" in info.value.message


def test_expired_and_not_yet_valid_certificates_are_rejected(pki: Pki) -> None:
    leaf = issue("dept-a", pki.intermediate, uri="urn:jghub:system:dept-a", client=True)
    validator = ChainValidator([pki.root.cert])
    later = (NOW + dt.timedelta(days=400)).timestamp()
    with pytest.raises(CertificateError) as info:
        validator.verify_client(leaf.cert, [pki.intermediate.cert], at=later)
    assert info.value.code == "E_CERT" and "expired on" in info.value.message
    assert info.value.extra["fingerprint"] == fingerprint(leaf.cert)
    assert days_to_expiry(leaf.cert, later) < 0
    earlier = (NOW - dt.timedelta(days=60)).timestamp()
    with pytest.raises(CertificateError, match="not valid before"):
        validator.verify_client(leaf.cert, [pki.intermediate.cert], at=earlier)


def test_untrusted_chain_missing_intermediate_and_wrong_usage(pki: Pki) -> None:
    other = make_pki("别的CA")
    stranger = issue("dept-x", other.intermediate, uri="urn:jghub:system:dept-x", client=True)
    validator = ChainValidator([pki.root.cert])
    at = NOW.timestamp()
    with pytest.raises(CertificateError, match="is not trusted") as info:
        validator.verify_client(stranger.cert, [other.intermediate.cert], at=at)
    assert info.value.code == "E_CERT"
    leaf = issue("dept-a", pki.intermediate, uri="urn:jghub:system:dept-a", client=True)
    with pytest.raises(CertificateError, match="is not trusted"):
        validator.verify_client(leaf.cert, [], at=at)  # intermediate not supplied
    server_only = issue("dept-a", pki.intermediate, uri="urn:x", server=True)
    with pytest.raises(CertificateError):
        validator.verify_client(server_only.cert, [pki.intermediate.cert], at=at)


def test_identity_falls_back_to_the_common_name(pki: Pki) -> None:
    leaf = issue("dept-b", pki.intermediate, dns="dept-b.example", client=True)
    assert certificate_identity(leaf.cert) == "dept-b"


def test_load_certificates_from_files(pki: Pki, tmp_path: Path) -> None:
    crt, _ = pki.intermediate.write(tmp_path, "bundle", (pki.root,))
    certs = load_certificates(crt)
    assert [c.subject for c in certs] == [pki.intermediate.cert.subject, pki.root.cert.subject]
    ChainValidator.from_files([crt])
    (tmp_path / "junk.crt").write_text("not a certificate")
    with pytest.raises(CertificateError, match="holds no PEM certificate"):
        load_certificates(tmp_path / "junk.crt")
    with pytest.raises(CertificateError, match="cannot read"):
        load_certificates(tmp_path / "missing.crt")
    with pytest.raises(CertificateError, match="at least one trusted CA"):
        ChainValidator([])
