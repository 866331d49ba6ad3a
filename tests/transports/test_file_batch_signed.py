"""Signed batch files (detached signatures, security.httpsig.sign_detached over the file's
exact bytes): a system that must sign gets unsigned, badly signed or foreign-signed files
refused whole with E_SIGNATURE; the hub signs the files it writes when told to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import yaml

from contracts.samples import sample_inspection
from hub.config import load_config
from hub.runtime import Hub
from hub.specs import OutboundItem
from hub.transports.file_batch import MANIFEST_SUFFIX
from security.httpsig import sign_detached, verify_detached
from security.keystore import Keystore, ManagedKey
from security.signing import Ed25519Signer, generate_key, private_pem
from tests.helpers import wait_until, write_config
from tests.transports.test_file_batch import jsonl, put_file


def signed_hub(tmp: Path, drop: Path, out: Path) -> tuple[Path, Any, Any]:
    dept, other, hub_key = (generate_key("ed25519", k) for k in ("dept-a-1", "dept-b-1", "hub-1"))
    keys = tmp / "keys"
    keys.mkdir()
    (keys / "dept-a-1.pem").write_bytes(dept.public_pem() or b"")
    (keys / "dept-b-1.pem").write_bytes(other.public_pem() or b"")
    (keys / "hub-1.pem").write_bytes(private_pem(hub_key))
    source = {"kind": "file_batch", "directory": str(drop), "poll_interval": 0.02, "signed": True}
    path = write_config(tmp, {}, source_extra={"inbound": {"source": source}})
    doc = yaml.safe_load(path.read_text())
    doc["keys"] = {
        "own": [{"id": "hub-1", "algorithm": "ed25519", "private_key": "keys/hub-1.pem"}],
        "peers": {
            "dept-a": [
                {"id": "dept-a-1", "algorithm": "ed25519", "public_key": "keys/dept-a-1.pem"}
            ],
            "dept-b": [
                {"id": "dept-b-1", "algorithm": "ed25519", "public_key": "keys/dept-b-1.pem"}
            ],
        },
    }
    path.write_text(yaml.safe_dump(doc))
    out_doc = {
        "name": "archive",
        "outbound": {"transport": "file_batch", "directory": str(out), "sign": True},
    }
    (tmp / "systems" / "archive.yaml").write_text(yaml.safe_dump(out_doc))
    return path, (dept, other), hub_key


async def test_signed_files_only(tmp_path: Path) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    path, (dept, other), _ = signed_hub(tmp_path, drop, out)
    good = jsonl([sample_inspection(1)])
    async with Hub(load_config(path)) as hub:
        put_file(drop, "good.jsonl", good, 1, signature=sign_detached(good, dept))
        await wait_until(lambda: (drop / "done" / "good.jsonl").exists())
        cases = {
            "unsigned.jsonl": None,
            "foreign.jsonl": other,  # signed by another system's key
            "forged.jsonl": generate_key("ed25519", "dept-a-1"),  # right id, wrong key
        }
        for i, (name, key) in enumerate(cases.items()):
            data = jsonl([sample_inspection(10 + i)])
            extra = {} if key is None else {"signature": sign_detached(data, key)}
            put_file(drop, name, data, 1, **extra)
        # a signed file changed afterwards (new digest in the manifest, old signature)
        changed = jsonl([sample_inspection(20)])
        put_file(drop, "changed.jsonl", changed, 1, signature=sign_detached(good, dept))

        def failed() -> int:
            return len(list((drop / "failed").glob("*.error.json")))

        await wait_until(lambda: failed() == 4)
        errors = {
            json.loads(p.read_text())["file"]: json.loads(p.read_text())
            for p in (drop / "failed").glob("*.error.json")
        }
        assert {e["code"] for e in errors.values()} == {"E_SIGNATURE"}
        assert errors["unsigned.jsonl"]["field"] == "signature"
        assert errors["foreign.jsonl"]["field"] == "keyid"
        assert (await hub.store.counts())["messages"] == 1


async def test_the_hub_signs_the_files_it_writes(tmp_path: Path) -> None:
    drop, out = tmp_path / "drop", tmp_path / "out"
    path, _, hub_key = signed_hub(tmp_path, drop, out)
    async with Hub(load_config(path)) as hub:
        transport = hub.targets["archive"].transport
        await transport.send([OutboundItem(1, "m-1", "inspection", sample_inspection(3), 1)])
    [manifest] = list(out.glob(f"*{MANIFEST_SUFFIX}"))
    doc = orjson.loads(manifest.read_bytes())
    data = (out / doc["file"]).read_bytes()
    public = Ed25519Signer("hub-1", public_key=hub_key.private_key.public_key())
    sig = verify_detached(data, doc["signature"], keys=Keystore([ManagedKey(public)]), now=1e10)
    assert sig.key_id == "hub-1"
