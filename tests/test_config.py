"""Configuration errors a person can act on: file, line, key path and what is allowed.

The YAML is written out literally (not dumped) so the line numbers in the assertions are the
ones a person would see in their editor.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hub.config import HubConfig, load_config, load_system_file
from hub.errors import ConfigError, PluginError
from hub.runtime import Hub
from hub.store.memory import MemoryStore

HUB_YAML = """\
hub:
  name: test-hub
store:
  kind: memory
systems:
  - systems
routes:
  - name: inspections
    source: dept-a
    dataset: inspection
    targets: [national]
"""

DEPT_A_YAML = """\
name: dept-a
title: 某市市场监管局
adapter: json
inbound:
  datasets: [inspection]
"""

NATIONAL_YAML = """\
name: national
adapter: json
outbound:
  transport: http_json
  url: http://127.0.0.1:9/records
  timeout: 3
"""


class Files:
    """A hub folder: ``hub.yaml`` plus ``systems/dept-a.yaml`` and ``systems/national.yaml``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hub = root / "hub.yaml"
        self.dept_a = root / "systems" / "dept-a.yaml"
        self.national = root / "systems" / "national.yaml"
        self.dept_a.parent.mkdir(parents=True, exist_ok=True)
        self.write(hub=HUB_YAML, dept_a=DEPT_A_YAML, national=NATIONAL_YAML)

    def write(
        self, *, hub: str | None = None, dept_a: str | None = None, national: str | None = None
    ) -> None:
        for path, text in ((self.hub, hub), (self.dept_a, dept_a), (self.national, national)):
            if text is not None:
                path.write_text(textwrap.dedent(text), encoding="utf-8")

    def load(self) -> HubConfig:
        return load_config(self.hub)

    def build(self) -> Hub:
        return Hub(self.load(), store=MemoryStore())


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


def config_error(files: Files) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        files.load()
    assert info.value.code == "E_CONFIG"
    return info.value


def test_valid_files_load_and_build(files: Files) -> None:
    cfg = files.load()
    assert sorted(cfg.loaded_systems) == ["dept-a", "national"]
    assert cfg.system("dept-a").source_file == files.dept_a
    [route] = cfg.routes
    assert route.targets[0].system == "national"
    hub = files.build()
    assert sorted(hub.targets) == ["national"] and sorted(hub.systems) == ["dept-a", "national"]
    assert hub.targets["national"].transport_name == "http_json"


# --------------------------------------------------------------------------- keys and types


def test_unknown_key_names_file_line_path_and_allowed_keys(files: Files) -> None:
    files.write(hub=HUB_YAML.replace("  kind: memory\n", "  kind: memory\n  pth: x.db\n"))
    err = config_error(files)
    assert (
        f"{files.hub}:5 store.pth: unknown key; allowed: kind, path, dsn, schema, pool_size, "
        "timeout, durability, settle_sync, max_group" in str(err)
    )
    assert err.field == "store.pth"


def test_settle_sync_takes_relaxed_or_full(files: Files) -> None:
    files.write(hub=HUB_YAML.replace("  kind: memory\n", "  kind: memory\n  settle_sync: lazy\n"))
    err = config_error(files)
    assert err.code == "E_CONFIG" and err.field == "store.settle_sync"
    assert "'relaxed' or 'full'" in str(err)
    files.write(hub=HUB_YAML.replace("  kind: memory\n", "  kind: memory\n  settle_sync: full\n"))
    assert load_config(files.hub).store.settle_sync == "full"


def test_unknown_top_level_key_in_system_file(files: Files) -> None:
    files.write(dept_a=DEPT_A_YAML + "titel: typo\n")
    err = config_error(files)
    assert f"{files.dept_a}:6 titel: unknown key; allowed: name, title, adapter" in err.message
    assert "source_file" not in err.message  # internal fields are not offered


def test_unknown_key_deep_in_a_list_lists_aliases(files: Files) -> None:
    files.write(hub=HUB_YAML + "    filter:\n      - field: region_code\n        equal: '330102'\n")
    err = config_error(files)
    assert (
        f"{files.hub}:14 routes[0].filter[0].equal: unknown key; "
        "allowed: field, equals, in, not_in, exists"
    ) in err.message


def test_wrong_type_names_key_path_and_line(files: Files) -> None:
    files.write(hub=HUB_YAML + "limits:\n  max_body_bytes: lots\n")
    err = config_error(files)
    assert f"{files.hub}:13 limits.max_body_bytes: Input should be a valid integer" in err.message
    assert err.field == "limits.max_body_bytes"


def test_section_of_wrong_shape(files: Files) -> None:
    files.write(hub=HUB_YAML.replace("store:\n  kind: memory\n", "store: memory\n"))
    err = config_error(files)
    assert f"{files.hub}:3 store: Input should be a valid dictionary" in err.message


