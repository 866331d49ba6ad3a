"""Property, end to end through the HTTP API with real tokens: for random approvals (a random
subset of the requested fields, a random extra row filter) and random queries (random
``fields``, ``filter`` and ``sort``, paged to the end), the hub either refuses with
``E_FIELD_NOT_GRANTED`` exactly when the query names a field the grant does not cover (or
filters / sorts on a masked one), or answers with exactly the granted fields of exactly the
rows both filters admit — and no ungranted or masked clear value appears in any answer.

The expected rows are computed here from the records sent, by plain Python comparisons written
for these few filters (not with the hub's filter language)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.sharing.kit import SOURCE_TOKEN, RunningHub, application, licence

RECORDS = [
    licence(i, region=("330106", "330108", "330110")[i % 3], status=("存续", "注销")[i % 2])
    for i in range(1, 25)
]
REQUESTED = ["license_no", "name", "region_code", "status", "legal_person", "phone", "capital"]
MASKED = {"legal_person", "phone"}
ALL_FIELDS = [*REQUESTED, "id_card"]
Row = dict[str, Any]

#: row filters the reviewer may add, with the same condition written in Python
REVIEW_FILTERS: list[tuple[str | None, Callable[[Row], bool]]] = [
    (None, lambda r: True),
    ("region_code = '330106'", lambda r: r["region_code"] == "330106"),
    ("status != '注销'", lambda r: r["status"] != "注销"),
    ("capital >= 110", lambda r: r["capital"] >= 110),
]
#: query filters: (text, fields it reads, the condition in Python)
QUERY_FILTERS: list[tuple[str | None, set[str], Callable[[Row], bool]]] = [
    (None, set(), lambda r: True),
    ("status = '存续'", {"status"}, lambda r: r["status"] == "存续"),
    (
        "capital < 112 or region_code = '330110'",
        {"capital", "region_code"},
        lambda r: r["capital"] < 112 or r["region_code"] == "330110",
    ),
    ("name like '%1%'", {"name"}, lambda r: "1" in r["name"]),
    ("phone like '138%'", {"phone"}, lambda r: True),
    ("id_card is not null", {"id_card"}, lambda r: True),
]
REQUESTED_SCOPE = ("region_code in ('330106', '330108', '330110')", lambda r: True)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    hub = RunningHub(tmp_path_factory.mktemp("property"))
    hub.start()
    try:
        r = requests.post(
            f"{hub.base}/v1/systems/dept-a/records",
            data=orjson.dumps(RECORDS),
            headers={"Authorization": f"Bearer {SOURCE_TOKEN}", "Content-Type": "application/json"},
            timeout=30,
        )
        assert r.status_code == 202, r.text
        yield hub
    finally:
        hub.stop()


def _approve(hub: RunningHub, fields: list[str], row_filter: str | None) -> str:
    req = {"Authorization": f"Bearer {hub.tokens['requester']}"}
    rev = {"Authorization": f"Bearer {hub.tokens['reviewer']}"}
    body = application(
        fields=REQUESTED,
        row_filter=REQUESTED_SCOPE[0],
        methods=["query", "download"],
        requests_per_day=1000,
        records_per_day=100000,
    )
    r = requests.post(f"{hub.base}/v1/applications", json=body, headers=req, timeout=30)
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    r = requests.post(f"{hub.base}/v1/applications/{aid}/accept", json={}, headers=rev, timeout=30)
    assert r.ok, r.text
    decision: dict[str, Any] = {"fields": fields}
    if row_filter is not None:
        decision["row_filter"] = row_filter
    r = requests.post(
        f"{hub.base}/v1/applications/{aid}/approve", json=decision, headers=rev, timeout=30
    )
    assert r.ok, r.text
    return str(r.json()["grant_id"])


def _secrets(rows: list[Row], granted: set[str]) -> list[str]:
    """Clear values that must never appear: ungranted fields' and masked fields' values."""
    out = []
    for r in rows:
        for f in ALL_FIELDS:
            if f not in granted or f in MASKED:
                v = r[f]
                if isinstance(v, str) and len(v) >= 6:
                    out.append(v)
    return out


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    granted=st.lists(st.sampled_from(REQUESTED), min_size=1, unique=True),
    review=st.sampled_from(REVIEW_FILTERS),
    asked=st.none() | st.lists(st.sampled_from(ALL_FIELDS), min_size=1, max_size=4, unique=True),
    query=st.sampled_from(QUERY_FILTERS),
    sort=st.none() | st.sampled_from(ALL_FIELDS),
    descending=st.booleans(),
    limit=st.integers(1, 9),
)
def test_answers_hold_exactly_the_granted_slice(
    running: RunningHub,
    granted: list[str],
    review: tuple[str | None, Callable[[Row], bool]],
    asked: list[str] | None,
    query: tuple[str | None, set[str], Callable[[Row], bool]],
    sort: str | None,
    descending: bool,
    limit: int,
) -> None:
    gid = _approve(running, granted, review[0])
    params: dict[str, str] = {"grant": gid, "limit": str(limit)}
    if asked is not None:
        params["fields"] = ",".join(asked)
    if query[0] is not None:
        params["filter"] = query[0]
    if sort is not None:
        params["sort"] = ("-" if descending else "") + sort
    grant_set = set(granted)
    visible = grant_set - MASKED
    must_refuse = (
        (asked is not None and not set(asked) <= grant_set)
        or not query[1] <= visible
        or (sort is not None and sort not in visible)
    )
    event("refused" if must_refuse else "answered")
    auth = {"Authorization": f"Bearer {running.tokens['requester']}"}
    texts: list[str] = []
    items: list[Row] = []
    cursor = None
    while True:
        q = dict(params, **({"cursor": cursor} if cursor else {}))
        r = requests.get(
            f"{running.base}/v1/data/licenses?{urllib.parse.urlencode(q)}", headers=auth, timeout=30
        )
        texts.append(r.text)
        doc = r.json()
        if must_refuse:
            assert r.status_code == 403 and doc["code"] == "E_FIELD_NOT_GRANTED", (params, doc)
            break
        assert r.status_code == 200, (params, doc)
        assert len(doc["items"]) <= limit
        items += doc["items"]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    for text in texts:
        for value in _secrets(RECORDS, grant_set):
            assert value not in text, (params, value)
    if must_refuse:
        return
    want_fields = set(asked) if asked is not None else grant_set
    want = [r for r in RECORDS if review[1](r) and query[2](r)]
    assert sorted(i["license_no"] for i in items if "license_no" in i) == sorted(
        r["license_no"] for r in want if "license_no" in want_fields
    )
    assert len(items) == len(want), (params, len(items), len(want))
    event("empty answer" if not items else "rows answered")
    for item in items:
        assert set(item) <= want_fields  # absent values are left out, never others added
        for f in MASKED & set(item):
            assert "*" in item[f]
    if sort is not None and sort in want_fields and len(items) > 1:
        keys = [i[sort] for i in items]
        assert keys == sorted(keys, reverse=descending)
