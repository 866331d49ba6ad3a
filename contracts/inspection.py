"""The canonical 监管行为·行政检查 (administrative inspection) record."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from contracts.codes import (
    CertificateType,
    CounterpartNature,
    InspectionCategory,
    InspectionForm,
    InspectionResult,
)
from contracts.validators import (
    CATALOG_CODE_PATTERN,
    IMPLEMENTATION_CODE_PATTERN,
    USCC,
    ChinaDatetime,
    RegionCode,
    check_id_card_value,
    check_uscc_value,
)

__all__ = ["InspectionRecord", "Inspector"]


def _check_implementation_code(value: str, info: ValidationInfo) -> str:
    # The pattern has already run; only the embedded USCC's check characters remain.
    check_uscc_value(value[:18], info, what="检查实施清单编码 (implementation_code): ")
    return value


_ImplementationCode = Annotated[
    str,
    StringConstraints(pattern=IMPLEMENTATION_CODE_PATTERN),
    AfterValidator(_check_implementation_code),
]

_CONFIG = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)


class Inspector(BaseModel):
    """检查人员: one law-enforcement officer who took part in the inspection."""

    model_config = _CONFIG

    name: str = Field(description="姓名", min_length=1, max_length=50)
    law_enforcement_cert_no: str = Field(description="执法证号", min_length=1, max_length=50)


class InspectionRecord(BaseModel):
    """监管行为·行政检查: one administrative inspection carried out under a catalog item.

    Cross-field rules (errors name the field in ``loc``):

    * ``counterpart_code`` (相对人编码) is checked as a 统一社会信用代码 when
      ``counterpart_cert_type`` is ``001`` and as a 公民身份号码 when it is ``111``; other
      certificate types are only length-checked.
    * ``submitted_at`` (报送时间) must be later than ``inspection_time`` (检查时间).

    Datetimes without an offset are taken as China Standard Time (UTC+08:00). USCC check
    characters honour the ``uscc_strict`` validation context (see :mod:`contracts.validators`).
    """

    model_config = _CONFIG

    # Field order matters: the validators of ``counterpart_code`` and ``submitted_at`` read
    # the already validated ``counterpart_cert_type`` and ``inspection_time``.

    # ----------------------------------------------------------------- required
    catalog_code: str = Field(description="监管事项目录编码", pattern=CATALOG_CODE_PATTERN)
    implementation_code: _ImplementationCode = Field(description="检查实施清单编码")
    inspection_name: str = Field(description="检查行为名称", min_length=1, max_length=200)
    inspection_no: str = Field(description="检查行为编号", min_length=1, max_length=50)
    supervised_object: str = Field(description="监管对象", min_length=1, max_length=200)
    counterpart_name: str = Field(description="行政相对人", min_length=1, max_length=200)
    counterpart_nature: CounterpartNature = Field(description="相对人性质")
    counterpart_cert_type: CertificateType = Field(description="证件类型")
    counterpart_code: str = Field(description="相对人编码", min_length=1, max_length=20)
    region_code: RegionCode = Field(description="行政区划代码")
    inspection_form: InspectionForm = Field(description="检查形式")
    inspection_category: InspectionCategory = Field(description="检查类别")
    inspection_result: InspectionResult = Field(description="检查结果")
    inspection_time: ChinaDatetime = Field(description="检查时间")
    inspectors: list[Inspector] = Field(description="检查人员", min_length=1, max_length=50)

    # ----------------------------------------------------------------- optional
    random_plan_id: str | None = Field(default=None, description="双随机计划编号", max_length=64)
    implementing_body: str | None = Field(default=None, description="实施机构", max_length=200)
    implementing_body_code: USCC | None = Field(
        default=None, description="实施机构统一社会信用代码"
    )
    entrusted_department: str | None = Field(default=None, description="受委托部门", max_length=200)
    supervised_object_type: str | None = Field(
        default=None, description="监管对象类型", max_length=50
    )
    registered_address: str | None = Field(default=None, description="注册地址", max_length=400)
    business_address: str | None = Field(default=None, description="经营地址", max_length=400)
    inspection_method: str | None = Field(default=None, description="检查方式", max_length=100)
    submitted_at: ChinaDatetime | None = Field(default=None, description="报送时间")
    submitter: str | None = Field(default=None, description="报送人员", max_length=50)

    @field_validator("counterpart_code")
    @classmethod
    def _check_counterpart_code(cls, value: str, info: ValidationInfo) -> str:
        cert_type = info.data.get("counterpart_cert_type")
        if cert_type is CertificateType.USCC:
            return check_uscc_value(value.upper(), info)
        if cert_type is CertificateType.RESIDENT_ID_CARD:
            return check_id_card_value(value.upper())
        return value

    @field_validator("submitted_at")
    @classmethod
    def _check_submitted_after_inspection(
        cls, value: datetime | None, info: ValidationInfo
    ) -> datetime | None:
        inspected = info.data.get("inspection_time")
        if value is not None and inspected is not None and value <= inspected:
            raise PydanticCustomError(
                "submitted_before_inspection",
                "报送时间 (submitted_at) {submitted_at} must be later than "
                "检查时间 (inspection_time) {inspection_time}",
                {"submitted_at": value.isoformat(), "inspection_time": inspected.isoformat()},
            )
        return value