def test_every_problem_of_a_file_is_reported(files: Files) -> None:
    files.write(hub=HUB_YAML + "limits:\n  max_body_bytes: lots\n  max_json_depth: 1\n")
    lines = config_error(files).message.splitlines()
    assert [line.split(" ")[1] for line in lines] == [
        "limits.max_body_bytes:",
        "limits.max_json_depth:",
    ]
    assert lines[1].startswith(f"{files.hub}:14 ")


def test_duplicate_key(files: Files) -> None:
    files.write(dept_a=DEPT_A_YAML.replace("adapter: json\n", "adapter: json\nadapter: json\n"))
    err = config_error(files)
    assert f"{files.dept_a}:4 adapter: duplicate key" in err.message


def test_duplicate_nested_key(files: Files) -> None:
    files.write(national=NATIONAL_YAML + "  timeout: 5\n")
    err = config_error(files)
    assert f"{files.national}:7 outbound.timeout: duplicate key" in err.message


def test_invalid_yaml_names_the_file(files: Files) -> None:
    files.write(national="name: national\noutbound: [unclosed\n")
    err = config_error(files)
    assert str(files.national) in err.message and "not valid YAML" in err.message


def test_complex_key_is_a_config_error(files: Files) -> None:
    files.write(national=NATIONAL_YAML + "? [a, b]\n: 1\n")
    err = config_error(files)
    assert f"{files.national}:7 (top): a key must be a plain name" in err.message


def test_top_level_must_be_a_mapping(files: Files) -> None:
    files.write(hub="- just\n- a list\n")
    assert f"{files.hub}:1 the file must hold a mapping" in config_error(files).message


def test_missing_system_folder(files: Files) -> None:
    files.write(hub=HUB_YAML.replace("  - systems\n", "  - systemz\n"))
    err = config_error(files)
    assert "'systemz' does not exist" in err.message and err.field == "systems"


def test_system_defined_twice(files: Files) -> None:
    (files.root / "systems" / "copy.yaml").write_text(DEPT_A_YAML, encoding="utf-8")
    err = config_error(files)
    assert "system 'dept-a' is also defined in" in err.message


def test_outbound_needs_a_transport(files: Files) -> None:
    files.write(national="name: national\noutbound:\n  url: http://127.0.0.1:9/\n")
    err = config_error(files)
    assert f"{files.national}:2 outbound:" in err.message
    assert "outbound needs 'transport: <type>'" in err.message


# --------------------------------------------------------------------------- environment


