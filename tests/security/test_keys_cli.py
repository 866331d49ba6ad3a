"""``jghub keys`` through the real CLI app (typer's runner), on real key files."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli import app
from security.httpsig import sign_request, verify_request
from security.keystore import KeysConfig, Keystore, load_keys_section
from security.signing import load_signer

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_generate_list_rotate_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUB_KEY_PASS", "long passphrase")
    code, out, _ = _run(
        "keys",
        "generate",
        "--algorithm",
        "ed25519",
        "--id",
        "hub-2026",
        "--out",
        "keys",
        "--passphrase-env",
        "HUB_KEY_PASS",
    )
    assert code == 0, out
    pem = (tmp_path / "keys" / "hub-2026.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert os.stat(tmp_path / "keys" / "hub-2026.pem").st_mode & 0o077 == 0
    assert "private_key: keys/hub-2026.pem" in out and "passphrase_env: HUB_KEY_PASS" in out
    code, out, _ = _run(
        "keys", "generate", "-a", "hmac-sha256", "--id", "dept-b-1", "--out", "keys"
    )
    assert code == 0 and "KCV:" in out
    secret = (tmp_path / "keys" / "dept-b-1.secret").read_text().strip()
    assert secret not in out

    (tmp_path / "hub.yaml").write_text(
        textwrap.dedent(
            """\
            keys:
              own:
                - {id: hub-2026, algorithm: ed25519, private_key: keys/hub-2026.pem,
                   passphrase_env: HUB_KEY_PASS}
              peers:
                dept-b: [{id: dept-b-1, algorithm: hmac-sha256, secret_file: keys/dept-b-1.secret}]
            """
        ),
        encoding="utf-8",
    )
    code, out, _ = _run("keys", "list", "--config", "hub.yaml")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "OWNER", "ALGORITHM"]
    assert "hub-2026" in lines[1] and "(hub)" in lines[1] and "valid (signs)" in lines[1]
    assert "SHA256:" in lines[1]
    assert "dept-b-1" in lines[2] and "dept-b" in lines[2] and "KCV:" in lines[2]
    assert secret not in out and "long passphrase" not in out and "BEGIN" not in out

    code, out, _ = _run("keys", "export-public", "hub-2026", "--config", "hub.yaml")
    assert code == 0 and out.startswith("-----BEGIN PUBLIC KEY-----")
    (tmp_path / "peer-view.pub.pem").write_text(out)
    peer_view = load_signer(
        "ed25519", {"id": "hub-2026", "public_key": "peer-view.pub.pem"}, base_dir=tmp_path
    )
    cfg, base = load_keys_section(tmp_path / "hub.yaml")
    own = Keystore.from_config(cfg, base_dir=base).signer(0)
    peer_view.verify(b"x", own.sign(b"x"))

    code, _, err = _run("keys", "export-public", "dept-b-1", "--config", "hub.yaml")
    assert code == 1 and "E_CONFIG" in err and "shared secret" in err
    code, _, err = _run("keys", "export-public", "nope", "--config", "hub.yaml")
    assert code == 1 and "E_SIGNATURE" in err and "unknown key id 'nope'" in err

    code, out, _ = _run(
        "keys",
        "rotate",
        "--config",
        "hub.yaml",
        "--id",
        "hub-2027",
        "--out",
        "keys",
        "--starts",
        "2027-01-01",
        "--overlap-days",
        "31",
        "--passphrase-env",
        "HUB_KEY_PASS",
    )
    assert code == 0, out
    assert "give hub-2026 valid_until: 2027-02-01T00:00:00+08:00" in out
    assert "id: hub-2027" in out and "valid_from: '2027-01-01T00:00:00+08:00'" in out
    # paste what rotate printed; the new key verifies what the old cannot
    entry = KeysConfig.model_validate(
        {
            "own": [
                {
                    "id": "hub-2027",
                    "algorithm": "ed25519",
                    "private_key": "keys/hub-2027.pem",
                    "passphrase_env": "HUB_KEY_PASS",
                    "valid_from": "2027-01-01T00:00:00+08:00",
                }
            ]
        }
    )
    store = Keystore.from_config(entry, base_dir=tmp_path)
    headers: dict[str, str] = {}
    when = 1_800_000_000.0  # 2027-01-15
    sign_request(
        "POST", "https://h.example/x", headers, b"", signer=store.signer(when), created=when
    )
    assert (
        verify_request("POST", "https://h.example/x", headers, b"", keys=store, now=when).key_id
        == "hub-2027"
    )


def test_cli_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _run("keys", "generate", "-a", "dsa", "--id", "x", "--out", "k")
    assert code == 1 and "E_CONFIG" in err and "unknown algorithm 'dsa'" in err
    code, _, err = _run(
        "keys",
        "generate",
        "-a",
        "ed25519",
        "--id",
        "x",
        "--out",
        "k",
        "--passphrase-env",
        "UNSET_VAR_X",
    )
    assert code == 1 and "UNSET_VAR_X is not set" in err
    assert _run("keys", "generate", "-a", "ed25519", "--id", "x", "--out", "k")[0] == 0
    code, _, err = _run("keys", "generate", "-a", "ed25519", "--id", "x", "--out", "k")
    assert code == 1 and "exists" in err
    (tmp_path / "hub.yaml").write_text("keys:\n  own: [{id: x, algorithm: ed25519}]\n")
    code, _, err = _run("keys", "list", "--config", "hub.yaml")
    assert code == 1 and "E_CONFIG" in err and "keys.own[0]" in err
    (tmp_path / "hub.yaml").write_text(
        "keys:\n  own: [{id: x, algorithm: ed25519, private_key: k/x.pem}]\n"
    )
    code, _, err = _run(
        "keys", "rotate", "--config", "hub.yaml", "--id", "y", "--out", "k", "--starts", "soon"
    )
    assert code == 1 and "E_PARAM" in err
