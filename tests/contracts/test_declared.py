"""Datasets declared in YAML (contracts.declared): the investment project approval platform's
dataset from examples/, and the errors a wrong dataset file gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from contracts.declared import load_dataset_file
from contracts.samples import make_uscc
from hub.errors import ConfigError, PluginError
from hub.runtime import Hub
from tests.helpers import write_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "datasets" / "project_approval.yaml"


def approval(**over: Any) -> dict[str, Any]:
    rec = {
        "project_code": "2024-330106-44-01-000123",
        "project_name": "某某厂房建设项目",
        "applicant_name": "杭州某某科技有限公司",
        "applicant_uscc": make_uscc("91", "330106", 7),
        "region_code": "330106",
        "approval_item": "企业投资项目备案",
        "approval_no": "杭西发改备〔2024〕12号",
        "approval_result": "approved",
        "approval_date": "2024-05-06",
        "approving_body": "西湖区发展和改革局",
        "supervising_departments": ["西湖区住房和城乡建设局"],
        "total_investment": "1200.50",
    }
    rec.update(over)
    return rec


def test_example_dataset_validates_like_a_contract() -> None:
    spec = load_dataset_file(EXAMPLE)
    assert (spec.name, spec.key_field, spec.partition_field) == (
        "project_approval",
        "approval_no",
        "project_code",
    )
    ok = spec.model.model_validate(approval())
    assert str(ok.total_investment) == "1200.50"  # type: ignore[attr-defined]
    for bad, field in [
        (approval(applicant_uscc="91330106MA2B3C4D5E"), "applicant_uscc"),  # check digit
        (approval(project_code="2024-33-44"), "project_code"),
        (approval(approval_result="maybe"), "approval_result"),
        (approval(region_code="990000"), "region_code"),
        (approval(supervising_departments=[]), "supervising_departments"),
        (approval(total_investment=-1), "total_investment"),
        (approval(unknown_field=1), "unknown_field"),
    ]:
        with pytest.raises(ValidationError) as e:
            spec.model.model_validate(bad)
        assert e.value.errors()[0]["loc"][0] == field
    missing = approval()
    del missing["approval_no"]
    with pytest.raises(ValidationError, match="approval_no"):
        spec.model.model_validate(missing)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"name": "x", "fields": {"a": {"type": "text"}}}, "fields.a.type"),
        ({"name": "x", "fields": {"a": {"type": "list"}}}, "a list field needs 'items"),
        ({"name": "x", "key_field": "b", "fields": {"a": {}}}, "key_field 'b' is not one"),
        ({"name": "x", "fields": {"a": {"pattern": "(["}}}, "cannot be built"),
        ({"name": "x", "fields": {"a": {"typ": "string"}}}, "fields.a.typ: unknown key"),
        ({"name": "X Y", "fields": {"a": {}}}, "name:"),
        ({"name": "x", "fields": {}}, "fields:"),
    ],
)
def test_wrong_dataset_files_name_the_place(
    tmp_path: Path, doc: dict[str, Any], expected: str
) -> None:
    path = tmp_path / "ds.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as e:
        load_dataset_file(path)
    assert expected in e.value.message and str(path) in e.value.message


def _hub_with_dataset(tmp_path: Path, ds_file: Path) -> Path:
    hub_file = write_config(tmp_path, {}, dataset="project_approval")
    doc = yaml.safe_load(hub_file.read_text())
    doc["datasets"] = [str(ds_file)]
    hub_file.write_text(yaml.safe_dump(doc))
    return hub_file


async def test_a_declared_dataset_is_ingested_and_keyed(tmp_path: Path) -> None:
    from hub.config import load_config

    cfg = load_config(_hub_with_dataset(tmp_path, EXAMPLE))
    async with Hub(cfg) as hub:
        res = await hub.ingest_records("dept-a", [approval(), approval(project_code="bad")])
        assert len(res.ids) == 1 and res.errors[0].error.code == "E_SCHEMA"
        assert res.errors[0].error.field == "project_code"
        tr = await hub.store.trace(res.ids[0])
        assert tr is not None and tr.partition_key == "2024-330106-44-01-000123"


def test_a_declared_name_clashing_with_a_plugin_dataset_is_refused(tmp_path: Path) -> None:
    from hub.config import load_config

    clash = tmp_path / "inspection.yaml"
    clash.write_text(yaml.safe_dump({"name": "inspection", "fields": {"a": {}}}))
    cfg = load_config(_hub_with_dataset(tmp_path, clash))
    with pytest.raises(PluginError, match="registered twice"):
        Hub(cfg)
