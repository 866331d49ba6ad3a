"""Contract tests of the trading platform's documents: the XSD shipped in the adapter, the
safe parsing, the conversion for the mapping and the canonical contracts — valid and invalid
documents of every type, checksum failures (USCC check characters, attachment digests),
namespace errors and hostile XML."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from adapters.trading import simulator as sim
from adapters.trading.adapter import TradingAdapter, TradingAdapterOptions
from adapters.trading.contracts import AwardResult, BidOpening, TenderAnnouncement
from adapters.trading.documents import NS_JY, XSD_DIR, read_document
from hub.errors import HubError
from hub.plugins import build_plugin_manager, load_registry

REF = {
    "name": "中标通知书.pdf",
    "uri": "https://ggzy.example.gov.cn/ggzy/v1/fj/FJ-1",
    "sha256": hashlib.sha256(b"notice").hexdigest(),
    "size": 6,
    "media_type": "application/pdf",
}
DOCUMENTS = {
    "JYXM": lambda: sim.project_document(1, "GC", attachments=[REF]),
    "ZBGG": lambda: sim.announcement_document(1, "CG", attachments=[REF]),
    "KBJL": lambda: sim.bid_opening_document(1, "TD", attachments=[REF]),
    "ZBJG": lambda: sim.award_document(1, "CQ", attachments=[REF]),
}


def _adapter(**options: Any) -> TradingAdapter:
    return TradingAdapter("trading", TradingAdapterOptions(**options))


def _code(data: bytes, **options: Any) -> HubError:
    with pytest.raises(HubError) as info:
        _adapter(**options).decode(data, "application/xml", {})
    return info.value


def _without(text: str, element: str) -> bytes:
    """``text`` without the first ``element`` (its whole line, documents are pretty-printed)."""
    lines = text.splitlines(keepends=True)
    i = next(n for n, line in enumerate(lines) if f"<{element}>" in line)
    return "".join(lines[:i] + lines[i + 1 :]).encode()


# --------------------------------------------------------------------------- valid documents


@pytest.mark.parametrize("root", sorted(DOCUMENTS))
def test_every_document_type_validates_and_becomes_one_record(root: str) -> None:
    [record] = _adapter().decode(DOCUMENTS[root](), "application/xml", {})
    assert list(record) == [root]
    body = record[root]
    assert body["wjbh"].startswith("WJ-")  # the root's attribute, without "@"
    # prefixes are gone and repeated elements are lists even when there is one
    assert body["FJLB"]["FJ"] == [
        {"MC": REF["name"], "URI": REF["uri"], "SHA256": REF["sha256"], "DX": "6",
         "LX": "application/pdf"}
    ]  # fmt: skip
    assert not any(k.startswith("@") or ":" in k for k in body)


def test_the_default_namespace_or_other_prefixes_give_the_same_record() -> None:
    text = sim.award_document(3).decode()
    default_ns = text.replace("xmlns:jy=", "xmlns=").replace("<jy:", "<").replace("</jy:", "</")
    other = text.replace("xmlns:jy=", "xmlns:zb=").replace("<jy:", "<zb:").replace("</jy:", "</zb:")
    want = _adapter().decode(text.encode(), "application/xml", {})
    assert _adapter().decode(default_ns.encode(), "text/xml", {}) == want
    assert _adapter().decode(other.encode(), "", {}) == want


def test_one_bidder_is_still_a_list() -> None:
    _kind, record = read_document(sim.bid_opening_document(4, n_bidders=1))
    assert isinstance(record["KBJL"]["TBRLB"]["TBR"], list)
    assert len(record["KBJL"]["TBRLB"]["TBR"]) == 1


def test_the_xsd_files_are_shipped_with_the_adapter() -> None:
    assert {p.name for p in XSD_DIR.glob("*.xsd")} == {"jy.xsd", "fj.xsd"}
    assert NS_JY in (XSD_DIR / "jy.xsd").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- XSD failures


@pytest.mark.parametrize(
    ("root", "element", "named"),
    [
        ("JYXM", "jy:XMMC", "JYXM/XMLX"),  # 项目名称 missing: the next element is unexpected
        ("ZBGG", "jy:TBJZSJ", "ZBGG/KBSJ"),  # 投标截止时间 missing
        ("KBJL", "jy:KBSJ", "KBJL/KBDD"),  # 开标时间 missing
        ("ZBJG", "jy:ZBJE", "ZBJG/ZBRQ"),  # 中标金额 missing
    ],
)
def test_a_missing_required_element_is_e_xsd_naming_line_and_element(
    root: str, element: str, named: str
) -> None:
    text = DOCUMENTS[root]().decode()
    line = next(n for n, t in enumerate(text.splitlines(), 1) if f"<{element}>" in t)
    err = _code(_without(text, element))
    assert err.code == "E_XSD"
    assert err.field == named
    assert f"line {line}:" in err.message and element.split(":")[1] in err.message


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("<jy:XMLX>GC</jy:XMLX>", "<jy:XMLX>ZZ</jy:XMLX>", "JYXM/XMLX"),  # not a 项目类型 code
        ("<jy:XZQH>330106</jy:XZQH>", "<jy:XZQH>33010</jy:XZQH>", "JYXM/XZQH"),
        ("<jy:YSJE>1201.5</jy:YSJE>", "<jy:YSJE>-1</jy:YSJE>", "JYXM/YSJE"),  # negative budget
        ("<jy:DJSJ>2024-05-06T09:00:00+08:00", "<jy:DJSJ>2024/05/06", "JYXM/DJSJ"),
        ('wjbh="WJ-XM-000001-1"', 'wjbh="WJ XM"', "JYXM"),  # a 文件编号 with a space
    ],
)
def test_a_value_outside_its_type_is_e_xsd(old: str, new: str, named: str) -> None:
    text = DOCUMENTS["JYXM"]().decode()
    assert old in text
    err = _code(text.replace(old, new).encode())
    assert err.code == "E_XSD" and err.field == named


def test_a_uscc_of_the_wrong_shape_is_e_xsd() -> None:
    text = DOCUMENTS["ZBJG"]().decode()
    winner = sim.bidders(1)[0]["jy:TYDM"]
    err = _code(text.replace(winner, winner[:17] + "I", 1).encode())  # I is not in the alphabet
    assert err.code == "E_XSD" and err.field == "ZBJG/ZBDW/TYDM"


@pytest.mark.parametrize("root", sorted(DOCUMENTS))
def test_an_attachment_without_checksum_or_size_is_e_xsd(root: str) -> None:
    text = DOCUMENTS[root]().decode()
    err = _code(_without(text, "fj:SHA256"))
    assert err.code == "E_XSD" and err.field.endswith("FJLB/FJ/DX")
    assert "fj:SHA256" in err.message  # what was expected instead
    err = _code(_without(text, "fj:DX"))
    assert err.code == "E_XSD" and "fj:DX" in err.message


@pytest.mark.parametrize(
    ("digest", "why"),
    [
        (REF["sha256"][:63], "63 hex digits"),
        (REF["sha256"].upper(), "upper case"),
        ("md5:" + REF["sha256"][4:], "another algorithm"),
    ],
)
def test_an_attachment_checksum_that_is_not_a_sha256_is_e_xsd(digest: str, why: str) -> None:
    text = DOCUMENTS["ZBJG"]().decode().replace(REF["sha256"], digest)
    err = _code(text.encode())
    assert err.code == "E_XSD" and err.field == "ZBJG/FJLB/FJ/SHA256", why


def test_an_attachment_uri_must_be_http() -> None:
    text = DOCUMENTS["ZBJG"]().decode().replace(REF["uri"], "file:///etc/passwd")
    err = _code(text.encode())
    assert err.code == "E_XSD" and err.field == "ZBJG/FJLB/FJ/URI"


# --------------------------------------------------------------------------- namespaces


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace(NS_JY, "http://ggzy.example.gov.cn/schema/jy/0.9"),  # old version
        lambda t: t.replace(f' xmlns:jy="{NS_JY}"', "").replace("jy:", ""),  # none at all
        lambda t: t.replace("jy:ZBJG", "jy:ZBXX"),  # not a document of the platform
    ],
)
def test_a_root_in_another_namespace_or_unknown_is_e_xml_namespace(change: Any) -> None:
    err = _code(change(DOCUMENTS["ZBJG"]().decode()).encode())
    assert err.code == "E_XML_NAMESPACE"
    assert NS_JY in err.message


def test_a_child_in_the_wrong_namespace_is_e_xsd() -> None:
    text = DOCUMENTS["ZBJG"]().decode().replace("<jy:ZBRQ>", "<fj:ZBRQ>", 1)
    text = text.replace("</jy:ZBRQ>", "</fj:ZBRQ>", 1)
    err = _code(text.encode())
    assert err.code == "E_XSD" and err.field == "ZBJG/ZBRQ"


# --------------------------------------------------------------------------- hostile XML


@pytest.mark.parametrize("kind", [k for k, code in sim.HOSTILE_KINDS.items() if code != "E_SCHEMA"])
def test_hostile_and_malformed_documents_are_refused_with_their_code(kind: str) -> None:
    err = _code(sim.hostile_document(kind), max_depth=32)
    assert err.code == sim.HOSTILE_KINDS[kind]


def test_xxe_is_refused_before_any_file_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    text = DOCUMENTS["JYXM"]().decode()
    decl, rest = text.split("\n", 1)
    doc = f'{decl}\n<!DOCTYPE jy:JYXM [<!ENTITY s SYSTEM "file://{secret}">]>\n' + rest.replace(
        "<jy:XMMC>", "<jy:XMMC>&s;", 1
    )
    err = _code(doc.encode())
    assert err.code == "E_XML_UNSAFE" and "TOP-SECRET" not in err.message


def test_a_document_larger_than_the_limit_is_e_too_large() -> None:
    text = DOCUMENTS["ZBGG"]().decode().replace("招标范围", "招标范围" * 2000, 1)
    err = _code(text.encode(), max_bytes=4096)
    assert err.code == "E_TOO_LARGE"


def test_only_xml_is_accepted() -> None:
    with pytest.raises(HubError) as info:
        _adapter().decode(b'{"ZBJG": {}}', "application/json", {})
    assert info.value.code == "E_MEDIA_TYPE" and info.value.field == "Content-Type"


# --------------------------------------------------------------------------- contracts


def _award(**change: Any) -> dict[str, Any]:
    good = {
        "result_no": "JG-330106-2024-0001",
        "project_code": "JY-330106-2024-0001",
        "project_name": "西湖区工程建设项目0001",
        "project_type": "engineering",
        "notice_kind": "result",
        "tenderer": {"name": "招标人", "uscc": "11330106MA0000G5X5"},
        "winner": {"name": "中标人", "uscc": "91330106813501902W"},
        "award_amount": "1101.00",
        "award_date": "2024-06-03",
        "region_code": "330106",
        "attachments": [dict(REF)],
    }
    good.update(change)
    return good


def test_the_canonical_award_validates() -> None:
    award = AwardResult.model_validate(_award())
    assert award.winner.uscc == "91330106813501902W" and award.attachments[0].size == 6


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"winner": {"name": "中标人", "uscc": "91330106813501902X"}}, "winner.uscc"),  # check char
        ({"tenderer": {"name": "招标人", "uscc": "11330106MA0000G5X6"}}, "tenderer.uscc"),
        ({"attachments": [{**REF, "sha256": None}]}, "attachments.0.sha256"),
        ({"attachments": [{**REF, "sha256": "ab" * 31}]}, "attachments.0.sha256"),
        ({"attachments": [{k: v for k, v in REF.items() if k != "size"}]}, "attachments.0.size"),
        ({"project_type": "工程建设"}, "project_type"),  # canonical codes only
        ({"region_code": "990106"}, "region_code"),
        ({"notice_kind": "candidates"}, ""),  # a publicity of candidates needs candidates
    ],
)
def test_invalid_awards_are_refused_naming_the_field(change: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as info:
        AwardResult.model_validate(_award(**change))
    locs = [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]
    assert where in locs


def test_bid_opening_refuses_a_bidder_twice_and_bad_check_characters() -> None:
    bidder = {"name": "甲", "uscc": "91330106813501902W", "bid_price": "10"}
    base = {"opening_no": "KB-0001", "project_code": "JY-0001", "project_type": "engineering",
            "opened_at": "2024-05-28T09:30:00"}  # fmt: skip
    assert BidOpening.model_validate({**base, "bidders": [bidder]}).opened_at.utcoffset()
    with pytest.raises(ValidationError, match="bids twice"):
        BidOpening.model_validate({**base, "bidders": [bidder, dict(bidder)]})
    with pytest.raises(ValidationError, match="check character"):
        BidOpening.model_validate({**base, "bidders": [{**bidder, "uscc": "91330106813501902Y"}]})
    with pytest.raises(ValidationError):
        BidOpening.model_validate({**base, "bidders": []})


def test_an_announcement_closing_before_it_opens_is_refused() -> None:
    ann = {
        "announcement_no": "GG-0001",
        "project_code": "JY-0001",
        "project_type": "other",
        "title": "公告",
        "published_at": "2024-05-08T10:00:00+08:00",
        "bid_deadline": "2024-05-01T09:30:00+08:00",
        "opening_time": "2024-05-28T09:30:00",
    }
    with pytest.raises(ValidationError, match="bid_deadline"):
        TenderAnnouncement.model_validate(ann)


def test_the_plugin_registers_the_adapter_and_datasets() -> None:
    reg = load_registry(build_plugin_manager())
    assert reg.adapters.get("trading", wanted_by="test").factory is TradingAdapter
    for ds in ("trading_project", "trading_announcement", "trading_bid_opening", "trading_award"):
        assert reg.datasets.get(ds, wanted_by="test").name == ds
