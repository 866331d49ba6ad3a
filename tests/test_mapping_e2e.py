"""A department in its own schema, onboarded by configuration only: inbound mapping and
cleaning before the contract, an outbound mapping for a target that wants its own schema —
through the real API, store, dispatcher and a real sink."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from contracts.samples import sample_inspection
from hub.api import create_app
from hub.errors import ConfigError
from hub.peers.sink import Sink
from hub.runtime import Hub
from tests.helpers import config, wait_until

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]
RECORDS = "/v1/systems/dept-a/records"

INBOUND = {
    "inspection": {
        "code_tables": {"result": {"合格": "1", "基本合格": "2", "不合格": "3"}},
        "unmapped_fields": "drop",
        "rules": [
            {"to": "catalog_code", "from": "SXBM"},
            {"to": "implementation_code", "from": "SSBM"},
            {"to": "inspection_name", "from": "JCMC"},
            {"to": "inspection_no", "from": "JCBH", "required": True},
            {"to": "supervised_object", "from": "JGDX"},
            {"to": "counterpart_name", "from": "XDR.MC"},
            {"to": "counterpart_nature", "from": "XDR.XZ", "type": "str"},
            {"to": "counterpart_cert_type", "from": "XDR.ZJLX"},
            {"to": "counterpart_code", "from": "XDR.ZJHM"},
            {"to": "region_code", "from": "XZQH", "type": "str"},
            {"to": "inspection_form", "from": "JCXS", "type": "str", "default": "1"},
            {"to": "inspection_category", "from": "JCLB", "type": "str"},
            {"to": "inspection_result", "from": "JCJG", "code_table": "result"},
            {
                "to": "inspection_time",
                "from": "JCSJ",
                "type": "datetime",
                "formats": ["yyyyMMddHHmmss"],
            },
            {"to": "submitted_at", "from": "BSSJ", "type": "datetime", "formats": ["epoch_millis"]},
            {"to": "inspectors[].name", "from": "JCRY[].XM"},
            {"to": "inspectors[].law_enforcement_cert_no", "from": "JCRY[].ZFZH"},
            {"to": "implementing_body", "from": "SSZT"},
            {"to": "implementing_body_code", "from": "SSZTDM"},
            {"to": "business_address", "from": "JYDZ"},
            {"to": "submitter", "from": "BSR"},
        ],
    }
}

OUTBOUND = {
    "inspection": {
        "rules": [
            {"to": "jcbh", "from": "inspection_no"},
            {"to": "jcrq", "from": "inspection_time", "type": "date"},
            {"to": "xdrmc", "from": "counterpart_name"},
            {
                "to": "jcry",
                "from": "inspectors",
                "each": [{"to": "xm", "from": "name", "mask": "name"}],
            },
            {"to": "sjly", "value": "jghub"},
        ]
    }
}


def department_record(i: int) -> dict[str, Any]:
    """The canonical sample, as the department's own system sends it."""
    c = sample_inspection(i)
    results = {"1": "合格", "2": "基本合格", "3": "不合格"}
    return {
        "SXBM": c["catalog_code"],
        "SSBM": c["implementation_code"],
        "JCMC": "　" + c["inspection_name"] + " ",  # ideographic space: cleaning trims it
        "JCBH": c["inspection_no"],
        "JGDX": c["supervised_object"],
        "XDR": {
            "MC": c["counterpart_name"],
            "XZ": int(c["counterpart_nature"]),
            "ZJLX": c["counterpart_cert_type"],
            "ZJHM": c["counterpart_code"],
        },
        "XZQH": int(c["region_code"]),
        "JCLB": c["inspection_category"],
        "JCJG": results.get(c["inspection_result"], "合格"),
        "JCSJ": "20240301090100",
        "BSSJ": 1709262120000,  # 2024-03-01 11:02:00 +08:00
        "JCRY": [{"XM": p["name"], "ZFZH": p["law_enforcement_cert_no"]} for p in c["inspectors"]],
        "SSZT": c["implementing_body"],
        "SSZTDM": c["implementing_body_code"],
        "JYDZ": "Ａ区１号",  # full-width: cleaning makes it half-width
        "BSR": c["submitter"],
        "INTERNAL_FLAG": "x",  # dropped: no rule reads it
    }


