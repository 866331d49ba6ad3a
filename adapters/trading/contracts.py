"""Canonical datasets of the public resource trading platform (公共资源交易平台): 交易项目,
招标公告, 开标记录 and 中标结果 / 中标候选人公示. The platform's own XML (namespace ``jy``,
``xsd/jy.xsd``) is mapped onto these by the mapping in its system file; departments receive
them mapped again into their own schemas.

Attachments travel by reference only (:class:`Attachment`: URI + SHA-256 + size): the
receiver fetches the bytes and proves it got the same ones.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.codes import CodeTable
from contracts.validators import USCC, ChinaDatetime, RegionCode
from hub.specs import DatasetSpec

__all__ = [
    "DATASETS",
    "Amount",
    "Attachment",
    "AwardResult",
    "BidOpening",
    "Bidder",
    "Candidate",
    "Party",
    "ProjectType",
    "TenderAnnouncement",
    "TradingProject",
]

_CONFIG = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

#: codes of the documents: project numbers, announcement and result numbers (项目编号 …)
CODE_PATTERN = r"^[A-Z0-9][A-Z0-9\-]{3,63}$"
#: an amount in 万元 (ten thousand yuan), at most 6 decimals
Amount = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)]


class ProjectType(CodeTable):
    """交易项目类型 (category of a public resource transaction). The supervising department
    (行业监督部门) follows from it: 工程建设 → 住房和城乡建设局, 政府采购 → 财政局,
    土地使用权 / 矿业权 → 自然资源和规划局, 国有产权 → 国有资产监督管理委员会."""

    ENGINEERING = "engineering", "工程建设"
    GOVERNMENT_PROCUREMENT = "government_procurement", "政府采购"
    LAND_USE_RIGHTS = "land_use_rights", "土地使用权"
    STATE_OWNED_PROPERTY = "state_owned_property", "国有产权"
    MINING_RIGHTS = "mining_rights", "矿业权"
    OTHER = "other", "其他"


class Attachment(BaseModel):  # 附件引用
    """An attachment by reference: where to fetch it and what it must hash to."""

    model_config = _CONFIG

    name: str = Field(description="附件名称", min_length=1, max_length=200)
    uri: str = Field(
        description="附件地址 (http/https)", pattern=r"^https?://\S+$", max_length=1000
    )
    sha256: str = Field(description="SHA-256 摘要 (lower-case hex)", pattern=r"^[0-9a-f]{64}$")
    size: int = Field(description="大小 (bytes)", gt=0, le=1024**3)
    media_type: str | None = Field(None, description="类型", max_length=100)


class Party(BaseModel):  # 单位
    """A legal person taking part: 招标人, 招标代理, 中标人."""

    model_config = _CONFIG

    name: str = Field(description="单位名称", min_length=1, max_length=200)
    uscc: USCC = Field(description="统一社会信用代码")


class TradingProject(BaseModel):  # 交易项目
    """A project registered for trading (进场交易登记). Business key ``project_code``."""

    model_config = _CONFIG

    project_code: str = Field(description="项目编号", pattern=CODE_PATTERN)
    project_name: str = Field(description="项目名称", min_length=1, max_length=200)
    project_type: ProjectType = Field(description="项目类型")
    tenderer: Party = Field(description="招标人 (采购人 / 出让人 / 转让方)")
    agency: Party | None = Field(None, description="招标代理机构")
    region_code: RegionCode = Field(description="行政区划代码")
    budget: Amount = Field(description="预算金额 (万元)")
    registered_at: ChinaDatetime = Field(description="登记时间")
    attachments: list[Attachment] = Field(default_factory=list, description="附件", max_length=100)
    document_id: str | None = Field(None, description="平台文件编号", max_length=64)


class TenderAnnouncement(BaseModel):  # 招标公告
    """A tender announcement (招标公告 / 采购公告 / 出让公告). Business key
    ``announcement_no``."""

    model_config = _CONFIG

    announcement_no: str = Field(description="公告编号", pattern=CODE_PATTERN)
    project_code: str = Field(description="项目编号", pattern=CODE_PATTERN)
    project_type: ProjectType = Field(description="项目类型")
    title: str = Field(description="公告标题", min_length=1, max_length=200)
    content: str | None = Field(None, description="公告内容", max_length=20_000)
    published_at: ChinaDatetime = Field(description="发布时间")
    bid_deadline: ChinaDatetime = Field(description="投标截止时间")
    opening_time: ChinaDatetime = Field(description="开标时间")
    attachments: list[Attachment] = Field(default_factory=list, description="附件", max_length=100)
    document_id: str | None = Field(None, description="平台文件编号", max_length=64)

    @model_validator(mode="after")
    def _order(self) -> TenderAnnouncement:
        if self.bid_deadline < self.published_at:
            raise ValueError(
                "投标截止时间 (bid_deadline) must not be before 发布时间 (published_at)"
            )
        if self.opening_time < self.bid_deadline:
            raise ValueError(
                "开标时间 (opening_time) must not be before 投标截止时间 (bid_deadline)"
            )
        return self


class Bidder(BaseModel):  # 投标人
    model_config = _CONFIG

    name: str = Field(description="投标人名称", min_length=1, max_length=200)
    uscc: USCC = Field(description="投标人统一社会信用代码")
    bid_price: Amount = Field(description="投标报价 (万元)")
    duration_days: int | None = Field(None, description="工期 (日历天)", gt=0)


class BidOpening(BaseModel):  # 开标记录
    """The record of a bid opening: who bid and at what price. Business key ``opening_no``."""

    model_config = _CONFIG

    opening_no: str = Field(description="开标记录编号", pattern=CODE_PATTERN)
    project_code: str = Field(description="项目编号", pattern=CODE_PATTERN)
    project_type: ProjectType = Field(description="项目类型")
    section_code: str | None = Field(None, description="标段编号", pattern=CODE_PATTERN)
    opened_at: ChinaDatetime = Field(description="开标时间")
    location: str | None = Field(None, description="开标地点", max_length=200)
    bidders: list[Bidder] = Field(description="投标人", min_length=1, max_length=500)
    attachments: list[Attachment] = Field(default_factory=list, description="附件", max_length=100)
    document_id: str | None = Field(None, description="平台文件编号", max_length=64)

    @model_validator(mode="after")
    def _unique_bidders(self) -> BidOpening:
        seen: set[str] = set()
        for i, b in enumerate(self.bidders):
            if b.uscc in seen:
                raise ValueError(f"bidders[{i}].uscc {b.uscc} bids twice in one opening")
            seen.add(b.uscc)
        return self


class Candidate(BaseModel):  # 中标候选人
    model_config = _CONFIG

    rank: int = Field(description="排名", ge=1, le=10)
    name: str = Field(description="候选人名称", min_length=1, max_length=200)
    uscc: USCC = Field(description="候选人统一社会信用代码")
    bid_price: Amount = Field(description="投标报价 (万元)")


class AwardResult(BaseModel):  # 中标结果 / 中标候选人公示
    """An award: the publicity of candidates (中标候选人公示) or the final result (中标结果
    公告). Business key ``result_no``; ``project_type`` decides the supervising department."""

    model_config = _CONFIG

    result_no: str = Field(description="结果编号", pattern=CODE_PATTERN)
    project_code: str = Field(description="项目编号", pattern=CODE_PATTERN)
    project_name: str = Field(description="项目名称", min_length=1, max_length=200)
    project_type: ProjectType = Field(description="项目类型")
    notice_kind: Literal["candidates", "result"] = Field(
        description="公示类型: 中标候选人公示 / 中标结果公告"
    )
    tenderer: Party = Field(description="招标人")
    winner: Party = Field(description="中标人")
    award_amount: Amount = Field(description="中标金额 (万元)")
    award_date: date = Field(description="中标日期")
    region_code: RegionCode = Field(description="行政区划代码")
    publicity_start: date | None = Field(None, description="公示开始日期")
    publicity_end: date | None = Field(None, description="公示截止日期")
    candidates: list[Candidate] = Field(
        default_factory=list, description="中标候选人", max_length=10
    )
    attachments: list[Attachment] = Field(default_factory=list, description="附件", max_length=100)
    document_id: str | None = Field(None, description="平台文件编号", max_length=64)

    @model_validator(mode="after")
    def _check(self) -> AwardResult:
        if (
            self.publicity_start is not None
            and self.publicity_end is not None
            and self.publicity_end < self.publicity_start
        ):
            raise ValueError("公示截止日期 (publicity_end) must not be before publicity_start")
        if self.notice_kind == "candidates" and not self.candidates:
            raise ValueError("中标候选人公示 (notice_kind candidates) needs candidates")
        return self


DATASETS = [
    DatasetSpec(
        name="trading_project",
        version="1.0",
        model=TradingProject,
        title="交易项目 (public resource trading project)",
        key_field="project_code",
        partition_field="project_code",
    ),
    DatasetSpec(
        name="trading_announcement",
        version="1.0",
        model=TenderAnnouncement,
        title="招标公告 (tender announcement)",
        key_field="announcement_no",
        partition_field="project_code",
    ),
    DatasetSpec(
        name="trading_bid_opening",
        version="1.0",
        model=BidOpening,
        title="开标记录 (bid opening record)",
        key_field="opening_no",
        partition_field="project_code",
    ),
    DatasetSpec(
        name="trading_award",
        version="1.0",
        model=AwardResult,
        title="中标结果 / 中标候选人公示 (award result)",
        key_field="result_no",
        partition_field="project_code",
    ),
]
