"""Build real config files for tests (the same YAML a department would write)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from hub.config import HubConfig, load_config


def write_config(
    tmp: Path,
    targets: dict[str, dict[str, Any]],
    *,
    source: str = "dept-a",
    dataset: str = "inspection",
    token: str | None = None,
    ordered: bool = False,
    retry: dict[str, Any] | None = None,
    circuit: dict[str, Any] | None = None,
    store: dict[str, Any] | None = None,
    dispatcher: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    ingest: dict[str, Any] | None = None,
    route_filter: list[dict[str, Any]] | None = None,
    port: int = 0,
    source_extra: dict[str, Any] | None = None,
    target_extra: dict[str, Any] | None = None,
) -> Path:
    """Write hub.yaml + systems/*.yaml: one source sending ``dataset`` to every target."""
    sysdir = tmp / "systems"
    sysdir.mkdir(parents=True, exist_ok=True)
    src: dict[str, Any] = {
        "name": source,
        "title": "某市市场监管局",
        "adapter": "json",
        "inbound": {"datasets": [dataset]},
    }
    if token:
        src["inbound"]["token"] = token
    for k, v in (source_extra or {}).items():
        if k == "inbound":
            src["inbound"].update(v)
        else:
            src[k] = v
    (sysdir / f"{source}.yaml").write_text(yaml.safe_dump(src, allow_unicode=True))
    for name, outbound in targets.items():
        doc: dict[str, Any] = {
            "name": name,
            "adapter": "json",
            "outbound": {"transport": "http_json", **outbound},
        }
        doc["retry"] = retry or {"max_attempts": 8, "base_delay": 0.01, "max_delay": 0.05}
        doc["circuit"] = circuit or {"failure_threshold": 50, "reset_timeout": 0.05}
        doc.update(target_extra or {})
        (sysdir / f"{name}.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    route: dict[str, Any] = {
        "name": f"{dataset}-out",
        "source": source,
        "dataset": dataset,
        "targets": list(targets),
        "ordered": ordered,
    }
    if route_filter:
        route["filter"] = route_filter
    hub_doc: dict[str, Any] = {
        "hub": {"name": "test-hub", "node_id": "test-node"},
        "store": store or {"kind": "sqlite", "path": "data/hub.db", "durability": "normal"},
        "listen": {"host": "127.0.0.1", "port": port},
        "dispatcher": dispatcher or {"lease_seconds": 30, "idle_poll_seconds": 0.2},
        "systems": ["systems"],
        "routes": [route] if targets else [],
    }
    if limits:
        hub_doc["limits"] = limits
    if ingest:
        hub_doc["ingest"] = ingest
    path = tmp / "hub.yaml"
    path.write_text(yaml.safe_dump(hub_doc, allow_unicode=True))
    return path


def config(tmp: Path, targets: dict[str, dict[str, Any]], **kw: Any) -> HubConfig:
    return load_config(write_config(tmp, targets, **kw))


async def wait_until(
    cond: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0, what: str = "condition"
) -> None:
    """Poll until ``cond`` holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def deep_record(levels: int) -> dict[str, Any]:
    """A valid inspection record carrying an extra value nested ``levels`` deep."""
    from contracts.samples import sample_inspection

    rec = sample_inspection(5)
    node: dict[str, Any] = {"v": 1}
    for _ in range(levels):
        node = {"n": node}
    rec["extra"] = node
    return rec
