"""Signers of every built-in algorithm, with real keys: round trips, tampering, key files."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hub.errors import ConfigError, SignatureError
from hub.plugins import build_plugin_manager, load_registry
from hub.specs import Signer
from security.signing import (
    ALGORITHMS,
    EcdsaP256Signer,
    HmacSha256Signer,
    KeySigner,
    RsaPssSha512Signer,
    generate_key,
    load_signer,
    private_pem,
    sm2_available,
)

DATA = b'"@method": POST\n"@target-uri": https://hub.example/v1/x'
NEEDS_SM = {"sm2-sm3"}


def _algorithms() -> list[object]:
    return [
        pytest.param(
            a,
            marks=pytest.mark.skipif(
                a in NEEDS_SM and not sm2_available(),
                reason="the 'sm' extra (tongsuopy) is not installed: pip install 'jghub[sm]'",
            ),
        )
        for a in ALGORITHMS
    ]


_KEYS: dict[str, KeySigner] = {}


def key_of(algorithm: str) -> KeySigner:
    """One generated key per algorithm for the whole module (RSA generation is slow)."""
    if algorithm not in _KEYS:
        _KEYS[algorithm] = generate_key(algorithm, f"test-{algorithm}")
    return _KEYS[algorithm]


@pytest.mark.parametrize("algorithm", _algorithms())
def test_sign_and_verify_round_trip(algorithm: str) -> None:
    signer = key_of(algorithm)
    assert isinstance(signer, Signer)
    assert signer.algorithm == algorithm and signer.key_id == f"test-{algorithm}"
    sig = signer.sign(DATA)
    signer.verify(DATA, sig)
    with pytest.raises(SignatureError) as info:
        signer.verify(DATA + b" ", sig)
    assert info.value.code == "E_SIGNATURE" and info.value.field == "Signature"
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    with pytest.raises(SignatureError):
        signer.verify(DATA, flipped)
    with pytest.raises(SignatureError):
        signer.verify(DATA, b"")


@pytest.mark.parametrize("algorithm", _algorithms())
def test_key_files_load_through_the_signer_spec(algorithm: str, tmp_path: Path) -> None:
    """What the keystore does: PEM / secret files -> the spec's options -> a signer."""
    own = key_of(algorithm)
    if algorithm == "hmac-sha256":
        (tmp_path / "k.secret").write_bytes(private_pem(own))
        peer = load_signer(algorithm, {"id": "peer", "secret_file": "k.secret"}, base_dir=tmp_path)
        peer.verify(DATA, own.sign(DATA))
        return
    public = own.public_pem()
    assert public is not None
    (tmp_path / "k.pub.pem").write_bytes(public)
    (tmp_path / "k.pem").write_bytes(private_pem(own))
    peer = load_signer(algorithm, {"id": "peer", "public_key": "k.pub.pem"}, base_dir=tmp_path)
    peer.verify(DATA, own.sign(DATA))
    with pytest.raises(ConfigError) as info:
        peer.sign(DATA)
    assert info.value.code == "E_CONFIG" and "can verify but not sign" in info.value.message
    again = load_signer(algorithm, {"id": "own", "private_key": "k.pem"}, base_dir=tmp_path)
    own.verify(DATA, again.sign(DATA))
    assert isinstance(again, KeySigner) and again.fingerprint == own.fingerprint


@pytest.mark.parametrize(
    "algorithm", [a for a in _algorithms() if getattr(a, "values", ("",))[0] != "hmac-sha256"]
)
def test_encrypted_private_key_needs_the_passphrase_env(
    algorithm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = key_of(algorithm)
    (tmp_path / "k.pem").write_bytes(private_pem(own, b"correct horse"))
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "k.pem").read_bytes()
    opts = {"id": "own", "private_key": str(tmp_path / "k.pem"), "passphrase_env": "T_PASS"}
    with pytest.raises(ConfigError, match="environment variable T_PASS is not set"):
        load_signer(algorithm, opts)
    monkeypatch.setenv("T_PASS", "wrong horse")
    with pytest.raises(ConfigError) as info:
        load_signer(algorithm, opts)
    assert info.value.field == "private_key" and "wrong horse" not in str(info.value)
    monkeypatch.setenv("T_PASS", "correct horse")
    signer = load_signer(algorithm, opts)
    own.verify(DATA, signer.sign(DATA))
    with pytest.raises(ConfigError, match="set passphrase_env"):
        load_signer(algorithm, {"id": "own", "private_key": str(tmp_path / "k.pem")})


def test_secrets_never_appear_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = b"s" * 40
    signer = HmacSha256Signer("dept-b", secret)
    text = repr(signer) + signer.fingerprint
    assert "dept-b" in text and "hmac-sha256" in text
    assert secret.decode() not in text and base64.b64encode(secret).decode() not in text
    ed = generate_key("ed25519", "hub-1")
    assert "private" in repr(ed) and "BEGIN" not in repr(ed)
    monkeypatch.setenv("SHORT", base64.b64encode(b"x" * 8).decode())
    with pytest.raises(ConfigError) as info:
        load_signer("hmac-sha256", {"id": "h", "secret_env": "SHORT"})
    assert "8 bytes; at least 32" in info.value.message and "eHh4" not in info.value.message
    monkeypatch.setenv("NOT_B64", "not base64!!")
    with pytest.raises(ConfigError, match="environment variable NOT_B64 is not base64"):
        load_signer("hmac-sha256", {"id": "h", "secret_env": "NOT_B64"})


def test_wrong_key_types_and_unknown_options_are_config_errors(tmp_path: Path) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ConfigError, match="needs a P-256 key, not secp384r1"):
        EcdsaP256Signer("k", private_key=p384)
    with pytest.raises(ConfigError, match="the private key is not a rsa-pss-sha512 key"):
        RsaPssSha512Signer("k", private_key=p384)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError, match="at least 2048 bits"):
        RsaPssSha512Signer("k", private_key=small)
    other = generate_key("ecdsa-p256-sha256", "other")
    with pytest.raises(ConfigError, match="public_key does not belong to private_key"):
        EcdsaP256Signer(
            "k",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            public_key=other.private_key.public_key(),  # type: ignore[attr-defined]
        )
    with pytest.raises(ConfigError, match="unknown algorithm 'dsa'"):
        load_signer("dsa", {"id": "x"})
    with pytest.raises(ConfigError, match="cannot read"):
        load_signer("ed25519", {"id": "x", "public_key": str(tmp_path / "missing.pem")})
    (tmp_path / "junk.pem").write_text(
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(ConfigError, match="not a PEM public key"):
        load_signer("ed25519", {"id": "x", "public_key": str(tmp_path / "junk.pem")})


def test_security_plugin_registers_the_signers() -> None:
    reg = load_registry(build_plugin_manager())
    assert set(ALGORITHMS) <= set(reg.signers.names())
    assert reg.signers.owners["ed25519"] == "security"
    spec = reg.signers.get("ecdsa-p256-sha256")
    assert "id" in spec.config_model.model_fields and "public_key" in spec.config_model.model_fields
