"""Catalog resources declared in config (the hub file's ``sharing.catalog``, a dataset file's
``catalog:`` block) and by plugins (``hub_register_catalog``): mistakes are reported with the
file, the line and the key, before anything starts; the example under examples/sharing loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.config import load_config
from hub.errors import ConfigError
from hub.plugins import build_plugin_manager, hookimpl
from hub.runtime import Hub
from hub.sharing.catalog import CatalogResource, ShareType
from hub.store.memory import MemoryStore
from tests.sharing.kit import DATASET, HUB_CATALOG, write_sharing_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sharing" / "hub.yaml"


def hub_for(path: Path, *plugins: object) -> Hub:
    cfg = load_config(path)
    pm = build_plugin_manager(plugins) if plugins else None
    return Hub(cfg, store=MemoryStore(), pm=pm)


def edit(path: Path, fn: Any) -> None:
    doc = yaml.safe_load(path.read_text())
    fn(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))


def test_resources_from_the_hub_file_and_a_dataset_file(tmp_path: Path) -> None:
    hub = hub_for(write_sharing_config(tmp_path))
    cat = hub.sharing.catalog
    assert sorted(cat.resources) == ["330100-SCJ-0001", "330100-SCJ-0002", "330100-SCJ-0003"]
    r = cat.get("330100-SCJ-0001")
    assert r.dataset == "licenses" and r.share_type is ShareType.CONDITIONAL
    # a dataset file's block without fields takes the dataset's, sensitive ones marked
    ds = tmp_path / "datasets" / "licenses.yaml"
    edit(ds, lambda d: d["catalog"].pop("fields"))
    r = hub_for(tmp_path / "hub.yaml").sharing.catalog.get("330100-SCJ-0001")
    assert sorted(f.name for f in r.fields) == sorted(DATASET["fields"])
    assert {f.name for f in r.fields if f.masked_by_default} == {"id_card", "phone"}


@pytest.mark.parametrize(
    ("where", "change", "message"),
    [
        (
            "dataset",
            lambda d: d["catalog"].update(share_type="maybe"),
            "catalog.share_type",
        ),
        (
            "dataset",
            lambda d: d["catalog"].update(share_conditions=""),
            "needs share_conditions",
        ),
        (
            "dataset",
            lambda d: d["catalog"].update(sharing_kind="x"),
            "catalog.sharing_kind: unknown key",
        ),
        (
            "hub",
            lambda d: d["sharing"]["catalog"][1].update(not_shared_basis=""),
            "sharing.catalog[1]: Value error, a not_shared (不予共享) resource needs",
        ),
        (
            "hub",
            lambda d: d["sharing"]["catalog"][0]["fields"].append({"name": "name"}),
            "listed twice",
        ),
        ("hub", lambda d: d["sharing"].update(review_days=3), "sharing.review_days: unknown key"),
    ],
)
def test_config_mistakes_name_file_line_and_key(
    tmp_path: Path, where: str, change: Any, message: str
) -> None:
    path = write_sharing_config(tmp_path)
    target = path if where == "hub" else tmp_path / "datasets" / "licenses.yaml"
    edit(target, change)
    with pytest.raises(ConfigError) as info:
        hub_for(path)
    text = info.value.message
    assert message in text, text
    assert f"{target}:" in text and text.split(f"{target}:")[1].split()[0].isdigit(), text


def test_duplicate_codes_and_unknown_datasets_are_refused(tmp_path: Path) -> None:
    path = write_sharing_config(tmp_path)
    edit(path, lambda d: d["sharing"]["catalog"][0].update(code="330100-SCJ-0001"))
    with pytest.raises(ConfigError, match="of dataset file licenses is also declared by hub file"):
        hub_for(path)
    edit(path, lambda d: d["sharing"]["catalog"][0].update(code="X-1", dataset="nothing"))
    with pytest.raises(ConfigError, match="unknown dataset 'nothing'"):
        hub_for(path)


class _Adapter:
    """A plugin registering a resource the way an adapter package would."""

    @hookimpl
    def hub_register_catalog(self) -> list[CatalogResource]:
        return [
            CatalogResource.model_validate(
                {**HUB_CATALOG[0], "code": "PLUGIN-1", "name": "插件登记的资源"}
            )
        ]


def test_plugins_register_resources_through_the_hook(tmp_path: Path) -> None:
    hub = hub_for(write_sharing_config(tmp_path), _Adapter())
    assert hub.sharing.catalog.get("PLUGIN-1").name == "插件登记的资源"


def test_the_example_configuration_loads() -> None:
    hub = hub_for(EXAMPLE)
    cat = hub.sharing.catalog
    types = {r.share_type for r in cat.resources.values()}
    assert types == set(ShareType)
    assert hub.sharing.settings.review_workdays == 10


def test_a_proxied_resource_names_data_the_hub_does_not_hold(tmp_path: Path) -> None:
    path = write_sharing_config(tmp_path)
    proxied = {**HUB_CATALOG[0], "code": "P-1", "proxy": {"url": "http://127.0.0.1:9/q"}}
    edit(path, lambda d: d["sharing"]["catalog"].append(proxied))
    with pytest.raises(ConfigError, match="is proxied: its dataset names the provider's data"):
        hub_for(path)
    edit(path, lambda d: d["sharing"]["catalog"][-1].update(share_methods=["subscription"]))
    with pytest.raises(ConfigError, match="cannot offer subscription") as info:
        hub_for(path)
    assert f"{path}:" in info.value.message
