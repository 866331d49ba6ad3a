"""The ``soap`` adapter: a department calls the hub as a SOAP 1.1/1.2 service. Answers are SOAP,
rejections are Faults carrying the stable code and field, hostile XML stores nothing, and the
WSDL of the endpoint is served at ``?wsdl``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from contracts.samples import sample_inspection
from hub.api import HUB_KEY, create_app
from hub.transports.soap_xml import SOAP11_ENV, SOAP12_ENV, build_envelope, read_wsdl
from tests.helpers import config

NS = "urn:jghub:dept-a:jcxx"
ACTION = f"{NS}/SubmitJcxx"
PATH = "/v1/systems/dept-a/records"
TOKEN = "tok-dept-a"


@pytest.fixture
async def client(tmp_path: Path, hub_client: Any) -> TestClient[Any, Any]:
    cfg = config(
        tmp_path,
        {},
        token=TOKEN,
        source_extra={
            "adapter": "soap",
            "adapter_options": {
                "operation": "SubmitJcxx",
                "namespace": NS,
                "record_element": "jcxx",
                "force_list": ["inspectors"],
            },
        },
    )
    return await hub_client(create_app(cfg))  # type: ignore[no-any-return]


def envelope(records: list[dict[str, Any]], version: str = "1.1", op: str = "SubmitJcxx") -> bytes:
    body = {op: {"@xmlns": NS, "jcxx": records}}
    return build_envelope("1.1" if version == "1.1" else "1.2", body)


async def post(
    client: TestClient[Any, Any],
    data: bytes,
    version: str = "1.1",
    action: str = ACTION,
    **headers: str,
) -> tuple[int, etree._Element, str]:
    h = {"Authorization": f"Bearer {TOKEN}", **headers}
    if version == "1.1":
        h["Content-Type"] = "text/xml; charset=utf-8"
        h["SOAPAction"] = f'"{action}"'
    else:
        h["Content-Type"] = f'application/soap+xml; charset=utf-8; action="{action}"'
    r = await client.post(PATH, data=data, headers=h)
    return r.status, etree.fromstring(await r.read()), r.content_type


def text(el: etree._Element, xpath: str) -> list[str]:
    return [str(x) for x in el.xpath(xpath)]


async def messages(client: TestClient[Any, Any]) -> int:
    return int((await client.app[HUB_KEY].store.counts())["messages"])  # type: ignore[index]


@pytest.mark.parametrize("version", ["1.1", "1.2"])
async def test_records_are_accepted_and_answered_in_soap(
    client: TestClient[Any, Any], version: str
) -> None:
    recs = [sample_inspection(i) for i in range(3)]
    status, doc, ctype = await post(
        client, envelope(recs, version), version, **{"Idempotency-Key": "call-1"}
    )
    assert status == 200 and ctype == ("text/xml" if version == "1.1" else "application/soap+xml")
    resp = "//*[local-name()='SubmitJcxxResponse']"
    assert text(doc, f"{resp}/*[local-name()='code']/text()") == ["0"]
    assert text(doc, f"{resp}/*[local-name()='accepted']/text()") == ["3"]
    ids = text(doc, f"{resp}/*[local-name()='result']/*[local-name()='id']/text()")
    assert len(set(ids)) == 3 and await messages(client) == 3
    hub = client.app[HUB_KEY]  # type: ignore[index]
    tr = await hub.store.trace(ids[1])
    assert tr is not None
    # the same call again: recognised by its Idempotency-Key, answered with the same ids
    status, doc, _ = await post(
        client, envelope(recs, version), version, **{"Idempotency-Key": "call-1"}
    )
    assert status == 200 and await messages(client) == 3
    assert text(doc, f"{resp}/*[local-name()='result']/*[local-name()='id']/text()") == ids
    assert text(doc, f"{resp}//*[local-name()='duplicate']/text()") == ["true"] * 3


async def test_a_partly_rejected_batch_names_the_rejected_records(
    client: TestClient[Any, Any],
) -> None:
    recs = [sample_inspection(0), {**sample_inspection(1), "region_code": "99"}]
    status, doc, _ = await post(client, envelope(recs, "1.2"), "1.2")
    assert status == 200
    assert text(
        doc, "//*[local-name()='code' and parent::*[local-name()='SubmitJcxxResponse']]/text()"
    ) == ["E_BATCH"]
    rej = "//*[local-name()='rejected']"
    assert text(doc, f"{rej}/*[local-name()='index']/text()") == ["1"]
    assert text(doc, f"{rej}/*[local-name()='code']/text()") == ["E_SCHEMA"]
    assert text(doc, f"{rej}/*[local-name()='field']/text()") == ["region_code"]
    assert await messages(client) == 1


@pytest.mark.parametrize(
    ("version", "status", "faultcode"), [("1.1", 500, "soap:Client"), ("1.2", 400, "soap:Sender")]
)
async def test_schema_error_is_a_client_fault_with_code_and_field(
    client: TestClient[Any, Any], version: str, status: int, faultcode: str
) -> None:
    bad = {**sample_inspection(2), "region_code": "99"}
    got, doc, _ = await post(client, envelope([bad], version), version)
    assert got == status
    env = SOAP11_ENV if version == "1.1" else SOAP12_ENV
    code = (
        doc.xpath("//faultcode/text()")
        if version == "1.1"
        else doc.xpath("//s:Code/s:Value/text()", namespaces={"s": env})
    )
    assert code == [faultcode]
    assert text(doc, "//*[local-name()='Fault']//code/text()") == ["E_SCHEMA"]
    assert text(doc, "//*[local-name()='Fault']//field/text()") == ["region_code"]
    assert await messages(client) == 0


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<SubmitJcxx xmlns="urn:jghub:dept-a:jcxx"><jcxx><inspection_name>&lol3;</inspection_name></jcxx>
</SubmitJcxx></soap:Body></soap:Envelope>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<SubmitJcxx xmlns="urn:jghub:dept-a:jcxx"><jcxx><inspection_name>&xxe;</inspection_name></jcxx>
</SubmitJcxx></soap:Body></soap:Envelope>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE soap:Envelope SYSTEM "http://127.0.0.1:9/evil.dtd">
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/>
</soap:Envelope>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, EXTERNAL_DTD], ids=["laughs", "xxe", "dtd"])
async def test_hostile_xml_is_an_E_XML_UNSAFE_fault_and_stores_nothing(
    client: TestClient[Any, Any], body: bytes
) -> None:
    status, doc, _ = await post(client, body)
    assert status == 500
    assert text(doc, "//faultcode/text()") == ["soap:Client"]
    assert text(doc, "//detail/code/text()") == ["E_XML_UNSAFE"]
    assert b"root:" not in etree.tostring(doc)
    assert await messages(client) == 0


async def test_wrong_operation_version_or_credentials_are_faults(
    client: TestClient[Any, Any],
) -> None:
    rec = [sample_inspection(0)]
    _, doc, _ = await post(client, envelope(rec), action=f"{NS}/DeleteAll")
    assert text(doc, "//detail/code/text()") == ["E_SOAP_ACTION"]
    assert text(doc, "//detail/field/text()") == ["SOAPAction"]
    _, doc, _ = await post(client, envelope(rec, op="DeleteAll"), action="")
    assert text(doc, "//detail/code/text()") == ["E_SOAP_ACTION"]
    assert text(doc, "//detail/field/text()") == ["Body"]
    # a SOAP 1.2 envelope sent as SOAP 1.1 (text/xml)
    _, doc, _ = await post(client, envelope(rec, "1.2"), "1.1")
    assert text(doc, "//detail/code/text()") == ["E_SOAP"]
    _, doc, _ = await post(client, b"<a><b></a>")
    assert text(doc, "//detail/code/text()") == ["E_XML"]
    _, doc, _ = await post(client, envelope(rec), Authorization="Bearer nope")
    assert text(doc, "//detail/code/text()") == ["E_AUTH"]
    assert text(doc, "//detail/field/text()") == ["Authorization"]
    r = await client.post(
        PATH,
        data=b"{}",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    doc = etree.fromstring(await r.read())
    assert text(doc, "//detail/code/text()") == ["E_MEDIA_TYPE"]
    assert await messages(client) == 0


async def test_the_wsdl_of_the_endpoint_is_served(client: TestClient[Any, Any]) -> None:
    r = await client.get(f"{PATH}?wsdl")
    assert r.status == 200 and r.content_type == "text/xml"
    wsdl = await r.read()
    endpoint = str(client.make_url(PATH))
    for version in ("1.1", "1.2"):
        op = read_wsdl(wsdl, "SubmitJcxx", version=version)  # type: ignore[arg-type]
        assert (op.endpoint, op.soap_action, op.namespace) == (endpoint, ACTION, NS)
    r = await client.get(PATH)
    assert r.status == 405 and (await r.json())["code"] == "E_METHOD"
