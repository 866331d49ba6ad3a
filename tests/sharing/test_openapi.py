"""The sharing API's OpenAPI 3.1 description (``GET /openapi.json``), fuzzed with schemathesis
against a real hub on 127.0.0.1 (its own event loop in a thread; schemathesis calls it over
HTTP): no answer is a 5xx, and every answer matches the description (status, content type,
body schema). The caller is a requester holding a grant, with data in the store, so the fuzzer
reaches the governed query and export, not only refusals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from hub.sharing.openapi import openapi_document
from tests.sharing.kit import SOURCE_TOKEN, RunningHub, application, licence


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    hub = RunningHub(tmp_path_factory.mktemp("openapi"))
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


def test_openapi_json_is_served_and_describes_every_sharing_route(running: RunningHub) -> None:
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
def test_fuzzed_requests_get_no_5xx_and_conforming_answers(case: Any, running: RunningHub) -> None:
    response = case.call_and_validate(
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
    # call_and_validate raised if a check failed; the answer is a client error or a success,
    # and an error answer is a problem document with a stable code
    assert response.status_code < 500
    if response.status_code >= 400:
        assert str(response.json().get("code", "")).startswith("E_"), response.text


def test_the_description_names_the_date_times_it_takes() -> None:
    doc = openapi_document()
    until = doc["components"]["schemas"]["ApplicationIn"]["properties"]["valid_until"]
    assert until.get("format") == "date-time"
    assert dt.datetime.fromisoformat(application()["valid_until"]).tzinfo is not None
