"""The simulated platform behaves like a strict one: it refuses unsigned and replayed
requests, signs what it answers, pages its feeds by 变更序号, and judges uploaded results
record by record with its own codes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from adapters.market.simulator import SIGNATURE_HEADER, MarketSimulator
from contracts.samples import make_uscc
from security.httpsig import sign_request, verify_detached
from security.keystore import Keystore, ManagedKey
from security.signing import generate_key

HUB = generate_key("ed25519", "zj-hub-1")
PLATFORM = generate_key("ed25519", "scjg-1")
A, B = make_uscc("91", "330102", 1), make_uscc("91", "330102", 2)


@pytest.fixture
async def sim() -> AsyncIterator[MarketSimulator]:
    s = MarketSimulator(keys=Keystore([ManagedKey(HUB, owner="zj-hub")]), signer=PLATFORM)
    await s.start()
    yield s
    await s.stop()


async def call(
    url: str, body: Any = None, *, sign: bool = True, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    method = "GET" if body is None else "POST"
    data = b"" if body is None else orjson.dumps(body)
    h = dict(headers or {"Content-Type": "application/json"})
    if sign and headers is None:
        sign_request(method, url, h, data, signer=HUB)
    async with aiohttp.ClientSession() as s, s.request(method, url, data=data, headers=h) as r:
        raw = await r.read()
        got = dict(r.headers)
        # every answer is signed by the platform over the exact bytes
        verify_detached(raw, got[SIGNATURE_HEADER], keys=Keystore([ManagedKey(PLATFORM)]), now=0)
        return r.status, orjson.loads(raw), got


async def test_unsigned_and_replayed_requests_are_refused(sim: MarketSimulator) -> None:
    url = f"{sim.base_url}/feed/ztxx?cursor=0&pageSize=10"
    status, doc, _ = await call(url, sign=False)
    assert status == 401 and doc["code"] == "SC4010"
    headers = {"Accept": "application/json"}
    sign_request("GET", url, headers, b"", signer=HUB)
    assert (await call(url, headers=headers))[0] == 200
    status, doc, _ = await call(url, headers=headers)  # the same signed request again
    assert status == 401 and doc["code"] == "SC4010"
    assert sim.refused == ["E_SIGNATURE", "E_REPLAY"]


async def test_feeds_page_by_change_number(sim: MarketSimulator) -> None:
    sim.register_entity(A, "甲有限公司")
    sim.register_entity(B, "乙有限公司")
    sim.change_entity(A, QYMC="甲集团有限公司", DJZT="2")
    status, doc, _ = await call(f"{sim.base_url}/feed/ztxx?cursor=0&pageSize=2")
    assert status == 200 and doc["code"] == "00000"
    page = doc["data"]
    assert [r["BGXH"] for r in page["records"]] == [1, 2]
    assert page["nextCursor"] == 2 and page["hasMore"] is True
    _, doc, _ = await call(f"{sim.base_url}/feed/ztxx?cursor=2&pageSize=2")
    (change,) = doc["data"]["records"]
    assert change["QYMC"] == "甲集团有限公司" and change["TYSHXYDM"] == A
    assert doc["data"]["hasMore"] is False
    status, doc, _ = await call(f"{sim.base_url}/feed/ztxx?cursor=0&pageSize=9999")
    assert status == 400 and doc["code"] == "SC4002" and doc["field"] == "pageSize"
    status, doc, _ = await call(f"{sim.base_url}/feed/nope?cursor=0")
    assert status == 404 and doc["code"] == "SC4040"


async def test_results_are_judged_record_by_record(sim: MarketSimulator) -> None:
    sim.register_entity(A, "甲有限公司")
    sim.register_entity(B, "乙有限公司")
    sim.issue_task(
        "RW1", objects=[A], inspectors=[("陈静", "1"), ("赵磊", "2")], department="局",
        department_code=make_uscc("11", "330102", 8), deadline="20991231",
    )  # fmt: skip
    today = sim.tasks["RW1"]["XFSJ"][:10].replace("-", "")
    base = {
        "RWBH": "RW1", "DXTYSHXYDM": A, "DXMC": "甲有限公司", "JCJG": "01", "JCJGSM": "未发现问题",
        "JCRQ": today, "JCBM": "局", "JCBMDM": make_uscc("11", "330102", 8),
        "ZFRY": [{"XM": "陈静", "ZFZH": "1"}, {"XM": "赵磊", "ZFZH": "2"}], "TBSJ": "x",
    }  # fmt: skip
    records = [
        {**base, "JLBS": "r1"},
        {**base, "JLBS": "r2", "JCJGSM": ""},
        {**base, "JLBS": "r3", "JCJG": "9"},
        {**base, "JLBS": "r4", "RWBH": "RW9"},
        {**base, "JLBS": "r5", "DXTYSHXYDM": B},
        {**base, "JLBS": "r6", "ZFRY": [{"XM": "陈静", "ZFZH": "1"}]},
        {**base, "JLBS": "r7", "JCRQ": "20000101"},
    ]
    url = f"{sim.base_url}/sjrw/jcjg"
    status, doc, _ = await call(url, {"records": records})
    assert status == 200
    got = {r["JLBS"]: (r["ZT"], r.get("CWDM"), r.get("CWZD")) for r in doc["data"]["results"]}
    assert got == {
        "r1": ("1", None, None),
        "r2": ("0", "SC4001", "JCJGSM"),
        "r3": ("0", "SC4002", "JCJG"),
        "r4": ("0", "SC4041", "RWBH"),
        "r5": ("0", "SC4031", "DXTYSHXYDM"),
        "r6": ("0", "SC4003", "ZFRY"),
        "r7": ("0", "SC4003", "JCRQ"),
    }
    first = doc["data"]["results"][0]["HZBH"]
    _, again, _ = await call(url, {"records": [records[0]]})  # re-sent: the same receipt
    assert again["data"]["results"] == [{"JLBS": "r1", "ZT": "1", "HZBH": first}]
    assert list(sim.results) == ["r1"]
    status, doc, _ = await call(url, {"rows": []})
    assert status == 400 and doc["code"] == "SC4000"


async def test_throttling_and_maintenance_answers(sim: MarketSimulator) -> None:
    sim.behaviour.throttle = 1
    sim.behaviour.fail_next = 1
    url = f"{sim.base_url}/feed/jyyc?cursor=0"
    status, doc, headers = await call(url)
    assert status == 429 and doc["code"] == "SC4290" and headers["Retry-After"] == "1"
    status, doc, _ = await call(url)
    assert status == 503 and doc["code"] == "SC5030"
    assert (await call(url))[0] == 200
