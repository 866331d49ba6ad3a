"""TLS contexts for the hub listener and for outbound clients, and the client's identity.

Server (``listen.tls``)::

    tls:
      cert: tls/hub.crt          # chain: leaf first, then intermediates
      key: tls/hub.key           # PEM; encrypted: passphrase_env names the variable
      passphrase_env: HUB_TLS_PASS
      client_ca: [tls/province-ca.crt]
      client_auth: required      # none | optional | required (mutual TLS)

Client (a target's ``outbound.tls``)::

    tls:
      ca: [tls/dept-b-ca.crt]    # omit to use the system trust store
      cert: tls/hub-client.crt   # our client certificate, for peers that demand mutual TLS
      key: tls/hub-client.key

Both contexts require TLS 1.2 or newer. With ``client_auth: optional`` a client without a
certificate is let in and :func:`peer_identity` returns ``None``: the handler then relies on
the signature alone. :func:`peer_identity` names the client (SAN URI, else CN) so the handler
can check it is the owner of the signature's key (``VerifiedSignature.owner``).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field

from hub.errors import ConfigError
from security.x509 import certificate_identity

__all__ = [
    "TlsClientSettings",
    "TlsServerSettings",
    "client_context",
    "peer_certificate",
    "peer_identity",
    "server_context",
]

_VERIFY = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


class TlsServerSettings(BaseModel):
    """The listener's certificate, key and mutual-TLS policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert: Path = Field(description="PEM certificate chain, leaf first")
    key: Path = Field(description="PEM private key")
    passphrase_env: str | None = Field(None, description="env var holding the key passphrase")
    client_ca: list[Path] = Field(default_factory=list, description="CAs of client certificates")
    client_auth: Literal["none", "optional", "required"] = "none"


class TlsClientSettings(BaseModel):
    """Trusted CAs for a target's server certificate, and our client certificate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca: list[Path] = Field(default_factory=list, description="trusted CAs; empty: system store")
    cert: Path | None = None
    key: Path | None = None
    passphrase_env: str | None = None
    check_hostname: bool = True


def _password(env: str | None) -> str | None:
    if env is None:
        return None
    value = os.environ.get(env)
    if value is None:
        raise ConfigError(f"passphrase_env: environment variable {env} is not set", field=env)
    return value


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path, passphrase_env: str | None) -> None:
    try:
        ctx.load_cert_chain(cert, key, password=_password(passphrase_env))
    except (OSError, ssl.SSLError) as exc:
        # the reason (not the key) says what is wrong: no file, wrong passphrase, mismatch
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or "invalid"
        raise ConfigError(
            f"tls: cannot load certificate {cert} with key {key}: {reason}", field="tls.cert"
        ) from None


def _load_cas(ctx: ssl.SSLContext, cas: list[Path], field: str) -> None:
    for ca in cas:
        try:
            ctx.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or "invalid"
            raise ConfigError(f"tls: cannot load CA file {ca}: {reason}", field=field) from None


def server_context(settings: TlsServerSettings) -> ssl.SSLContext:
    """An ``SSLContext`` for the hub's listener (pass it to ``web.TCPSite(ssl_context=...)``)."""
    if settings.client_auth != "none" and not settings.client_ca:
        raise ConfigError(
            f"tls.client_auth is {settings.client_auth!r} but tls.client_ca names no CA",
            field="tls.client_ca",
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, settings.cert, settings.key, settings.passphrase_env)
    _load_cas(ctx, settings.client_ca, "tls.client_ca")
    ctx.verify_mode = _VERIFY[settings.client_auth]
    return ctx


def client_context(settings: TlsClientSettings) -> ssl.SSLContext:
    """An ``SSLContext`` for outbound requests (``aiohttp.TCPConnector(ssl=...)``)."""
    if (settings.cert is None) != (settings.key is None):
        raise ConfigError("tls: give both cert and key, or neither", field="tls.cert")
    if settings.ca:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _load_cas(ctx, settings.ca, "tls.ca")
    else:
        ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = settings.check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if settings.cert is not None and settings.key is not None:
        _load_chain(ctx, settings.cert, settings.key, settings.passphrase_env)
    return ctx


def peer_certificate(transport: Any) -> x509.Certificate | None:
    """The verified certificate the peer presented on ``transport`` (an asyncio transport, e.g.
    ``request.transport`` in aiohttp), or ``None`` (no TLS, or no client certificate)."""
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return x509.load_der_x509_certificate(der)


def peer_identity(transport: Any) -> str | None:
    """The identity of the TLS client certificate: its first SAN URI, else its CN; ``None``
    without a client certificate. Only meaningful when the context verified the certificate
    (``client_auth`` optional or required)."""
    cert = peer_certificate(transport)
    return None if cert is None else certificate_identity(cert)