def test_missing_env_var_names_file_line_and_variable(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JGHUB_TEST_DEPT_A_TOKEN", raising=False)
    files.write(dept_a=DEPT_A_YAML + "  token: ${JGHUB_TEST_DEPT_A_TOKEN}\n")
    err = config_error(files)
    assert (
        f"{files.dept_a}:6 inbound.token: environment variable JGHUB_TEST_DEPT_A_TOKEN is not set"
        in err.message
    )
    assert err.field == "inbound.token"


def test_env_default_is_used_when_unset_and_env_wins_when_set(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JGHUB_TEST_NATIONAL_URL", raising=False)
    files.write(
        national=NATIONAL_YAML.replace(
            "http://127.0.0.1:9/records",
            "${JGHUB_TEST_NATIONAL_URL:-http://127.0.0.1:9/default}",
        )
        + "  headers:\n    X-Empty: '${JGHUB_TEST_EMPTY:-}'\n"
    )
    outbound = files.load().system("national").outbound
    assert outbound is not None
    assert outbound["url"] == "http://127.0.0.1:9/default"
    assert outbound["headers"] == {"X-Empty": ""}

    monkeypatch.setenv("JGHUB_TEST_NATIONAL_URL", "http://127.0.0.1:9/from-env")
    outbound = files.load().system("national").outbound
    assert outbound is not None and outbound["url"] == "http://127.0.0.1:9/from-env"


def test_secret_comes_from_env_and_never_sits_in_yaml(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "tok-7f3a9c1e-do-not-log"
    monkeypatch.setenv("JGHUB_TEST_DEPT_A_TOKEN", secret)
    files.write(dept_a=DEPT_A_YAML + "  token: Bearer-${JGHUB_TEST_DEPT_A_TOKEN}\n")
    inbound = files.load().system("dept-a").inbound
    assert inbound is not None and inbound.token == f"Bearer-{secret}"
    for path in files.root.rglob("*.yaml"):
        assert secret not in path.read_text(encoding="utf-8")


def test_env_value_of_wrong_type_is_not_echoed(
    files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JGHUB_TEST_SECRET", "hunter2-secret")
    files.write(hub=HUB_YAML + "limits:\n  max_body_bytes: ${JGHUB_TEST_SECRET}\n")
    err = config_error(files)
    assert f"{files.hub}:13 limits.max_body_bytes:" in err.message
    assert "hunter2-secret" not in str(err)


# --------------------------------------------------------------------------- routes


@pytest.mark.parametrize(
    ("old", "new", "line", "where", "says"),
    [
        ("source: dept-a", "source: dept-b", 9, "routes[0].source", "unknown system 'dept-b'"),
        (
            "targets: [national]",
            "targets: [nationa]",
            11,
            "routes[0].targets[0]",
            "unknown system 'nationa'; known: ['dept-a', 'national']",
        ),
        (
            "targets: [national]",
            "targets: [national, dept-a]",
            11,
            "routes[0].targets[1]",
            "system 'dept-a' has no outbound section, so it cannot be a target",
        ),
        (
            "dataset: inspection",
            "dataset: catalog_item",
            10,
            "routes[0].dataset",
            "system 'dept-a' does not send dataset 'catalog_item'",
        ),
    ],
)
def test_route_references_are_checked(
    files: Files, old: str, new: str, line: int, where: str, says: str
) -> None:
    files.write(hub=HUB_YAML.replace(old, new))
    err = config_error(files)
    assert err.message.startswith(f"{files.hub}:{line} {where}: ")
    assert says in err.message
    assert err.field == where


def test_route_name_used_twice(files: Files) -> None:
    route = HUB_YAML[HUB_YAML.index("  - name: inspections") :]
    files.write(hub=HUB_YAML + route)
    err = config_error(files)
    assert err.message.startswith(f"{files.hub}:12 routes[1].name: ")
    assert "route name 'inspections' is used twice" in err.message


def test_route_with_unregistered_dataset_fails_at_build(files: Files) -> None:
    files.write(
        hub=HUB_YAML.replace("dataset: inspection", "dataset: licence_x"),
        dept_a=DEPT_A_YAML.replace("[inspection]", "[inspection, licence_x]"),
    )
    with pytest.raises(PluginError) as info:
        files.build()
    assert info.value.code == "E_PLUGIN"
    assert "unknown dataset 'licence_x' (wanted by system dept-a inbound)" in info.value.message
    registered = info.value.message.split("registered: ")[1].split(", ")
    assert {"catalog_item", "coordination", "inspection"} <= set(registered)


# --------------------------------------------------------------------------- plugin options


def test_transport_option_typo_fails_when_the_hub_is_built(files: Files) -> None:
    files.write(national=NATIONAL_YAML.replace("  timeout: 3\n", "  timout: 3\n"))
    files.load()  # the outbound section belongs to the transport: checked at build
    with pytest.raises(ConfigError) as info:
        files.build()
    msg = info.value.message
    assert msg.startswith(f"{files.national}:6 outbound.timout: unknown key; allowed: ")
    assert "transport, url, batch_size, concurrency, timeout, headers, token, sign, tls" in msg
    assert info.value.field == "outbound.timout"


def test_transport_option_of_wrong_type(files: Files) -> None:
    files.write(national=NATIONAL_YAML.replace("timeout: 3", "timeout: soon"))
    with pytest.raises(ConfigError) as info:
        files.build()
    assert info.value.message.startswith(f"{files.national}:6 outbound.timeout: ")
    assert "valid number" in info.value.message


def test_adapter_options_for_an_adapter_without_options(files: Files) -> None:
    files.write(dept_a=DEPT_A_YAML + "adapter_options:\n  delimiter: ','\n")
    with pytest.raises(ConfigError) as info:
        files.build()
    assert (
        f"{files.dept_a}:7 adapter_options.delimiter: unknown key; this section takes no keys"
        in info.value.message
    )


def test_unknown_adapter_lists_registered(files: Files) -> None:
    files.write(dept_a=DEPT_A_YAML.replace("adapter: json", "adapter: jsn"))
    with pytest.raises(PluginError) as info:
        files.build()
    assert info.value.code == "E_PLUGIN"
    msg = str(info.value)
    assert "unknown adapter 'jsn' (wanted by system dept-a); registered: " in msg
    assert "json" in msg.split("registered: ")[1].split(" (field")[0].split(", ")


def test_unknown_transport_lists_registered(files: Files) -> None:
    files.write(national=NATIONAL_YAML.replace("http_json", "soap"))
    with pytest.raises(PluginError) as info:
        files.build()
    msg = info.value.message
    assert "unknown transport 'soap' (wanted by system national outbound); registered: " in msg
    assert "http_json" in msg.split("registered: ")[1].split(", ")


def test_system_file_alone(files: Files) -> None:
    sc = load_system_file(files.national)
    assert sc.name == "national" and sc.source_file == files.national
    files.write(national=NATIONAL_YAML.replace("name: national", "name: National Office"))
    with pytest.raises(ConfigError) as info:
        load_system_file(files.national)
    assert info.value.message.startswith(f"{files.national}:1 name: String should match pattern")


def test_transport_timeout_must_be_shorter_than_the_lease(tmp_path: Path) -> None:
    from hub.errors import ConfigError
    from hub.runtime import Hub
    from tests.helpers import config as make_config

    cfg = make_config(tmp_path, {"slow": {"url": "http://127.0.0.1:9/x", "timeout": 45}})
    with pytest.raises(ConfigError, match=r"must be shorter than dispatcher\.lease_seconds") as e:
        Hub(cfg)
    assert e.value.field == "outbound.timeout" and "slow.yaml" in e.value.message
