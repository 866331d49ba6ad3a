"""Data governance through the real API: de-duplication by business key, versions, subject
links, cross-source comparison and the quarantine a source reads back (数据治理)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from contracts.samples import sample_inspection
from hub.api import create_app
from hub.errors import ConfigError, PluginError
from hub.peers.sink import Sink
from hub.plugins import hookimpl
from hub.runtime import Hub
from hub.specs import ComparatorSpec
from tests.helpers import config, wait_until

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]
RECORDS = "/v1/systems/dept-a/records"

#: the reference registry the comparator consults: USCC -> registered name
REGISTRY: dict[str, str] = {}


async def _registered_name(dataset: str, record: dict[str, Any]) -> str | None:
    want = REGISTRY.get(record["counterpart_code"])
    if want is None or want == record["counterpart_name"]:
        return None
    return f"counterpart_name {record['counterpart_name']!r} differs from the registry's {want!r}"


class RegistryPlugin:
    @hookimpl
    def hub_register_comparators(self) -> list[ComparatorSpec]:
        return [ComparatorSpec("registry_name", _registered_name, "name matches the registry")]


GOVERNANCE = {
    "inspection": {
        "dedupe": {"key": ["inspection_no"], "version": "submitted_at"},
        "link": ["counterpart_code"],
        "compare": [{"rule": "registry_name", "on_mismatch": "reject"}],
    }
}


@pytest.fixture
async def api(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[tuple[TestClient[Any, Any], Sink]]:
    REGISTRY.clear()
    sink = Sink()
    await sink.start()
    try:
        cfg = config(
            tmp_path,
            {"sink": {"url": sink.url}},
            source_extra={"governance": GOVERNANCE},
        )
        hub = Hub(cfg, extra_plugins=[RegistryPlugin()])
        client = await aiohttp_client(create_app(cfg, hub=hub))
        yield client, sink
        await client.close()
    finally:
        await sink.stop()


async def test_identical_copy_dropped_and_counted_new_version_replaces(
    api: tuple[TestClient[Any, Any], Sink],
) -> None:
    client, sink = api
    rec = sample_inspection(1)
    r1 = await client.post(RECORDS, json=rec)
    assert r1.status == 202
    first = (await r1.json())["id"]
    # the same record again, without any idempotency key: one record, counted as a duplicate
    r2 = await client.post(RECORDS, json=[rec])
    body = await r2.json()
    assert r2.status == 202 and body["ids"] == [first] and body["duplicates"] == [0]
    # a corrected version (later submitted_at) replaces it and is delivered too
    newer = {**rec, "inspection_result": "2", "submitted_at": "2024-03-02T10:00:00+08:00"}
    r3 = await client.post(RECORDS, json=[newer])
    body = await r3.json()
    assert r3.status == 202 and body["replaced"] == [0] and body["ids"][0] != first
    # an older version arriving late is stale: acknowledged with the current id, not routed
    older = {**rec, "inspection_result": "3", "submitted_at": "2024-03-01T12:00:00+08:00"}
    r4 = await client.post(RECORDS, json=[older])
    body = await r4.json()
    assert body["duplicates"] == [0] and body["ids"] == [(await r3.json())["ids"][0]]
    await wait_until(lambda: len(sink.applied) >= 2)
    results = sorted(r["inspection_result"] for r in sink.applied.values())
    assert results == ["1", "2"]


async def test_subject_link_and_governance_note_in_trace(
    api: tuple[TestClient[Any, Any], Sink],
) -> None:
    client, _ = api
    rec = sample_inspection(2)
    mid = (await (await client.post(RECORDS, json=rec)).json())["id"]
    r = await client.get(f"/v1/subjects/{rec['counterpart_code']}")
    assert r.status == 200
    items = (await r.json())["items"]
    assert [i["message_id"] for i in items] == [mid]
    trace = await (await client.get(f"/v1/messages/{mid}")).json()
    governed = [e for e in trace["trace"] if e["step"] == "governed"]
    assert governed and "linked to subject counterpart_code=" in governed[0]["detail"]


async def test_comparison_mismatch_is_rejected_and_quarantined(
    api: tuple[TestClient[Any, Any], Sink],
) -> None:
    client, _sink = api
    good, bad = sample_inspection(3), sample_inspection(4)
    REGISTRY[good["counterpart_code"]] = good["counterpart_name"]
    REGISTRY[bad["counterpart_code"]] = "另一家公司"
    r = await client.post(RECORDS, json=[good, bad])
    body = await r.json()
    assert r.status == 207 and body["accepted_indexes"] == [0]
    [rej] = body["rejected"]
    assert rej["index"] == 1 and rej["code"] == "E_MISMATCH" and rej["field"] == "registry_name"
    q = await (await client.get("/v1/systems/dept-a/quarantine")).json()
    [item] = q["items"]
    assert item["code"] == "E_MISMATCH" and "另一家公司" in item["detail"]
    assert bad["inspection_no"] in item["raw"]


async def test_every_rejection_is_quarantined_once_and_readable(
    api: tuple[TestClient[Any, Any], Sink],
) -> None:
    client, _ = api
    broken = {**sample_inspection(5), "counterpart_code": "123"}
    for _ in range(2):  # sent twice: kept once
        r = await client.post(RECORDS, json=broken)
        assert r.status == 422 and (await r.json())["code"] == "E_SCHEMA"
    q = await (await client.get("/v1/systems/dept-a/quarantine")).json()
    [item] = q["items"]
    assert item["code"] == "E_SCHEMA" and item["field"] == "counterpart_code"
    assert item["origin"] == "api record 0"
    after = await (await client.get(f"/v1/systems/dept-a/quarantine?after={item['id']}")).json()
    assert after["items"] == []
    bad_param = await client.get("/v1/systems/dept-a/quarantine?limit=x")
    assert (await bad_param.json())["code"] == "E_PARAM"


async def test_quarantine_needs_the_systems_token(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    cfg = config(tmp_path, {}, token="t0ken")
    client = await aiohttp_client(create_app(cfg))
    r = await client.get("/v1/systems/dept-a/quarantine")
    assert r.status == 401 and (await r.json())["code"] == "E_AUTH"
    ok = await client.get(
        "/v1/systems/dept-a/quarantine", headers={"Authorization": "Bearer t0ken"}
    )
    assert ok.status == 200


def test_governance_config_errors_name_the_place(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        config(tmp_path, {}, source_extra={"governance": {"penalty": {"link": ["uscc"]}}})
    assert "governance.penalty" in e.value.message and "does not send" in e.value.message
    with pytest.raises(PluginError) as p:
        cfg = config(
            tmp_path,
            {},
            source_extra={"governance": {"inspection": {"compare": [{"rule": "nope"}]}}},
        )
        Hub(cfg)
    assert "unknown comparator 'nope'" in p.value.message and p.value.code == "E_PLUGIN"


async def test_hub_stores_dedupe_on_sqlite_across_restart(tmp_path: Path) -> None:
    """The business-key table is durable: a copy sent after a restart is still a duplicate."""
    cfg = config(
        tmp_path,
        {},
        source_extra={"governance": {"inspection": {"dedupe": {"key": ["inspection_no"]}}}},
    )
    rec = sample_inspection(7)
    async with Hub(cfg) as hub:
        first = await hub.ingest_records("dept-a", [rec])
    async with Hub(cfg) as hub:
        again = await hub.ingest_records("dept-a", [dict(rec)])
        assert hub.store is not None
    assert again.duplicates == [0] and again.ids == first.ids
