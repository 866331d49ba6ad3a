"""``jghub check SYSTEM.yaml --samples DIR [--live]``: every sample record through decode,
mapping, contract and governance, offline; the exact errors; a non-zero exit on any."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import orjson
import yaml
from typer.testing import CliRunner, Result

from contracts.samples import sample_inspection
from hub.cli import app


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def system_file(tmp: Path, **extra: object) -> Path:
    doc = {
        "name": "dept-x",
        "adapter": "json",
        "inbound": {"datasets": ["inspection"]},
        "governance": {
            "inspection": {"dedupe": {"key": ["inspection_no"]}, "link": ["counterpart_code"]}
        },
        **extra,
    }
    path = tmp / "dept-x.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


def test_good_samples_print_the_canonical_record(tmp_path: Path) -> None:
    sys_file = system_file(tmp_path)
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "one.json").write_bytes(orjson.dumps(sample_inspection(1)))
    (samples / "batch.ndjson").write_bytes(
        b"\n".join(orjson.dumps(sample_inspection(i)) for i in (2, 3))
    )
    r = run("check", sys_file, "--samples", samples)
    assert r.exit_code == 0, r.output
    assert "3 of 3 sample records ok" in r.output
    assert f"business key '{sample_inspection(1)['inspection_no']}'" in r.output
    assert "linked to subject counterpart_code=" in r.output
    r = run("check", sys_file, "--samples", samples, "--json")
    doc = json.loads(r.output.split("\n", 1)[1])  # after the "ok <file>" line
    assert doc["ok"] is True
    assert doc["records"][0]["canonical"]["inspection_no"] == sample_inspection(2)["inspection_no"]


def test_bad_sample_names_the_field_and_exits_1(tmp_path: Path) -> None:
    sys_file = system_file(tmp_path)
    samples = tmp_path / "samples"
    samples.mkdir()
    bad = {**sample_inspection(1), "counterpart_code": "91330106MA2B3C4D5X"}
    (samples / "bad.json").write_bytes(orjson.dumps([sample_inspection(2), bad]))
    (samples / "broken.json").write_bytes(b'{"no": ')
    r = run("check", sys_file, "--samples", samples)
    assert r.exit_code == 1
    assert "ok   " + str(samples / "bad.json") + " #0" in r.output
    line = next(x for x in r.output.splitlines() if "bad.json #1" in x)
    assert line.startswith("FAIL") and "E_SCHEMA" in line and "[counterpart_code]" in line
    assert any("broken.json #0" in x and "E_JSON" in x for x in r.output.splitlines())


def test_samples_need_one_system_file_and_a_folder(tmp_path: Path) -> None:
    sys_file = system_file(tmp_path)
    r = run("check", sys_file, sys_file, "--samples", tmp_path)
    assert r.exit_code == 2 and "one system file" in r.output
    r = run("check", sys_file, "--samples", tmp_path / "nope")
    assert r.exit_code == 1 and "no such folder" in r.output
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run("check", sys_file, "--samples", empty)
    assert r.exit_code == 1 and "no sample files" in r.output


def test_live_reports_an_unreachable_endpoint(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    sys_file = system_file(
        tmp_path, outbound={"transport": "http_json", "url": f"http://127.0.0.1:{port}/in"}
    )
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "one.json").write_bytes(orjson.dumps(sample_inspection(1)))
    assert run("check", sys_file, "--samples", samples).exit_code == 0  # offline: fine
    r = run("check", sys_file, "--samples", samples, "--live")
    assert r.exit_code == 1
    line = next(x for x in r.output.splitlines() if "not reachable" in x)
    assert line.split()[1] == "E_UNREACHABLE" and "dept-x outbound:" in line


def test_live_checks_the_keys_a_signing_system_needs(tmp_path: Path) -> None:
    from security.signing import generate_key

    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "one.json").write_bytes(orjson.dumps(sample_inspection(1)))
    (tmp_path / "systems").mkdir()
    sys_file = tmp_path / "systems" / "dept-x.yaml"
    sys_file.write_text(
        yaml.safe_dump({"name": "dept-x", "inbound": {"datasets": ["inspection"], "signed": True}})
    )
    hub_file = tmp_path / "hub.yaml"
    hub_file.write_text(yaml.safe_dump({"systems": ["systems"]}))
    r = run("check", sys_file, "--samples", samples, "--live", "-c", hub_file)
    assert r.exit_code == 1 and "keys.peers.dept-x has no key" in r.output
    # a key whose file is missing is named
    doc = {
        "systems": ["systems"],
        "keys": {
            "peers": {"dept-x": [{"id": "x1", "algorithm": "ed25519", "public_key": "x1.pem"}]}
        },
    }
    hub_file.write_text(yaml.safe_dump(doc))
    r = run("check", sys_file, "--samples", samples, "--live", "-c", hub_file)
    assert r.exit_code == 1 and "x1.pem" in r.output
    (tmp_path / "x1.pem").write_bytes(generate_key("ed25519", "x1").public_pem() or b"")
    r = run("check", sys_file, "--samples", samples, "--live", "-c", hub_file)
    assert r.exit_code == 0, r.output
