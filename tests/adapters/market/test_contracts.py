"""Contracts of the market platform's datasets: valid and invalid records of every dataset
(USCC check characters included), and ``jghub check`` on the shipped samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from adapters.market.contracts import (
    AbnormalListEntry,
    InspectionTask,
    MarketEntity,
    TaskResult,
)
from adapters.market.demo import EXAMPLE
from hub.cli import app

USCC_OK = "91330102107919009Q"
USCC_BAD = "91330102107919009A"  # check character should be Q
DEPT = "113301022583800043"

ENTITY: dict[str, Any] = {
    "uscc": USCC_OK,
    "name": "杭州样例餐饮集团有限公司",
    "legal_representative": "王伟",
    "entity_type": "company",
    "status": "active",
    "address": "杭州市上城区解放路88号",
    "region_code": "330102",
    "established_on": "2018-03-01",
    "changed_at": "2026-06-15T14:00:00+08:00",
}
INSPECTORS = [
    {"name": "陈静", "law_enforcement_cert_no": "33010200101"},
    {"name": "赵磊", "law_enforcement_cert_no": "33010200102"},
]
TASK: dict[str, Any] = {
    "task_no": "SJRW2026000001",
    "plan_no": "JH2026001",
    "plan_name": "2026年度部门联合双随机抽查计划",
    "department": "上城区市场监督管理局",
    "department_code": DEPT,
    "region_code": "330102",
    "items": ["年度报告公示信息的检查"],
    "objects": [{"uscc": USCC_OK, "name": "杭州样例餐饮集团有限公司"}],
    "inspectors": INSPECTORS,
    "issued_at": "2026-07-01 09:00:00",
    "deadline": "2026-09-30",
}
RESULT: dict[str, Any] = {
    "task_no": "SJRW2026000001",
    "object_uscc": USCC_OK,
    "object_name": "杭州样例餐饮集团有限公司",
    "result": "2",
    "result_detail": "未按规定公示年度报告，已责令整改",
    "inspected_on": "2026-07-10",
    "department": "上城区市场监督管理局",
    "department_code": DEPT,
    "inspectors": INSPECTORS,
    "reported_at": "2026-07-10T16:00:00+08:00",
}
LISTING: dict[str, Any] = {
    "entry_id": "YCML2026000001",
    "uscc": USCC_OK,
    "name": "杭州样例餐饮集团有限公司",
    "action": "list",
    "reason": "annual_report",
    "decided_on": "2026-07-01",
    "decision_no": "杭上市监异〔2026〕1号",
    "authority": "杭州市上城区市场监督管理局",
    "authority_code": DEPT,
    "changed_at": "2026-07-01T10:00:00+08:00",
}
REMOVAL = {
    **LISTING,
    "action": "remove",
    "listed_on": "2026-07-01",
    "decided_on": "2026-08-01",
    "changed_at": "2026-08-01T10:00:00+08:00",
}


def _fails(model: type[BaseModel], record: dict[str, Any]) -> tuple[str, str]:
    """(field path, error type) of the first error ``record`` gives."""
    with pytest.raises(ValidationError) as exc:
        model.model_validate(record)
    err = exc.value.errors()[0]
    return ".".join(str(p) for p in err["loc"]), err["type"]


def test_valid_records_of_every_dataset() -> None:
    e = MarketEntity.model_validate({**ENTITY, "uscc": USCC_OK.lower()})
    assert e.uscc == USCC_OK  # normalised to upper case
    assert e.changed_at.utcoffset() is not None
    t = InspectionTask.model_validate(TASK)
    assert t.issued_at.isoformat() == "2026-07-01T09:00:00+08:00"  # China time assumed
    assert TaskResult.model_validate(RESULT).result == "2"
    assert AbnormalListEntry.model_validate(LISTING).listed_on is None
    assert str(AbnormalListEntry.model_validate(REMOVAL).listed_on) == "2026-07-01"


@pytest.mark.parametrize(
    ("model", "record", "where", "kind"),
    [
        # USCC check characters (GB 32100) in every dataset that names an entity
        (MarketEntity, {**ENTITY, "uscc": USCC_BAD}, "uscc", "uscc_check"),
        (InspectionTask, {**TASK, "department_code": DEPT[:-1] + "5"}, "department_code",
         "uscc_check"),
        (InspectionTask, {**TASK, "objects": [{"uscc": USCC_BAD, "name": "x"}]}, "objects.0.uscc",
         "uscc_check"),
        (TaskResult, {**RESULT, "object_uscc": USCC_BAD}, "object_uscc", "uscc_check"),
        (AbnormalListEntry, {**LISTING, "uscc": USCC_BAD}, "uscc", "uscc_check"),
        # code tables and required fields
        (MarketEntity, {**ENTITY, "status": "存续"}, "status", "literal_error"),
        (MarketEntity, {**ENTITY, "region_code": "990102"}, "region_code", "region_code_province"),
        (MarketEntity, {k: v for k, v in ENTITY.items() if k != "name"}, "name", "missing"),
        (TaskResult, {**RESULT, "result": "9"}, "result", "enum"),
        (AbnormalListEntry, {**LISTING, "action": "列入"}, "action", "literal_error"),
        # logic
        (MarketEntity, {**ENTITY, "changed_at": "2017-01-01T00:00:00"}, "changed_at",
         "changed_before_established"),
        (InspectionTask, {**TASK, "inspectors": INSPECTORS[:1]}, "inspectors", "too_short"),
        (InspectionTask, {**TASK, "deadline": "2026-06-30"}, "deadline", "deadline_before_issue"),
        (TaskResult, {**RESULT, "reported_at": "2026-07-09T08:00:00+08:00"}, "reported_at",
         "reported_before_inspection"),
        (AbnormalListEntry, {**REMOVAL, "listed_on": None}, "listed_on",
         "removal_without_listing"),
        (AbnormalListEntry, {**REMOVAL, "listed_on": "2026-09-01"}, "listed_on",
         "removed_before_listed"),
        (MarketEntity, {**ENTITY, "capital": "100万"}, "capital", "extra_forbidden"),
    ],
)  # fmt: skip
def test_invalid_records_name_the_field(
    model: type[BaseModel], record: dict[str, Any], where: str, kind: str
) -> None:
    assert _fails(model, record) == (where, kind)


def _check(system: str, samples: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        [
            "check",
            str(EXAMPLE / "systems" / f"{system}.yaml"),
            "--samples",
            str(EXAMPLE / "samples" / samples),
            "-c",
            str(EXAMPLE / "hub.yaml"),
        ],
    )
    return result.exit_code, result.output


@pytest.mark.parametrize("system", ["market", "dept-a", "dept-b"])
def test_jghub_check_passes_on_the_shipped_samples(system: str) -> None:
    code, out = _check(system, system)
    assert code == 0, out
    assert "FAIL" not in out
    assert " sample records ok" in out


def test_jghub_check_reports_the_invalid_samples_with_codes() -> None:
    code, out = _check("market", "market-invalid")
    assert code == 1
    fails = {
        Path(line.split()[1]).name: line for line in out.splitlines() if line.startswith("FAIL")
    }
    assert set(fails) == {p.name for p in (EXAMPLE / "samples" / "market-invalid").rglob("*.json")}
    assert "E_SCHEMA [uscc]" in fails["bad-uscc-checksum.json"]
    assert "check character" in fails["bad-uscc-checksum.json"]
    assert "E_MAPPING [status]" in fails["unknown-status.json"]
    assert "E_MAPPING [action]" in fails["unknown-action.json"]
    assert "E_SCHEMA [objects.0.uscc]" in fails["bad-object-uscc.json"]
    assert "E_SCHEMA [inspectors]" in fails["one-inspector.json"]
    assert "E_SCHEMA [listed_on]" in fails["removal-without-listing-date.json"]
    assert "E_SCHEMA [changed_at]" in fails["changed-before-established.json"]
    code, out = _check("dept-a", "dept-a-invalid")
    assert code == 1
    assert "0 of 4 sample records ok" in out
    assert any("E_SCHEMA [object_uscc]" in x for x in out.splitlines())
    assert any("E_SCHEMA [counterpart_code]" in x for x in out.splitlines())


def test_the_example_hub_file_checks_once_its_keys_exist(tmp_path: Path) -> None:
    """The hub file names key files an operator provides; with them (the demo's copy writes
    fresh ones) the whole set-up passes ``jghub check``: plugins, routes, filters, keys."""
    from adapters.market.demo import write_market_setup

    path, _, _ = write_market_setup(
        tmp_path,
        market_url="http://127.0.0.1:9/scjg/open/v1",
        dept_urls={"dept-a": "http://127.0.0.1:9/a", "dept-b": "http://127.0.0.1:9/b"},
    )
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    (tmp_path / "keys" / "scjg-1.pub.pem").unlink()
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 1 and "E_CONFIG" in result.output
    assert "keys.peers.market" in result.output or "scjg-1" in result.output
