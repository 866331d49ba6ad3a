"""Every certificate the hub knows, with its days to expiry (``jghub_certificate_expiry_days``).

Sources, one gauge series per certificate (a chain file yields its leaf and intermediates):

* ``listen.tls.cert`` — the listener's chain (``use="listen"``);
* ``listen.tls.client_ca`` — CAs trusted for client certificates (``use="client_ca"``);
* a target's ``outbound.tls.ca`` / ``outbound.tls.cert`` where a transport takes them
  (``use="outbound_ca"`` / ``use="outbound_client"``, ``system`` = the target).

Labels stay low-cardinality: one series per configured certificate, named by a short
fingerprint, its subject (SAN URI or CN), its use and the system it belongs to. Files are
parsed again only when their modification time changes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from hub.errors import CertificateError
from security.x509 import certificate_identity, fingerprint, load_certificates

__all__ = ["CertificateCatalog", "KnownCertificate", "configured_certificate_files"]

log = logging.getLogger("jghub.monitoring")


@dataclass(frozen=True, slots=True)
class KnownCertificate:
    """One certificate of the hub's configuration and where it is used."""

    fingerprint: str  # first 16 hex digits of the SHA-256 of the DER (label ``certificate``)
    subject: str  # SAN URI, else CN, else the RFC 4514 subject
    use: str  # listen | client_ca | outbound_ca | outbound_client
    system: str  # the target for outbound certificates, '' for the listener
    path: Path
    not_after: float  # Unix seconds

    def days_left(self, now: float) -> float:
        """Days from ``now`` until ``notAfter`` (negative once expired)."""
        return (self.not_after - now) / 86400.0


def _paths(value: Any) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    if isinstance(value, Iterable):
        return [Path(v) for v in value if isinstance(v, (str, os.PathLike))]
    return []


def configured_certificate_files(
    listen_tls: Mapping[str, Any] | None,
    outbound: Mapping[str, Mapping[str, Any]],
    base_dir: Path,
) -> list[tuple[str, str, Path]]:
    """``(use, system, path)`` of every certificate file named in ``listen.tls`` and in the
    targets' ``outbound.tls`` sections (``outbound``: target name -> its ``outbound:``
    section); relative paths are resolved against ``base_dir``."""

    def rel(p: Path) -> Path:
        return p if p.is_absolute() else base_dir / p

    out: list[tuple[str, str, Path]] = []
    if listen_tls:
        out += [("listen", "", rel(p)) for p in _paths(listen_tls.get("cert"))]
        out += [("client_ca", "", rel(p)) for p in _paths(listen_tls.get("client_ca"))]
    for target, section in sorted(outbound.items()):
        tls = section.get("tls") if isinstance(section, Mapping) else None
        if not isinstance(tls, Mapping):
            continue
        out += [("outbound_ca", target, rel(p)) for p in _paths(tls.get("ca"))]
        out += [("outbound_client", target, rel(p)) for p in _paths(tls.get("cert"))]
    return out


def _subject(cert: x509.Certificate) -> str:
    """SAN URI, else CN, else the RFC 4514 subject (a malformed extension is not fatal)."""
    try:
        named = certificate_identity(cert)
    except ValueError:
        named = None
    return named or cert.subject.rfc4514_string() or "-"


class CertificateCatalog:
    """The certificates of a set of files, re-read when a file changes (a renewed
    certificate dropped in place shows up at the next scrape)."""

    def __init__(self, files: list[tuple[str, str, Path]]) -> None:
        self.files = files
        self._cache: dict[Path, tuple[int, list[x509.Certificate]]] = {}
        self._warned: set[Path] = set()

    def _load(self, path: Path) -> list[x509.Certificate]:
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = -1
        hit = self._cache.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        try:
            certs = load_certificates(path)
        except CertificateError as err:
            if path not in self._warned:  # once per file, not once per scrape
                log.warning("certificate expiry not reported: %s", err.message)
                self._warned.add(path)
            certs = []
        else:
            self._warned.discard(path)
        self._cache[path] = (mtime, certs)
        return certs

    def certificates(self) -> list[KnownCertificate]:
        """Every certificate of every file, once per (fingerprint, use, system)."""
        seen: set[tuple[str, str, str]] = set()
        out: list[KnownCertificate] = []
        for use, system, path in self.files:
            for cert in self._load(path):
                fp = fingerprint(cert).removeprefix("SHA256:")[:16]
                key = (fp, use, system)
                if key in seen:
                    continue
                seen.add(key)
                subject = _subject(cert)
                out.append(
                    KnownCertificate(
                        fp,
                        subject,
                        use,
                        system,
                        path,
                        cert.not_valid_after_utc.timestamp(),
                    )
                )
        return out

    def days(self, now: float) -> list[tuple[KnownCertificate, float]]:
        """Each certificate with its days to expiry at ``now`` (3 decimals)."""
        return [(c, round(c.days_left(now), 3)) for c in self.certificates()]
