"""The hotline12345 plugin is loaded by entry point and refuses a configuration that would
let lifecycle records bypass its state machine."""

from __future__ import annotations

import base64
import importlib
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.config import load_config
from hub.errors import HubError
from hub.plugins import build_plugin_manager, load_registry
from hub.runtime import Hub
from hub.store.memory import MemoryStore

demo = importlib.import_module("adapters.12345.demo")
plugin = importlib.import_module("adapters.12345.plugin")


def test_loaded_by_entry_point() -> None:
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="jghub.plugins") if e.name == "hotline12345"]
    assert ep.load() is plugin
    reg = load_registry(build_plugin_manager())
    assert reg.adapters.get("hotline12345", wanted_by="t").config_model is plugin.HotlineOptions
    assert "hotline12345_time" in reg.transform_functions.specs
    # every registry has its own order book: hubs share no state
    other = load_registry(build_plugin_manager())
    a = reg.comparators.get("hotline12345_lifecycle", wanted_by="t").check
    b = other.comparators.get("hotline12345_lifecycle", wanted_by="t").check
    assert a.__self__ is not b.__self__


def test_platform_time() -> None:
    assert plugin.platform_time("2026-11-28T01:30:00+00:00") == "20261128093000"
    assert plugin.platform_time("2026-11-28T09:30:00") == "20261128093000"


def hub_from(work: Path, change: Any, monkeypatch: pytest.MonkeyPatch) -> Hub:
    for var in ("HOTLINE12345_HUB_SECRET", "HOTLINE12345_PLATFORM_SECRET"):
        monkeypatch.setenv(var, base64.b64encode(os.urandom(32)).decode())
    hub_file = demo.copy_example(work)
    change(work)
    return Hub(load_config(hub_file), store=MemoryStore())


def edit(work: Path, name: str, fn: Any) -> None:
    path = work / "systems" / f"{name}.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    fn(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def test_the_example_builds_a_watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = hub_from(tmp_path, lambda w: None, monkeypatch)
    watch = plugin.watch_of(hub)
    assert watch is not None and watch.platform == "platform-12345"
    assert watch.options.check_interval == 60
    book = plugin.book_of(hub)
    assert book.store is hub.store and book.rules.return_workdays == 2
    assert book.calendar.is_workday(__import__("datetime").date(2026, 10, 10))  # 调休


def test_a_sender_without_the_lifecycle_check_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def drop(doc: dict[str, Any]) -> None:
        doc["governance"]["work_order_event"]["compare"] = []

    with pytest.raises(HubError) as exc:
        hub_from(tmp_path, lambda w: edit(w, "dept-scjg", drop), monkeypatch)
    assert exc.value.code == "E_CONFIG"
    assert "governance.work_order_event.compare" in exc.value.message
    assert "hotline12345_lifecycle" in exc.value.message


def test_the_watch_source_must_send_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def bad(doc: dict[str, Any]) -> None:
        doc["adapter_options"]["watch_source"] = "dept-nowhere"

    with pytest.raises(HubError) as exc:
        hub_from(tmp_path, lambda w: edit(w, "platform-12345", bad), monkeypatch)
    assert exc.value.code == "E_CONFIG" and "watch_source" in exc.value.message


def test_a_hub_without_12345_runs_no_watch(tmp_path: Path) -> None:
    (tmp_path / "hub.yaml").write_text("store: {kind: memory}\n")
    hub = Hub(load_config(tmp_path / "hub.yaml"), store=MemoryStore())
    assert plugin.watch_of(hub) is None
