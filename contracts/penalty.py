"""The canonical 行政处罚 (administrative penalty) record, as reported under 双公示 and to the
national 互联网+监管 system as 监管行为 data."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.codes import CounterpartNature
from contracts.validators import CATALOG_CODE_PATTERN, USCC, RegionCode

__all__ = ["PenaltyRecord"]


class PenaltyRecord(BaseModel):  # 行政处罚
    """One 行政处罚决定 (penalty decision). The business key is ``decision_no``
    (行政处罚决定书文号); a corrected decision is a new version of the same key."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    decision_no: str = Field(description="行政处罚决定书文号", min_length=1, max_length=128)
    catalog_code: str = Field(description="监管事项目录编码", pattern=CATALOG_CODE_PATTERN)
    region_code: RegionCode = Field(description="行政区划代码")
    counterpart_name: str = Field(description="行政相对人名称", min_length=1, max_length=200)
    counterpart_category: CounterpartNature = Field(description="行政相对人类别")
    counterpart_code: str | None = Field(
        None, description="行政相对人代码 (统一社会信用代码 or ID number)", max_length=20
    )
    violation_type: str = Field(description="违法行为类型", min_length=1, max_length=2000)
    violation_facts: str = Field(description="违法事实", min_length=1, max_length=5000)
    legal_basis: str = Field(description="处罚依据", min_length=1, max_length=2000)
    penalty_category: str = Field(description="处罚类别", min_length=1, max_length=200)
    penalty_content: str = Field(description="处罚内容", min_length=1, max_length=4000)
    fine_amount: Decimal | None = Field(
        None, description="罚款金额 (万元)", ge=0, max_digits=14, decimal_places=6
    )
    decision_date: date = Field(description="处罚决定日期")
    valid_until: date = Field(description="处罚有效期")
    authority: str = Field(description="处罚机关", min_length=1, max_length=200)
    authority_code: USCC = Field(description="处罚机关统一社会信用代码")
    data_source: str = Field(description="数据来源单位", min_length=1, max_length=200)
    data_source_code: USCC = Field(description="数据来源单位统一社会信用代码")
    remarks: str | None = Field(None, description="备注", max_length=512)

    @model_validator(mode="after")
    def _check_dates(self) -> PenaltyRecord:
        if self.valid_until < self.decision_date:
            raise ValueError(
                "处罚有效期 (valid_until) must not be before 处罚决定日期 (decision_date)"
            )
        return self
