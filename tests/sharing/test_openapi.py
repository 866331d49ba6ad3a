"""The sharing API's OpenAPI 3.1 description (``GET /openapi.json``), fuzzed with schemathesis
against a real hub on 127.0.0.1 (its own event loop in a thread; schemathesis calls it over
HTTP): no answer is a 5xx, and every answer matches the description (status, content type,
body schema). The caller is a requester holding a grant, with data in the store, so the fuzzer
reaches the governed query and export, not only refusals."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from hub.api import create_app
from hub.config import load_config
from hub.peers import bound_port
from hub.runtime import Hub
from hub.sharing.openapi import openapi_document
from tests.sharing.kit import SOURCE_TOKEN, application, licence, token, write_sharing_config


class _RunningHub:
    """A hub served by aiohttp on its own loop in a thread (schemathesis calls are blocking)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.base = ""
        self.tokens: dict[str, str] = {}

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        cfg = load_config(write_sharing_config(self.tmp))
        hub = Hub(cfg)
        self.runner = web.AppRunner(create_app(cfg, hub=hub))
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{bound_port(site)}"
        for who, role, dept in (
            ("requester", "requester", "330100-swj"),
            ("reviewer", "reviewer", "330100-scj"),
        ):
            self.tokens[who] = await token(hub, who, role, dept)

    def stop(self) -> None:
        if self.runner is not None:
            self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_RunningHub]:
    hub = _RunningHub(tmp_path_factory.mktemp("openapi"))
    hub.start()
    try:
        s = requests.Session()
        r = s.post(
            f"{hub.base}/v1/systems/dept-a/records",
            data=orjson.dumps([licence(i) for i in range(1, 40)]),
            headers={"Authorization": f"Bearer {SOURCE_TOKEN}", "Content-Type": "application/json"},
        )
        assert r.status_code == 202, r.text
        req = {"Authorization": f"Bearer {hub.tokens['requester']}"}
        rev = {"Authorization": f"Bearer {hub.tokens['reviewer']}"}
        r = s.post(f"{hub.base}/v1/applications", json=application(), headers=req)
        assert r.status_code == 201, r.text
        aid = r.json()["id"]
        assert s.post(f"{hub.base}/v1/applications/{aid}/accept", json={}, headers=rev).ok
        assert s.post(f"{hub.base}/v1/applications/{aid}/approve", json={}, headers=rev).ok
        yield hub
    finally:
        hub.stop()


def test_openapi_json_is_served_and_describes_every_sharing_route(running: _RunningHub) -> None:
    r = requests.get(f"{running.base}/openapi.json", timeout=10)
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"] == "3.1.0" and doc == orjson.loads(orjson.dumps(openapi_document()))
    assert {"/v1/catalog", "/v1/applications/{id}/approve", "/v1/data/{dataset}/export"} <= set(
        doc["paths"]
    )
    # every error code a problem document may carry is in the description
    assert "E_GRANT" in doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
    app_in = doc["components"]["schemas"]["ApplicationIn"]
    assert {"resource", "fields", "purpose", "valid_until", "methods"} <= set(app_in["required"])


# Loaded when the module is collected (the document needs no running hub); the lazy
# ``schemathesis.pytest.from_fixture`` loader does not work with pytest 9 yet.
schema = schemathesis.openapi.from_dict(openapi_document())


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_fuzzed_requests_get_no_5xx_and_conforming_answers(case: Any, running: _RunningHub) -> None:
    case.call_and_validate(
        base_url=running.base,
        headers={"Authorization": f"Bearer {running.tokens['requester']}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        timeout=30,
    )


def test_the_description_names_the_date_times_it_takes() -> None:
    doc = openapi_document()
    until = doc["components"]["schemas"]["ApplicationIn"]["properties"]["valid_until"]
    assert until.get("format") == "date-time"
    assert dt.datetime.fromisoformat(application()["valid_until"]).tzinfo is not None
