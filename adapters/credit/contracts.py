"""Datasets of the credit adapter (公共信用信息平台 / 信用中国).

* ``credit_licence`` — 行政许可 disclosed under 双公示 (:class:`LicenceRecord`);
* ``credit_penalty`` — 行政处罚 disclosed under 双公示 (:class:`CreditPenaltyRecord`), the
  canonical :class:`contracts.penalty.PenaltyRecord` extended with the 双公示 fields;
* ``credit_list_entry`` — an entry of a red or black list (守信激励 / 失信惩戒, 严重违法失信名单,
  经营异常名录) received from the credit platform (:class:`ListEntry`);
* ``credit_feedback`` — a department's feedback on the measure it took on a listed subject
  (联合奖惩反馈), returned to the credit platform (:class:`JointFeedback`).

双公示 records and list entries are versioned: the business key (文书号 / 名单记录编号) names
the record and ``updated_at`` (数据更新时间) orders its versions; a correction (更正) or a
withdrawal (撤销) is a newer version of the same key (the hub's governance ``dedupe`` keeps the
newest and calls an older one stale).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from adapters.credit.codes import (
    DisclosureChange,
    LicenceCategory,
    LicenceStatus,
    ListAction,
    ListType,
    MeasureKind,
    PenaltyCategory,
)
from contracts.codes import CertificateType, CounterpartNature
from contracts.penalty import PenaltyRecord
from contracts.validators import (
    USCC,
    ChinaDatetime,
    IdCardNumber,
    check_id_card_value,
    is_valid_org_code,
)
from hub.specs import DatasetSpec

__all__ = [
    "DATASETS",
    "LONG_TERM",
    "CreditPenaltyRecord",
    "JointFeedback",
    "LicenceRecord",
    "ListEntry",
]

_CONFIG = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

#: 有效期至 of a licence without an end (the template writes 2099/12/31 for 长期)
LONG_TERM = date(2099, 12, 31)

_PENALTY_LABELS = {m.label for m in PenaltyCategory}


class _Disclosure(BaseModel):
    """What 双公示 adds to both licences and penalties: the counterpart's codes (行政相对人代码
    _1 … _6), its legal representative, and the version of the disclosure."""

    model_config = _CONFIG

    counterpart_uscc: USCC | None = Field(
        None, description="行政相对人代码_1 (统一社会信用代码); required for 法人及非法人组织"
    )
    business_reg_no: str | None = Field(
        None, description="行政相对人代码_2 (工商注册号)", pattern=r"^\d{13}(\d{2})?$"
    )
    org_code: str | None = Field(None, description="行政相对人代码_3 (组织机构代码)")
    tax_reg_no: str | None = Field(
        None, description="行政相对人代码_4 (税务登记号)", min_length=15, max_length=20
    )
    institution_cert_no: str | None = Field(
        None, description="行政相对人代码_5 (事业单位证书号)", max_length=20
    )
    social_org_reg_no: str | None = Field(
        None, description="行政相对人代码_6 (社会组织登记证号)", max_length=20
    )
    legal_rep: str | None = Field(None, description="法定代表人", max_length=50)
    legal_rep_cert_type: CertificateType | None = Field(None, description="法定代表人证件类型")
    legal_rep_cert_no: str | None = Field(None, description="法定代表人证件号码", max_length=64)
    counterpart_cert_type: CertificateType | None = Field(
        None, description="证件类型 of a natural person (自然人) counterpart"
    )
    counterpart_cert_no: str | None = Field(
        None, description="证件号码 of a natural person (自然人) counterpart", max_length=64
    )
    change_type: DisclosureChange = Field(DisclosureChange.CREATE, description="新增 / 更正 / 撤销")
    change_reason: str | None = Field(None, description="更正或撤销原因", max_length=1000)
    updated_at: ChinaDatetime = Field(description="数据更新时间 (orders the versions)")

    @field_validator("org_code")
    @classmethod
    def _org_code(cls, v: str | None) -> str | None:
        if v is not None and not is_valid_org_code(v.replace("-", "").upper()):
            raise ValueError(f"组织机构代码 {v!r} is not valid (GB 11714 check character)")
        return None if v is None else v.replace("-", "").upper()

    @field_validator("legal_rep_cert_no", "counterpart_cert_no")
    @classmethod
    def _id_number(cls, v: str | None, info: ValidationInfo) -> str | None:
        kind_field = info.field_name.removesuffix("_no") + "_type" if info.field_name else ""
        if v is not None and info.data.get(kind_field) is CertificateType.RESIDENT_ID_CARD:
            return check_id_card_value(v.upper())  # 公民身份号码 check character (GB 11643)
        return v

    def _check_disclosure(self, category: CounterpartNature) -> None:
        """Rules across fields, shared by licences and penalties (called by their validator)."""
        if category is CounterpartNature.ORGANISATION and self.counterpart_uscc is None:
            raise ValueError("counterpart_uscc (统一社会信用代码) is required for 法人及非法人组织")
        if category is CounterpartNature.INDIVIDUAL_BUSINESS and not (
            self.counterpart_uscc or self.business_reg_no
        ):
            raise ValueError(
                "个体工商户 needs counterpart_uscc (统一社会信用代码) or business_reg_no "
                "(工商注册号)"
            )
        if category is CounterpartNature.NATURAL_PERSON and not (
            self.counterpart_cert_type and self.counterpart_cert_no
        ):
            raise ValueError(
                "自然人 needs counterpart_cert_type and counterpart_cert_no (证件类型/证件号码)"
            )
        for kind, number, what in (
            (self.counterpart_cert_type, self.counterpart_cert_no, "counterpart_cert_no"),
            (self.legal_rep_cert_type, self.legal_rep_cert_no, "legal_rep_cert_no"),
        ):
            if (kind is None) != (number is None):
                raise ValueError(f"{what} and its 证件类型 come together")
        if self.change_type is not DisclosureChange.CREATE and not self.change_reason:
            raise ValueError("change_reason (更正/撤销原因) is required for 更正 and 撤销")


class LicenceRecord(_Disclosure):  # 行政许可
    """One 行政许可决定 disclosed under 双公示. The business key is ``decision_doc_no``
    (行政许可决定文书号); when the decision has no document number the 许可编号 is used, as the
    template says."""

    counterpart_name: str = Field(description="行政相对人名称", min_length=1, max_length=200)
    counterpart_category: CounterpartNature = Field(description="行政相对人类别")
    decision_doc_name: str = Field(description="行政许可决定文书名称", min_length=1, max_length=64)
    decision_doc_no: str = Field(
        "", description="行政许可决定文书号 (许可编号 when it has none)", max_length=64
    )
    licence_category: LicenceCategory = Field(description="许可类别")
    licence_cert_name: str | None = Field(None, description="许可证书名称", max_length=64)
    licence_no: str | None = Field(None, description="许可编号", max_length=64)
    licence_content: str = Field(description="许可内容", min_length=1, max_length=4000)
    decision_date: date = Field(description="许可决定日期")
    valid_from: date = Field(description="有效期自")
    valid_until: date = Field(description="有效期至 (2099-12-31: 长期)")
    authority: str = Field(description="许可机关", min_length=1, max_length=200)
    authority_code: USCC = Field(description="许可机关统一社会信用代码")
    data_source: str = Field(description="数据来源单位", min_length=1, max_length=200)
    data_source_code: USCC = Field(description="数据来源单位统一社会信用代码")
    status: LicenceStatus = Field(LicenceStatus.VALID, description="当前状态")
    remarks: str | None = Field(None, description="备注", max_length=512)

    @model_validator(mode="after")
    def _check(self) -> LicenceRecord:
        if not self.decision_doc_no:
            if not self.licence_no:
                raise ValueError("decision_doc_no (文书号) is required when there is no licence_no")
            self.decision_doc_no = self.licence_no
        if self.valid_until < self.valid_from:
            raise ValueError("有效期至 (valid_until) must not be before 有效期自 (valid_from)")
        if self.valid_from < self.decision_date and self.change_type is DisclosureChange.CREATE:
            raise ValueError(
                "有效期自 (valid_from) must not be before 许可决定日期 (decision_date)"
            )
        self._check_disclosure(self.counterpart_category)
        return self


class CreditPenaltyRecord(PenaltyRecord, _Disclosure):  # 行政处罚 (双公示)
    """One 行政处罚决定 disclosed under 双公示: the canonical penalty plus the 双公示 fields.
    ``penalty_category`` names 处罚类别 labels joined with ``;`` (:class:`PenaltyCategory`)."""

    confiscated_amount: Decimal | None = Field(
        None,
        description="没收违法所得、没收非法财物的金额 (万元)",
        ge=0,
        max_digits=14,
        decimal_places=6,
    )
    licence_revoked: str | None = Field(
        None, description="暂扣或吊销证照名称及编号", max_length=200
    )
    disclosure_until: date | None = Field(None, description="公示截止期")

    @field_validator("penalty_category")
    @classmethod
    def _categories(cls, v: str) -> str:
        parts = [p.strip() for p in v.replace("；", ";").split(";") if p.strip()]
        unknown = [p for p in parts if p not in _PENALTY_LABELS]
        if not parts or unknown:
            raise ValueError(
                f"处罚类别 {unknown or v!r} not in the code table (labels joined with ';': "
                f"{', '.join(sorted(_PENALTY_LABELS))})"
            )
        return ";".join(parts)

    @model_validator(mode="after")
    def _check_credit(self) -> CreditPenaltyRecord:
        self._check_disclosure(self.counterpart_category)
        if self.counterpart_uscc is not None and self.counterpart_code not in (
            None,
            self.counterpart_uscc,
        ):
            raise ValueError("counterpart_code and counterpart_uscc differ")
        if "罚款" in self.penalty_category.split(";") and self.fine_amount is None:
            raise ValueError("fine_amount (罚款金额) is required when 处罚类别 includes 罚款")
        if self.disclosure_until is not None and self.disclosure_until < self.decision_date:
            raise ValueError("公示截止期 (disclosure_until) is before 处罚决定日期")
        return self


class ListEntry(BaseModel):  # 红黑名单 / 严重违法失信名单 / 经营异常名录
    """One version of one list entry received from the credit platform. ``entry_id`` (名单记录
    编号) is the business key; a removal (移出, 信用修复) is a newer version of it."""

    model_config = _CONFIG

    entry_id: str = Field(description="名单记录编号", min_length=1, max_length=64)
    list_type: ListType = Field(description="名单类型")
    action: ListAction = Field(ListAction.LISTED, description="列入 / 移出")
    subject_name: str = Field(description="主体名称", min_length=1, max_length=200)
    subject_category: CounterpartNature = Field(description="主体类别")
    subject_uscc: USCC | None = Field(None, description="统一社会信用代码")
    subject_id_no: IdCardNumber | None = Field(None, description="身份证号码 (自然人)")
    reason: str = Field(description="列入(移出)事由", min_length=1, max_length=2000)
    basis: str = Field(description="认定依据", min_length=1, max_length=2000)
    decided_by: str = Field(description="认定部门", min_length=1, max_length=200)
    decided_by_code: USCC = Field(description="认定部门统一社会信用代码")
    listed_on: date = Field(description="列入日期")
    valid_until: date | None = Field(None, description="有效期至")
    removed_on: date | None = Field(None, description="移出日期")
    measures: list[str] = Field(
        default_factory=list, description="联合奖惩措施 the departments are to apply"
    )
    updated_at: ChinaDatetime = Field(description="数据更新时间 (orders the versions)")

    @property
    def subject(self) -> str:
        """The subject's identifier: its USCC, else its ID number."""
        return self.subject_uscc or self.subject_id_no or ""

    @model_validator(mode="after")
    def _check(self) -> ListEntry:
        if self.subject_category is CounterpartNature.NATURAL_PERSON:
            if self.subject_id_no is None:
                raise ValueError("subject_id_no (身份证号码) is required for a 自然人")
        elif self.subject_uscc is None:
            raise ValueError("subject_uscc (统一社会信用代码) is required for an organisation")
        if self.action is ListAction.REMOVED and self.removed_on is None:
            raise ValueError("removed_on (移出日期) is required when the entry is removed")
        if self.valid_until is not None and self.valid_until < self.listed_on:
            raise ValueError("有效期至 (valid_until) is before 列入日期 (listed_on)")
        return self


