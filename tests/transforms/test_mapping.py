"""The mapping language: every feature on real records, both directions, and compile errors
that name the file, line, rule and field."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts import InspectionRecord, sample_inspection
from hub.config import load_yaml_file
from hub.errors import ConfigError, HubError, MappingError
from hub.plugins import build_plugin_manager, hookimpl, load_registry
from hub.specs import TransformFunctionSpec
from transforms.mapping import CompiledMapping, compile_mapping


@pytest.fixture(scope="module")
def functions() -> dict[str, TransformFunctionSpec]:
    """The transform functions a real hub registers (core plugin plus a department plugin)."""

    class DeptPlugin:
        @hookimpl
        def hub_register_transform_functions(self) -> list[TransformFunctionSpec]:
            return [
                TransformFunctionSpec(
                    "prefix", lambda v, p: f"{p}{v}", "prefix a value", kind="value"
                ),
                TransformFunctionSpec("boom", lambda v: 1 / 0, "always fails", kind="value"),
            ]

    pm = build_plugin_manager([DeptPlugin()], load_entry_points=False)
    import hub.builtin

    pm.register(hub.builtin, name="core")
    return dict(load_registry(pm).transform_functions.specs)


def m(
    rules: list[dict[str, Any]],
    functions: dict[str, TransformFunctionSpec] | None = None,
    **spec: Any,
) -> CompiledMapping:
    return compile_mapping({"rules": rules, **spec}, functions=functions or {})


def mapping_error(mapping: CompiledMapping, record: dict[str, Any]) -> MappingError:
    with pytest.raises(MappingError) as info:
        mapping(record)
    assert info.value.code == "E_MAPPING"
    return info.value


# --------------------------------------------------------------------------- both directions

# A department's own inspection schema (拼音 abbreviations, as many department systems use).
DEPT_MAPPING = """
mapping:
  inbound:
    inspection:
      code_tables:
        nature: {"法人": "1", "自然人": "2", "个体工商户": "3"}
        cert: {"统一社会信用代码": "001", "身份证": "111"}
      rules:
        - {to: catalog_code, from: JCSXBM}
        - {to: implementation_code, from: SSQDBM}
        - {to: inspection_name, from: JCXWMC, fn: strip}
        - {to: inspection_no, from: JCXWBH}
        - {to: supervised_object, from: JDDX}
        - {to: counterpart_name, from: XDR.MC}
        - {to: counterpart_nature, from: XDR.XZ, code_table: nature}
        - {to: counterpart_cert_type, from: XDR.ZJLX, code_table: cert}
        - {to: counterpart_code, from: XDR.ZJHM, fn: upper}
        - {to: region_code, from: XZQH, type: str}
        - {to: inspection_form, from: JCXS, type: str}
        - {to: inspection_category, from: JCLB, type: str}
        - {to: inspection_result, from: JCJG, type: str}
        - {to: inspection_time, from: JCSJ, type: datetime, formats: [yyyyMMddHHmmss]}
        - {to: "inspectors[].name", from: "JCRY[].XM"}
        - {to: "inspectors[].law_enforcement_cert_no", from: "JCRY[].ZFZH"}
        - {to: implementing_body, from: SSJG}
        - {to: implementing_body_code, from: SSJGDM}
        - {to: business_address, from: JYDZ}
        - {to: submitted_at, from: BSSJ, type: datetime, formats: [epoch_millis]}
        - {to: submitter, from: BSR}
