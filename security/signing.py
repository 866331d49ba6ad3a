"""Signers: one key of one signature algorithm, behind the :class:`hub.specs.Signer` protocol.

Algorithms (names as registered for RFC 9421 where they exist):

=====================  =========================================================================
``ed25519``            EdDSA over Curve25519 (RFC 8032); 64-byte signatures
``ecdsa-p256-sha256``  ECDSA P-256 / SHA-256; ``r‖s`` (64 bytes), as RFC 9421 §3.3.4 requires
``rsa-pss-sha512``     RSASSA-PSS / SHA-512, MGF1-SHA-512, 64-byte salt (RFC 9421 §3.3.1)
``hmac-sha256``        HMAC-SHA-256 with a shared secret of at least 32 bytes
``sm2-sm3``            SM2 signature with SM3 (GB/T 32918.2), Z computed per the standard with
                       the default user id ``1234567812345678``; DER ``SEQUENCE {r, s}`` as in
                       GB/T 35276 (``signature_format: raw`` gives ``r‖s``). Needs the ``sm``
                       extra (``pip install jghub[sm]``: tongsuopy, the Tongsuo/OpenSSL build)
=====================  =========================================================================

``sm2-sm3`` is not an IANA-registered RFC 9421 name; both ends must agree on it. SM3 and SM4
themselves come from ``cryptography`` (OpenSSL), no extra needed: :func:`sm3`.

A signer built from a public key only (a peer's key) verifies but cannot sign. Secrets and
private keys never appear in ``repr`` or in error messages; :attr:`KeySigner.fingerprint`
identifies a key without revealing it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from pydantic import BaseModel, ConfigDict, Field

from hub.errors import ConfigError, SignatureError
from hub.specs import Signer, SignerSpec

__all__ = [
    "ALGORITHMS",
    "SIGNER_SPECS",
    "SM2_DEFAULT_USER_ID",
    "AsymmetricKeyOptions",
    "EcdsaP256Signer",
    "Ed25519Signer",
    "HmacSha256Signer",
    "KeyResolver",
    "KeySigner",
    "ResolvedKey",
    "RsaPssSha512Signer",
    "SecretKeyOptions",
    "Sm2KeyOptions",
    "Sm2Sm3Signer",
    "generate_key",
    "load_signer",
    "sm2_available",
    "sm3",
]

#: The user id GB/T 32918 / GB/T 35276 use when none is agreed (ENTL = 128 bits).
SM2_DEFAULT_USER_ID = b"1234567812345678"
#: Shortest HMAC secret accepted (bytes): the output size of SHA-256.
MIN_SECRET_BYTES = 32

_SM_EXTRA_HINT = "algorithm sm2-sm3 needs the 'sm' extra: pip install 'jghub[sm]' (tongsuopy)"


def sm3(data: bytes) -> bytes:
    """SM3 digest (GB/T 32905) of ``data``, from ``cryptography``/OpenSSL."""
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def sm2_available() -> bool:
    """Whether the optional SM2 library (tongsuopy, the ``sm`` extra) is installed."""
    try:
        import tongsuopy.crypto.asymciphers.ec  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- key resolution


@dataclass(frozen=True, slots=True)
class ResolvedKey:
    """A key found for a ``keyid``: the signer that verifies with it and the system that owns
    it (``None`` for the hub's own keys). Callers compare ``owner`` with the system named in
    the request path and with the TLS client identity."""

    signer: Signer
    owner: str | None = None


class KeyResolver(Protocol):
    """Finds the key for a ``keyid`` at a time, or rejects it (unknown, revoked, not valid)."""

    def resolve_key(self, key_id: str, at: float) -> ResolvedKey:
        """Return the key named ``key_id`` if it may verify at ``at`` (Unix seconds); raise
        :class:`hub.errors.SignatureError` (field ``keyid``) otherwise."""
        ...


# --------------------------------------------------------------------------- signers


class KeySigner(ABC):
    """Base of the built-in signers: a key id, an algorithm and key material kept private."""

    algorithm: str = ""

    def __init__(self, key_id: str) -> None:
        if not key_id:
            raise ConfigError("a key needs a non-empty id", field="id")
        self.key_id = key_id

    @property
    @abstractmethod
    def can_sign(self) -> bool:
        """Whether this key holds private material (own keys, shared secrets)."""

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """``SHA256:<hex>`` of the public key (SubjectPublicKeyInfo DER); for a shared secret a
        check value derived from it (never the secret or its plain hash)."""

    def public_pem(self) -> bytes | None:
        """The public key as PEM (SubjectPublicKeyInfo); ``None`` for shared secrets."""
        return None

    @abstractmethod
    def sign(self, data: bytes) -> bytes:
        """Return the raw signature of ``data``."""

    @abstractmethod
    def verify(self, data: bytes, signature: bytes) -> None:
        """Raise :class:`SignatureError` unless ``signature`` signs ``data`` with this key."""

    def _no_private(self) -> ConfigError:
        return ConfigError(
            f"key {self.key_id!r} ({self.algorithm}) holds only a public key: it can verify but "
            "not sign",
            field="private_key",
        )

    def _bad(self) -> SignatureError:
        return SignatureError(
            f"signature does not verify with key {self.key_id!r} ({self.algorithm})",
            field="Signature",
        )

    def __repr__(self) -> str:
        kind = "private" if self.can_sign else "public"
        return f"<{type(self).__name__} {self.key_id!r} {self.algorithm} {kind} {self.fingerprint}>"


_SodiumVerifyKey: Any
try:  # PyNaCl (libsodium): the faster Ed25519 verification, when installed
    from nacl.exceptions import CryptoError as _SodiumError
    from nacl.signing import VerifyKey as _SodiumVerifyKey
except ImportError:  # pragma: no cover - PyNaCl is a dependency
    _SodiumVerifyKey = None

    class _SodiumError(Exception):  # type: ignore[no-redef]
        """Stands in for nacl.exceptions.CryptoError."""


class _CryptographySigner(KeySigner):
    """Asymmetric keys handled by ``cryptography``."""

    _private_type: ClassVar[type[Any]]
    _public_type: ClassVar[type[Any]]

    def __init__(self, key_id: str, *, private_key: Any = None, public_key: Any = None) -> None:
        super().__init__(key_id)
        if private_key is None and public_key is None:
            raise ConfigError(f"key {key_id!r} needs a private or a public key", field="id")
        if private_key is not None and not isinstance(private_key, self._private_type):
            raise ConfigError(
                f"key {key_id!r}: the private key is not a {self.algorithm} key",
                field="private_key",
            )
        derived = private_key.public_key() if private_key is not None else None
        if public_key is not None:
            if not isinstance(public_key, self._public_type):
                raise ConfigError(
                    f"key {key_id!r}: the public key is not a {self.algorithm} key",
                    field="public_key",
                )
            self._check_curve(public_key)
            if derived is not None and _spki(derived) != _spki(public_key):
                raise ConfigError(
                    f"key {key_id!r}: public_key does not belong to private_key", field="public_key"
                )
        if private_key is not None:
            self._check_curve(private_key)
        self._private = private_key
        self._public = derived if derived is not None else public_key

    def _check_curve(self, key: Any) -> None:
        return None

    @property
    def can_sign(self) -> bool:
        return self._private is not None

    @property
    def fingerprint(self) -> str:
        return "SHA256:" + hashlib.sha256(_spki(self._public)).hexdigest()

    def public_pem(self) -> bytes | None:
        pem: bytes = self._public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem

    @property
    def private_key(self) -> Any:
        """The private key object (for writing PEM files from the CLI); ``None`` if absent."""
        return self._private


def _spki(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


class Ed25519Signer(_CryptographySigner):
    """``ed25519`` (RFC 8032)."""

    algorithm = "ed25519"
    _private_type = ed25519.Ed25519PrivateKey
    _public_type = ed25519.Ed25519PublicKey

    def sign(self, data: bytes) -> bytes:
        if self._private is None:
            raise self._no_private()
        sig: bytes = self._private.sign(data)
        return sig

    def verify(self, data: bytes, signature: bytes) -> None:
        sodium = self._sodium_key()
        if sodium is not None:
            # libsodium (PyNaCl) verifies about twice as fast as OpenSSL here (measured:
            # ~66 µs against ~132 µs); it accepts the same honest signatures and refuses a few
            # more crafted ones (non-canonical S or points, small-order keys)
            try:
                sodium.verify(data, signature)
            except (_SodiumError, ValueError, TypeError):
                raise self._bad() from None
            return
        try:
            self._public.verify(signature, data)
        except InvalidSignature:
            raise self._bad() from None

    @property
    def verify_releases_gil(self) -> bool:
        """Whether :meth:`verify` lets other Python threads run while it computes (libsodium's
        call through cffi does; OpenSSL's through ``cryptography`` does not), so that
        :class:`security.httpsig.BatchVerifier` may run it on another thread."""
        return self._sodium_key() is not None

    def _sodium_key(self) -> Any:
        """The public key as a PyNaCl ``VerifyKey`` (made once), or None without PyNaCl."""
        try:
            return self.__dict__["_sodium"]
        except KeyError:
            pass
        key = None
        if _SodiumVerifyKey is not None:
            raw = self._public.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            key = _SodiumVerifyKey(raw)
        self.__dict__["_sodium"] = key
        return key


class EcdsaP256Signer(_CryptographySigner):
    """``ecdsa-p256-sha256``: signatures are ``r‖s``, 32 bytes each (RFC 9421 §3.3.4)."""

    algorithm = "ecdsa-p256-sha256"
    _private_type = ec.EllipticCurvePrivateKey
    _public_type = ec.EllipticCurvePublicKey

    def _check_curve(self, key: Any) -> None:
        if not isinstance(key.curve, ec.SECP256R1):
            raise ConfigError(
                f"key {self.key_id!r}: ecdsa-p256-sha256 needs a P-256 key, not {key.curve.name}",
                field="private_key" if hasattr(key, "private_numbers") else "public_key",
            )

    def sign(self, data: bytes) -> bytes:
        if self._private is None:
            raise self._no_private()
        r, s = decode_dss_signature(self._private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def verify(self, data: bytes, signature: bytes) -> None:
        if len(signature) != 64:
            raise self._bad()
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            self._public.verify(der, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise self._bad() from None


class RsaPssSha512Signer(_CryptographySigner):
    """``rsa-pss-sha512`` (RFC 9421 §3.3.1); keys of at least 2048 bits."""

    algorithm = "rsa-pss-sha512"
    _private_type = rsa.RSAPrivateKey
    _public_type = rsa.RSAPublicKey
    _padding = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)

    def _check_curve(self, key: Any) -> None:
        if key.key_size < 2048:
            raise ConfigError(
                f"key {self.key_id!r}: RSA keys must have at least 2048 bits, not {key.key_size}",
                field="public_key",
            )

    def sign(self, data: bytes) -> bytes:
        if self._private is None:
            raise self._no_private()
        sig: bytes = self._private.sign(data, self._padding, hashes.SHA512())
        return sig

    def verify(self, data: bytes, signature: bytes) -> None:
        try:
            self._public.verify(signature, data, self._padding, hashes.SHA512())
        except InvalidSignature:
            raise self._bad() from None


class HmacSha256Signer(KeySigner):
    """``hmac-sha256`` with a shared secret; both sides can sign and verify."""

    algorithm = "hmac-sha256"

    def __init__(self, key_id: str, secret: bytes) -> None:
        super().__init__(key_id)
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"key {key_id!r}: the shared secret has {len(secret)} bytes; at least "
                f"{MIN_SECRET_BYTES} are required",
                field="secret",
            )
        self._secret = secret

    @property
    def can_sign(self) -> bool:
        return True

    @property
    def fingerprint(self) -> str:
        # a key check value: an HMAC of a fixed label, which does not reveal the secret
        kcv = hmac.new(self._secret, b"jghub key check value", hashlib.sha256).hexdigest()
        return "KCV:" + kcv[:16]

    @property
    def secret(self) -> bytes:
        """The shared secret (for writing the secret file from the CLI)."""
        return self._secret

    def sign(self, data: bytes) -> bytes:
        return hmac.new(self._secret, data, hashlib.sha256).digest()

    def verify(self, data: bytes, signature: bytes) -> None:
        if not hmac.compare_digest(self.sign(data), signature):
            raise self._bad()


class Sm2Sm3Signer(KeySigner):
    """``sm2-sm3`` (GB/T 32918.2, default user id), through tongsuopy (the ``sm`` extra)."""

    algorithm = "sm2-sm3"

    def __init__(
        self,
        key_id: str,
        *,
        private_key: Any = None,
        public_key: Any = None,
        signature_format: Literal["der", "raw"] = "der",
    ) -> None:
        super().__init__(key_id)
        ec_sm, _ = _tongsuo()
        if private_key is None and public_key is None:
            raise ConfigError(f"key {key_id!r} needs a private or a public key", field="id")
        for key, name in ((private_key, "private_key"), (public_key, "public_key")):
            if key is not None and getattr(getattr(key, "curve", None), "name", "") != "SM2":
                raise ConfigError(f"key {key_id!r}: the {name} is not an SM2 key", field=name)
        derived = private_key.public_key() if private_key is not None else None
        if (
            derived is not None
            and public_key is not None
            and _sm2_spki(derived) != _sm2_spki(public_key)
        ):
            raise ConfigError(
                f"key {key_id!r}: public_key does not belong to private_key", field="public_key"
            )
        self._private = private_key
        self._public = derived if derived is not None else public_key
        self._format = signature_format
        self._ecdsa = ec_sm.ECDSA(_tongsuo_sm3())

    @property
    def can_sign(self) -> bool:
        return self._private is not None

    @property
    def fingerprint(self) -> str:
        return "SHA256:" + hashlib.sha256(_sm2_spki(self._public)).hexdigest()

    @property
    def private_key(self) -> Any:
        """The private key object (tongsuopy); ``None`` if absent."""
        return self._private

    def public_pem(self) -> bytes | None:
        _, ser = _tongsuo()
        pem: bytes = self._public.public_bytes(
            ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo
        )
        return pem

    def sign(self, data: bytes) -> bytes:
        if self._private is None:
            raise self._no_private()
        der: bytes = self._private.sign(data, self._ecdsa)
        if self._format == "der":
            return der
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def verify(self, data: bytes, signature: bytes) -> None:
        if self._format == "raw":
            if len(signature) != 64:
                raise self._bad()
            signature = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
        try:
            self._public.verify(signature, data, self._ecdsa)
        except Exception:  # tongsuopy raises its own InvalidSignature, or ValueError on bad DER
            raise self._bad() from None


def _tongsuo() -> tuple[Any, Any]:
    try:
        from tongsuopy.crypto import serialization as ser
        from tongsuopy.crypto.asymciphers import ec as ec_sm
    except ImportError:
        raise ConfigError(_SM_EXTRA_HINT, field="algorithm") from None
    return ec_sm, ser


def _tongsuo_sm3() -> Any:
    from tongsuopy.crypto import hashes as sm_hashes

    return sm_hashes.SM3()


def _sm2_spki(public_key: Any) -> bytes:
    _, ser = _tongsuo()
    der: bytes = public_key.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
    return der


# --------------------------------------------------------------------------- options (YAML)

_KEY_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class AsymmetricKeyOptions(BaseModel):
    """A key pair or a peer's public key, from PEM files (relative paths: the config's folder).

    ``private_key`` may be an encrypted PEM (PKCS#8); its passphrase is read from the
    environment variable named by ``passphrase_env``, never from YAML.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_KEY_ID, description="the keyid peers see in Signature-Input")
    private_key: Path | None = Field(None, description="PEM file of the private key (own keys)")
    public_key: Path | None = Field(None, description="PEM file of the public key (peer keys)")
    passphrase_env: str | None = Field(None, description="env var holding the PEM passphrase")


class Sm2KeyOptions(AsymmetricKeyOptions):
    """An SM2 key; ``signature_format`` is ``der`` (GB/T 35276) or ``raw`` (``r‖s``)."""

    signature_format: Literal["der", "raw"] = "der"


class SecretKeyOptions(BaseModel):
    """A shared secret (``hmac-sha256``), base64 text in an env var or a file (not in YAML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_KEY_ID)
    secret_env: str | None = Field(None, description="env var holding the base64 secret")
    secret_file: Path | None = Field(None, description="file holding the base64 secret")


def _read(path: Path, field: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc.strerror}", field=field) from None


def _passphrase(env: str | None) -> bytes | None:
    if env is None:
        return None
    value = os.environ.get(env)
    if value is None:
        raise ConfigError(
            f"passphrase_env: environment variable {env} is not set", field="passphrase_env"
        )
    return value.encode()


def _load_private(pem: bytes, password: bytes | None, path: Path, *, sm2: bool) -> Any:
    loader: Callable[..., Any] = (
        _tongsuo()[1].load_pem_private_key if sm2 else serialization.load_pem_private_key
    )
    try:
        return loader(pem, password=password)
    except TypeError:
        hint = "set passphrase_env" if password is None else "it is not encrypted"
        raise ConfigError(
            f"private_key: {path} cannot be read: {hint}", field="private_key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        # never echo the library's message: it may quote key material
        raise ConfigError(
            f"private_key: {path} is not a PEM private key of a supported type, or the "
            "passphrase is wrong",
            field="private_key",
        ) from None


def _load_public(pem: bytes, path: Path, *, sm2: bool) -> Any:
    loader: Callable[[bytes], Any]
    loader = _tongsuo()[1].load_pem_public_key if sm2 else serialization.load_pem_public_key
    try:
        return loader(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            f"public_key: {path} is not a PEM public key of a supported type", field="public_key"
        ) from None


def _read_secret(options: SecretKeyOptions) -> bytes:
    if (options.secret_env is None) == (options.secret_file is None):
        raise ConfigError(
            f"key {options.id!r}: give exactly one of secret_env and secret_file", field="secret"
        )
    if options.secret_env is not None:
        text = os.environ.get(options.secret_env)
        if text is None:
            raise ConfigError(
                f"secret_env: environment variable {options.secret_env} is not set",
                field="secret_env",
            )
        where = f"environment variable {options.secret_env}"
        raw = text.encode()
    else:
        assert options.secret_file is not None
        raw = _read(options.secret_file, "secret_file")
        where = str(options.secret_file)
    try:
        return base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"key {options.id!r}: {where} is not base64", field="secret") from None


def _asymmetric_factory(cls: type[_CryptographySigner]) -> Callable[[Any], Signer]:
    def factory(options: AsymmetricKeyOptions) -> Signer:
        private = public = None
        if options.private_key is not None:
            pem = _read(options.private_key, "private_key")
            private = _load_private(
                pem, _passphrase(options.passphrase_env), options.private_key, sm2=False
            )
        if options.public_key is not None:
            public = _load_public(
                _read(options.public_key, "public_key"), options.public_key, sm2=False
            )
        return cls(options.id, private_key=private, public_key=public)

    return factory


def _sm2_factory(options: Sm2KeyOptions) -> Signer:
    _tongsuo()
    private = public = None
    if options.private_key is not None:
        pem = _read(options.private_key, "private_key")
        private = _load_private(
            pem, _passphrase(options.passphrase_env), options.private_key, sm2=True
        )
    if options.public_key is not None:
        public = _load_public(_read(options.public_key, "public_key"), options.public_key, sm2=True)
    return Sm2Sm3Signer(
        options.id,
        private_key=private,
        public_key=public,
        signature_format=options.signature_format,
    )


def _hmac_factory(options: SecretKeyOptions) -> Signer:
    return HmacSha256Signer(options.id, _read_secret(options))


#: The built-in signature algorithms, registered by :mod:`security.plugin`.
SIGNER_SPECS: list[SignerSpec] = [
    SignerSpec("ed25519", _asymmetric_factory(Ed25519Signer), AsymmetricKeyOptions, "EdDSA"),
    SignerSpec(
        "ecdsa-p256-sha256",
        _asymmetric_factory(EcdsaP256Signer),
        AsymmetricKeyOptions,
        "ECDSA P-256 / SHA-256, r||s",
    ),
    SignerSpec(
        "rsa-pss-sha512",
        _asymmetric_factory(RsaPssSha512Signer),
        AsymmetricKeyOptions,
        "RSASSA-PSS / SHA-512",
    ),
    SignerSpec("hmac-sha256", _hmac_factory, SecretKeyOptions, "HMAC-SHA-256, shared secret"),
    SignerSpec("sm2-sm3", _sm2_factory, Sm2KeyOptions, "SM2 / SM3 (GB/T 32918), needs jghub[sm]"),
]

#: Algorithm names of the built-in signers.
ALGORITHMS: tuple[str, ...] = tuple(spec.name for spec in SIGNER_SPECS)


def load_signer(algorithm: str, options: dict[str, Any], *, base_dir: Path | None = None) -> Signer:
    """Build a built-in signer from YAML-style options (paths relative to ``base_dir``)."""
    spec = next((s for s in SIGNER_SPECS if s.name == algorithm), None)
    if spec is None:
        raise ConfigError(
            f"unknown algorithm {algorithm!r}; built in: {', '.join(ALGORITHMS)}",
            field="algorithm",
        )
    model = spec.config_model.model_validate(_absolute(options, base_dir))
    return spec.factory(model)


def _absolute(options: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    if base_dir is None:
        return dict(options)
    out = dict(options)
    for key in ("private_key", "public_key", "secret_file"):
        if out.get(key) is not None:
            out[key] = base_dir / Path(out[key])
    return out


def generate_key(algorithm: str, key_id: str) -> KeySigner:
    """A new random key of ``algorithm`` (RSA: 3072 bits; HMAC: a 32-byte secret)."""
    if algorithm == "ed25519":
        return Ed25519Signer(key_id, private_key=ed25519.Ed25519PrivateKey.generate())
    if algorithm == "ecdsa-p256-sha256":
        return EcdsaP256Signer(key_id, private_key=ec.generate_private_key(ec.SECP256R1()))
    if algorithm == "rsa-pss-sha512":
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        return RsaPssSha512Signer(key_id, private_key=key)
    if algorithm == "hmac-sha256":
        return HmacSha256Signer(key_id, os.urandom(32))
    if algorithm == "sm2-sm3":
        ec_sm, _ = _tongsuo()
        return Sm2Sm3Signer(key_id, private_key=ec_sm.generate_private_key(ec_sm.SM2()))
    raise ConfigError(
        f"unknown algorithm {algorithm!r}; built in: {', '.join(ALGORITHMS)}", field="algorithm"
    )


def private_pem(signer: KeySigner, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM of an asymmetric signer's private key, encrypted when ``passphrase`` is set;
    for ``hmac-sha256`` the base64 text of the secret (never encrypted: protect the file)."""
    if isinstance(signer, HmacSha256Signer):
        return base64.b64encode(signer.secret) + b"\n"
    if isinstance(signer, Sm2Sm3Signer):
        _, ser = _tongsuo()
        enc: Any = ser.BestAvailableEncryption(passphrase) if passphrase else ser.NoEncryption()
        out: bytes = signer.private_key.private_bytes(
            ser.Encoding.PEM, ser.PrivateFormat.PKCS8, enc
        )
        return out
    if isinstance(signer, _CryptographySigner) and signer.private_key is not None:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        pem: bytes = signer.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        return pem
    raise ConfigError(f"key {signer.key_id!r} has no private key", field="private_key")


__all__ += ["MIN_SECRET_BYTES", "private_pem"]
