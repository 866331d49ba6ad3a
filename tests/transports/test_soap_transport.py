"""``soap_xml`` outbound: a real hub and its dispatcher call the simulated department
WebService (hub.peers.soap_service) in SOAP 1.1 and 1.2, per record and in batches; faults are
classified into retries and dead letters; a WSDL configures the operation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lxml import etree

from contracts.samples import sample_inspection
from hub.errors import ConfigError
from hub.peers.soap_service import NS, SoapService
from hub.runtime import Hub
from hub.transports.soap_xml import (
    SOAP11_ENV,
    SOAP12_ENV,
    SoapXmlTransport,
    parse_fault,
    read_wsdl,
    select,
)
from tests.helpers import config, wait_until

BLOCKED = sample_inspection(3)["inspection_no"]


def refuse_blocked(record: dict[str, Any]) -> str | None:
    return "检查编号已作废" if record.get("inspection_no") == BLOCKED else None


@pytest.fixture
async def svc() -> AsyncIterator[SoapService]:
    s = SoapService(username="jghub", password="p@ss-国", reject=refuse_blocked, slow_seconds=3)
    await s.start()
    yield s
    await s.stop()


def per_record(svc: SoapService, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "transport": "soap_xml",
        "url": svc.url,
        "namespace": NS,
        "operation": "JsJcxx",
        "soap_action": f"{NS}/JsJcxx",
        "record_element": "jcxx",
        "message_id_element": "xxid",
        "result_code_path": "JsJcxxResponse/fhdm",
        "success_codes": ["0"],
        "transient_codes": ["9"],
        "receipt_path": "JsJcxxResponse/hzbh",
        "username": "jghub",
        "password": "p@ss-国",
        "timeout": 1.0,
    }
    out.update(extra)
    return out


def batch(svc: SoapService, **extra: Any) -> dict[str, Any]:
    return per_record(
        svc,
        operation="PlJsJcxx",
        soap_action=f"{NS}/PlJsJcxx",
        batch_size=5,
        item_path="PlJsJcxxResponse/jg",
        result_code_path="fhdm",
        receipt_path="hzbh",
        **extra,
    )


async def run(tmp_path: Path, outbound: dict[str, Any], n: int) -> tuple[Hub, list[str]]:
    cfg = config(tmp_path, {"dept-b": outbound})
    hub = Hub(cfg)
    await hub.start()
    res = await hub.ingest_records("dept-a", [sample_inspection(i) for i in range(n)])
    assert len(res.ids) == n
    return hub, res.ids


async def settled(hub: Hub, n: int) -> bool:
    counts = await hub.store.counts()
    return bool(counts.get("delivered", 0) + counts.get("dead", 0) == n)


@pytest.mark.parametrize("version", ["1.1", "1.2"])
async def test_per_record_calls_deliver_once_with_receipts(
    tmp_path: Path, svc: SoapService, version: str
) -> None:
    hub, ids = await run(tmp_path, per_record(svc, soap_version=version), 8)
    try:
        await wait_until(lambda: settled(hub, 8), what="8 deliveries settled")
        assert set(svc.received) == set(ids) - {ids[3]}  # xxid is the message id
        got = svc.received[ids[0]]
        assert got == sample_inspection(0)  # the record, nested inspectors included
        assert {c for c in svc.calls} == {(version, f"{NS}/JsJcxx")}
        tr = await hub.store.trace(ids[0])
        assert tr is not None and tr.status() == "delivered"
        assert f"receipt=HZ-{ids[0]}" in tr.events[-1].detail  # 回执编号 from receipt_path
        # the client fault for the refused record is a dead letter at the first attempt
        [dead] = await hub.store.dead_letters("dept-b")
        assert dead.message_id == ids[3] and dead.attempts == 1
        assert "SOAP fault Client" in dead.reason or "SOAP fault Sender" in dead.reason
        assert "检查编号已作废" in dead.reason
    finally:
        await hub.stop()


@pytest.mark.parametrize("version", ["1.1", "1.2"])
async def test_batches_with_per_record_results(
    tmp_path: Path, svc: SoapService, version: str
) -> None:
    hub, ids = await run(
        tmp_path, batch(svc, soap_version=version, password_digest=version == "1.2"), 12
    )
    try:
        await wait_until(lambda: settled(hub, 12), what="12 deliveries settled")
        assert set(svc.received) == set(ids) - {ids[3]}
        assert svc.requests < 12  # batches, not one call per record
        [dead] = await hub.store.dead_letters("dept-b")
        assert dead.message_id == ids[3] and "result code 1" in dead.reason
        assert all(v == version and a == f"{NS}/PlJsJcxx" for v, a in svc.calls)
    finally:
        await hub.stop()


async def test_outages_are_retried_and_nothing_applied_twice(
    tmp_path: Path, svc: SoapService
) -> None:
    svc.reject = None
    svc.fail_next(2, "server_fault")
    svc.fail_next(1, "503")
    svc.fail_next(1, "busy")
    svc.fail_next(1, "slow")  # longer than the 1 s timeout: the reply is lost, resent
    hub, ids = await run(tmp_path, per_record(svc, concurrency=1), 3)
    try:
        await wait_until(lambda: settled(hub, 3), what="3 deliveries settled")
        assert set(svc.received) == set(ids)
        assert not await hub.store.dead_letters("dept-b")
        assert svc.requests >= 8  # five failures, three successes
    finally:
        await hub.stop()


async def test_wrong_credentials_or_action_are_dead_letters(
    tmp_path: Path, svc: SoapService
) -> None:
    hub, ids = await run(tmp_path, per_record(svc, soap_action=f"{NS}/Other"), 2)
    try:
        await wait_until(lambda: settled(hub, 2), what="dead letters")
        dead = await hub.store.dead_letters("dept-b")
        assert {d.message_id for d in dead} == set(ids) and not svc.received
        assert all("E_SOAP_ACTION" in d.reason for d in dead)
    finally:
        await hub.stop()
    hub, ids = await run(tmp_path / "b", per_record(svc, password="wrong"), 1)
    try:
        await wait_until(lambda: settled(hub, 1), what="dead letter")
        [d] = await hub.store.dead_letters("dept-b")
        assert "认证失败" in d.reason
    finally:
        await hub.stop()


async def test_operation_configured_from_the_wsdl(tmp_path: Path, svc: SoapService) -> None:
    async with aiohttp.ClientSession() as s, s.get(svc.wsdl_url) as r:
        wsdl = await r.read()
    op = read_wsdl(wsdl, "PlJsJcxx", version="1.2")
    assert (op.endpoint, op.soap_action, op.namespace) == (svc.url, f"{NS}/PlJsJcxx", NS)
    assert op.version == "1.2" and op.body_element == "PlJsJcxx"
    assert read_wsdl(wsdl, "JsJcxx").version == "1.1"
    with pytest.raises(ConfigError, match="no SOAP port offering operation 'Nope'"):
        read_wsdl(wsdl, "Nope")
    # a WSDL URL: fetched on first use; no url, namespace or action in the config
    outbound = batch(svc, soap_version="1.2", wsdl=svc.wsdl_url)
    for key in ("url", "namespace", "soap_action"):
        del outbound[key]
    hub, ids = await run(tmp_path, outbound, 6)
    try:
        await wait_until(lambda: settled(hub, 6), what="6 deliveries settled")
        assert set(svc.received) == set(ids) - {ids[3]}
        assert {c for c in svc.calls} == {("1.2", f"{NS}/PlJsJcxx")}
    finally:
        await hub.stop()
    # a WSDL file is read when the hub is built: a missing one stops the start
    path = tmp_path / "jcxx.wsdl"
    path.write_bytes(wsdl)
    t = SoapXmlTransport("x", spec_options(wsdl=str(path), operation="JsJcxx"))
    assert t._op is not None and (t._op.endpoint, t._op.version) == (svc.url, "1.1")
    with pytest.raises(ConfigError, match="cannot be read"):
        SoapXmlTransport("x", spec_options(wsdl=str(tmp_path / "nope.wsdl"), operation="A"))


def spec_options(**kw: Any) -> Any:
    from hub.transports.soap_xml import SoapXmlOptions

    return SoapXmlOptions.model_validate(kw)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="give url"):
        spec_options(operation="A")
    with pytest.raises(ValueError, match="namespace is needed"):
        spec_options(operation="A", url="http://127.0.0.1:9/")
    with pytest.raises(ValueError, match="needs record_element"):
        spec_options(operation="A", url="http://127.0.0.1:9/", namespace="urn:a", batch_size=3)


def test_faults_and_paths() -> None:
    f11 = etree.fromstring(
        f'<s:Fault xmlns:s="{SOAP11_ENV}"><faultcode>s:Server.Db</faultcode>'
        "<faultstring>down</faultstring><detail><code>E_STORE</code></detail></s:Fault>"
    )
    f = parse_fault(f11)
    assert (f.code, f.subcode, f.message, f.detail_code, f.permanent) == (
        "Server",
        "Db",
        "down",
        "E_STORE",
        False,
    )
    f12 = etree.fromstring(
        f'<e:Fault xmlns:e="{SOAP12_ENV}"><e:Code><e:Value>e:Sender</e:Value></e:Code>'
        '<e:Reason><e:Text xml:lang="zh">bad</e:Text></e:Reason></e:Fault>'
    )
    assert parse_fault(f12).permanent and parse_fault(f12).message == "bad"
    doc = etree.fromstring('<r xmlns="urn:x"><jg id="1"><c>0</c></jg><jg id="2"/></r>')
    assert [e.get("id") for e in select(doc, "jg") if not isinstance(e, str)] == ["1", "2"]
    assert select(doc, "jg/@id") == ["1", "2"] and select(doc, "*/c")[0].text == "0"  # type: ignore[union-attr]
