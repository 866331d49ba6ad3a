"""Keystore from a real ``keys:`` section: rotation overlap, revocation, errors naming fields."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from hub.errors import ConfigError, SignatureError
from security.httpsig import sign_request, verify_request
from security.keystore import CHINA_TZ, KeysConfig, Keystore, load_keys_section
from security.signing import generate_key, private_pem


def _ts(*args: int) -> float:
    return dt.datetime(*args, tzinfo=CHINA_TZ).timestamp()  # type: ignore[misc]


def _write_keys(tmp: Path) -> None:
    keys = tmp / "keys"
    keys.mkdir()
    for kid in ("hub-2026", "hub-2027"):
        k = generate_key("ed25519", kid)
        (keys / f"{kid}.pem").write_bytes(private_pem(k, b"pw"))
    peer = generate_key("ecdsa-p256-sha256", "dept-a-1")
    (keys / "dept-a-1.pub.pem").write_bytes(peer.public_pem() or b"")
    (keys / "dept-a-1.pem").write_bytes(private_pem(peer))


HUB_YAML = """\
    keys:
      own:
        - {id: hub-2026, algorithm: ed25519, private_key: keys/hub-2026.pem,
           passphrase_env: HUB_KEY_PASS, valid_until: 2027-01-31}
        - {id: hub-2027, algorithm: ed25519, private_key: keys/hub-2027.pem,
           passphrase_env: HUB_KEY_PASS, valid_from: 2027-01-01}
      peers:
        dept-a:
          - {id: dept-a-1, algorithm: ecdsa-p256-sha256, public_key: keys/dept-a-1.pub.pem,
             valid_until: 2027-01-31}
    """


@pytest.fixture
def hub_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _write_keys(tmp_path)
    monkeypatch.setenv("HUB_KEY_PASS", "pw")
    path = tmp_path / "hub.yaml"
    path.write_text(textwrap.dedent(HUB_YAML), encoding="utf-8")
    return path


def test_rotation_overlap_both_verify_only_newest_signs(hub_yaml: Path) -> None:
    cfg, base = load_keys_section(hub_yaml)
    store = Keystore.from_config(cfg, base_dir=base)
    assert [k.key_id for k in store.entries()] == ["hub-2026", "hub-2027", "dept-a-1"]
    before = _ts(2026, 12, 15)
    overlap = _ts(2027, 1, 15)
    after = _ts(2027, 2, 1)
    assert store.signer(before).key_id == "hub-2026"
    assert store.signer(overlap).key_id == "hub-2027"  # only the newest signs
    assert store.signer(after).key_id == "hub-2027"
    # during the overlap both verify; afterwards the old one is expired
    assert store.resolve_key("hub-2026", overlap).owner is None
    assert store.resolve_key("hub-2027", overlap).owner is None
    with pytest.raises(SignatureError, match="'hub-2026' is expired"):
        store.resolve_key("hub-2026", after)
    with pytest.raises(SignatureError, match="not yet valid"):
        store.resolve_key("hub-2027", before)
    # valid_until is a whole day in China Standard Time
    assert store.resolve_key("dept-a-1", _ts(2027, 1, 31, 23, 59)).owner == "dept-a"
    with pytest.raises(SignatureError, match="expired"):
        store.resolve_key("dept-a-1", _ts(2027, 2, 1, 0, 0))


def test_keystore_verifies_a_peer_request_and_revocation(hub_yaml: Path) -> None:
    cfg, base = load_keys_section(hub_yaml)
    store = Keystore.from_config(cfg, base_dir=base)
    peer_own = Keystore.from_config(
        KeysConfig.model_validate(
            {
                "own": [
                    {
                        "id": "dept-a-1",
                        "algorithm": "ecdsa-p256-sha256",
                        "private_key": "keys/dept-a-1.pem",
                    }
                ]
            }
        ),
        base_dir=base,
    )
    now = _ts(2026, 6, 1)
    url = "https://hub.example/v1/systems/dept-a/records"
    headers: dict[str, str] = {}
    sign_request("POST", url, headers, b"{}", signer=peer_own.signer(now), created=now)
    sig = verify_request("POST", url, headers, b"{}", keys=store, now=now)
    assert sig.owner == "dept-a" and sig.algorithm == "ecdsa-p256-sha256"
    store.revoke("dept-a-1")
    with pytest.raises(SignatureError, match="revoked"):
        verify_request("POST", url, headers, b"{}", keys=store, now=now)


def test_revoked_in_config_and_no_valid_own_key(tmp_path: Path) -> None:
    k = generate_key("hmac-sha256", "h1")
    (tmp_path / "h1.secret").write_bytes(private_pem(k))
    cfg = KeysConfig.model_validate(
        {
            "own": [
                {
                    "id": "h1",
                    "algorithm": "hmac-sha256",
                    "secret_file": "h1.secret",
                    "revoked": True,
                }
            ]
        }
    )
    store = Keystore.from_config(cfg, base_dir=tmp_path)
    with pytest.raises(ConfigError) as info:
        store.signer(0)
    assert info.value.field == "keys.own" and "no own key is valid" in info.value.message
    with pytest.raises(SignatureError, match="revoked"):
        store.resolve_key("h1", 0)


@pytest.mark.parametrize(
    ("entry", "field", "says"),
    [
        (
            {"id": "x", "algorithm": "dsa", "public_key": "a.pem"},
            "keys.own[0].algorithm",
            "unknown algorithm 'dsa'",
        ),
        (
            {"id": "x", "algorithm": "ed25519", "privat_key": "a.pem"},
            "keys.own[0].privat_key",
            "allowed keys: id, algorithm",
        ),
        (
            {"id": "x", "algorithm": "hmac-sha256", "public_key": "a.pem"},
            "keys.own[0].public_key",
            "Extra inputs are not permitted",
        ),
        (
            {"id": "x", "algorithm": "ed25519", "public_key": "missing.pem"},
            "keys.own[0].public_key",
            "cannot read",
        ),
        (
            {"id": "x", "algorithm": "ed25519", "private_key": "k.pem", "passphrase_env": "NOPE_X"},
            "keys.own[0].passphrase_env",
            "NOPE_X is not set",
        ),
    ],
)
def test_config_errors_name_the_field(
    tmp_path: Path, entry: dict[str, str], field: str, says: str
) -> None:
    (tmp_path / "k.pem").write_bytes(private_pem(generate_key("ed25519", "k"), b"pw"))
    with pytest.raises(ConfigError) as info:
        Keystore.from_config(KeysConfig.model_validate({"own": [entry]}), base_dir=tmp_path)
    assert info.value.code == "E_CONFIG" and info.value.field == field
    assert says in info.value.message


def test_yaml_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("keys:\n  own: []\n  peer: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_keys_section(path)
    assert "hub.yaml:3" in info.value.message and info.value.field == "keys.peer"
    path.write_text(
        "keys:\n  own:\n    - {id: a, algorithm: ed25519}\n  peers:\n"
        "    d: [{id: a, algorithm: ed25519}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="key id 'a' is used twice"):
        load_keys_section(path)
