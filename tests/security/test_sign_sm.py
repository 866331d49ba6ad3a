"""Chinese national algorithms against published test vectors.

SM3 and SM4 come from ``cryptography`` (always installed); SM2 needs the ``sm`` extra.
Vectors: GB/T 32905-2016 (SM3) appendix A.1 "abc"; GB/T 32907-2016 (SM4) appendix A.1;
GB/T 32918.5-2017 / GM/T 0003.5-2012 SM2 signature example (recommended curve, user id
1234567812345678, message "message digest", fixed k, published r and s).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hub.errors import SignatureError
from security.signing import SM2_DEFAULT_USER_ID, Sm2Sm3Signer, load_signer, private_pem, sm3

SM2_D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
SM2_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
SM2_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
SM2_PUB_X = 0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020
SM2_PUB_Y = 0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13
MESSAGE = b"message digest"


def test_sm3_abc_vector() -> None:
    assert sm3(b"abc").hex() == ("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
    # appendix A.2: "abcd" repeated 16 times (512 bits)
    assert sm3(b"abcd" * 16).hex() == (
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    )


def test_sm4_standard_vector() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert (enc.update(key) + enc.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"


@pytest.fixture(scope="module")
def sm2_key() -> object:
    ec_sm = pytest.importorskip(
        "tongsuopy.crypto.asymciphers.ec",
        reason="SM2 needs the 'sm' extra (tongsuopy): pip install 'jghub[sm]'",
    )
    return ec_sm.derive_private_key(SM2_D, ec_sm.SM2())


def test_sm2_example_key_pair_matches_the_standard(sm2_key: object) -> None:
    numbers = sm2_key.public_key().public_numbers()  # type: ignore[attr-defined]
    assert (numbers.x, numbers.y) == (SM2_PUB_X, SM2_PUB_Y)
    assert SM2_DEFAULT_USER_ID == b"1234567812345678"


def test_sm2_verifies_the_published_signature(sm2_key: object) -> None:
    """The published (r, s) only verifies if Z is computed per the standard with the default
    user id; the library cannot fix k, so the published signature is verified instead."""
    public = Sm2Sm3Signer("gbt", public_key=sm2_key.public_key())  # type: ignore[attr-defined]
    der = encode_dss_signature(SM2_R, SM2_S)
    public.verify(MESSAGE, der)
    raw = Sm2Sm3Signer(
        "gbt-raw",
        public_key=sm2_key.public_key(),  # type: ignore[attr-defined]
        signature_format="raw",
    )
    raw.verify(MESSAGE, SM2_R.to_bytes(32, "big") + SM2_S.to_bytes(32, "big"))
    with pytest.raises(SignatureError):
        public.verify(b"message digesT", der)
    with pytest.raises(SignatureError):
        public.verify(MESSAGE, encode_dss_signature(SM2_R, SM2_S ^ 1))


def test_sm2_signatures_of_the_example_key_round_trip(sm2_key: object, tmp_path: Path) -> None:
    own = Sm2Sm3Signer("gbt", private_key=sm2_key)
    sig = own.sign(MESSAGE)
    assert sig[0] == 0x30  # DER SEQUENCE {r, s} (GB/T 35276)
    own.verify(MESSAGE, sig)
    # the same key through PEM files and the spec, as the keystore loads it
    (tmp_path / "sm2.pem").write_bytes(private_pem(own))
    (tmp_path / "sm2.pub.pem").write_bytes(own.public_pem() or b"")
    signer = load_signer("sm2-sm3", {"id": "s", "private_key": "sm2.pem"}, base_dir=tmp_path)
    peer = load_signer(
        "sm2-sm3",
        {"id": "p", "public_key": "sm2.pub.pem", "signature_format": "raw"},
        base_dir=tmp_path,
    )
    raw_signer = load_signer(
        "sm2-sm3",
        {"id": "s", "private_key": "sm2.pem", "signature_format": "raw"},
        base_dir=tmp_path,
    )
    raw_sig = raw_signer.sign(MESSAGE)
    assert len(raw_sig) == 64
    peer.verify(MESSAGE, raw_sig)
    own.verify(MESSAGE, signer.sign(MESSAGE))
