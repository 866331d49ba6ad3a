"""Governance steps 清洗/标准化: each step, the notes for the trace, and config errors."""

from __future__ import annotations

from typing import Any

import pytest

from hub.errors import ConfigError, MappingError
from transforms.cleaning import compile_cleaning

EXAMPLE = {
    "trim": True,
    "fullwidth_to_halfwidth": True,
    "empty_to_null": ["", "无", "null", "NULL", "/"],
    "dates": {"fields": ["check_date", "check_time"]},
    "region_codes": ["region_code"],
    "uppercase": ["uscc"],
}


def test_the_documented_example() -> None:
    clean = compile_cleaning(EXAMPLE)
    record: dict[str, Any] = {
        "name": "\u3000杭州Ａ１，餐饮店 ",
        "address": " 无 ",
        "remark": "NULL",
        "check_date": "2024年3月1日",
        "check_time": "2024-03-01 09:30:00",
        "region_code": "330102 西湖区",
        "uscc": "91330102ma27xyz12x",
        "inspectors": [{"name": " 王伟 "}],
        "count": 3,
    }
    notes: list[str] = []
    got = clean(record, notes)
    assert got == {
        "name": "杭州A1,餐饮店",
        "address": None,
        "remark": None,
        "check_date": "2024-03-01",
        "check_time": "2024-03-01T09:30:00+08:00",
        "region_code": "330102",
        "uscc": "91330102MA27XYZ12X",
        "inspectors": [{"name": "王伟"}],
        "count": 3,
    }
    assert notes == [
        "half-width: name",
        "trimmed: name, address, inspectors",
        "emptied: address, remark",
        "upper-cased: uscc",
        "region codes: region_code",
        "dates: check_date, check_time",
    ]
    assert record["name"] == "\u3000杭州Ａ１，餐饮店 "  # the input is not changed


def test_steps_on_chosen_fields_only() -> None:
    clean = compile_cleaning({"trim": ["a"], "fullwidth_to_halfwidth": ["b"]})
    assert clean({"a": " x ", "b": "ＡＢ ", "c": " Ｃ "}) == {"a": "x", "b": "AB ", "c": " Ｃ "}


def test_trim_removes_ideographic_and_invisible_spaces() -> None:
    clean = compile_cleaning({"trim": True})
    assert clean({"a": "\u200b\u3000 值\t\ufeff"}) == {"a": "值"}


def test_nothing_changed_gives_no_notes() -> None:
    notes: list[str] = []
    assert compile_cleaning(EXAMPLE)({"name": "ok"}, notes) == {"name": "ok"}
    assert notes == []


@pytest.mark.parametrize(
    ("raw", "pad", "want"),
    [
        ("330102", False, "330102"),
        (330102, False, "330102"),
        ("330102-", False, "330102"),
        ("330102001001", False, "330102"),  # 12-digit statistical code: its county part
        ("3301", False, "3301"),  # left for the contract to reject, field named
        ("3301", True, "330100"),
        ("33", True, "330000"),
        ("西湖区", True, "西湖区"),
    ],
)
def test_region_codes(raw: Any, pad: bool, want: str) -> None:
    clean = compile_cleaning({"region_codes": {"fields": ["r"], "pad": pad}})
    assert clean({"r": raw}) == {"r": want}


def test_dates_with_configured_formats_and_output() -> None:
    clean = compile_cleaning(
        {"dates": {"fields": ["d"], "formats": ["dd/MM/yyyy", "epoch_seconds"], "output": "date"}}
    )
    assert clean({"d": "01/03/2024"}) == {"d": "2024-03-01"}
    assert clean({"d": 1709254800}) == {"d": "2024-03-01"}
    with pytest.raises(MappingError) as info:
        clean({"d": "2024-03-01"})
    assert info.value.code == "E_MAPPING"
    assert info.value.field == "d"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"trimm": True}, ["trimm", "allowed: trim, fullwidth_to_halfwidth"]),
        ({"trim": "yes"}, ["trim", "true or a non-empty list"]),
        ({"dates": {"fields": ["d"], "formats": ["yyyy-XX"]}}, ["dates.formats", "'XX'"]),
        ({"dates": {"fields": []}}, ["dates.fields"]),
        ({"region_codes": {"fields": ["r"], "padding": True}}, ["'padding'"]),
        ({"empty_to_null": [None]}, ["empty_to_null"]),
    ],
)
def test_config_errors_name_the_key(spec: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        compile_cleaning(spec, where="systems/dept-a.yaml governance")
    assert info.value.message.startswith("systems/dept-a.yaml governance ")
    for w in words:
        assert w in info.value.message


def test_empty_to_null_true_uses_the_default_placeholders() -> None:
    clean = compile_cleaning({"empty_to_null": True})
    assert clean({"a": "/", "b": "无", "c": "0"}) == {"a": None, "b": None, "c": "0"}


def test_governance_example_from_the_docs_compiles() -> None:
    from pathlib import Path

    import yaml

    doc = Path(__file__).resolve().parents[2] / "docs" / "mapping.md"
    blocks = [b.split("```", 1)[0] for b in doc.read_text(encoding="utf-8").split("```yaml")[1:]]
    specs = [yaml.safe_load(b)["governance"] for b in blocks if "governance:" in b]
    assert specs
    for spec in specs:
        clean = compile_cleaning(spec)
        assert clean({"region_code": "3301", "counterpart_code": "x"}) == {
            "region_code": "330100",
            "counterpart_code": "X",
        }
