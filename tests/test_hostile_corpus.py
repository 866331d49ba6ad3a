"""The hostile-input corpus (tests/corpus/hostile/ plus cases built here): every case is refused
with a clear, stable code, and harms nothing — what was accepted before is still there, nothing
of the hostile input is stored, and a good record re-sent afterwards is recognised, not stored
twice. One test per case, through the real API / the real file source of one running hub."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp.test_utils import TestClient

from contracts.samples import sample_inspection
from hub.api import HUB_KEY, create_app
from hub.config import load_config
from hub.runtime import Hub
from tests.helpers import wait_until

CORPUS = Path(__file__).parent / "corpus" / "hostile"
TOKEN = "hostile-corpus-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SOAP_NS = "urn:jghub:dept-s:jcxx"


@dataclass
class Env:
    client: TestClient[Any, Any]
    drop: Path

    @property
    def hub(self) -> Hub:
        return self.client.app[HUB_KEY]  # type: ignore[index]

    async def messages(self) -> int:
        return int((await self.hub.store.counts())["messages"])


def _write_hub(tmp: Path) -> Path:
    systems = tmp / "systems"
    systems.mkdir()
    drop = tmp / "drop"
    drop.mkdir()
    docs = {
        "dept-a": {"name": "dept-a", "inbound": {"datasets": ["inspection"], "token": TOKEN}},
        "dept-s": {
            "name": "dept-s",
            "adapter": "soap",
            "adapter_options": {
                "operation": "SubmitJcxx",
                "namespace": SOAP_NS,
                "record_element": "jcxx",
                "force_list": ["inspectors"],
            },
            "inbound": {"datasets": ["inspection"], "token": TOKEN},
        },
        "dept-f": {
            "name": "dept-f",
            "inbound": {
                "datasets": ["inspection"],
                "source": {
                    "kind": "file_batch",
                    "directory": str(drop),
                    "poll_interval": 0.05,
                    "max_file_bytes": 64 * 1024,
                    "json_columns": ["inspectors"],
                },
            },
        },
    }
    for name, doc in docs.items():
        (systems / f"{name}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    hub = {
        "store": {"path": "data/hub.db", "durability": "normal"},
        "limits": {
            "max_body_bytes": 256 * 1024,
            "max_record_bytes": 64 * 1024,
            "max_json_depth": 16,
        },
        "systems": ["systems"],
    }
    path = tmp / "hub.yaml"
    path.write_text(yaml.safe_dump(hub))
    return path


@pytest.fixture
async def env(tmp_path: Path, hub_client: Any) -> AsyncIterator[Env]:
    cfg = load_config(_write_hub(tmp_path))
    client = await hub_client(create_app(cfg, hub=Hub(cfg)))
    e = Env(client, tmp_path / "drop")
    # accepted before the attack: it must survive every case
    r = await client.post(
        "/v1/systems/dept-a/records",
        json=sample_inspection(1),
        headers={**AUTH, "Idempotency-Key": "before-1"},
    )
    assert r.status == 202
    yield e
    await client.close()


async def _after(e: Env, before: int) -> None:
    """Nothing of the hostile input was stored, the earlier record is intact, and sending it
    again is recognised (nothing accepted twice)."""
    assert await e.messages() == before
    r = await e.client.post(
        "/v1/systems/dept-a/records",
        json=sample_inspection(1),
        headers={**AUTH, "Idempotency-Key": "before-1"},
    )
    assert r.status == 202
    assert await e.messages() == before


# --------------------------------------------------------------------------- over HTTP (JSON)

JSON_CASES = [
    ("malformed.json", "application/json", 400, "E_JSON"),
    ("not-an-object.json", "application/json", 422, "E_SCHEMA"),
    ("nan.json", "application/json", 400, "E_JSON"),
    ("lone-surrogate.json", "application/json", 400, "E_JSON"),
    ("gbk-declared-utf8.json", "application/json; charset=utf-8", 400, "E_JSON"),
    ("broken-line.ndjson", "application/x-ndjson", 400, "E_JSON"),
    ("sql-injection.json", "application/json", 422, "E_SCHEMA"),
]


@pytest.mark.parametrize(
    ("name", "ctype", "status", "code"), JSON_CASES, ids=[c[0] for c in JSON_CASES]
)
async def test_hostile_json(env: Env, name: str, ctype: str, status: int, code: str) -> None:
    before = await env.messages()
    r = await env.client.post(
        "/v1/systems/dept-a/records",
        data=(CORPUS / name).read_bytes(),
        headers={**AUTH, "Content-Type": ctype},
    )
    doc = await r.json()
    assert (r.status, doc["code"]) == (status, code), doc
    assert doc["detail"] and r.content_type == "application/problem+json"
    await _after(env, before)


async def test_hostile_json_nested_too_deep(env: Env) -> None:
    before = await env.messages()
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000  # past every parser's recursion limit
    r = await env.client.post(
        "/v1/systems/dept-a/records",
        data=deep,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    doc = await r.json()
    assert (r.status, doc["code"]) in {(400, "E_TOO_DEEP"), (422, "E_TOO_DEEP")}, doc
    await _after(env, before)


async def test_hostile_json_oversized_body(env: Env) -> None:
    before = await env.messages()
    big = b'{"inspection_no": "' + b"x" * (512 * 1024) + b'"}'
    r = await env.client.post(
        "/v1/systems/dept-a/records", data=big, headers={**AUTH, "Content-Type": "application/json"}
    )
    doc = await r.json()
    assert (r.status, doc["code"]) == (413, "E_TOO_LARGE"), doc
    await _after(env, before)


async def test_hostile_json_wrong_media_type(env: Env) -> None:
    before = await env.messages()
    r = await env.client.post(
        "/v1/systems/dept-a/records", data=b"<x/>", headers={**AUTH, "Content-Type": "text/xml"}
    )
    doc = await r.json()
    assert (r.status, doc["code"]) == (415, "E_MEDIA_TYPE"), doc
    await _after(env, before)


# --------------------------------------------------------------------------- over HTTP (SOAP)

XML_CASES = [
    ("billion-laughs.xml", "E_XML_UNSAFE"),
    ("xxe-file.xml", "E_XML_UNSAFE"),
    ("xxe-network.xml", "E_XML_UNSAFE"),
    ("external-dtd.xml", "E_XML_UNSAFE"),
    ("xinclude.xml", "E_XML_UNSAFE"),
    ("malformed.xml", "E_XML"),
]


@pytest.mark.parametrize(("name", "code"), XML_CASES, ids=[c[0] for c in XML_CASES])
async def test_hostile_xml(env: Env, name: str, code: str) -> None:
    before = await env.messages()
    r = await env.client.post(
        "/v1/systems/dept-s/records",
        data=(CORPUS / name).read_bytes(),
        headers={
            **AUTH,
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{SOAP_NS}/SubmitJcxx"',
        },
    )
    body = (await r.read()).decode()
    assert r.status in (400, 422, 500), body
    assert re.search(rf"\b{code}\b", body), body  # the SOAP Fault carries the stable code
    assert "root:" not in body  # nothing of /etc/passwd leaked into the answer
    await _after(env, before)


# --------------------------------------------------------------------------- batch files


def _drop(folder: Path, name: str, data: bytes, **manifest: Any) -> None:
    man = {"file": name, "records": 1, "sha256": hashlib.sha256(data).hexdigest(), **manifest}
    if "/" not in name and "\x00" not in name and not name.startswith("."):
        (folder / name).write_bytes(data)
    (folder / f"case-{abs(hash(name)) % 10**8}.csv.manifest.json").write_text(json.dumps(man))


async def _failed_with(e: Env, code: str) -> dict[str, Any]:
    failed = e.drop / "failed"

    def done() -> bool:
        return failed.exists() and any(failed.glob("*.error.json"))

    await wait_until(done, timeout=10)
    [err] = [json.loads(p.read_text()) for p in failed.glob("*.error.json")]
    assert err["code"] == code, err
    return err


def _csv(rec: dict[str, Any]) -> str:
    cols = list(rec)
    cells = [
        json.dumps(v, ensure_ascii=False) if isinstance(v, list) else str(v) for v in rec.values()
    ]
    quoted = ['"' + c.replace('"', '""') + '"' for c in cells]
    return ",".join(cols) + "\n" + ",".join(quoted) + "\n"


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sub/x.csv", "bad\x00.csv"])
async def test_hostile_file_name_in_manifest(env: Env, name: str) -> None:
    before = await env.messages()
    _drop(env.drop, name, b"inspection_no\nJC1\n")
    err = await _failed_with(env, "E_PATH")
    assert err["message"]
    await _after(env, before)


async def test_hostile_file_symlink_is_not_followed(env: Env) -> None:
    before = await env.messages()
    secret = env.drop.parent / "secret.csv"
    secret.write_text(_csv(sample_inspection(2)))
    os.symlink(secret, env.drop / "link.csv")
    data = secret.read_bytes()
    man = {"file": "link.csv", "records": 1, "sha256": hashlib.sha256(data).hexdigest()}
    (env.drop / "link.csv.manifest.json").write_text(json.dumps(man))
    err = await _failed_with(env, "E_PATH")
    assert err["file"] == "link.csv"
    assert secret.read_text() == _csv(sample_inspection(2))  # the link's target is untouched
    await _after(env, before)


async def test_hostile_file_wrong_encoding(env: Env) -> None:
    before = await env.messages()
    data = _csv(sample_inspection(3)).encode("gbk")
    man = {
        "file": "gbk.csv",
        "records": 1,
        "sha256": hashlib.sha256(data).hexdigest(),
        "encoding": "utf-8",
    }
    (env.drop / "gbk.csv").write_bytes(data)
    (env.drop / "gbk.csv.manifest.json").write_text(json.dumps(man))
    err = await _failed_with(env, "E_ENCODING")
    assert err["file"] == "gbk.csv" and "utf-8" in err["message"].lower()
    await _after(env, before)


async def test_hostile_file_digest_mismatch(env: Env) -> None:
    before = await env.messages()
    data = _csv(sample_inspection(4)).encode()
    man = {"file": "x.csv", "records": 1, "sha256": "0" * 64}
    (env.drop / "x.csv").write_bytes(data)
    (env.drop / "x.csv.manifest.json").write_text(json.dumps(man))
    err = await _failed_with(env, "E_MANIFEST")
    assert err["file"] == "x.csv" and err["field"] == "sha256"
    await _after(env, before)


async def test_csv_formula_injection_is_stored_as_plain_text(env: Env) -> None:
    """Not an error: a formula is data. It is stored verbatim (never evaluated) and a file of
    it is taken once — dropping the same file again adds nothing."""
    before = await env.messages()
    rec = {**sample_inspection(5), "counterpart_name": "=cmd|' /C calc'!A0"}
    data = _csv(rec).encode()
    man = {"file": "f.csv", "records": 1, "sha256": hashlib.sha256(data).hexdigest()}
    (env.drop / "f.csv").write_bytes(data)
    (env.drop / "f.csv.manifest.json").write_text(json.dumps(man))
    await wait_until(lambda: (env.drop / "done" / "f.csv").exists(), timeout=10)
    assert await env.messages() == before + 1
    [link] = await env.hub.store.quarantined("dept-f") or [None]
    assert link is None  # not refused
    # the same file again, under another name: recognised, nothing stored twice
    (env.drop / "f2.csv").write_bytes(data)
    (env.drop / "f2.csv.manifest.json").write_text(json.dumps({**man, "file": "f2.csv"}))
    await wait_until(lambda: (env.drop / "done" / "f2.csv").exists(), timeout=10)
    assert await env.messages() == before + 1
    stored = [
        orjson.loads(tr.payload)
        for tr in [await env.hub.store.trace(m) for m in await _ids(env)]
        if tr is not None
    ]
    assert any(s["counterpart_name"] == "=cmd|' /C calc'!A0" for s in stored)


async def _ids(e: Env) -> list[str]:
    import sqlite3

    db = sqlite3.connect(e.hub.config.store_path())
    try:
        return [r[0] for r in db.execute("SELECT id FROM messages")]
    finally:
        db.close()