@pytest.fixture
async def api(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[tuple[TestClient[Any, Any], Sink]]:
    sink = Sink()
    await sink.start()
    try:
        cfg = config(
            tmp_path,
            {"sink": {"url": sink.url}},
            source_extra={
                "mapping": {"inbound": INBOUND},
                "governance": {
                    "inspection": {
                        "clean": {"trim": True, "fullwidth_to_halfwidth": ["business_address"]}
                    }
                },
            },
            target_extra={"mapping": {"outbound": OUTBOUND}},
        )
        client = await aiohttp_client(create_app(cfg, hub=Hub(cfg)))
        yield client, sink
        await client.close()
    finally:
        await sink.stop()


async def test_department_schema_mapped_cleaned_and_delivered_in_the_targets_schema(
    api: tuple[TestClient[Any, Any], Sink],
) -> None:
    client, sink = api
    r = await client.post(RECORDS, json=[department_record(1), department_record(2)])
    body = await r.json()
    assert r.status == 202, body
    trace = await (await client.get(f"/v1/messages/{body['ids'][0]}")).json()
    stored = trace["payload"]
    canonical = sample_inspection(1)
    assert stored["inspection_no"] == canonical["inspection_no"]
    assert stored["inspection_name"] == canonical["inspection_name"]  # trimmed
    assert stored["business_address"] == "A区1号"
    assert stored["inspection_time"] == "2024-03-01T09:01:00+08:00"
    assert stored["submitted_at"] == "2024-03-01T11:02:00+08:00"
    assert stored["region_code"] == canonical["region_code"]
    assert "INTERNAL_FLAG" not in stored
    notes = [e["detail"] for e in trace["trace"] if e["step"] == "governed"]
    assert notes and "trimmed" in notes[0]
    await wait_until(lambda: len(sink.applied) == 2)
    got = next(r for r in sink.applied.values() if r["jcbh"] == canonical["inspection_no"])
    assert got["jcrq"] == "2024-03-01" and got["sjly"] == "jghub"
    assert got["xdrmc"] == canonical["counterpart_name"]
    assert got["jcry"][0]["xm"].endswith("*") and len(got["jcry"]) == 3


async def test_unmappable_value_is_e_mapping_and_quarantined(
    api: tuple[TestClient[Any, Any], Sink],
) -> None:
    client, _ = api
    bad_code = {**department_record(3), "JCJG": "优秀"}
    bad_date = {**department_record(4), "JCSJ": "2024-13-45"}
    r = await client.post(RECORDS, json=[bad_code, department_record(5), bad_date])
    body = await r.json()
    assert r.status == 207 and body["accepted_indexes"] == [1]
    codes = {(x["index"], x["code"], x["field"]) for x in body["rejected"]}
    assert codes == {(0, "E_MAPPING", "inspection_result"), (2, "E_MAPPING", "inspection_time")}
    q = (await (await client.get("/v1/systems/dept-a/quarantine")).json())["items"]
    assert {x["code"] for x in q} == {"E_MAPPING"} and len(q) == 2
    assert any("优秀" in x["raw"] and "优秀" in x["detail"] for x in q)


async def test_ndjson_lines_are_parsed_then_mapped(api: tuple[TestClient[Any, Any], Sink]) -> None:
    import orjson

    client, _ = api
    body = b"\n".join(orjson.dumps(department_record(i)) for i in (6, 7))
    r = await client.post(RECORDS, data=body, headers={"Content-Type": "application/x-ndjson"})
    assert r.status == 202 and (await r.json())["accepted"] == 2
    broken = b'{"JCBH": "x"\n'
    r = await client.post(RECORDS, data=broken, headers={"Content-Type": "application/x-ndjson"})
    assert r.status == 400 and (await r.json())["code"] == "E_JSON"


def test_mapping_mistake_names_file_line_rule_and_field(tmp_path: Path) -> None:
    bad = {"inspection": {"rules": [{"to": "inspection_no", "from": "JCBH", "type": "timestamp"}]}}
    cfg = config(tmp_path, {}, source_extra={"mapping": {"inbound": bad}})
    with pytest.raises(ConfigError) as e:
        Hub(cfg)
    msg = e.value.message
    assert "dept-a.yaml:11 mapping.inbound.inspection.rules[0].type" in msg
    assert "(field inspection_no)" in msg and "unknown type" in msg
