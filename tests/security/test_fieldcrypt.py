"""Field-level encryption with envelope keys on a real security database: AES-256-GCM and
SM4-GCM (standard vectors), moved/altered values, master key rotation without re-encryption."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.backends.openssl.backend import backend
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hub.errors import ConfigError, DecryptError
from security.fieldcrypt import (
    FieldCryptSettings,
    KeyRing,
    MasterKey,
    _aead,
    _unwrap,
    is_encrypted,
    split_path,
)
from security.secdb import SQLiteSecurityDB

HAS_SM4 = backend.cipher_supported(algorithms.SM4(b"\0" * 16), modes.GCM(b"\0" * 12))
needs_sm4 = pytest.mark.skipif(not HAS_SM4, reason="this OpenSSL has no SM4-GCM")

RECORD = {
    "行政相对人名称": "某某科技有限公司",
    "法定代表人": {"姓名": "王五", "证件号码": "11010519491231002X"},
    "罚款金额": 1.5,
    "检查人员": [{"姓名": "赵六", "执法证号": "ZF-001"}, {"姓名": "钱七", "执法证号": "ZF-002"}],
}
PATHS = ["法定代表人.证件号码", "罚款金额", "检查人员[].执法证号", "不存在的字段"]


async def _ring(tmp_path: Path, algorithm: str = "aes-256-gcm") -> tuple[SQLiteSecurityDB, KeyRing]:
    db = SQLiteSecurityDB(tmp_path / "security.db")
    await db.open()
    ring = KeyRing(db, MasterKey.generate("mk-1", algorithm))  # type: ignore[arg-type]
    await ring.load()
    await ring.ensure(["penalty", "inspection"])
    return db, ring


@pytest.mark.parametrize("algorithm", ["aes-256-gcm", pytest.param("sm4-gcm", marks=needs_sm4)])
async def test_fields_round_trip_and_only_they_change(tmp_path: Path, algorithm: str) -> None:
    db, ring = await _ring(tmp_path, algorithm)
    c = ring.cipher("penalty", PATHS)
    enc = c.encrypt_fields(RECORD)
    await db.close()
    assert enc["行政相对人名称"] == RECORD["行政相对人名称"]
    assert is_encrypted(enc["法定代表人"]["证件号码"]) and is_encrypted(enc["罚款金额"])
    assert all(is_encrypted(p["执法证号"]) and not is_encrypted(p["姓名"]) for p in enc["检查人员"])
    assert "不存在的字段" not in enc
    assert enc["法定代表人"]["证件号码"].split(":")[2].startswith("dk-")
    assert RECORD["法定代表人"]["证件号码"] == "11010519491231002X"  # input not modified
    assert c.decrypt_fields(enc) == RECORD  # the number comes back a number
    assert c.encrypt_fields(enc) == enc  # already encrypted values stay as they are
    # the same value encrypts differently every time (random nonces)
    assert c.encrypt_fields(RECORD)["罚款金额"] != enc["罚款金额"]


async def test_a_value_moved_to_another_field_or_dataset_does_not_decrypt(tmp_path: Path) -> None:
    db, ring = await _ring(tmp_path)
    penalty = ring.cipher("penalty", ["a", "b"])
    enc = penalty.encrypt_fields({"a": "secret-a", "b": "secret-b"})
    swapped = {"a": enc["b"], "b": enc["a"]}
    with pytest.raises(DecryptError) as err:
        penalty.decrypt_fields(swapped)
    assert err.value.code == "E_DECRYPT" and err.value.field == "a"
    other = ring.cipher("inspection", ["a"])
    with pytest.raises(DecryptError):
        other.decrypt_fields({"a": enc["a"]})
    # one flipped character of the ciphertext
    v = enc["a"]
    altered = v[:-3] + ("A" if v[-3] != "A" else "B") + v[-2:]
    with pytest.raises(DecryptError) as err:
        penalty.decrypt_fields({"a": altered})
    assert err.value.field == "a"
    with pytest.raises(DecryptError) as err:
        penalty.decrypt_fields({"b": "enc:v1:dk-unknown:AAAA"})
    assert "unknown data key" in err.value.message
    await db.close()
    assert penalty.decrypt_fields({"a": "plain"}) == {"a": "plain"}


async def test_master_key_rotation_rewraps_without_reencrypting(tmp_path: Path) -> None:
    db, ring = await _ring(tmp_path)
    c = ring.cipher("penalty", ["x"])
    enc = c.encrypt_fields({"x": "证件号码"})
    old_master = ring.master
    new_master = MasterKey.generate("mk-2")
    assert await ring.rewrap(new_master) == 2
    rows = await db.data_keys()
    assert {r.master_key_id for r in rows} == {"mk-2"}

    # a fresh process with only the new master key reads the old ciphertext
    fresh = KeyRing(db, new_master)
    await fresh.load()
    assert fresh.cipher("penalty", ["x"]).decrypt_fields(enc) == {"x": "证件号码"}
    # the old master key alone no longer opens anything
    stale = KeyRing(db, old_master)
    with pytest.raises(ConfigError) as err:
        await stale.load()
    assert err.value.field == "master_key_id"
    # a wrong key under the right id is caught too
    wrong = KeyRing(db, MasterKey.generate("mk-2"))
    with pytest.raises(ConfigError) as err:
        await wrong.load()
    assert "does not unwrap" in err.value.message
    await db.close()


async def test_data_key_rotation_keeps_old_values_readable(tmp_path: Path) -> None:
    db, ring = await _ring(tmp_path)
    c = ring.cipher("penalty", ["x"])
    before = c.encrypt_fields({"x": 1})
    new_id = await ring.rotate_data_key("penalty")
    after = c.encrypt_fields({"x": 2})
    reloaded = KeyRing(db, ring.master)
    await reloaded.load()
    await db.close()
    assert after["x"].split(":")[2] == new_id != before["x"].split(":")[2]
    rc = reloaded.cipher("penalty", ["x"])
    assert rc.decrypt_fields(before) == {"x": 1} and rc.decrypt_fields(after) == {"x": 2}


async def test_wrapped_keys_only_are_stored(tmp_path: Path) -> None:
    db, ring = await _ring(tmp_path)
    rows = await db.data_keys()
    await db.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("security.db*"))
    for row in rows:
        plain = _unwrap(ring.master, row)
        assert len(plain) == 32
        assert plain not in raw and base64.b64encode(plain) not in raw
        assert len(base64.urlsafe_b64decode(row.wrapped + "==")) == 12 + 32 + 16


def test_master_key_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mk = MasterKey.generate("mk-1")
    (tmp_path / "master.key").write_text(base64.b64encode(mk.key).decode() + "\n")
    s = FieldCryptSettings(master_key_file=Path("master.key"), master_key_id="mk-1")
    assert MasterKey.load(s, tmp_path).key == mk.key
    assert "key=" not in repr(mk) and base64.b64encode(mk.key).decode() not in repr(mk)
    monkeypatch.setenv("TEST_MK", base64.b64encode(b"short").decode())
    with pytest.raises(ConfigError) as err:
        MasterKey.load(FieldCryptSettings(master_key_env="TEST_MK"))
    assert "32-byte" in err.value.message and err.value.code == "E_CONFIG"
    with pytest.raises(ConfigError):
        MasterKey.load(FieldCryptSettings(master_key_env="TEST_MK_UNSET"))
    with pytest.raises(ValueError):
        FieldCryptSettings()  # neither file nor env


def test_field_paths() -> None:
    assert split_path("a.b[].c") == ["a", "b", "[]", "c"]
    assert split_path("m[][]") == ["m", "[]", "[]"]
    with pytest.raises(ConfigError):
        split_path("a..b")


@needs_sm4
def test_sm4_standard_vectors() -> None:
    """GB/T 32907-2016 appendix A (one block), and the SM4-GCM vector of RFC 8998 A.1
    through the AEAD the field cipher uses."""
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    ecb = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert (ecb.update(key) + ecb.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"

    nonce = bytes.fromhex("00001234567800000000ABCD")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    pt = bytes.fromhex(
        "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
        "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
    )
    expected = bytes.fromhex(
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        "83DE3541E4C2B58177E065A9BF7B62EC"
    )
    sm4 = _aead("sm4-gcm", key)
    assert sm4.encrypt(nonce, pt, aad) == expected
    assert sm4.decrypt(nonce, expected, aad) == pt
