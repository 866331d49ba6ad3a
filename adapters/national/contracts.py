"""Datasets of the national connector: what the nation issues (下发) and the province's
feedback on it. (The 监管行为 datasets it reports — inspection, penalty, coordination — and the
catalog are canonical contracts in :mod:`contracts`.)"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.validators import CATALOG_CODE_PATTERN, USCC, ChinaDatetime, RegionCode
from hub.specs import DatasetSpec

__all__ = ["DATASETS", "IssuedItem", "TaskFeedback"]

_CONFIG = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)


class IssuedItem(BaseModel):  # 国家下发数据
    """One item the national system issued: a 风险预警 (risk warning), a 投诉举报 clue, a
    联合惩戒 (joint punishment) or 协同监管 (coordination) task. ``ref`` is the national id
    (下发编号) that feedback must quote."""

    model_config = _CONFIG

    ref: str = Field(description="下发编号", min_length=1, max_length=64)
    kind: Literal["warning", "clue", "punishment_task", "coordination_task"] = Field(
        description="下发类型: 风险预警 / 投诉举报 / 联合惩戒任务 / 协同监管任务"
    )
    title: str = Field(description="标题", min_length=1, max_length=500)
    content: str = Field(description="内容", min_length=1, max_length=10_000)
    region_code: RegionCode = Field(description="行政区划代码 (where it applies)")
    catalog_code: str = Field(description="监管事项目录编码", pattern=CATALOG_CODE_PATTERN)
    level: str | None = Field(None, description="预警等级", max_length=8)
    issued_at: ChinaDatetime = Field(description="下发时间")
    deadline: date | None = Field(None, description="处理期限")


class TaskFeedback(BaseModel):  # 处理结果反馈
    """A department's feedback on an issued item (a warning's handling result, a task's
    outcome), sent back to the nation quoting ``ref``."""

    model_config = _CONFIG

    ref: str = Field(description="下发编号 of the issued item", min_length=1, max_length=64)
    department: str = Field(description="反馈单位", min_length=1, max_length=200)
    department_code: USCC = Field(description="反馈单位统一社会信用代码")
    status: Literal["in_progress", "done", "returned"] = Field(
        description="处理状态: 办理中 / 已办结 / 退回"
    )
    result: str = Field(description="处理结果", min_length=1, max_length=4000)
    handled_at: ChinaDatetime = Field(description="反馈时间")


DATASETS = [
    DatasetSpec(
        name="national_issued",
        version="1.0",
        model=IssuedItem,
        title="国家下发数据 (warnings, clues, tasks issued by the national system)",
        key_field="ref",
    ),
    DatasetSpec(
        name="national_feedback",
        version="1.0",
        model=TaskFeedback,
        title="下发事项处理反馈 (feedback on issued items, to the national system)",
        partition_field="ref",
        key_field="ref",
    ),
]
