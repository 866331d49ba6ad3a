"""Canonical datasets of the market supervision platform (市场监管平台) adapter.

* ``market_entity`` — one registration state of a 市场主体 (market entity), keyed by its
  统一社会信用代码 and versioned by its change time (变更时间);
* ``market_inspection_task`` — a 双随机、一公开 inspection task: randomly drawn inspection
  objects (检查对象) and law-enforcement inspectors (执法检查人员) for one department;
* ``market_inspection_result`` — a department's 检查结果 for one object of one task, reported
  back to the platform;
* ``market_abnormal`` — an entry into or removal from the 经营异常名录 (abnormal-operation
  list); the removal (移出) is a newer version of the same entry (名录记录编号) and replaces it.

The platform's own field names (``TYSHXYDM``, ``QYMC`` ...) never appear here: they are mapped
in the market system file (``examples/platforms/market/systems/market.yaml``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from contracts.codes import InspectionResult
from contracts.validators import USCC, ChinaDatetime, RegionCode
from hub.specs import DatasetSpec

__all__ = [
    "ABNORMAL_REASONS",
    "DATASETS",
    "ENTITY_STATUSES",
    "ENTITY_TYPES",
    "AbnormalListEntry",
    "InspectionObject",
    "InspectionTask",
    "MarketEntity",
    "TaskInspector",
    "TaskResult",
]

_CONFIG = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

#: 市场主体类型 (canonical values; the platform's codes are mapped in its system file)
ENTITY_TYPES = (
    "company",  # 公司
    "partnership",  # 合伙企业
    "sole_proprietorship",  # 个人独资企业
    "individual_business",  # 个体工商户
    "cooperative",  # 农民专业合作社
    "branch",  # 分支机构
    "other",  # 其他
)
#: 登记状态: 存续 (active), 在业 (in business), 吊销 (licence revoked), 注销 (deregistered),
#: 迁出 (moved out), 撤销 (registration annulled)
ENTITY_STATUSES = ("active", "in_business", "revoked", "cancelled", "moved_out", "annulled")
#: 列入经营异常名录 reasons (市场主体登记管理条例 / 企业信息公示暂行条例): not publishing the
#: annual report, false information, unreachable at the registered address, not publishing
#: information within the ordered time
ABNORMAL_REASONS = ("annual_report", "false_information", "unreachable", "not_published")

EntityType = Literal[
    "company", "partnership", "sole_proprietorship", "individual_business", "cooperative",
    "branch", "other",
]  # fmt: skip
EntityStatus = Literal["active", "in_business", "revoked", "cancelled", "moved_out", "annulled"]


class MarketEntity(BaseModel):  # 市场主体登记信息
    """One registration state of a market entity. A later ``changed_at`` replaces an earlier
    one (名称变更, 法定代表人变更, 吊销, 注销 ...); the hub's registry keeps the latest."""

    model_config = _CONFIG

    uscc: USCC = Field(description="统一社会信用代码")
    name: str = Field(description="市场主体名称", min_length=1, max_length=200)
    legal_representative: str = Field(
        description="法定代表人 / 负责人 / 经营者", min_length=1, max_length=100
    )
    entity_type: EntityType = Field(description="市场主体类型")
    status: EntityStatus = Field(description="登记状态")
    address: str = Field(description="住所 / 经营场所", min_length=1, max_length=400)
    region_code: RegionCode = Field(description="行政区划代码 (登记机关所在地)")
    established_on: date = Field(description="成立日期")
    changed_at: ChinaDatetime = Field(description="变更时间 (orders the versions)")
    registration_authority: str | None = Field(None, description="登记机关", max_length=200)

    @field_validator("changed_at")
    @classmethod
    def _changed_after_establishment(cls, value: datetime, info: ValidationInfo) -> datetime:
        est = info.data.get("established_on")
        if isinstance(est, date) and value.date() < est:
            raise PydanticCustomError(
                "changed_before_established",
                "变更时间 (changed_at) {changed_at} is before 成立日期 (established_on) {est}",
                {"changed_at": value.isoformat(), "est": est.isoformat()},
            )
        return value


class InspectionObject(BaseModel):  # 检查对象
    """One randomly drawn inspection object."""

    model_config = _CONFIG

    uscc: USCC = Field(description="统一社会信用代码")
    name: str = Field(description="市场主体名称", min_length=1, max_length=200)
    address: str | None = Field(None, description="住所", max_length=400)


class TaskInspector(BaseModel):  # 执法检查人员
    """One randomly drawn law-enforcement inspector."""

    model_config = _CONFIG

    name: str = Field(description="姓名", min_length=1, max_length=50)
    law_enforcement_cert_no: str = Field(description="执法证号", min_length=1, max_length=50)


