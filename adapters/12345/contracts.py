"""Canonical datasets of the 12345 hotline: the work order (工单) as dispatched to a
department, and the events of its lifecycle (工单流转记录) in both directions.

Personal data of the requester (来电人) arrives masked (脱敏: the platform mapping masks name
and phone, see ``examples/platforms/12345/systems/platform-12345.yaml``); the contract refuses
a clear-text phone number or name. Attachments (附件) travel by reference: a URL, the SHA-256
of the bytes and their size; a small attachment may come inline (``content_base64``) and is
then checked against its checksum here (``E_ATTACHMENT_CHECKSUM``). Referenced ones are checked
by whoever fetches them (:func:`verify_attachment`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from contracts.validators import ChinaDatetime, RegionCode
from hub.errors import SchemaError
from hub.specs import DatasetSpec

from .errors import AttachmentChecksumError, OrderStateError
from .lifecycle import Event, State, next_state

__all__ = [
    "DATASETS",
    "Attachment",
    "Requester",
    "WorkOrder",
    "WorkOrderEvent",
    "verify_attachment",
]

_CONFIG = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

Category = Literal["consultation", "help", "complaint", "report", "suggestion"]
Urgency = Literal["life_property", "utilities", "general"]
Channel = Literal["phone", "web", "app", "wechat", "email", "letter", "other"]

#: most bytes an attachment may carry inline (larger ones go by reference only)
INLINE_MAX = 64 * 1024

_ORDER_NO = r"^[A-Z0-9][A-Z0-9-]{5,39}$"
_DEPT_CODE = r"^[A-Z0-9]{2,32}$"


def verify_attachment(data: bytes, sha256: str, size: int, *, name: str = "") -> None:
    """Raise :class:`AttachmentChecksumError` unless ``data`` has ``size`` bytes and the
    SHA-256 ``sha256`` (lower-case hex)."""
    if len(data) != size:
        raise AttachmentChecksumError(
            f"attachment {name!r}: {len(data)} bytes, the work order says {size}",
            field="attachments.size",
        )
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise AttachmentChecksumError(
            f"attachment {name!r}: SHA-256 {got} does not match the checksum {sha256}",
            field="attachments.sha256",
        )


class Attachment(BaseModel):  # 附件
    """An attachment by reference: where to fetch it and what its bytes must hash to."""

    model_config = _CONFIG

    name: str = Field(description="附件名称", min_length=1, max_length=200)
    url: AnyHttpUrl = Field(description="附件地址 (fetched by the receiver)")
    sha256: str = Field(
        description="SHA-256 of the bytes, lower-case hex", pattern=r"^[0-9a-f]{64}$"
    )
    size: int = Field(description="size in bytes", gt=0, le=200 * 1024 * 1024)
    media_type: str | None = Field(None, description="MIME type", max_length=100)
    content_base64: str | None = Field(
        None, description=f"the bytes inline (at most {INLINE_MAX} bytes), base64"
    )

    @model_validator(mode="after")
    def _inline_matches(self) -> Attachment:
        if self.content_base64 is None:
            return self
        try:
            data = base64.b64decode(self.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("content_base64 is not base64") from None
        if len(data) > INLINE_MAX:
            raise ValueError(f"content_base64: more than {INLINE_MAX} bytes inline")
        verify_attachment(data, self.sha256, self.size, name=self.name)
        return self


class Requester(BaseModel):  # 来电人 (masked)
    """The requester, masked: surname kept (``王**``), phone ``138****5678``; the clear values
    stay at the 12345 platform. ``id_hash`` is a salted SHA-256 pseudonym for linking repeat
    callers (重复来电) without the ID number."""

    model_config = _CONFIG

    name: str | None = Field(
        None, description="姓名 (masked)", pattern=r"^[^*\s]{1,2}\*+$", max_length=20
    )
    phone: str | None = Field(None, description="联系电话 (masked)", pattern=r"^\d{3}\*{4}\d{4}$")
    id_hash: str | None = Field(None, description="证件号码 pseudonym", pattern=r"^[0-9a-f]{64}$")
    confidential: bool = Field(False, description="是否保密 (requester asked for secrecy)")


class WorkOrder(BaseModel):  # 工单
    """A work order as the 12345 centre dispatches it (派单) to the responsible department."""

    model_config = _CONFIG

    order_no: str = Field(description="工单编号", pattern=_ORDER_NO)
    channel: Channel = Field(description="受理渠道: 电话/网站/APP/微信/邮件/信件/其他")
    category: Category = Field(description="诉求类型: 咨询/求助/投诉/举报/建议")
    urgency: Urgency = Field(
        description="紧急程度: 危及生命财产安全 / 水电气暖 / 一般 (decides the signing limit)"
    )
    title: str = Field(description="标题", min_length=1, max_length=200)
    content: str = Field(description="诉求内容", min_length=1, max_length=10_000)
    region_code: RegionCode = Field(description="行政区划代码 (事发地)")
    address: str | None = Field(None, description="事发地址", max_length=500)
    requester: Requester = Field(description="来电人 (masked)")
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    department: str = Field(description="承办单位", min_length=1, max_length=200)
    department_code: str = Field(description="承办单位代码", pattern=_DEPT_CODE)
    received_at: ChinaDatetime = Field(description="受理时间")
    dispatched_at: ChinaDatetime = Field(description="派单时间")

    @model_validator(mode="after")
    def _dispatched_after_received(self) -> WorkOrder:
        if self.dispatched_at < self.received_at:
            raise SchemaError(
                "dispatched_at (派单时间) is before received_at (受理时间)", field="dispatched_at"
            )
        return self


class WorkOrderEvent(BaseModel):  # 工单流转记录
    """One step of a work order's lifecycle, from the department (签收, 办理, 回复, 延期申请,
    退回, 办结), the 12345 centre (派单/转办, 回访, 评价, 发回重办, 督办) or the hub's deadline
    watch (督办). ``department_code`` is the order's responsible department (for 派单/转办
    the new one); routes use it. ``previous_state``, when the sender gives it, must allow the
    event (checked here) and match the hub's record of the order (checked by the hub)."""

    model_config = _CONFIG

    event_id: str = Field(description="流转记录编号 (unique)", min_length=1, max_length=64)
    order_no: str = Field(description="工单编号", pattern=_ORDER_NO)
    event: Event = Field(description="动作: 受理/派单/转办/签收/办理/回复/督办/延期申请/退回/...")
    occurred_at: ChinaDatetime = Field(description="操作时间")
    actor: str = Field(description="操作单位", min_length=1, max_length=200)
    department: str = Field(description="承办单位", min_length=1, max_length=200)
    department_code: str = Field(description="承办单位代码", pattern=_DEPT_CODE)
    opinion: str | None = Field(None, description="处理意见 / 答复内容", max_length=10_000)
    reason: str | None = Field(
        None, description="原因 (退回, 延期, 发回重办, 督办)", max_length=2000
    )
    satisfaction: Literal["satisfied", "basically_satisfied", "dissatisfied"] | None = Field(
        None, description="满意度 (评价): 满意 / 基本满意 / 不满意"
    )
    new_deadline: ChinaDatetime | None = Field(None, description="申请延期至 (延期申请)")
    supervision: Literal["sign_overdue", "answer_overdue", "answer_due_soon"] | None = Field(
        None, description="督办类型: 签收超时 / 办理超期 / 临期预警"
    )
    previous_state: State | None = Field(None, description="流转前状态 as the sender sees it")
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _fields_of_the_event(self) -> WorkOrderEvent:
        needs = {
            "return": ("reason", "退回原因"),
            "extension_request": ("reason", "延期原因"),
            "reopen": ("reason", "发回重办原因"),
            "supervise": ("reason", "督办事由"),
            "reply": ("opinion", "答复内容"),
            "close": ("opinion", "办结意见"),
            "evaluate": ("satisfaction", "满意度"),
        }
        need = needs.get(self.event)
        if need is not None and getattr(self, need[0]) in (None, ""):
            raise SchemaError(
                f"{need[0]} ({need[1]}) is required for event {self.event}", field=need[0]
            )
        if self.new_deadline is not None and self.event != "extension_request":
            raise SchemaError(
                "new_deadline is only for event extension_request (延期申请)", field="new_deadline"
            )
        if self.previous_state is not None:
            # a sender that says where the order was: the move must exist (E_ORDER_STATE)
            try:
                next_state(
                    self.order_no,
                    self.previous_state,
                    self.event,
                    satisfaction="dissatisfied",  # the satisfaction is checked by the hub
                )
            except OrderStateError as err:
                err.field = "previous_state"
                raise
        return self


DATASETS = [
    DatasetSpec(
        name="work_order",
        version="1.0",
        model=WorkOrder,
        title="12345 工单 (work order dispatched to a department)",
        partition_field="order_no",
        key_field="order_no",
    ),
    DatasetSpec(
        name="work_order_event",
        version="1.0",
        model=WorkOrderEvent,
        title="12345 工单流转记录 (work-order lifecycle events)",
        partition_field="order_no",
        key_field="event_id",
    ),
]
