"""The canonical 协同监管 (coordinated supervision) record: one step in the process of a
cross-department or cross-region supervision task, or its result, reported to the national
互联网+监管 system."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.validators import CATALOG_CODE_PATTERN, USCC, ChinaDatetime, RegionCode

__all__ = ["CoordinationRecord"]


class CoordinationRecord(BaseModel):  # 协同监管过程和结果
    """One report on a 协同监管 task: ``stage`` ``process`` (a step: 发起, 响应, 办理 ...) or
    ``result`` (the outcome; ``result`` is then required). The business key is
    ``task_no`` + ``step_no``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    task_no: str = Field(description="协同任务编号", min_length=1, max_length=64)
    step_no: int = Field(description="环节序号 (1 = 发起)", ge=1)
    stage: Literal["process", "result"] = Field(description="过程 / 结果")
    title: str = Field(description="协同事项名称", min_length=1, max_length=200)
    catalog_code: str = Field(description="监管事项目录编码", pattern=CATALOG_CODE_PATTERN)
    region_code: RegionCode = Field(description="行政区划代码")
    department: str = Field(description="报送部门", min_length=1, max_length=200)
    department_code: USCC = Field(description="报送部门统一社会信用代码")
    partner_departments: list[str] = Field(description="协同部门", min_length=1, max_length=50)
    action: str = Field(description="环节内容 (发起/响应/办理 …)", min_length=1, max_length=2000)
    occurred_at: ChinaDatetime = Field(description="发生时间")
    result: str | None = Field(None, description="协同结果", max_length=4000)

    @model_validator(mode="after")
    def _result_needs_text(self) -> CoordinationRecord:
        if self.stage == "result" and not self.result:
            raise ValueError("协同结果 (result) is required when stage is 'result'")
        return self
