"""The credit platform simulator behaves like a strict platform: its own template fields and
error codes, signatures it verifies (replays refused), duplicates answered with the first
receipt, versions it orders, a list feed behind its token, and maintenance on demand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from adapters.credit.simulator import CreditSimulator
from contracts.samples import make_id_card, make_uscc
from security.httpsig import sign_request
from security.keystore import Keystore, ManagedKey
from security.signing import generate_key

HUB_KEY = generate_key("ed25519", "jghub-test-1")
CODE = make_uscc("11", "330102", 2002)
ID = make_id_card("330102", 4)


def _flip(code: str) -> str:
    """The same identifier with a wrong check character."""
    return code[:-1] + ("1" if code[-1] != "1" else "2")


@pytest.fixture
async def sim() -> AsyncIterator[CreditSimulator]:
    s = CreditSimulator(keys=Keystore([ManagedKey(HUB_KEY, owner="jghub")]))
    await s.start()
    yield s
    await s.stop()


async def _post(
    sim: CreditSimulator, path: str, doc: Any, *, key: str | None = None, nonce: str | None = None
) -> tuple[int, dict[str, Any], str | None]:
    url = f"{sim.base_url}/{path}"
    body = orjson.dumps(doc)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    sign_request("POST", url, headers, body, signer=HUB_KEY, nonce=nonce)
    async with aiohttp.ClientSession() as s, s.post(url, data=body, headers=headers) as r:
        return r.status, await r.json(), r.headers.get("X-Receipt-Id")


def penalty(**over: Any) -> dict[str, Any]:
    rec = {
        "CF_XDR_MC": "王芳", "CF_XDR_LB": "自然人", "CF_XDR_ZJLX": "01",
        "CF_XDR_ZJHM": ID, "CF_WSH": "杭上市监罚〔2026〕9号",
        "CF_WFXW": "无证经营", "CF_SY": "经查……", "CF_YJ": "《无证无照经营查处办法》第十三条",
        "CF_CFLB": "警告", "CF_NR": "警告", "CF_JDRQ": "2026/11/16", "CF_YXQ": "2027/11/16",
        "CF_CFJG": "某市场监管局", "CF_CFJGDM": CODE, "CF_SJLY": "某市场监管局",
        "CF_SJLYDM": CODE, "CZLX": "I", "GXSJ": "2026-11-16 16:00:00",
    }  # fmt: skip
    return rec | over


@pytest.mark.parametrize(
    ("over", "code", "field"),
    [
        ({"CF_SY": ""}, "XY4001", "CF_SY"),
        ({"CF_JDRQ": "2026-11-16"}, "XY4002", "CF_JDRQ"),
        ({"CF_CFJGDM": _flip(CODE)}, "XY4002", "CF_CFJGDM"),
        ({"CF_XDR_ZJHM": _flip(ID)}, "XY4002", "CF_XDR_ZJHM"),
        ({"CF_XDR_ZJLX": "111"}, "XY4002", "CF_XDR_ZJLX"),
        ({"CF_XDR_LB": "法人"}, "XY4002", "CF_XDR_LB"),
        ({"CF_CFLB": "警告;罚没"}, "XY4002", "CF_CFLB"),
        ({"CF_YXQ": "2026/01/01"}, "XY4003", "CF_YXQ"),
        ({"CZLX": "U"}, "XY4004", "CZLX"),
        ({"CF_XDR_LB": "法人及非法人组织", "CF_XDR_ZJLX": "", "CF_XDR_ZJHM": ""}, "XY4001",
         "CF_XDR_SHXYM"),
    ],
)  # fmt: skip
async def test_its_own_codes_for_invalid_records(
    sim: CreditSimulator, over: dict[str, Any], code: str, field: str
) -> None:
    status, doc, receipt = await _post(sim, "sgs/xzcf", penalty(**over))
    assert (status, doc["code"], doc["field"]) == (422, code, field) and receipt is None
    assert sim.rejected[-1][2:] == (code, field) and sim.disclosures["xzcf"] == {}


async def test_duplicates_versions_and_idempotency(sim: CreditSimulator) -> None:
    status, doc, receipt = await _post(sim, "sgs/xzcf", penalty(), key="m1")
    assert (status, doc["code"]) == (200, "00000") and receipt == doc["hzbh"]
    # the same record again (another request): 重复, the first receipt
    _, again, _ = await _post(sim, "sgs/xzcf", penalty(), key="m2")
    assert again == {"code": "XY0002", "message": "重复上报", "hzbh": receipt}
    # the same Idempotency-Key: the remembered answer
    _, same, _ = await _post(sim, "sgs/xzcf", penalty(), key="m1")
    assert same == doc
    corrected = penalty(CZLX="U", CF_NR="警告（更正）", GXSJ="2026-11-17 09:00:00")
    _, doc, _ = await _post(sim, "sgs/xzcf", corrected, key="m3")
    assert doc["code"] == "00000"
    status, doc, _ = await _post(sim, "sgs/xzcf", penalty(CZLX="U", GXSJ="2026-11-16 17:00:00"))
    assert (status, doc["code"], doc["field"]) == (422, "XY4091", "GXSJ")
    assert [x[2] for x in sim.disclosure_log] == ["I", "U"]
    assert sim.disclosures["xzcf"]["杭上市监罚〔2026〕9号"]["record"]["CF_NR"] == "警告（更正）"


async def test_signatures_and_replays(sim: CreditSimulator) -> None:
    status, _, _ = await _post(sim, "sgs/xzcf", penalty(), nonce="n-1")
    assert status == 200
    status, doc, _ = await _post(sim, "sgs/xzcf", penalty(), nonce="n-1")  # the same nonce
    assert (status, doc["code"]) == (401, "XY4010") and sim.refused == ["E_REPLAY"]
    other = generate_key("ed25519", "jghub-test-1")  # same id, another key
    url = f"{sim.base_url}/sgs/xzcf"
    body = orjson.dumps(penalty())
    headers = {"Content-Type": "application/json"}
    sign_request("POST", url, headers, body, signer=other)
    async with aiohttp.ClientSession() as s, s.post(url, data=body, headers=headers) as r:
        assert r.status == 401 and (await r.json())["code"] == "XY4010"
    assert sim.refused[-1] == "E_SIGNATURE"


async def test_list_feed_feedback_and_maintenance(sim: CreditSimulator) -> None:
    entry = await sim.publish(list_type="HEIMD", name="某公司", uscc=make_uscc("91", "330102", 3))
    url = f"{sim.base_url}/md/entries"
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401 and (await r.json())["code"] == "XY4011"
        auth = {"Authorization": f"Bearer {sim.feed_token}"}
        async with s.get(url, headers=auth, params={"page_token": "0"}) as r:
            doc = await r.json()
        assert [e["MDBH"] for e in doc["data"]] == [entry["MDBH"]] and doc["next_page_token"] == "1"
        async with s.get(url, headers=auth, params={"page_token": "1"}) as r:
            assert (await r.json())["data"] == []
    fb = {
        "FKBH": "FK1", "MDBH": "MD-NONE", "ZTMC": "某公司", "TYSHXYDM": entry["TYSHXYDM"],
        "CSLX": "CJ", "CSNR": "限制招投标", "FKBM": "某住建局", "FKBMDM": CODE,
        "SSRQ": "2026/11/20",
    }  # fmt: skip
    status, doc, _ = await _post(sim, "lhjc/feedback", fb)
    assert (status, doc["code"], doc["field"]) == (422, "XY4041", "MDBH")
    status, doc, _ = await _post(sim, "lhjc/feedback", fb | {"MDBH": entry["MDBH"]})
    assert (status, doc["code"]) == (200, "00000") and len(sim.feedback) == 1
    sim.behaviour.maintenance = True
    status, doc, _ = await _post(sim, "lhjc/feedback", fb)
    assert (status, doc["code"]) == (503, "XY5030")
    with pytest.raises(ValueError, match="remove needs the entry_id"):
        await sim.publish(list_type="HEIMD", name="x", remove=True)