class InspectionTask(BaseModel):  # 双随机抽查任务
    """A 双随机、一公开 task: the platform drew ``objects`` and ``inspectors`` at random for
    ``department``, to inspect ``items`` by ``deadline``. At least two inspectors inspect
    together (执法人员不少于两人)."""

    model_config = _CONFIG

    task_no: str = Field(description="任务编号", min_length=1, max_length=64)
    plan_no: str = Field(description="抽查计划编号", min_length=1, max_length=64)
    plan_name: str = Field(description="抽查计划名称", min_length=1, max_length=200)
    department: str = Field(description="实施部门", min_length=1, max_length=200)
    department_code: USCC = Field(description="实施部门统一社会信用代码")
    region_code: RegionCode = Field(description="行政区划代码")
    items: list[str] = Field(description="抽查事项", min_length=1, max_length=50)
    objects: list[InspectionObject] = Field(description="检查对象", min_length=1, max_length=500)
    inspectors: list[TaskInspector] = Field(description="执法检查人员", min_length=2, max_length=20)
    issued_at: ChinaDatetime = Field(description="下发时间")
    deadline: date = Field(description="完成期限")

    @field_validator("deadline")
    @classmethod
    def _deadline_after_issue(cls, value: date, info: ValidationInfo) -> date:
        issued = info.data.get("issued_at")
        if isinstance(issued, datetime) and value < issued.date():
            raise PydanticCustomError(
                "deadline_before_issue",
                "完成期限 (deadline) {deadline} is before 下发时间 (issued_at) {issued}",
                {"deadline": value.isoformat(), "issued": issued.isoformat()},
            )
        return value


class TaskResult(BaseModel):  # 双随机抽查结果
    """A department's result (检查结果) for one object of one task."""

    model_config = _CONFIG

    task_no: str = Field(description="任务编号", min_length=1, max_length=64)
    object_uscc: USCC = Field(description="检查对象统一社会信用代码")
    object_name: str = Field(description="检查对象名称", min_length=1, max_length=200)
    result: InspectionResult = Field(description="检查结果 (code table of 检查结果)")
    result_detail: str = Field(description="检查结果说明", min_length=1, max_length=2000)
    inspected_on: date = Field(description="检查日期")
    department: str = Field(description="实施部门", min_length=1, max_length=200)
    department_code: USCC = Field(description="实施部门统一社会信用代码")
    inspectors: list[TaskInspector] = Field(description="执法检查人员", min_length=2, max_length=20)
    reported_at: ChinaDatetime = Field(description="填报时间 (orders corrections)")

    @field_validator("reported_at")
    @classmethod
    def _reported_after_inspection(cls, value: datetime, info: ValidationInfo) -> datetime:
        day = info.data.get("inspected_on")
        if isinstance(day, date) and value.date() < day:
            raise PydanticCustomError(
                "reported_before_inspection",
                "填报时间 (reported_at) {reported} is before 检查日期 (inspected_on) {day}",
                {"reported": value.isoformat(), "day": day.isoformat()},
            )
        return value


class AbnormalListEntry(BaseModel):  # 经营异常名录
    """An entry into (``list``, 列入) or a removal from (``remove``, 移出) the 经营异常名录.
    Both carry the entry's ``entry_id`` (名录记录编号); the removal is the newer version."""

    model_config = _CONFIG

    entry_id: str = Field(description="名录记录编号", min_length=1, max_length=64)
    uscc: USCC = Field(description="统一社会信用代码")
    name: str = Field(description="市场主体名称", min_length=1, max_length=200)
    action: Literal["list", "remove"] = Field(description="列入 / 移出")
    reason: Literal["annual_report", "false_information", "unreachable", "not_published"] = Field(
        description="列入原因"
    )
    reason_text: str | None = Field(None, description="列入 / 移出原因说明", max_length=1000)
    decided_on: date = Field(description="作出决定日期 (列入日期 or 移出日期)")
    decision_no: str = Field(description="决定书文号", min_length=1, max_length=100)
    authority: str = Field(description="作出决定机关", min_length=1, max_length=200)
    authority_code: USCC | None = Field(None, description="作出决定机关统一社会信用代码")
    listed_on: date | None = Field(
        None, description="列入日期 (on a removal)", validate_default=True
    )
    changed_at: ChinaDatetime = Field(description="变更时间 (orders list -> remove)")

    @field_validator("listed_on")
    @classmethod
    def _removal_names_its_listing(cls, value: date | None, info: ValidationInfo) -> date | None:
        if info.data.get("action") != "remove":
            return value
        decided = info.data.get("decided_on")
        if value is None:
            raise PydanticCustomError(
                "removal_without_listing",
                "a removal (移出) must give listed_on (列入日期) of the entry it removes",
            )
        if isinstance(decided, date) and decided < value:
            raise PydanticCustomError(
                "removed_before_listed",
                "移出日期 (decided_on) {decided} is before 列入日期 (listed_on) {listed}",
                {"decided": decided.isoformat(), "listed": value.isoformat()},
            )
        return value


DATASETS = [
    DatasetSpec(
        name="market_entity",
        version="1.0",
        model=MarketEntity,
        title="市场主体登记信息 (market entity registry, from the market supervision platform)",
        partition_field="uscc",
        key_field="uscc",
    ),
    DatasetSpec(
        name="market_inspection_task",
        version="1.0",
        model=InspectionTask,
        title="双随机、一公开 抽查任务 (random inspection task, to departments)",
        key_field="task_no",
    ),
    DatasetSpec(
        name="market_inspection_result",
        version="1.0",
        model=TaskResult,
        title="双随机抽查结果 (a department's inspection result, to the platform)",
        key_field="task_no",
    ),
    DatasetSpec(
        name="market_abnormal",
        version="1.0",
        model=AbnormalListEntry,
        title="经营异常名录 列入/移出 (abnormal-operation list, to departments)",
        partition_field="entry_id",
        key_field="entry_id",
    ),
]
