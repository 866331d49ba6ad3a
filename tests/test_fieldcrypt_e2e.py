"""Field encryption at rest and masking on output, through the real hub: the SQLite file never
holds the clear values, targets get them, duplicates are still recognised, and callers see
clear or masked values by role (security.fieldcrypt, security.masking)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp.test_utils import TestClient

from contracts.samples import sample_inspection
from hub.api import HUB_KEY, create_app
from hub.config import load_config
from hub.peers.sink import Sink
from hub.runtime import Hub
from tests.helpers import wait_until, write_config

RECORDS = "/v1/systems/dept-a/records"


@pytest.fixture
def master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JGHUB_TEST_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())


def crypt_config(tmp: Path, sink_url: str) -> Path:
    path = write_config(
        tmp,
        {"sink": {"url": sink_url}},
        token="static-dept-a",
        source_extra={"governance": {"inspection": {"dedupe": {"key": ["inspection_no"]}}}},
    )
    doc = yaml.safe_load(path.read_text())
    doc["security"] = {
        "db": {"path": "data/security.db", "durability": "normal"},
        "tokens": {"pepper_env": None},
        "fieldcrypt": {
            "algorithm": "aes-256-gcm",
            "master_key_env": "JGHUB_TEST_MASTER_KEY",
            "datasets": {
                "inspection": ["counterpart_code", "inspectors[].law_enforcement_cert_no"]
            },
        },
        "masking": {
            "inspection": [
                {"path": "inspectors[].name", "kind": "name", "reveal_to": ["system"]},
                {
                    "path": "counterpart_code",
                    "kind": "partial",
                    "keep_start": 4,
                    "keep_end": 2,
                    "reveal_to": ["system"],
                },
            ]
        },
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


async def test_encrypted_at_rest_clear_to_targets_masked_for_ops(
    tmp_path: Path, aiohttp_client: Any, master_key: None
) -> None:
    sink = Sink()
    await sink.start()
    try:
        cfg = load_config(crypt_config(tmp_path, sink.url))
        client: TestClient[Any, Any] = await aiohttp_client(create_app(cfg, hub=Hub(cfg)))
        hub: Hub = client.app[HUB_KEY]  # type: ignore[index]
        rec = sample_inspection(1)
        auth = {"Authorization": "Bearer static-dept-a"}
        r = await client.post(RECORDS, json=rec, headers={**auth, "Idempotency-Key": "k-1"})
        assert r.status == 202, await r.json()
        mid = (await r.json())["id"]
        # the same record again: same key -> duplicate (not a conflict), no key -> dedupe
        again = await client.post(RECORDS, json=rec, headers={**auth, "Idempotency-Key": "k-1"})
        assert again.status == 202 and (await again.json())["id"] == mid
        copy = await client.post(RECORDS, json=[rec], headers=auth)
        assert (await copy.json())["duplicates"] == [0]
        await wait_until(lambda: len(sink.applied) == 1)
        delivered = next(iter(sink.applied.values()))
        assert delivered["counterpart_code"] == rec["counterpart_code"]  # clear to the target
        assert delivered["inspectors"][0]["law_enforcement_cert_no"] == "33010200001"
        await client.close()
        raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("hub.db*"))
        assert rec["counterpart_code"].encode() not in raw  # never clear at rest
        assert b"33010200001" not in raw and b"enc:v1:" in raw
        # reading it back by role
        cfg = load_config(crypt_config(tmp_path, sink.url))
        client = await aiohttp_client(create_app(cfg, hub=Hub(cfg)))
        hub = client.app[HUB_KEY]  # type: ignore[index]
        tokens = hub.guard.authenticator.tokens
        ops = await tokens.create(name="ops", roles=["ops"], grants=["payload.read"])
        own = await tokens.create(name="a", roles=["system"], system="dept-a")
        doc = await (
            await client.get(
                f"/v1/messages/{mid}", headers={"Authorization": f"Bearer {ops.token}"}
            )
        ).json()
        assert doc["payload"]["counterpart_code"] != rec["counterpart_code"]
        assert doc["payload"]["counterpart_code"].startswith(rec["counterpart_code"][:4])
        assert "*" in doc["payload"]["inspectors"][0]["name"]
        assert doc["payload"]["inspectors"][0]["law_enforcement_cert_no"] == "33010200001"
        doc = await (
            await client.get(
                f"/v1/messages/{mid}", headers={"Authorization": f"Bearer {own.token}"}
            )
        ).json()
        assert doc["payload"]["counterpart_code"] == rec["counterpart_code"]
        assert doc["payload"]["inspectors"][0]["name"] == rec["inspectors"][0]["name"]
        await client.close()
    finally:
        await sink.stop()


async def test_a_tampered_encrypted_value_is_e_decrypt(
    tmp_path: Path, aiohttp_client: Any, master_key: None
) -> None:
    import sqlite3

    cfg = load_config(crypt_config(tmp_path, "http://127.0.0.1:9/never"))
    async with Hub(
        cfg,
    ) as hub:
        res = await hub.ingest_records("dept-a", [sample_inspection(2)])
    db = sqlite3.connect(tmp_path / "data" / "hub.db")
    payload = orjson.loads(db.execute("SELECT payload FROM messages").fetchone()[0])
    other = payload["inspectors"][0]["law_enforcement_cert_no"]
    payload["counterpart_code"] = other  # a value moved from another field
    db.execute("UPDATE messages SET payload = ?", (orjson.dumps(payload),))
    db.commit()
    db.close()
    client: TestClient[Any, Any] = await aiohttp_client(create_app(cfg, hub=Hub(cfg)))
    hub = client.app[HUB_KEY]  # type: ignore[index]
    own = await hub.guard.authenticator.tokens.create(name="a", roles=["system"], system="dept-a")
    r = await client.get(
        f"/v1/messages/{res.ids[0]}", headers={"Authorization": f"Bearer {own.token}"}
    )
    doc = await r.json()
    assert r.status == 500 and doc["code"] == "E_DECRYPT" and doc["field"] == "counterpart_code"
