"""The built-in ``contracts`` plugin registers both datasets through the hub's registry."""

from __future__ import annotations

import contracts
import contracts.plugin
from contracts import CatalogItem, InspectionRecord
from hub.plugins import build_plugin_manager, load_registry


def test_hook_returns_both_dataset_specs() -> None:
    specs = {spec.name: spec for spec in contracts.plugin.hub_register_datasets()}
    assert set(specs) == {"inspection", "catalog_item", "penalty", "coordination"}
    assert specs["penalty"].key_field == "decision_no"
    assert specs["coordination"].partition_field == "task_no"
    inspection, catalog = specs["inspection"], specs["catalog_item"]
    assert inspection.model is InspectionRecord
    assert inspection.key_field == "inspection_no"
    assert inspection.partition_field is None
    assert catalog.model is CatalogItem
    assert catalog.key_field == catalog.partition_field == "code"
    for spec in specs.values():
        assert spec.version == "1.0"
        assert spec.title
        for field in (spec.key_field, spec.partition_field):
            assert field is None or field in spec.model.model_fields


def test_registry_loads_the_datasets() -> None:
    pm = build_plugin_manager([contracts.plugin], load_entry_points=False)
    registry = load_registry(pm)
    assert registry.datasets.get("inspection").model is InspectionRecord
    assert registry.datasets.get("catalog_item").model is CatalogItem
    assert registry.datasets.owners["inspection"] == "contracts.plugin"


def test_public_names_exist() -> None:
    for name in contracts.__all__:
        assert hasattr(contracts, name), name
    assert sorted(contracts.__all__) == sorted(set(contracts.__all__))