class JointFeedback(BaseModel):  # 联合奖惩反馈
    """What a department did about a listed subject (the measure it took), sent back to the
    credit platform quoting the list entry (``entry_id``)."""

    model_config = _CONFIG

    feedback_id: str = Field(description="反馈编号", min_length=1, max_length=64)
    entry_id: str = Field(description="名单记录编号 the feedback is about", min_length=1)
    subject_name: str = Field(description="主体名称", min_length=1, max_length=200)
    subject_uscc: USCC | None = Field(None, description="统一社会信用代码")
    subject_id_no: IdCardNumber | None = Field(None, description="身份证号码 (自然人)")
    measure_kind: MeasureKind = Field(description="激励 / 惩戒")
    measure: str = Field(description="采取的奖惩措施", min_length=1, max_length=2000)
    matter: str | None = Field(
        None, description="办理事项 (the matter it acted on)", max_length=500
    )
    department: str = Field(description="反馈部门", min_length=1, max_length=200)
    department_code: USCC = Field(description="反馈部门统一社会信用代码")
    acted_on: date = Field(description="措施实施日期")

    @model_validator(mode="after")
    def _check(self) -> JointFeedback:
        if self.subject_uscc is None and self.subject_id_no is None:
            raise ValueError("subject_uscc or subject_id_no (the subject's code) is required")
        return self


DATASETS = [
    DatasetSpec(
        name="credit_licence",
        version="1.0",
        model=LicenceRecord,
        title="双公示·行政许可 (licence decision, to the credit platform)",
        partition_field="decision_doc_no",
        key_field="decision_doc_no",
    ),
    DatasetSpec(
        name="credit_penalty",
        version="1.0",
        model=CreditPenaltyRecord,
        title="双公示·行政处罚 (penalty decision, to the credit platform)",
        partition_field="decision_no",
        key_field="decision_no",
    ),
    DatasetSpec(
        name="credit_list_entry",
        version="1.0",
        model=ListEntry,
        title="信用红黑名单 (red / black list entry, from the credit platform)",
        partition_field="entry_id",
        key_field="entry_id",
    ),
    DatasetSpec(
        name="credit_feedback",
        version="1.0",
        model=JointFeedback,
        title="联合奖惩反馈 (measure taken on a listed subject, to the credit platform)",
        key_field="feedback_id",
    ),
]
