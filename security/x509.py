"""X.509 certificates of peers: loading, chain validation against configured CAs, identity
and days to expiry (for metrics and warnings).

Chains are validated with ``cryptography.x509.verification`` (RFC 5280 path building with the
CA/Browser-Forum-style profile it implements): CA certificates need ``basicConstraints`` CA and
``keyUsage`` keyCertSign; client leaves need the ``clientAuth`` extended key usage and a
``subjectAltName``; server leaves the ``serverAuth`` usage and a matching DNS name or IP.
Certificates with SM2 keys (some government CAs) are not supported by ``cryptography``; for
those peers use SM2 *signature* keys (``sm2-sm3``) with RSA/ECDSA TLS certificates.

An expired, not yet valid, malformed or untrusted certificate raises
:class:`hub.errors.CertificateError` (``E_CERT``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from hub.errors import CertificateError

__all__ = [
    "ChainValidator",
    "certificate_identity",
    "days_to_expiry",
    "fingerprint",
    "load_certificates",
]


def load_certificates(path: Path) -> list[x509.Certificate]:
    """All certificates of a PEM file (a bundle may hold several); :class:`CertificateError`
    if the file cannot be read or holds none."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {path}: {exc.strerror}", field=str(path)) from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateError(f"{path} holds no PEM certificate", field=str(path)) from None
    return certs


def certificate_identity(cert: x509.Certificate) -> str | None:
    """Who the certificate names: its first ``subjectAltName`` URI (e.g.
    ``urn:jghub:system:dept-a``), else its subject common name (CN), else ``None``."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        if uris:
            return uris[0]
    except x509.ExtensionNotFound:
        pass
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        value = cns[0].value
        return value if isinstance(value, str) else value.decode()
    return None


def days_to_expiry(cert: x509.Certificate, now: float) -> float:
    """Days from ``now`` (Unix seconds) until ``notAfter``; negative once expired."""
    return (cert.not_valid_after_utc.timestamp() - now) / 86400.0


def fingerprint(cert: x509.Certificate) -> str:
    """``SHA256:<hex>`` of the certificate's DER."""
    return "SHA256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _describe(cert: x509.Certificate) -> str:
    return certificate_identity(cert) or cert.subject.rfc4514_string() or "(no subject)"


class ChainValidator:
    """Validates leaf certificates against a fixed set of trusted CA certificates."""

    def __init__(self, trusted: Sequence[x509.Certificate]) -> None:
        if not trusted:
            raise CertificateError("at least one trusted CA certificate is needed", field="ca")
        self._trusted = list(trusted)
        self._store = Store(self._trusted)

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> ChainValidator:
        """Trust every certificate of the given PEM files."""
        return cls([c for p in paths for c in load_certificates(p)])

    def _check_dates(self, cert: x509.Certificate, when: dt.datetime) -> None:
        # a clear message for the commonest failure, before the generic path-building error
        if when >= cert.not_valid_after_utc:
            raise CertificateError(
                f"certificate {_describe(cert)!r} expired on "
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
                field="certificate",
                fingerprint=fingerprint(cert),
            )
        if when < cert.not_valid_before_utc:
            raise CertificateError(
                f"certificate {_describe(cert)!r} is not valid before "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                field="certificate",
                fingerprint=fingerprint(cert),
            )

    def verify_client(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate] = (),
        *,
        at: float,
    ) -> list[x509.Certificate]:
        """Validate a client certificate chain at ``at`` (Unix seconds); return the chain
        from the leaf to the trusted CA. :class:`CertificateError` if it does not validate."""
        when = dt.datetime.fromtimestamp(at, tz=dt.UTC)
        self._check_dates(leaf, when)
        verifier = PolicyBuilder().store(self._store).time(when).build_client_verifier()
        try:
            verified = verifier.verify(leaf, list(intermediates))
        except VerificationError as exc:
            raise CertificateError(
                f"certificate {_describe(leaf)!r} is not trusted: {exc}",
                field="certificate",
                fingerprint=fingerprint(leaf),
            ) from None
        return list(verified.chain)

    def verify_server(
        self,
        leaf: x509.Certificate,
        name: str,
        intermediates: Sequence[x509.Certificate] = (),
        *,
        at: float,
    ) -> list[x509.Certificate]:
        """Validate a server certificate for host ``name`` (DNS name or IP address)."""
        when = dt.datetime.fromtimestamp(at, tz=dt.UTC)
        self._check_dates(leaf, when)
        subject: DNSName | IPAddress
        try:
            subject = IPAddress(ipaddress.ip_address(name))
        except ValueError:
            subject = DNSName(name)
        verifier = PolicyBuilder().store(self._store).time(when).build_server_verifier(subject)
        try:
            chain = verifier.verify(leaf, list(intermediates))
        except VerificationError as exc:
            raise CertificateError(
                f"certificate {_describe(leaf)!r} is not trusted for {name!r}: {exc}",
                field="certificate",
                fingerprint=fingerprint(leaf),
            ) from None
        return list(chain)
