"""Contract tests of the credit datasets: a valid sample of each, and the refusals that matter
(统一社会信用代码 and 身份证 check characters, code tables, required fields, rules across
fields), each with the stable code and the field named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from adapters.credit.codes import LicenceCategory, ListType, PenaltyCategory
from adapters.credit.contracts import (
    CreditPenaltyRecord,
    JointFeedback,
    LicenceRecord,
    ListEntry,
)
from adapters.credit.samples import (
    sample_credit_licence,
    sample_credit_penalty,
    sample_feedback,
    sample_list_entry,
)
from contracts.penalty import PenaltyRecord
from contracts.samples import make_id_card, make_uscc
from hub.validation import schema_error


def _flip(code: str) -> str:
    """The same identifier with a wrong check character."""
    return code[:-1] + ("1" if code[-1] != "1" else "2")


def _refusal(model: type[BaseModel], rec: dict[str, Any]) -> tuple[str, str, str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(rec)
    err = schema_error(info.value, None)
    return err.code, err.field or "", err.message


ENTRY = sample_list_entry(3)


def test_valid_samples_of_every_dataset() -> None:
    p = CreditPenaltyRecord.model_validate(sample_credit_penalty(1))
    assert isinstance(p, PenaltyRecord)  # the canonical penalty, extended
    assert p.penalty_category == "警告;罚款" and p.change_type.label == "新增"
    lic = LicenceRecord.model_validate(sample_credit_licence(1))
    assert lic.licence_category is LicenceCategory.ORDINARY and lic.valid_until.year == 2099
    entry = ListEntry.model_validate(ENTRY)
    assert entry.subject == ENTRY["subject_uscc"] and entry.list_type is ListType.BLACK
    fb = JointFeedback.model_validate(sample_feedback(1, entry.entry_id, entry.subject))
    assert fb.measure_kind.label == "惩戒"


def test_a_natural_person_is_identified_by_a_checked_id_number() -> None:
    rec = sample_credit_penalty(2)
    for k in ("counterpart_uscc", "counterpart_code", "legal_rep", "legal_rep_cert_type",
              "legal_rep_cert_no"):  # fmt: skip
        rec.pop(k)
    rec |= {"counterpart_category": "2", "counterpart_name": "王芳"}
    assert _refusal(CreditPenaltyRecord, rec)[2].endswith(
        "自然人 needs counterpart_cert_type and counterpart_cert_no (证件类型/证件号码)"
    )
    good = make_id_card("330102", 5)
    rec |= {"counterpart_cert_type": "111", "counterpart_cert_no": good.lower()}
    assert CreditPenaltyRecord.model_validate(rec).counterpart_cert_no == good.upper()
    rec["counterpart_cert_no"] = _flip(good)
    code, field, message = _refusal(CreditPenaltyRecord, rec)
    assert (code, field) == ("E_SCHEMA", "counterpart_cert_no") and "check character" in message
    # a passport number is not checked as an ID number
    rec |= {"counterpart_cert_type": "414", "counterpart_cert_no": "E12345678"}
    assert CreditPenaltyRecord.model_validate(rec).counterpart_cert_type.label == "普通护照"


def test_a_licence_without_document_number_uses_its_licence_number() -> None:
    rec = sample_credit_licence(4)
    rec["decision_doc_no"] = ""
    assert LicenceRecord.model_validate(rec).decision_doc_no == rec["licence_no"]
    rec.pop("licence_no")
    assert "decision_doc_no (文书号) is required" in _refusal(LicenceRecord, rec)[2]


Change = Callable[[dict[str, Any]], None]

PENALTY_REFUSALS: list[tuple[str, Change, str]] = [
    ("counterpart USCC checksum", lambda r: r.update(counterpart_uscc=_flip(r["counterpart_uscc"])),
     "counterpart_uscc"),
    ("authority USCC checksum", lambda r: r.update(authority_code=_flip(r["authority_code"])),
     "authority_code"),
    ("legal representative ID checksum",
     lambda r: r.update(legal_rep_cert_no=_flip(r["legal_rep_cert_no"])), "legal_rep_cert_no"),
    ("unknown 处罚类别", lambda r: r.update(penalty_category="警告;罚没"), "penalty_category"),
    ("unknown 相对人类别", lambda r: r.update(counterpart_category="4"), "counterpart_category"),
    ("unknown 证件类型", lambda r: r.update(legal_rep_cert_type="112"), "legal_rep_cert_type"),
    ("missing 违法事实", lambda r: r.pop("violation_facts"), "violation_facts"),
    ("missing 数据更新时间", lambda r: r.pop("updated_at"), "updated_at"),
    ("bad 组织机构代码", lambda r: r.update(org_code="12345678-0"), "org_code"),
    ("unknown 操作类型", lambda r: r.update(change_type="4"), "change_type"),
]  # fmt: skip

PENALTY_RULES: list[tuple[str, Change, str]] = [
    ("organisation without USCC", lambda r: r.pop("counterpart_uscc"),
     "counterpart_uscc (统一社会信用代码) is required for 法人及非法人组织"),
    ("correction without reason", lambda r: r.update(change_type="2"),
     "change_reason (更正/撤销原因) is required"),
    ("罚款 without amount", lambda r: r.pop("fine_amount"), "fine_amount (罚款金额) is required"),
    ("certificate number without type", lambda r: r.pop("legal_rep_cert_type"),
     "legal_rep_cert_no and its 证件类型 come together"),
    ("valid until before the decision", lambda r: r.update(valid_until="2026-01-01"),
     "处罚有效期 (valid_until) must not be before"),
    ("公示截止期 before the decision", lambda r: r.update(disclosure_until="2026-01-01"),
     "公示截止期 (disclosure_until) is before"),
    ("two different counterpart codes",
     lambda r: r.update(counterpart_code=make_uscc("91", "330102", 77)), "differ"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "field"), [(c, f) for _, c, f in PENALTY_REFUSALS],
                         ids=[n for n, _, _ in PENALTY_REFUSALS])  # fmt: skip
def test_penalty_refusals_name_the_field(change: Change, field: str) -> None:
    rec = sample_credit_penalty(5)
    change(rec)
    code, got, _ = _refusal(CreditPenaltyRecord, rec)
    assert (code, got) == ("E_SCHEMA", field)


@pytest.mark.parametrize(("change", "says"), [(c, s) for _, c, s in PENALTY_RULES],
                         ids=[n for n, _, _ in PENALTY_RULES])  # fmt: skip
def test_penalty_rules_across_fields(change: Change, says: str) -> None:
    rec = sample_credit_penalty(6)
    change(rec)
    code, _, message = _refusal(CreditPenaltyRecord, rec)
    assert code == "E_SCHEMA" and says in message


LICENCE_REFUSALS: list[tuple[str, Change, str]] = [
    ("unknown 许可类别", lambda r: r.update(licence_category="07"), "licence_category"),
    ("licence category as a label", lambda r: r.update(licence_category="普通"),
     "licence_category"),
    ("data source USCC checksum",
     lambda r: r.update(data_source_code=_flip(r["data_source_code"])), "data_source_code"),
    ("legal representative ID checksum",
     lambda r: r.update(legal_rep_cert_no=_flip(r["legal_rep_cert_no"])), "legal_rep_cert_no"),
    ("unknown 当前状态", lambda r: r.update(status="9"), "status"),
    ("missing 许可内容", lambda r: r.pop("licence_content"), "licence_content"),
    ("bad 工商注册号", lambda r: r.update(business_reg_no="33010"), "business_reg_no"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "field"), [(c, f) for _, c, f in LICENCE_REFUSALS],
                         ids=[n for n, _, _ in LICENCE_REFUSALS])  # fmt: skip
def test_licence_refusals_name_the_field(change: Change, field: str) -> None:
    rec = sample_credit_licence(7)
    change(rec)
    assert _refusal(LicenceRecord, rec)[:2] == ("E_SCHEMA", field)


def test_licence_dates_and_individual_business_rules() -> None:
    rec = sample_credit_licence(8) | {"valid_until": "2026-01-01"}
    assert "有效期至 (valid_until) must not be before 有效期自" in _refusal(LicenceRecord, rec)[2]
    rec = sample_credit_licence(8) | {"counterpart_category": "3"}
    rec.pop("counterpart_uscc")
    assert "个体工商户 needs counterpart_uscc" in _refusal(LicenceRecord, rec)[2]
    rec["business_reg_no"] = "330102000012345"
    assert LicenceRecord.model_validate(rec).business_reg_no == "330102000012345"


LIST_REFUSALS: list[tuple[str, Change, str]] = [
    ("subject USCC checksum", lambda r: r.update(subject_uscc=_flip(r["subject_uscc"])),
     "subject_uscc"),
    ("unknown 名单类型", lambda r: r.update(list_type="05"), "list_type"),
    ("unknown action", lambda r: r.update(action="3"), "action"),
    ("person ID checksum", lambda r: r.update(subject_category="2", subject_uscc=None,
                                              subject_id_no=_flip(make_id_card("330102", 9)))
     , "subject_id_no"),
    ("missing 认定依据", lambda r: r.pop("basis"), "basis"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "field"), [(c, f) for _, c, f in LIST_REFUSALS],
                         ids=[n for n, _, _ in LIST_REFUSALS])  # fmt: skip
def test_list_entry_refusals_name_the_field(change: Change, field: str) -> None:
    rec = sample_list_entry(9)
    change(rec)
    assert _refusal(ListEntry, rec)[:2] == ("E_SCHEMA", field)


def test_list_entry_rules() -> None:
    removed = sample_list_entry(9) | {"action": "2"}
    assert "removed_on (移出日期) is required" in _refusal(ListEntry, removed)[2]
    person = sample_list_entry(9) | {"subject_category": "2"}
    assert "subject_id_no (身份证号码) is required" in _refusal(ListEntry, person)[2]
    org = sample_list_entry(9)
    org.pop("subject_uscc")
    assert "subject_uscc (统一社会信用代码) is required" in _refusal(ListEntry, org)[2]


def test_feedback_needs_a_valid_subject_code_and_known_measure_kind() -> None:
    good = sample_feedback(1, ENTRY["entry_id"], ENTRY["subject_uscc"])
    bad = good | {"subject_uscc": _flip(good["subject_uscc"])}
    assert _refusal(JointFeedback, bad)[:2] == ("E_SCHEMA", "subject_uscc")
    assert _refusal(JointFeedback, good | {"measure_kind": "3"})[:2] == (
        "E_SCHEMA",
        "measure_kind",
    )
    assert _refusal(JointFeedback, good | {"department_code": "X"})[:2] == (
        "E_SCHEMA",
        "department_code",
    )
    nobody = dict(good)
    nobody.pop("subject_uscc")
    assert "subject_uscc or subject_id_no" in _refusal(JointFeedback, nobody)[2]


def test_code_tables_have_the_published_codes() -> None:
    assert LicenceCategory.labels() == {
        "01": "普通", "02": "特许", "03": "认可", "04": "核准", "05": "登记", "06": "其他",
    }  # fmt: skip
    assert PenaltyCategory("03").label == "罚款" and len(PenaltyCategory) == 14
    assert [t.rewarding for t in ListType] == [True, False, False, False]
