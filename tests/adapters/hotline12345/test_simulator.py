"""The 12345 platform simulator as a peer sees it: signed requests only, its own error codes
for bad 流转记录, receipts kept across re-deliveries, attachments served by reference, faults
on demand."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from security.httpsig import sign_request
from security.keystore import Keystore, ManagedKey
from security.signing import HmacSha256Signer

sim_mod = importlib.import_module("adapters.12345.simulator")

HUB_KEY = HmacSha256Signer("jghub-12345-1", b"h" * 32)


@pytest.fixture
async def sim() -> AsyncIterator[Any]:
    s = sim_mod.HotlineSimulator(keys=Keystore([ManagedKey(HUB_KEY, owner="jghub")]))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def post(
    sim: Any, doc: Any, *, signer: Any = HUB_KEY, raw: bytes | None = None
) -> tuple[int, dict[str, Any], str | None]:
    body = raw if raw is not None else orjson.dumps(doc)
    headers = {"Content-Type": "application/json"}
    if signer is not None:
        sign_request("POST", sim.lzjl_url, headers, body, signer=signer)
    async with aiohttp.ClientSession() as s, s.post(sim.lzjl_url, data=body, headers=headers) as r:
        return r.status, await r.json(), r.headers.get("X-Receipt-Id")


def lzjl(gdbh: str, **kw: Any) -> dict[str, Any]:
    return {
        "LZBH": "LZ1",
        "GDBH": gdbh,
        "DZLX": "04",
        "CZSJ": "20261125100000",
        "CZDW": "上城区市场监督管理局",
        "CBDWDM": "SCJG330102",
        **kw,
    }


async def test_a_signed_record_gets_a_receipt_once(sim: Any) -> None:
    order = sim.new_order()
    status, doc, receipt = await post(sim, lzjl(order["GDBH"]))
    assert status == 200 and doc["code"] == "0000" and receipt == doc["hzbh"]
    again = await post(sim, lzjl(order["GDBH"]))  # re-delivered: same receipt, applied once
    assert again[0] == 200 and again[2] == receipt
    assert sim.actions_of(order["GDBH"]) == ["签收"]
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{sim.base_url}/api/v1/gd/{order['GDBH']}") as r,
    ):
        view = await r.json()
    assert view["ZT"] == "签收" and len(view["LZJL"]) == 1


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"LZBH": None}, 400, "RX4001", "LZBH"),
        ({"CBDWDM": ""}, 400, "RX4001", "CBDWDM"),
        ({"DZLX": "99"}, 400, "RX4002", "DZLX"),
        ({"GDBH": "ZJ12345-NOPE"}, 404, "RX4041", "GDBH"),
    ],
)
async def test_bad_records_get_its_own_codes(
    sim: Any, change: dict[str, Any], status: int, code: str, field: str
) -> None:
    order = sim.new_order()
    got = await post(sim, lzjl(order["GDBH"], **change))
    assert (got[0], got[1]["code"], got[1]["field"]) == (status, code, field)
    assert sim.lzjl == {}


async def test_signatures_and_bodies_are_checked(sim: Any) -> None:
    order = sim.new_order()
    status, doc, _ = await post(sim, lzjl(order["GDBH"]), signer=None)
    assert status == 401 and doc["code"] == "RX4010"
    wrong = HmacSha256Signer("jghub-12345-1", b"w" * 32)
    status, doc, _ = await post(sim, lzjl(order["GDBH"]), signer=wrong)
    assert status == 401 and doc["code"] == "RX4010"
    status, doc, _ = await post(sim, None, raw=b"[1, 2")
    assert status == 400 and doc["code"] == "RX4002" and doc["field"] == "body"
    assert [c for c, _ in sim.refused] == ["RX4010", "RX4010", "RX4002"]


async def test_faults_on_demand(sim: Any) -> None:
    order = sim.new_order()
    sim.behaviour.fail_next = 1
    status, doc, _ = await post(sim, lzjl(order["GDBH"]))
    assert status == 503 and doc["code"] == "RX5030"
    sim.behaviour.refuse_next = 1
    status, doc, _ = await post(sim, lzjl(order["GDBH"]))
    assert status == 400 and doc["code"] == "RX4002"
    status, _, _ = await post(sim, lzjl(order["GDBH"]))
    assert status == 200
    await sim.go_down()
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(sim, lzjl(order["GDBH"], LZBH="LZ2"))
    await sim.come_up()
    assert (await post(sim, lzjl(order["GDBH"], LZBH="LZ2")))[0] == 200


async def test_attachments_are_served_by_reference(sim: Any) -> None:
    fj = sim.add_file("照片.jpg", b"photo")
    assert fj["SHA256"] == hashlib.sha256(b"photo").hexdigest() and fj["DX"] == 5
    async with aiohttp.ClientSession() as s:
        async with s.get(fj["FJDZ"]) as r:
            assert r.status == 200 and await r.read() == b"photo"
        async with s.get(f"{sim.base_url}/files/F999999") as r:
            assert r.status == 404 and (await r.json())["code"] == "RX4044"