"""

NATURE_NAME = {"1": "法人", "2": "自然人", "3": "个体工商户"}
CERT_NAME = {"001": "统一社会信用代码", "111": "身份证"}


def dept_record(canon: dict[str, Any]) -> dict[str, Any]:
    """What the department system sends for the canonical record ``canon``."""
    return {
        "JCSXBM": canon["catalog_code"],
        "SSQDBM": canon["implementation_code"],
        "JCXWMC": f"  {canon['inspection_name']}\u3000",
        "JCXWBH": canon["inspection_no"],
        "JDDX": canon["supervised_object"],
        "XDR": {
            "MC": canon["counterpart_name"],
            "XZ": NATURE_NAME[canon["counterpart_nature"]],
            "ZJLX": CERT_NAME[canon["counterpart_cert_type"]],
            "ZJHM": canon["counterpart_code"].lower(),
        },
        "XZQH": int(canon["region_code"]),
        "JCXS": int(canon["inspection_form"]),
        "JCLB": int(canon["inspection_category"]),
        "JCJG": int(canon["inspection_result"]),
        "JCSJ": datetime.fromisoformat(canon["inspection_time"]).strftime("%Y%m%d%H%M%S"),
        "JCRY": [
            {"XM": p["name"], "ZFZH": p["law_enforcement_cert_no"]} for p in canon["inspectors"]
        ],
        "SSJG": canon["implementing_body"],
        "SSJGDM": canon["implementing_body_code"],
        "JYDZ": canon["business_address"],
        "BSSJ": int(datetime.fromisoformat(canon["submitted_at"]).timestamp() * 1000),
        "BSR": canon["submitter"],
    }


def test_inbound_department_record_becomes_a_valid_canonical_record(
    tmp_path: Path, functions: dict[str, TransformFunctionSpec]
) -> None:
    f = tmp_path / "dept-a.yaml"
    f.write_text(DEPT_MAPPING, encoding="utf-8")
    spec = load_yaml_file(f).data["mapping"]["inbound"]["inspection"]
    mapping = compile_mapping(spec, functions=functions, where=str(f))
    for i in (0, 1, 2, 7):  # company, 个体工商户, person (身份证), ...
        canon = sample_inspection(i)
        got = mapping(dept_record(canon))
        expected = {k: v for k, v in canon.items() if k in got}
        assert got == expected
        InspectionRecord.model_validate(got)


OUTBOUND = {
    "code_tables": {"result": {"1": "A", "2": "B", "3": "C", "4": "D", "5": "E"}},
    "rules": [
        {"to": "jcxwbh", "from": "inspection_no"},
        {"to": "jcrq", "from": "inspection_time", "type": "date"},
        {"to": "jcjg", "from": "inspection_result", "code_table": "result"},
        {"to": "xdr.mc", "from": "counterpart_name"},
        {
            "when": {"field": "counterpart_cert_type", "equals": "111"},
            "rules": [
                {"to": "xdr.zjhm", "from": "counterpart_code", "mask": "id_card"},
                {"to": "xdr.mc", "from": "counterpart_name", "mask": "name"},
            ],
            "else": [{"to": "xdr.zjhm", "from": "counterpart_code"}],
        },
        {
            "to": "jcry",
            "from": "inspectors",
            "each": [
                {"to": "xm", "from": "name"},
                {"to": "zfzh", "from": "law_enforcement_cert_no"},
            ],
        },
        {"to": "sjly", "value": "jghub"},
    ],
}


def test_outbound_canonical_record_becomes_the_target_schema() -> None:
    mapping = compile_mapping(OUTBOUND, functions={})
    person = sample_inspection(2)
    assert person["counterpart_cert_type"] == "111"
    got = mapping(person)
    code = person["counterpart_code"]
    assert got["xdr"] == {
        "mc": person["counterpart_name"][0] + "*" * (len(person["counterpart_name"]) - 1),
        "zjhm": code[:6] + "********" + code[-4:],
    }
    assert got["jcrq"] == person["inspection_time"][:10]
    assert got["jcry"] == [
        {"xm": p["name"], "zfzh": p["law_enforcement_cert_no"]} for p in person["inspectors"]
    ]
    assert got["sjly"] == "jghub"
    company = sample_inspection(0)
    assert mapping(company)["xdr"] == {
        "mc": company["counterpart_name"],
        "zjhm": company["counterpart_code"],
    }


# --------------------------------------------------------------------------- paths


def test_dotted_paths_and_indexes_read_and_write() -> None:
    mapping = m(
        [
            {"to": "a.b[0].c", "from": "x.y[1].z"},
            {"to": "a.b[1].c", "from": "x.y[-1].z"},
            {"to": "top", "from": "x.missing.deep"},
        ]
    )
    got = mapping({"x": {"y": [{"z": 1}, {"z": 2}, {"z": 3}]}})
    assert got == {"a": {"b": [{"c": 2}, {"c": 3}]}}


def test_array_paths_map_each_element_and_collect() -> None:
    mapping = m(
        [
            {"to": "items[].code", "from": "lines[].sku", "fn": "upper"},
            {"to": "items[].qty", "from": "lines[].n", "type": "int"},
            {"to": "skus", "from": "lines[].sku"},
            {"to": "tags[]", "from": "labels[]", "type": "str"},
        ],
        functions={"upper": TransformFunctionSpec("upper", str.upper, kind="value")},
    )
    got = mapping({"lines": [{"sku": "a1", "n": "2"}, {"sku": "b2", "n": 3}], "labels": [1, 2]})
    assert got == {
        "items": [{"code": "A1", "qty": 2}, {"code": "B2", "qty": 3}],
        "skus": ["a1", "b2"],
        "tags": ["1", "2"],
    }
    err = mapping_error(mapping, {"lines": [{"sku": "a", "n": "2"}, {"sku": "b", "n": "x"}]})
    assert err.field == "items[1].qty"
    assert "'x'" in err.message


def test_each_names_the_element_in_errors() -> None:
    mapping = m(
        [
            {
                "to": "people",
                "from": "RY",
                "each": [
                    {"to": "age", "from": "NL", "type": "int", "required": True},
                ],
            }
        ]
    )
    assert mapping({"RY": [{"NL": "30"}]}) == {"people": [{"age": 30}]}
    assert mapping_error(mapping, {"RY": [{"NL": "30"}, {}]}).field == "people[1].age"
    assert mapping_error(mapping, {"RY": "not a list"}).field == "people"


# --------------------------------------------------------------------------- values


def test_constants_defaults_and_required() -> None:
    mapping = m(
        [
            {"to": "source", "value": "dept-a"},
            {"to": "tags", "value": ["a"]},
            {"to": "level", "from": "JB", "default": "3"},
            {"to": "name", "from": "MC", "required": True},
        ]
    )
    first = mapping({"MC": "x"})
    assert first == {"source": "dept-a", "tags": ["a"], "level": "3", "name": "x"}
    first["tags"].append("changed")
    assert mapping({"MC": "y", "JB": "2"})["tags"] == ["a"]  # constants are not shared
    assert mapping({"MC": "y", "JB": "2"})["level"] == "2"
    err = mapping_error(mapping, {"JB": "1"})
    assert err.field == "name"
    assert "MC" in err.message


def test_concat_and_split() -> None:
    mapping = m(
        [
            {"to": "address", "concat": ["S", "SHI", {"value": "区"}, "XQ"], "sep": ""},
            {"to": ["lng", "lat"], "from": "ZB", "split": ",", "type": "float"},
            {"to": "codes", "from": "DM", "split": ";"},
        ]
    )
    got = mapping({"S": "浙江省", "SHI": "杭州市", "XQ": None, "ZB": "120.1, 30.2", "DM": "a;b"})
    assert got == {"address": "浙江省杭州市区", "lng": 120.1, "lat": 30.2, "codes": ["a", "b"]}


def test_numbers() -> None:
    mapping = m(
        [
            {"to": "n", "from": "n", "type": "int"},
            {"to": "d", "from": "d", "type": "decimal"},
            {"to": "d2", "from": "d", "type": "decimal", "scale": 2},
            {"to": "f", "from": "f", "type": "float"},
        ]
    )
    got = mapping({"n": " 42 ", "d": "1234.5678", "f": "3.5"})
    assert got == {"n": 42, "d": "1234.5678", "d2": "1234.57", "f": 3.5}
    assert mapping({"n": "7.0", "d": 3, "f": 2})["n"] == 7
    assert mapping({"n": "", "d": " "}) == {}  # blank is absent for converting steps
    assert mapping_error(mapping, {"n": "7.5"}).field == "n"
    assert mapping_error(mapping, {"d": "12万"}).field == "d"
    assert mapping_error(mapping, {"f": "nan"}).field == "f"
    assert mapping_error(mapping, {"n": True}).field == "n"


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("1", True),
        ("0", False),
        ("是", True),
        ("否", False),
        ("Y", True),
        ("N", False),
        ("y", True),
        (True, True),
        (False, False),
        ("true", True),
        ("false", False),
        (1, True),
        (0, False),
    ],
)
def test_booleans(raw: Any, want: bool) -> None:
    assert m([{"to": "b", "from": "b", "type": "bool"}])({"b": raw}) == {"b": want}


def test_boolean_rejects_other_values() -> None:
    err = mapping_error(m([{"to": "b", "from": "src", "type": "bool"}]), {"src": "maybe"})
    assert err.field == "b"
    assert "'maybe'" in err.message


@pytest.mark.parametrize(
    ("raw", "date", "dt"),
    [
        ("20240301", "2024-03-01", "2024-03-01T00:00:00+08:00"),
        ("2024-03-01", "2024-03-01", "2024-03-01T00:00:00+08:00"),
        ("2024/03/01", "2024-03-01", "2024-03-01T00:00:00+08:00"),
        ("2024-03-01 09:05:07", "2024-03-01", "2024-03-01T09:05:07+08:00"),
        ("2024年3月1日", "2024-03-01", "2024-03-01T00:00:00+08:00"),
        ("2024年12月31日", "2024-12-31", "2024-12-31T00:00:00+08:00"),
        ("2024-03-01T01:00:00Z", "2024-03-01", "2024-03-01T09:00:00+08:00"),
    ],
)
def test_dates_in_default_formats(raw: str, date: str, dt: str) -> None:
    mapping = m(
        [
            {"to": "d", "from": "x", "type": "date"},
            {"to": "t", "from": "x", "type": "datetime"},
        ]
    )
    assert mapping({"x": raw}) == {"d": date, "t": dt}


def test_epoch_and_configured_formats() -> None:
    mapping = m(
        [
            {"to": "ms", "from": "ms", "type": "datetime", "formats": ["epoch_millis"]},
            {"to": "s", "from": "s", "type": "datetime", "formats": ["epoch_seconds"], "tz": "Z"},
            {"to": "c", "from": "c", "type": "date", "formats": ["dd.MM.yyyy", "yyyyMMdd"]},
            {"to": "q", "from": "q", "type": "datetime", "formats": ["yyyy-MM-dd'T'HH:mm"]},
        ]
    )
    got = mapping(
        {"ms": 1709254800000, "s": "1709254800", "c": "01.03.2024", "q": "2024-03-01T09:30"}
    )
    assert got == {
        "ms": "2024-03-01T09:00:00+08:00",
        "s": "2024-03-01T01:00:00+00:00",
        "c": "2024-03-01",
        "q": "2024-03-01T09:30:00+08:00",
    }
    assert mapping({"c": "20240301"})["c"] == "2024-03-01"


def test_bad_date_names_field_and_formats() -> None:
    mapping = m([{"to": "inspection_time", "from": "JCSJ", "type": "datetime"}])
    for bad in ("20241301", "2024-02-30", "yesterday"):
        err = mapping_error(mapping, {"JCSJ": bad})
        assert err.field == "inspection_time"
        assert bad in err.message and "yyyyMMdd" in err.message and "JCSJ" in err.message


def test_code_table_policies() -> None:
    tables = {"penalty_type": {"01": "warning", "02": "fine"}}
    reject = m([{"to": "kind", "from": "CFLB", "code_table": "penalty_type"}], code_tables=tables)
    assert reject({"CFLB": "01"}) == {"kind": "warning"}
    err = mapping_error(reject, {"CFLB": "09"})
    assert err.field == "kind"
    assert "'09'" in err.message and "penalty_type" in err.message

    default = m(
        [
            {
                "to": "kind",
                "from": "CFLB",
                "code_table": "penalty_type",
                "unmapped": {"default": "other"},
            }
        ],
        code_tables=tables,
    )
    assert default({"CFLB": "09"}) == {"kind": "other"}

    passing = m(
        [{"to": "kind", "from": "CFLB", "code_table": "penalty_type", "unmapped": "pass"}],
        code_tables=tables,
    )
    warnings: list[str] = []
    assert passing({"CFLB": "09"}, warnings) == {"kind": "09"}
    assert warnings == [
        "kind: code '09' (from CFLB) is not in code table penalty_type; passed through unchanged"
    ]
    assert passing({"CFLB": "09"}) == {"kind": "09"}  # no warnings list: no error either

    inline = m([{"to": "ok", "from": "x", "code_table": {1: "yes"}}])
    assert inline({"x": 1}) == {"ok": "yes"}  # codes compare as text


def test_conditions() -> None:
    mapping = m(
        [
            {
                "when": {"field": "LX", "equals": "1"},
                "rules": [{"to": "kind", "value": "corp"}],
                "else": [{"to": "kind", "value": "other"}],
            },
            {"when": {"field": "LX", "in": ["2", "3"]}, "rules": [{"to": "person", "value": True}]},
            {
                "when": {"field": "LX", "not_in": ["1"]},
                "rules": [{"to": "not_corp", "value": True}],
            },
            {
                "when": [{"field": "a.b", "exists": True}, {"field": "c", "exists": False}],
                "rules": [{"to": "ab", "from": "a.b"}],
            },
        ]
    )
    assert mapping({"LX": "1"}) == {"kind": "corp"}
    assert mapping({"LX": "2", "a": {"b": 5}}) == {
        "kind": "other",
        "person": True,
        "not_corp": True,
        "ab": 5,
    }
    assert mapping({"LX": "9", "a": {"b": 5}, "c": 1}) == {"kind": "other", "not_corp": True}


def test_masks() -> None:
    mapping = m(
        [
            {"to": "id", "from": "id", "mask": "id_card"},
            {"to": "phone", "from": "phone", "mask": "phone"},
            {"to": "name", "from": "name", "mask": "name"},
            {"to": "name2", "from": "name2", "mask": "name"},
            {"to": "acct", "from": "acct", "mask": {"keep_first": 2, "keep_last": 0, "char": "#"}},
        ]
    )
    got = mapping(
        {
            "id": "11010519491231002X",
            "phone": 13812345678,
            "name": "王小明",
            "name2": "欧阳娜娜",
            "acct": "6222",
        }
    )
    assert got == {
        "id": "110105********002X",
        "phone": "138****5678",
        "name": "王**",
        "name2": "欧阳**",
        "acct": "62##",
    }
    assert mapping({"id": "12345"})["id"] == "*****"  # too short: nothing is revealed


def test_salted_hash_with_salt_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JG_TEST_SALT", "s3cret-salt-value")
    mapping = m([{"to": "id_hash", "from": "ZJHM", "hash": "sha256"}], salt="${JG_TEST_SALT}")
    got = mapping({"ZJHM": "11010519491231002X"})
    want = hashlib.sha256(b"s3cret-salt-value" + b"11010519491231002X").hexdigest()
    assert got == {"id_hash": want}
    other = m([{"to": "h", "from": "ZJHM", "hash": "sha256", "salt": "another-salt"}])
    assert other({"ZJHM": "11010519491231002X"})["h"] != want


def test_unmapped_fields_drop_or_keep() -> None:
    rules = [{"to": "name", "from": "MC"}, {"to": "addr", "concat": ["S", "X"]}]
    record = {"MC": "a", "S": "1", "X": "2", "EXTRA": 5}
    assert m(rules)(record) == {"name": "a", "addr": "12"}
    assert m(rules, unmapped_fields="keep")(record) == {"name": "a", "addr": "12", "EXTRA": 5}


def test_value_functions_from_plugins(functions: dict[str, TransformFunctionSpec]) -> None:
    mapping = m(
        [
            {
                "to": "code",
                "from": "DM",
                "fn": [{"name": "pad_left", "args": [6, "0"]}, {"name": "prefix", "args": ["X-"]}],
            },
            {"to": "name", "from": "MC", "fn": ["strip", "upper"]},
            {"to": "part", "from": "MC", "fn": {"name": "substring", "args": [1, 3]}},
        ],
        functions,
    )
    assert mapping({"DM": 42, "MC": " abcd "}) == {"code": "X-000042", "name": "ABCD", "part": "ab"}
    failing = m([{"to": "x", "from": "x", "fn": "boom"}], functions)
    err = mapping_error(failing, {"x": 1})
    assert err.field == "x" and "boom" in err.message and "ZeroDivisionError" in err.message


def test_record_is_not_changed_and_must_be_an_object() -> None:
    mapping = m([{"to": "a", "from": "b", "type": "int"}])
    record = {"b": "1"}
    mapping(record)
    assert record == {"b": "1"}
    assert mapping_error(mapping, ["not", "a", "record"]).field == "(record)"  # type: ignore[arg-type]


def test_simple_rules_compile_to_inline_code() -> None:
    """Per-record work is the mapping itself: renames are plain dict operations."""
    mapping = m([{"to": "inspection_no", "from": "JCXWBH"}, {"to": "x", "from": "a.b"}])
    assert "v = rec.get('JCXWBH')" in mapping.source
    assert "out['inspection_no'] = v" in mapping.source


# --------------------------------------------------------------------------- compile errors

BROKEN = """
name: dept-b
mapping:
  inbound:
    inspection:
      code_tables:
        result: {"1": ok}
      rules:
        - {to: a, from: A}
        - {to: b, from: B}
        - {to: c, from: C}
        - to: inspection_time
          from: JCSJ
          {bad}
