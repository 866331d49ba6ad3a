"""Contract tests of the 12345 datasets: a valid and several invalid records of each, with
the error code and the field they must name (checksum failures included)."""

from __future__ import annotations

import base64
import hashlib
import importlib
from typing import Any

import pytest
from pydantic import ValidationError

from hub.errors import HubError
from hub.plugins import build_plugin_manager, load_registry

contracts = importlib.import_module("adapters.12345.contracts")

PHOTO = b"\xff\xd8\xff\xe0 photo bytes \xff\xd9"


def attachment(**kw: Any) -> dict[str, Any]:
    return {
        "name": "现场照片.jpg",
        "url": "https://12345.zj.gov.cn/files/F000001",
        "sha256": hashlib.sha256(PHOTO).hexdigest(),
        "size": len(PHOTO),
        "media_type": "image/jpeg",
        **kw,
    }


def order(**kw: Any) -> dict[str, Any]:
    return {
        "order_no": "ZJ12345-20261125-000001",
        "channel": "phone",
        "category": "complaint",
        "urgency": "general",
        "title": "商户拒不退还预付卡余额",
        "content": "健身房闭店，余额无法退还",
        "region_code": "330102",
        "requester": {"name": "王**", "phone": "138****5678", "confidential": False},
        "attachments": [attachment()],
        "department": "上城区市场监督管理局",
        "department_code": "SCJG330102",
        "received_at": "2026-11-25T09:30:00+08:00",
        "dispatched_at": "2026-11-25T09:35:00+08:00",
        **kw,
    }


def event(**kw: Any) -> dict[str, Any]:
    return {
        "event_id": "LZ0001",
        "order_no": "ZJ12345-20261125-000001",
        "event": "sign",
        "occurred_at": "2026-11-25T10:00:00+08:00",
        "actor": "上城区市场监督管理局",
        "department": "上城区市场监督管理局",
        "department_code": "SCJG330102",
        **kw,
    }


def error_of(model: Any, doc: dict[str, Any]) -> tuple[str, str]:
    """(code, field) of the refusal, the way the hub reports it."""
    try:
        model.model_validate(doc)
    except HubError as err:
        return err.code, str(err.field)
    except ValidationError as exc:
        first = exc.errors()[0]
        return "E_SCHEMA", ".".join(str(p) for p in first["loc"])
    raise AssertionError("the record was accepted")


def test_the_plugin_registers_both_datasets() -> None:
    reg = load_registry(build_plugin_manager())
    assert reg.datasets.get("work_order", wanted_by="t").key_field == "order_no"
    spec = reg.datasets.get("work_order_event", wanted_by="t")
    assert spec.partition_field == "order_no" and spec.key_field == "event_id"


def test_valid_work_orders() -> None:
    wo = contracts.WorkOrder.model_validate(order())
    assert wo.attachments[0].size == len(PHOTO)
    inline = attachment(content_base64=base64.b64encode(PHOTO).decode())
    assert contracts.WorkOrder.model_validate(order(attachments=[inline]))
    secret = order(requester={"confidential": True}, attachments=[])
    assert contracts.WorkOrder.model_validate(secret).requester.name is None


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        # 附件: an MD5 where the SHA-256 belongs, upper-case hex, a zero size
        ({"attachments": [attachment(sha256=hashlib.md5(PHOTO).hexdigest())]},
         "E_SCHEMA", "attachments.0.sha256"),
        ({"attachments": [attachment(size=0)]}, "E_SCHEMA", "attachments.0.size"),
        ({"attachments": [attachment(url="ftp://x/y")]}, "E_SCHEMA", "attachments.0.url"),
        # inline bytes that do not hash to the checksum, or have another size
        ({"attachments": [attachment(content_base64=base64.b64encode(b"other").decode(),
                                     size=5)]},
         "E_ATTACHMENT_CHECKSUM", "attachments.sha256"),
        ({"attachments": [attachment(content_base64=base64.b64encode(PHOTO[:-1]).decode())]},
         "E_ATTACHMENT_CHECKSUM", "attachments.size"),
        # 行政区划: unknown province, not six digits
        ({"region_code": "990102"}, "E_SCHEMA", "region_code"),
        ({"region_code": "33010"}, "E_SCHEMA", "region_code"),
        # personal data in clear text is refused: it must arrive masked
        ({"requester": {"name": "王小明", "phone": "138****5678"}}, "E_SCHEMA", "requester.name"),
        ({"requester": {"name": "王**", "phone": "13812345678"}}, "E_SCHEMA", "requester.phone"),
        ({"category": "praise"}, "E_SCHEMA", "category"),
        ({"urgency": "high"}, "E_SCHEMA", "urgency"),
        ({"order_no": "zj 1"}, "E_SCHEMA", "order_no"),
        ({"dispatched_at": "2026-11-25T09:00:00+08:00"}, "E_SCHEMA", "dispatched_at"),
        ({"unknown": 1}, "E_SCHEMA", "unknown"),
    ],
)  # fmt: skip
def test_invalid_work_orders(change: dict[str, Any], code: str, field: str) -> None:
    assert error_of(contracts.WorkOrder, order(**change)) == (code, field)


def test_valid_events() -> None:
    assert contracts.WorkOrderEvent.model_validate(event()).event == "sign"
    ev = event(event="evaluate", satisfaction="dissatisfied", previous_state="revisited")
    assert contracts.WorkOrderEvent.model_validate(ev).satisfaction == "dissatisfied"
    ext = event(event="extension_request", reason="需现场勘验", new_deadline="2026-12-30T17:30:00")
    assert contracts.WorkOrderEvent.model_validate(ext).new_deadline is not None


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"event": "return"}, "E_SCHEMA", "reason"),  # 退回 needs its reason
        ({"event": "reopen"}, "E_SCHEMA", "reason"),
        ({"event": "reply"}, "E_SCHEMA", "opinion"),
        ({"event": "close"}, "E_SCHEMA", "opinion"),
        ({"event": "evaluate"}, "E_SCHEMA", "satisfaction"),
        ({"new_deadline": "2026-12-30T17:30:00+08:00"}, "E_SCHEMA", "new_deadline"),
        ({"event": "approve"}, "E_SCHEMA", "event"),
        ({"department_code": "scjg-1"}, "E_SCHEMA", "department_code"),
        # the sender says where the order was: an impossible move is refused by the contract
        ({"previous_state": "closed"}, "E_ORDER_STATE", "previous_state"),
        ({"previous_state": "new"}, "E_ORDER_STATE", "previous_state"),
        ({"attachments": [attachment(content_base64=base64.b64encode(b"x").decode())]},
         "E_ATTACHMENT_CHECKSUM", "attachments.size"),
    ],
)  # fmt: skip
def test_invalid_events(change: dict[str, Any], code: str, field: str) -> None:
    assert error_of(contracts.WorkOrderEvent, event(**change)) == (code, field)


def test_verify_attachment_names_the_file() -> None:
    digest = hashlib.sha256(PHOTO).hexdigest()
    contracts.verify_attachment(PHOTO, digest, len(PHOTO), name="a.jpg")
    with pytest.raises(HubError) as exc:
        contracts.verify_attachment(PHOTO[::-1], digest, len(PHOTO), name="a.jpg")
    assert exc.value.code == "E_ATTACHMENT_CHECKSUM" and "'a.jpg'" in exc.value.message
