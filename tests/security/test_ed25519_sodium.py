"""Ed25519 verification through libsodium (PyNaCl) agrees with OpenSSL (cryptography).

``Ed25519Signer.verify`` takes libsodium's verifier when PyNaCl is installed (about twice as
fast); these tests pin that both accept exactly the honest signatures and refuse tampered
ones with the same error, and that the RFC 8032 test vectors verify."""

from __future__ import annotations

import os

import nacl  # noqa: F401  (a dependency: the path under test)
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.errors import SignatureError
from security.signing import Ed25519Signer

#: RFC 8032 §7.1, TESTs 1-3: (public key, message, signature), hex
VECTORS = [
    (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


def _public(hex_key: str) -> Ed25519Signer:
    key = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_key))
    return Ed25519Signer("rfc8032", public_key=key)


@pytest.mark.parametrize(("pub", "msg", "sig"), VECTORS)
def test_rfc8032_vectors_verify(pub: str, msg: str, sig: str) -> None:
    signer = _public(pub)
    assert signer._sodium_key() is not None  # the libsodium path is the one taken
    signer.verify(bytes.fromhex(msg), bytes.fromhex(sig))
    with pytest.raises(SignatureError) as caught:
        signer.verify(bytes.fromhex(msg) + b"!", bytes.fromhex(sig))
    assert (caught.value.code, caught.value.field) == ("E_SIGNATURE", "Signature")


def _openssl_accepts(key: ed25519.Ed25519PublicKey, data: bytes, sig: bytes) -> bool:
    try:
        key.verify(sig, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _sodium_accepts(signer: Ed25519Signer, data: bytes, sig: bytes) -> bool:
    try:
        signer.verify(data, sig)
    except SignatureError:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=2048),
    flip=st.integers(min_value=0, max_value=64 * 8 - 1),
    cut=st.integers(min_value=0, max_value=70),
)
def test_libsodium_and_openssl_agree(data: bytes, flip: int, cut: int) -> None:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(os.urandom(32))
    signer = Ed25519Signer("k", public_key=private.public_key())
    public = private.public_key()
    good = private.sign(data)
    assert _sodium_accepts(signer, data, good) and _openssl_accepts(public, data, good)
    flipped = bytearray(good)
    flipped[flip // 8] ^= 1 << (flip % 8)
    tampered = bytes(flipped)
    assert _sodium_accepts(signer, data, tampered) == _openssl_accepts(public, data, tampered)
    assert not _sodium_accepts(signer, data, tampered)
    wrong_length = (good + good)[: cut if cut != 64 else 65]  # never the right length
    assert not _sodium_accepts(signer, data, wrong_length)
    assert not _sodium_accepts(signer, data + b"x", good)
    other = ed25519.Ed25519PrivateKey.generate().sign(data)
    assert not _sodium_accepts(signer, data, other)


def test_only_the_libsodium_path_may_run_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``verify_releases_gil`` (what ``BatchVerifier`` asks before handing a check to its
    thread) is true with PyNaCl, false on OpenSSL's path, which holds the GIL."""
    import security.signing

    assert _public(VECTORS[0][0]).verify_releases_gil
    monkeypatch.setattr(security.signing, "_SodiumVerifyKey", None)
    assert not _public(VECTORS[0][0]).verify_releases_gil