"""


@pytest.mark.parametrize(
    ("bad", "key", "words"),
    [
        ("fn: no_such_fn", "fn", ["unknown function 'no_such_fn'", "upper"]),
        ("fn: identity", "fn", ["a record function", "identity"]),
        ("code_table: nope", "code_table", ["unknown code table 'nope'", "result"]),
        ("type: datetime\n          formats: [yyyy-QQ-dd]", "formats", ["'QQ'", "yyyy-QQ-dd"]),
        ("type: timestamp", "type", ["unknown type 'timestamp'", "datetime"]),
        ("colour: red", "colour", ["unknown rule key 'colour'", "allowed: to, from"]),
        ("mask: everything", "mask", ["unknown mask", "id_card"]),
        ("hash: sha256", "hash", ["salt"]),
    ],
)
def test_compile_errors_name_file_line_rule_and_field(
    tmp_path: Path,
    functions: dict[str, TransformFunctionSpec],
    bad: str,
    key: str,
    words: list[str],
) -> None:
    f = tmp_path / "dept-b.yaml"
    f.write_text(BROKEN.replace("{bad}", bad), encoding="utf-8")
    located = load_yaml_file(f)
    prefix = ("mapping", "inbound", "inspection")
    spec = located.data["mapping"]["inbound"]["inspection"]
    with pytest.raises(ConfigError) as info:
        compile_mapping(
            spec,
            functions=functions,
            where=str(f),
            line_of=lambda loc: located.line_of((*prefix, *loc)),
        )
    err = info.value
    assert err.code == "E_CONFIG"
    text = f.read_text().splitlines()
    line = int(err.message.split(":", 1)[1].split(" ", 1)[0])
    assert text[line - 1].strip().startswith(key)
    assert err.message.startswith(f"{f}:{line} rules[3]")
    assert "(field inspection_time)" in err.message
    for w in words:
        assert w in err.message
    assert err.field is not None and err.field.startswith("rules[3]")


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"to": "a", "from": "x..y"}, ["bad path 'x..y'"]),
        ({"to": "a", "from": "x[1"}, ["bad path"]),
        ({"to": "a[].b", "from": "x"}, ["has [] but the source has none"]),
        ({"to": "a", "from": "x[][]"}, ["at most one []"]),
        ({"to": "a"}, ["needs from:, value:, concat: or default:"]),
        ({"from": "a"}, ["needs to:"]),
        ({"to": "a", "from": "b", "value": 1}, ["one of from, value, concat"]),
        ({"to": "a", "from": "b", "unmapped": "pass"}, ["unmapped: needs code_table:"]),
        ({"to": "a", "from": "b", "hash": "sha256", "salt": "short"}, ["at least 8"]),
        (
            {"when": {"field": "x", "equals": 1}, "rules": [], "note": "n", "to": "a"},
            ["unknown key 'to' in a conditional rule", "allowed: when, rules, else"],
        ),
        (
            {"when": {"field": "x", "like": 1}, "rules": [{"to": "a", "value": 1}]},
            ["unknown key 'like'"],
        ),
    ],
)
def test_more_compile_errors(rule: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        compile_mapping({"rules": [rule]}, functions={}, where="systems/x.yaml")
    assert info.value.message.startswith("systems/x.yaml rules[0]")
    for w in words:
        assert w in info.value.message


def test_unknown_mapping_key_and_missing_env_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        compile_mapping({"rule": []}, functions={})
    assert "allowed: rules, code_tables, unmapped_fields, salt" in info.value.message
    monkeypatch.delenv("JG_NO_SUCH_SALT", raising=False)
    with pytest.raises(ConfigError) as info:
        compile_mapping({"rules": [], "salt": "${JG_NO_SUCH_SALT}"}, functions={})
    assert "JG_NO_SUCH_SALT is not set" in info.value.message


def test_yaml_example_from_the_docs_compiles(
    functions: dict[str, TransformFunctionSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPT_A_HASH_SALT", "docs-example-salt")
    doc = Path(__file__).resolve().parents[2] / "docs" / "mapping.md"
    blocks = doc.read_text(encoding="utf-8").split("```yaml")[1:]
    compiled = 0
    for block in blocks:
        data = yaml.safe_load(block.split("```", 1)[0])
        if isinstance(data, dict) and "mapping" in data:
            for direction in data["mapping"].values():
                for spec in direction.values():
                    assert isinstance(compile_mapping(spec, functions=functions), CompiledMapping)
                    compiled += 1
    assert compiled >= 2


def test_mapping_error_is_a_hub_error() -> None:
    assert issubclass(MappingError, HubError)
    assert MappingError("x", field="f").to_problem()["code"] == "E_MAPPING"
