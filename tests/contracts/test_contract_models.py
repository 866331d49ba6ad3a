"""The canonical models: field-level errors name the field, cross-field rules, strictness
switch, JSON round trips and the code tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contracts import (
    CatalogItem,
    CertificateType,
    ChangeType,
    CodeTable,
    InspectionRecord,
    InspectionResult,
    SupervisionLevel,
    id_card_check_char,
    make_uscc,
    sample_catalog_item,
    sample_inspection,
)
from contracts import codes as codes_module

PILOT_USCC = "91350100M0001TGQXM"  # legal, but its final check character should be '1'


def _errors(model: type[BaseModel], data: dict[str, Any], **kw: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data, **kw)
    return [dict(e) for e in info.value.errors()]


def _one_error(model: type[BaseModel], data: dict[str, Any], **kw: Any) -> dict[str, Any]:
    errors = _errors(model, data, **kw)
    assert len(errors) == 1, errors
    return errors[0]


def _organisation_sample() -> dict[str, Any]:
    data = sample_inspection(0)
    assert data["counterpart_cert_type"] == "001"
    return data


def _person_sample() -> dict[str, Any]:
    data = sample_inspection(2)
    assert data["counterpart_cert_type"] == "111"
    return data


# --------------------------------------------------------------------------- samples


@pytest.mark.parametrize("region", ["330102", "330100", "330000", "110105", "820000"])
def test_inspection_samples_validate(region: str) -> None:
    keys = set()
    for i in range(200):
        record = InspectionRecord.model_validate(sample_inspection(i, region))
        keys.add(record.inspection_no)
    assert len(keys) == 200


def test_catalog_samples_validate() -> None:
    for i in range(200):
        for version in (1, 2, 5):
            item = CatalogItem.model_validate(sample_catalog_item(i, version))
            assert item.version == version
    assert len({sample_catalog_item(i)["code"] for i in range(200)}) == 200


def test_samples_are_deterministic_and_vary() -> None:
    assert sample_inspection(7) == sample_inspection(7)
    assert sample_inspection(7) != sample_inspection(8)
    assert sample_catalog_item(3, 2) == sample_catalog_item(3, 2)
    kinds = {sample_inspection(i)["counterpart_cert_type"] for i in range(3)}
    assert kinds == {"001", "111"}


def test_sample_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="行政区划代码"):
        sample_inspection(1, region="990000")
    with pytest.raises(ValueError):
        sample_inspection(-1)
    with pytest.raises(ValueError):
        sample_catalog_item(1, version=0)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("i", range(0, 200, 7))
def test_inspection_json_round_trip(i: int) -> None:
    sample = sample_inspection(i)
    record = InspectionRecord.model_validate(sample)
    dumped = record.model_dump(mode="json")
    assert InspectionRecord.model_validate(dumped) == record
    assert InspectionRecord.model_validate_json(record.model_dump_json()) == record
    # Samples are already canonical: dumping gives back exactly what was put in.
    assert record.model_dump(mode="json", exclude_unset=True) == sample


@pytest.mark.parametrize("i", range(0, 200, 7))
def test_catalog_json_round_trip(i: int) -> None:
    sample = sample_catalog_item(i, 1 + i % 3)
    item = CatalogItem.model_validate(sample)
    assert CatalogItem.model_validate(item.model_dump(mode="json")) == item
    assert CatalogItem.model_validate_json(item.model_dump_json()) == item
    assert item.model_dump(mode="json") == sample


# --------------------------------------------------------------------------- errors name the field


@pytest.mark.parametrize(
    "field",
    [
        "catalog_code",
        "implementation_code",
        "inspection_name",
        "inspection_no",
        "supervised_object",
        "counterpart_name",
        "counterpart_nature",
        "counterpart_cert_type",
        "counterpart_code",
        "region_code",
        "inspection_form",
        "inspection_category",
        "inspection_result",
        "inspection_time",
        "inspectors",
    ],
)
def test_missing_required_field_is_named(field: str) -> None:
    data = _organisation_sample()
    del data[field]
    errors = _errors(InspectionRecord, data)
    assert {"type": "missing", "loc": (field,)} in [
        {"type": e["type"], "loc": e["loc"]} for e in errors
    ]


def test_required_fields_are_exactly_the_domain_list() -> None:
    required = {n for n, f in InspectionRecord.model_fields.items() if f.is_required()}
    assert len(required) == 15


def test_optional_fields_may_be_left_out() -> None:
    data = _organisation_sample()
    for name, field in InspectionRecord.model_fields.items():
        if not field.is_required():
            data.pop(name, None)
    record = InspectionRecord.model_validate(data)
    assert record.submitted_at is None


@pytest.mark.parametrize(
    ("field", "value", "error_type"),
    [
        ("catalog_code", "3300000000000", "string_pattern_mismatch"),
        ("catalog_code", "3300000000000A", "string_pattern_mismatch"),
        ("catalog_code", "٣٣٠٠٠٠٠٠٠٠٠٠٠٠", "string_pattern_mismatch"),  # non-ASCII digits
        ("implementation_code", "113301020000200011", "string_pattern_mismatch"),
        ("implementation_code", "11330102000020001160001", "string_pattern_mismatch"),
        ("inspection_no", "N" * 51, "string_too_long"),
        ("inspection_name", "   ", "string_too_short"),
        ("supervised_object", "物" * 201, "string_too_long"),
        ("counterpart_name", "名" * 201, "string_too_long"),
        ("counterpart_code", "9" * 21, "string_too_long"),
        ("counterpart_nature", "9", "enum"),
        ("counterpart_cert_type", "002", "enum"),
        ("region_code", "33010", "region_code_format"),
        ("region_code", "990102", "region_code_province"),
        ("inspection_form", "8", "enum"),
        ("inspection_category", "8", "enum"),
        ("inspection_result", "6", "enum"),
        ("inspection_time", "yesterday", "datetime_from_date_parsing"),
        ("inspectors", [], "too_short"),
        ("registered_address", "址" * 401, "string_too_long"),
        ("business_address", "址" * 401, "string_too_long"),
        ("implementing_body_code", "91350200776049653B", "uscc_check"),
    ],
)
def test_bad_value_error_names_the_field(field: str, value: Any, error_type: str) -> None:
    data = _organisation_sample()
    data[field] = value
    error = _one_error(InspectionRecord, data)
    assert error["loc"] == (field,)
    assert error["type"] == error_type


def test_length_limits_are_inclusive() -> None:
    data = _organisation_sample()
    data |= {
        "inspection_no": "N" * 50,
        "supervised_object": "物" * 200,
        "counterpart_name": "名" * 200,
        "registered_address": "址" * 400,
        "business_address": "址" * 400,
    }
    record = InspectionRecord.model_validate(data)
    assert len(record.inspection_no) == 50 and len(record.business_address or "") == 400


def test_nested_inspector_error_has_full_location() -> None:
    data = _organisation_sample()
    data["inspectors"][1] = {"name": "王伟"}
    error = _one_error(InspectionRecord, data)
    assert error["loc"] == ("inspectors", 1, "law_enforcement_cert_no")
    assert error["type"] == "missing"


def test_unknown_fields_are_rejected() -> None:
    data = _organisation_sample()
    data["inspection_remark"] = "x"
    error = _one_error(InspectionRecord, data)
    assert error["loc"] == ("inspection_remark",)
    assert error["type"] == "extra_forbidden"


def test_strings_are_stripped() -> None:
    data = _organisation_sample()
    data["inspection_no"] = "  JC-1  "
    data["counterpart_code"] = f" {data['counterpart_code']} "
    record = InspectionRecord.model_validate(data)
    assert record.inspection_no == "JC-1"
    assert record.counterpart_code == data["counterpart_code"].strip()


# --------------------------------------------------------------------------- 相对人编码 by 证件类型


def test_counterpart_uscc_check_character_message() -> None:
    data = _organisation_sample()
    good = data["counterpart_code"]
    wrong = "0" if good[-1] != "0" else "1"
    data["counterpart_code"] = good[:-1] + wrong
    error = _one_error(InspectionRecord, data)
    assert error["loc"] == ("counterpart_code",)
    assert error["type"] == "uscc_check"
    assert error["msg"] == (
        f"统一社会信用代码 check character should be '{good[-1]}', got '{wrong}'"
    )


def test_counterpart_id_card_is_checked_for_cert_type_111() -> None:
    data = _person_sample()
    good = data["counterpart_code"]
    data["counterpart_code"] = good[:-1] + ("0" if good[-1] != "0" else "1")
    error = _one_error(InspectionRecord, data)
    assert error["loc"] == ("counterpart_code",)
    assert error["type"] == "id_card_check"
    assert error["msg"].startswith("公民身份号码 check character should be")


def test_counterpart_id_card_with_lower_case_x_is_normalised() -> None:
    data = _person_sample()
    first17 = "11010519491231002"
    assert id_card_check_char(first17) == "X"
    data["counterpart_code"] = first17 + "x"
    assert InspectionRecord.model_validate(data).counterpart_code == first17 + "X"


def test_id_number_is_not_accepted_as_uscc() -> None:
    data = _organisation_sample()
    data["counterpart_code"] = "11010519491231002X"
    error = _one_error(InspectionRecord, data)
    assert error["loc"] == ("counterpart_code",)
    assert error["type"].startswith("uscc_")


def test_other_certificate_types_are_only_length_checked() -> None:
    data = _person_sample()
    data["counterpart_cert_type"] = CertificateType.PASSPORT.value
    data["counterpart_code"] = "E12345678"
    assert InspectionRecord.model_validate(data).counterpart_code == "E12345678"


def test_implementation_code_embedded_uscc_is_checked() -> None:
    data = _organisation_sample()
    code = data["implementation_code"]
    broken = code[:17] + ("0" if code[17] != "0" else "1") + code[18:]
    data["implementation_code"] = broken
    error = _one_error(InspectionRecord, data)
    assert error["loc"] == ("implementation_code",)
    assert error["type"] == "uscc_check"
    assert error["msg"].startswith("检查实施清单编码 (implementation_code): 统一社会信用代码")


# --------------------------------------------------------------------------- times


def test_submitted_before_inspection_is_rejected() -> None:
    data = _organisation_sample()
    data["submitted_at"] = "2024-03-01T08:59:59+08:00"
    error = _one_error(InspectionRecord, data)
    assert error["loc"] == ("submitted_at",)
    assert error["type"] == "submitted_before_inspection"
    assert "报送时间 (submitted_at)" in error["msg"]
    assert "检查时间 (inspection_time)" in error["msg"]


def test_submitted_at_same_instant_is_rejected_across_offsets() -> None:
    data = _organisation_sample()
    data["inspection_time"] = "2024-03-01T09:00:00+08:00"
    data["submitted_at"] = "2024-03-01T01:00:00Z"
    assert _one_error(InspectionRecord, data)["loc"] == ("submitted_at",)


def test_naive_datetimes_are_china_standard_time() -> None:
    data = _organisation_sample()
    data["inspection_time"] = "2024-03-01 09:00:00"
    data["submitted_at"] = "2024-03-01T01:00:01Z"  # one second after 09:00 in UTC+8
    record = InspectionRecord.model_validate(data)
    assert record.inspection_time.utcoffset() == timedelta(hours=8)
    assert record.submitted_at is not None
    assert record.submitted_at > record.inspection_time
    assert record.model_dump(mode="json")["inspection_time"] == "2024-03-01T09:00:00+08:00"


def test_datetime_objects_are_accepted() -> None:
    data = _organisation_sample()
    data["inspection_time"] = datetime(2024, 3, 1, 1, 0, tzinfo=UTC)
    data["submitted_at"] = datetime(2024, 3, 1, 10, 0)
    record = InspectionRecord.model_validate(data)
    assert record.submitted_at is not None
    assert record.submitted_at - record.inspection_time == timedelta(hours=1)


# --------------------------------------------------------------------------- strictness switch


def test_pilot_uscc_rejected_by_default() -> None:
    data = _organisation_sample()
    data["counterpart_code"] = PILOT_USCC
    for context in (None, {}, {"uscc_strict": True}):
        error = _one_error(InspectionRecord, data, context=context)
        assert error["loc"] == ("counterpart_code",)
        assert error["msg"] == "统一社会信用代码 check character should be '1', got 'M'"


def test_lenient_context_accepts_and_warns() -> None:
    data = _organisation_sample()
    data["counterpart_code"] = PILOT_USCC
    data["implementing_body_code"] = "91350200776049653B"
    warnings: list[dict[str, str]] = []
    context = {"uscc_strict": False, "warnings": warnings}
    record = InspectionRecord.model_validate(data, context=context)
    assert record.counterpart_code == PILOT_USCC
    assert warnings == [
        {
            "type": "uscc_check",
            "field": "counterpart_code",
            "input": PILOT_USCC,
            "msg": "统一社会信用代码 check character should be '1', got 'M'",
        },
        {
            "type": "uscc_check",
            "field": "implementing_body_code",
            "input": "91350200776049653B",
            "msg": "统一社会信用代码 check character should be 'A', got 'B'",
        },
    ]


def test_lenient_context_without_warning_list() -> None:
    data = _organisation_sample()
    data["counterpart_code"] = PILOT_USCC
    record = InspectionRecord.model_validate(data, context={"uscc_strict": False})
    assert record.counterpart_code == PILOT_USCC


def test_lenient_context_still_rejects_format_errors() -> None:
    data = _organisation_sample()
    data["counterpart_code"] = PILOT_USCC[:17]
    error = _one_error(InspectionRecord, data, context={"uscc_strict": False, "warnings": []})
    assert error["type"] == "uscc_length"
    data["counterpart_code"] = PILOT_USCC[:8] + "I" + PILOT_USCC[9:]
    error = _one_error(InspectionRecord, data, context={"uscc_strict": False})
    assert error["type"] == "uscc_char"


def test_lenient_context_does_not_touch_id_cards() -> None:
    data = _person_sample()
    good = data["counterpart_code"]
    data["counterpart_code"] = good[:-1] + ("0" if good[-1] != "0" else "1")
    error = _one_error(InspectionRecord, data, context={"uscc_strict": False})
    assert error["type"] == "id_card_check"


def test_lenient_context_applies_to_catalog_department_code() -> None:
    data = sample_catalog_item(1)
    data["department_code"] = PILOT_USCC
    assert _one_error(CatalogItem, data)["loc"] == ("department_code",)
    warnings: list[dict[str, str]] = []
    CatalogItem.model_validate(data, context={"uscc_strict": False, "warnings": warnings})
    assert [w["field"] for w in warnings] == ["department_code"]


# --------------------------------------------------------------------------- catalog item


@pytest.mark.parametrize(
    ("change_type", "version", "ok"),
    [
        ("create", 1, True),
        ("change", 2, True),
        ("revoke", 3, True),
        ("create", 2, False),
        ("change", 1, False),
        ("revoke", 1, False),
    ],
)
def test_catalog_change_type_fits_version(change_type: str, version: int, ok: bool) -> None:
    data = sample_catalog_item(4) | {"change_type": change_type, "version": version}
    if ok:
        assert CatalogItem.model_validate(data).change_type is ChangeType(change_type)
    else:
        error = _one_error(CatalogItem, data)
        assert error["loc"] == ("change_type",)
        assert error["type"] == "change_type_version"


@pytest.mark.parametrize(
    ("field", "value", "error_type"),
    [
        ("code", "3300000000001", "string_pattern_mismatch"),
        ("version", 0, "greater_than_equal"),
        ("effective_date", "2024-02-30", "date_from_datetime_parsing"),
        ("region_code", "000000", "region_code_province"),
        ("department_code", "11330000000002065", "uscc_length"),
        ("supervision_methods", [], "too_short"),
        ("supervision_levels", ["6"], "enum"),
        ("supervision_levels", ["2", "2"], "duplicate_level"),
        ("change_type", "delete", "enum"),
        ("legal_basis", "", "string_too_short"),
    ],
)
def test_catalog_bad_value_error_names_the_field(field: str, value: Any, error_type: str) -> None:
    data = sample_catalog_item(1)
    data[field] = value
    error = _one_error(CatalogItem, data)
    assert error["loc"][0] == field
    assert error["type"] == error_type


def test_catalog_list_items_are_located() -> None:
    data = sample_catalog_item(1)
    data["supervision_methods"] = ["现场检查", " "]
    error = _one_error(CatalogItem, data)
    assert error["loc"] == ("supervision_methods", 1)


def test_catalog_levels_are_code_table_members() -> None:
    item = CatalogItem.model_validate(sample_catalog_item(1))
    assert item.supervision_levels == [
        SupervisionLevel.PROVINCE,
        SupervisionLevel.CITY,
        SupervisionLevel.COUNTY,
    ]
    assert [level.label for level in item.supervision_levels] == ["省", "市", "县"]


# --------------------------------------------------------------------------- documentation

_CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("model", [InspectionRecord, CatalogItem])
def test_every_field_carries_its_chinese_name(model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        assert field.description and _CJK.search(field.description), name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
    model.model_json_schema()  # the schema can be generated for the docs


def test_code_tables_have_unique_codes_and_labels() -> None:
    tables = [
        obj
        for obj in vars(codes_module).values()
        if isinstance(obj, type) and issubclass(obj, CodeTable) and obj is not CodeTable
    ]
    assert len(tables) == 7
    for table in tables:
        labels = table.labels()
        assert labels, table
        assert len(set(labels.values())) == len(labels), table
        assert all(_CJK.search(label) for label in labels.values()), table
        assert table.__doc__ and all(code in table.__doc__ for code in labels), table


def test_code_table_lookup_and_labels() -> None:
    assert InspectionResult("2") is InspectionResult.ORDERED_TO_RECTIFY
    assert InspectionResult.ORDERED_TO_RECTIFY.label == "发现问题已责令整改"
    assert InspectionResult.NO_PROBLEM.value == "1"
    assert str(InspectionResult.NO_PROBLEM) == "1"
    assert CertificateType.labels()["111"] == "居民身份证"
    with pytest.raises(ValueError):
        InspectionResult("9")


def test_make_uscc_yields_valid_codes_for_both_styles() -> None:
    from contracts import is_valid_uscc

    assert is_valid_uscc(make_uscc("91", "330102", 10))
    assert make_uscc("91", "330102", 11)[8:10] == "MA"
    assert is_valid_uscc(make_uscc("92", "330102", 11))
