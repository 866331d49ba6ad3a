"""XML ↔ dict: the conventions, the round trip, and one test per hostile document."""

from __future__ import annotations

import pytest
from lxml import etree

from hub.errors import HubError
from transforms.xmljson import dict_to_xml, parse_xml, xml_to_dict


def _code(data: bytes, **kw: object) -> str:
    with pytest.raises(HubError) as info:
        xml_to_dict(data, **kw)  # type: ignore[arg-type]
    return info.value.code


# --------------------------------------------------------------------------- conventions

SOAP = """<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:jg:award">
  <soap:Body>
    <Award id="ZB-1" xml:lang="zh">
      <Project>某县道路工程</Project>
      <Bidder rank="1">甲公司</Bidder>
      <Bidder rank="2">乙公司</Bidder>
      <Lot><No>1</No></Lot>
      <Note/>
    </Award>
  </soap:Body>
</soap:Envelope>
""".encode()


def test_conventions_attributes_text_lists_namespaces() -> None:
    d = xml_to_dict(SOAP, force_list=["Lot"])
    env = d["soap:Envelope"]
    assert env["@xmlns:soap"] == "http://schemas.xmlsoap.org/soap/envelope/"
    assert env["@xmlns"] == "urn:jg:award"
    award = env["soap:Body"]["Award"]
    assert award["@id"] == "ZB-1"
    assert award["@xml:lang"] == "zh"
    assert award["Project"] == "某县道路工程"
    assert award["Bidder"] == [
        {"@rank": "1", "#text": "甲公司"},
        {"@rank": "2", "#text": "乙公司"},
    ]
    assert award["Lot"] == [{"No": "1"}]  # forced list with one element; text stays text
    assert award["Note"] is None


def test_round_trip_keeps_names_namespaces_and_values() -> None:
    d = xml_to_dict(SOAP, force_list=["Lot"])
    again = dict_to_xml(d)
    assert xml_to_dict(again, force_list=["Lot"]) == d
    root = etree.fromstring(again)
    assert root.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"
    assert root.find(".//{urn:jg:award}Project").text == "某县道路工程"


def test_dict_to_xml_with_root_nsmap_and_scalars() -> None:
    out = dict_to_xml(
        {"p:amount": 12.5, "p:ok": True, "p:items": {"code": ["a", "b"]}, "@p:v": 2},
        root="p:doc",
        nsmap={"p": "urn:p"},
    )
    root = etree.fromstring(out)
    assert root.tag == "{urn:p}doc"
    assert root.get("{urn:p}v") == "2"
    assert root.findtext("{urn:p}amount") == "12.5"
    assert root.findtext("{urn:p}ok") == "true"
    assert [e.text for e in root.iter("code")] == ["a", "b"]


def test_dict_to_xml_rejects_undeclared_prefix_and_objects_as_text() -> None:
    with pytest.raises(HubError) as info:
        dict_to_xml({"x:doc": "1"})
    assert info.value.code == "E_XML"
    assert info.value.field == "x:doc"
    with pytest.raises(HubError) as info:
        dict_to_xml({"doc": {"when": object()}})
    assert info.value.field == "doc.when"


def test_gbk_document_declared_gbk_parses_correctly() -> None:
    data = '<?xml version="1.0" encoding="GBK"?><记录><名称>杭州市市场监督管理局</名称></记录>'
    d = xml_to_dict(data.encode("gbk"))
    assert d == {"记录": {"名称": "杭州市市场监督管理局"}}
    out = dict_to_xml(d, encoding="gbk")
    assert out.startswith(b"<?xml version='1.0' encoding='gbk'?>")
    assert xml_to_dict(out) == d


def test_doctype_text_inside_cdata_is_only_text() -> None:
    d = xml_to_dict(b"<a><![CDATA[<!DOCTYPE x [<!ENTITY y 'z'>]>]]></a>")
    assert d == {"a": "<!DOCTYPE x [<!ENTITY y 'z'>]>"}


def test_parse_xml_returns_the_element_for_soap() -> None:
    root = parse_xml(SOAP)
    assert root.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"


# --------------------------------------------------------------------------- hostile corpus

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>
"""


def test_billion_laughs_is_refused() -> None:
    assert _code(BILLION_LAUGHS) == "E_XML_UNSAFE"


def test_quadratic_blowup_is_refused() -> None:
    big = "x" * 50_000
    data = f'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "{big}">]><q>{"&a;" * 5000}</q>'
    assert _code(data.encode()) == "E_XML_UNSAFE"


def test_xxe_local_file_is_refused() -> None:
    data = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>"""
    assert _code(data) == "E_XML_UNSAFE"


def test_xxe_network_is_refused() -> None:
    data = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "http://127.0.0.1:9/secret">]><r>&xxe;</r>"""
    assert _code(data) == "E_XML_UNSAFE"


def test_external_dtd_is_refused() -> None:
    data = b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/r.dtd"><r>1</r>'
    assert _code(data) == "E_XML_UNSAFE"


def test_parameter_entities_are_refused() -> None:
    data = b"""<?xml version="1.0"?>
<!DOCTYPE r [
  <!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd">
  %remote;
]><r>1</r>"""
    assert _code(data) == "E_XML_UNSAFE"


def test_xinclude_is_refused() -> None:
    data = b"""<r xmlns:xi="http://www.w3.org/2001/XInclude">
  <xi:include parse="text" href="file:///etc/passwd"/></r>"""
    assert _code(data) == "E_XML_UNSAFE"
    with pytest.raises(HubError) as info:
        parse_xml(data)
    assert info.value.code == "E_XML_UNSAFE"


def test_doctype_in_utf16_is_refused_after_parsing() -> None:
    # The byte check before parsing cannot read UTF-16; the parsed document's docinfo can.
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>'
    assert _code(data.encode("utf-16")) == "E_XML_UNSAFE"


def test_too_deep_is_refused() -> None:
    data = ("<a>" * 70 + "x" + "</a>" * 70).encode()
    assert _code(data, max_depth=64) == "E_TOO_DEEP"
    with pytest.raises(HubError) as info:
        parse_xml(data, max_depth=64)
    assert info.value.code == "E_TOO_DEEP"
    # deeper than libxml2's own limit (256) is the same error
    deeper = ("<a>" * 300 + "</a>" * 300).encode()
    assert _code(deeper, max_depth=1000) == "E_TOO_DEEP"
    assert xml_to_dict(("<a>" * 64 + "</a>" * 64).encode(), max_depth=64) is not None


def test_too_large_is_refused_before_parsing() -> None:
    data = b"<a>" + b"x" * 2000 + b"</a>"
    assert _code(data, max_bytes=1000) == "E_TOO_LARGE"


def test_malformed_is_e_xml() -> None:
    assert _code(b"<a><b></a>") == "E_XML"
    assert _code(b"") == "E_XML"
    assert _code(b"<a>&undeclared;</a>") == "E_XML"


def test_wrong_encoding_declaration_is_e_xml() -> None:
    gbk_bytes = '<?xml version="1.0" encoding="UTF-8"?><a>监管</a>'.encode("gbk")
    assert _code(gbk_bytes) == "E_XML"
    assert _code(b'<?xml version="1.0" encoding="no-such-charset"?><a>1</a>') == "E_XML"
