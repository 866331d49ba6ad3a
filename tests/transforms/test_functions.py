"""Value functions: registered by the core plugin with kind="value"; routes refuse them."""

from __future__ import annotations

import pytest

from hub.config import Route
from hub.errors import ConfigError
from hub.plugins import build_plugin_manager, load_registry
from hub.routing import compile_route


def test_core_registers_value_functions_next_to_record_functions() -> None:
    import hub.builtin

    pm = build_plugin_manager([hub.builtin], load_entry_points=False)
    specs = load_registry(pm).transform_functions.specs
    assert specs["identity"].kind == "record"
    for name in ("upper", "lower", "strip", "replace", "pad_left", "substring"):
        assert specs[name].kind == "value"
        assert specs[name].description
    assert specs["pad_left"].func(42, 6, "0") == "000042"
    assert specs["replace"].func("a-b", "-", "") == "ab"
    assert specs["substring"].func("330102", 0, 4) == "3301"
    assert specs["strip"].func("\u3000x ") == "x"


def test_a_route_cannot_use_a_value_function_as_its_transform() -> None:
    import hub.builtin

    specs = load_registry(build_plugin_manager([hub.builtin], load_entry_points=False))
    route = Route.model_validate(
        {
            "name": "r",
            "source": "a",
            "dataset": "inspection",
            "targets": [{"system": "b", "transform": "upper"}],
        }
    )
    with pytest.raises(ConfigError) as info:
        compile_route(route, specs.transform_functions.specs)
    assert "value function" in info.value.message
    assert info.value.field == "routes.r.targets.b.transform"
