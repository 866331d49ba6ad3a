"""The sharing workflow through the HTTP API with real bearer tokens: catalog, apply → 受理 →
more information → supplement → approve (narrowed) → grant → query / download → revoke →
refused; the application's history seen by both sides and in the audit log; deadlines."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import drop_pg_schema
from tests.sharing.kit import (
    OTHER,
    PROVIDER,
    REQUESTER,
    AiohttpClient,
    Sharing,
    application,
    licence,
    start_sharing,
)


@pytest.fixture(params=["sqlite", "postgres"])
async def s(
    request: pytest.FixtureRequest, tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[Sharing]:
    """The whole workflow runs on the SQLite and on the PostgreSQL store."""
    schema = None
    if request.param == "postgres":
        schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        async for x in start_sharing(tmp_path, aiohttp_client, pg_schema=schema):
            yield x
    finally:
        if schema is not None:
            await drop_pg_schema(schema)


async def audit_actions(s: Sharing) -> list[dict[str, Any]]:
    out = []
    async for line in s.hub.guard.audit.export(dt.date(2000, 1, 1), dt.date(2100, 1, 1)):
        doc = orjson.loads(line)
        if "action" in doc:
            out.append(doc)
    return out


# --------------------------------------------------------------------------- catalog


async def test_catalog_lists_what_the_caller_may_see(s: Sharing) -> None:
    st, doc, _ = await s.call("GET", "/v1/catalog", "requester")
    assert st == 200
    codes = {r["code"] for r in doc["items"]}
    # the 不予共享 resource is listed to its provider's people only
    assert codes == {"330100-SCJ-0001", "330100-SCJ-0002"}
    st, doc, _ = await s.call("GET", "/v1/catalog", "reviewer")
    assert {r["code"] for r in doc["items"]} >= {"330100-SCJ-0003"}
    st, doc, _ = await s.call("GET", "/v1/catalog/330100-SCJ-0003", "requester")
    assert st == 404 and doc["code"] == "E_NOT_FOUND"
    # the dataset file's catalog block carries every 51号文 element
    st, r, _ = await s.call("GET", "/v1/catalog/330100-SCJ-0001", "requester")
    assert st == 200
    assert r["dataset"] == "licenses" and r["provider_code"] == PROVIDER
    assert r["share_type"] == "conditional" and r["share_type_label"] == "有条件共享"
    assert r["classification"]["category"] == "市场监管" and r["version"] == "2.1"
    assert r["published"] == "2026-01-05" and r["open_attribute"] == "closed"
    assert {f["name"]: f["sensitivity"] for f in r["fields"]}["id_card"] == "secret"
    # search and filters
    for query, want in (
        ("q=名录", {"330100-SCJ-0002"}),
        ("share_type=conditional", {"330100-SCJ-0001"}),
        ("share_type=无条件共享", {"330100-SCJ-0002"}),
        ("method=subscription", {"330100-SCJ-0001"}),
        (f"provider={PROVIDER}", {"330100-SCJ-0001", "330100-SCJ-0002"}),
        ("provider=nobody", set()),
    ):
        st, doc, _ = await s.call("GET", f"/v1/catalog?{query}", "requester")
        assert st == 200 and {x["code"] for x in doc["items"]} == want, query
    st, doc, _ = await s.call("GET", "/v1/catalog?share_type=maybe", "requester")
    assert st == 400 and doc["code"] == "E_PARAM" and doc["field"] == "share_type"
    r = await s.client.get("/v1/catalog")
    assert r.status == 401 and (await r.json())["code"] == "E_AUTH"


# --------------------------------------------------------------------------- the whole flow


async def test_apply_review_grant_query_download_revoke(s: Sharing) -> None:
    await s.send([licence(i, region="330106" if i % 3 else "330110") for i in range(1, 31)])
    # a new version of licence 2 replaces the first: only the latest is shared
    await s.send([licence(2, status="注销", v=2)])

    st, app, _ = await s.call("POST", "/v1/applications", "requester", application())
    assert st == 201 and app["state"] == "submitted", app
    aid = app["id"]
    assert app["provider"] == PROVIDER and app["requester_department"] == REQUESTER
    assert app["due_at"] is not None  # the end of the 10th working day after today
    due = dt.datetime.fromisoformat(app["due_at"])
    # at least two weekends lie between: 11 days 17.5 h from a Sunday 23:59 (China time) to
    # the Friday 12 days later at the end of the working day, more from any other moment
    assert dt.timedelta(days=11) <= due - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
    # no grant yet: the data is refused
    st, doc, _ = await s.call("GET", "/v1/data/licenses", "requester")
    assert st == 403 and doc["code"] == "E_GRANT"
    # approving before 受理 is a state error
    st, doc, _ = await s.call("POST", f"/v1/applications/{aid}/approve", "reviewer", {})
    assert st == 409 and doc["code"] == "E_APPLICATION_STATE"
    st, doc, _ = await s.call(
        "POST", f"/v1/applications/{aid}/accept", "reviewer", {"reason": "受理"}
    )
    assert st == 200 and doc["state"] == "accepted"
    st, doc, _ = await s.call(
        "POST", f"/v1/applications/{aid}/request-info", "reviewer", {"reason": "请说明执法案由"}
    )
    assert st == 200 and doc["state"] == "info_requested" and doc["due_at"] is None
    # the requester may not decide; the reviewer may not supplement
    st, doc, _ = await s.call("POST", f"/v1/applications/{aid}/approve", "requester", {})
    assert st == 403 and doc["code"] == "E_FORBIDDEN"
    st, doc, _ = await s.call(
        "POST", f"/v1/applications/{aid}/supplement", "reviewer", {"note": "x"}
    )
    assert st == 403 and doc["code"] == "E_FORBIDDEN"
    st, doc, _ = await s.call(
        "POST",
        f"/v1/applications/{aid}/supplement",
        "requester",
        {"note": "案由: 2026 商务执法专项", "purpose": "商务执法专项核验"},
    )
    assert st == 200 and doc["state"] == "accepted" and doc["purpose"] == "商务执法专项核验"
    # approve, narrowing: no phone, only region 330106, a smaller quota, no subscription
    st, doc, _ = await s.call(
        "POST",
        f"/v1/applications/{aid}/approve",
        "reviewer",
        {
            "reason": "同意, 限西湖区",
            "fields": ["license_no", "name", "region_code", "status", "legal_person"],
            "row_filter": "region_code = '330106'",
            "records_per_day": 4000,
            "methods": ["query", "download"],
        },
    )
    assert st == 200 and doc["state"] == "approved", doc
    gid = doc["grant_id"]
    # widening is refused
    st, doc, _ = await s.call(
        "POST", f"/v1/applications/{aid}/approve", "reviewer", {"fields": ["id_card"]}
    )
    assert st == 409 and doc["code"] == "E_APPLICATION_STATE"  # decided already

    st, grant, _ = await s.call("GET", f"/v1/grants/{gid}", "requester")
    assert st == 200 and grant["state"] == "active"
    assert grant["fields"] == ["license_no", "name", "region_code", "status", "legal_person"]
    assert grant["dataset_version"] == "2.1" and grant["records_per_day"] == 4000
    assert grant["masked"] == ["legal_person"]
    assert "330106" in grant["row_filter"] and "330108" in grant["row_filter"]

    # query: granted fields and rows only, paged by cursor
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        q = "limit=7" + (f"&cursor={cursor}" if cursor else "")
        st, page, text = await s.call("GET", f"/v1/data/licenses?{q}", "requester")
        assert st == 200, page
        assert page["grant_id"] == gid and len(page["items"]) <= 7
        assert "id_card" not in text and "1380000" not in text  # never ungranted values
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    want = [i for i in range(1, 31) if i % 3]
    # store order: a changed record moves to the end (its new version is the newest record)
    order = [f"LIC{i:06d}" for i in want if i != 2] + ["LIC000002"]
    assert [r["license_no"] for r in seen] == order and pages == 3
    assert all(
        set(r) == {"license_no", "name", "region_code", "status", "legal_person"} for r in seen
    )
    assert all(r["region_code"] == "330106" for r in seen)
    assert {r["legal_person"][0] for r in seen} == {"张"}  # masked: 张**
    assert all(set(r["legal_person"][1:]) == {"*"} for r in seen)
    two = next(r for r in seen if r["license_no"] == "LIC000002")
    assert two["status"] == "注销"  # the latest version
    # a filter and fields narrow further; a sort orders
    st, page, _ = await s.call(
        "GET",
        "/v1/data/licenses?fields=license_no,status&filter=status%20%3D%20'注销'",
        "requester",
    )
    assert st == 200 and page["items"] == [{"license_no": "LIC000002", "status": "注销"}]
    st, page, _ = await s.call(
        "GET", "/v1/data/licenses?fields=license_no&sort=-license_no&limit=2", "requester"
    )
    assert st == 200 and [r["license_no"] for r in page["items"]] == ["LIC000029", "LIC000028"]
    st, page2, _ = await s.call(
        "GET",
        f"/v1/data/licenses?fields=license_no&sort=-license_no&limit=2&cursor={page['next_cursor']}",
        "requester",
    )
    assert [r["license_no"] for r in page2["items"]] == ["LIC000026", "LIC000025"]
    # a cursor of one query does not serve another
    st, doc, _ = await s.call(
        "GET", f"/v1/data/licenses?sort=license_no&cursor={page['next_cursor']}", "requester"
    )
    assert st == 400 and doc["code"] == "E_CURSOR"

    # download: streamed CSV with a manifest whose SHA-256 matches the body
    r = await s.client.get(
        "/v1/data/licenses/export?format=csv&fields=license_no,name,status",
        headers=s.auth("requester"),
    )
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["X-Jghub-Grant"] == gid
    body = await r.read()
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == ["license_no", "name", "status"] and len(rows) == 1 + len(want)
    manifest_url = r.headers["Link"].split(";")[0].strip("<>")
    st, manifest, _ = await s.call("GET", manifest_url, "requester")
    assert st == 200, manifest
    assert manifest["count"] == len(want) and manifest["grant_id"] == gid
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest() and manifest["complete"]
    st, doc, _ = await s.call("GET", manifest_url, "requester2")  # another holder: not theirs
    assert st == 404
    r = await s.client.get("/v1/data/licenses/export?format=jsonl", headers=s.auth("requester"))
    lines = (await r.read()).splitlines()
    assert len(lines) == len(want) and b"id_card" not in b"".join(lines)

    # the history, seen by both sides, and nobody else
    for who in ("requester", "reviewer"):
        st, doc, _ = await s.call("GET", f"/v1/applications/{aid}", who)
        assert st == 200
        steps = [(e["action"], e["state"]) for e in doc["events"]]
        assert steps == [
            ("application.create", "submitted"),
            ("application.accept", "accepted"),
            ("application.request_info", "info_requested"),
            ("application.supplement", "accepted"),
            ("decision.approve", "approved"),
        ]
        assert doc["events"][2]["reason"] == "请说明执法案由"
        assert doc["events"][4]["details"]["department"] == PROVIDER
    for who in ("other", "other_reviewer"):
        st, doc, _ = await s.call("GET", f"/v1/applications/{aid}", who)
        assert st == 404, who
    st, doc, _ = await s.call("GET", "/v1/applications?side=provider", "reviewer")
    assert [a["id"] for a in doc["items"]] == [aid]
    st, doc, _ = await s.call("GET", "/v1/applications", "other")
    assert doc["items"] == []

    # revoke (by the provider's reviewer; not by the requester) → refused at the next request
    st, doc, _ = await s.call("POST", f"/v1/grants/{gid}/revoke", "requester", {"reason": "x"})
    assert st == 403 and doc["code"] == "E_FORBIDDEN"
    st, doc, _ = await s.call(
        "POST", f"/v1/grants/{gid}/revoke", "reviewer", {"reason": "专项结束"}
    )
    assert st == 200 and doc["state"] == "revoked" and doc["revoke_reason"] == "专项结束"
    st, doc, _ = await s.call("GET", "/v1/data/licenses", "requester")
    assert st == 403 and doc["code"] == "E_GRANT" and "revoked" in doc["detail"]
    r = await s.client.get("/v1/data/licenses/export", headers=s.auth("requester"))
    assert r.status == 403 and (await r.json())["code"] == "E_GRANT"
    st, doc, _ = await s.call("POST", f"/v1/grants/{gid}/revoke", "reviewer", {"reason": "again"})
    assert st == 409 and doc["code"] == "E_APPLICATION_STATE"

    # every step is in the audit log with its actor, and the chain verifies
    audit = await audit_actions(s)
    actions = [e["action"] for e in audit]
    for a in (
        "application.create",
        "application.accept",
        "application.request_info",
        "application.supplement",
        "decision.approve",
        "grant.issued",
        "data.access",
        "grant.revoked",
        "access.denied",
    ):
        assert a in actions, a
    revoked = next(e for e in audit if e["action"] == "grant.revoked")
    assert revoked["details"]["reason"] == "专项结束"
    assert revoked["actor"] == {
        "id": s.tokens["reviewer"][4:16],
        "department": PROVIDER,
        "role": "reviewer",
    }
    assert (await s.hub.guard.audit.verify()).ok


async def test_unconditional_is_granted_at_once_and_not_shared_is_refused(s: Sharing) -> None:
    await s.send([licence(1), licence(2, region="330110")])
    body = application(
        resource="330100-SCJ-0002",
        fields=["license_no", "name", "status"],
        row_filter=None,
        methods=["query"],
    )
    st, app, _ = await s.call("POST", "/v1/applications", "requester", body)
    assert st == 201 and app["state"] == "approved" and app["due_at"] is None
    assert [e["action"] for e in app["events"]] == ["application.create", "decision.approve"]
    st, page, _ = await s.call("GET", "/v1/data/licenses", "requester")
    assert st == 200 and len(page["items"]) == 2
    assert set(page["items"][0]) == {"license_no", "name", "status"}
    # the grant is bound to the credential that applied, not to its whole department
    st, doc, _ = await s.call("GET", "/v1/data/licenses", "requester2")
    assert st == 403 and doc["code"] == "E_GRANT"
    # a download is not among the grant's methods
    r = await s.client.get("/v1/data/licenses/export", headers=s.auth("requester"))
    assert r.status == 403 and (await r.json())["code"] == "E_GRANT"
    # 不予共享: refused with its legal basis, nothing stored
    st, doc, _ = await s.call(
        "POST", "/v1/applications", "requester", application(resource="330100-SCJ-0003")
    )
    assert st == 403 and doc["code"] == "E_NOT_SHARABLE" and "第十条" in doc["detail"]
    st, doc, _ = await s.call("GET", "/v1/applications", "requester")
    assert len(doc["items"]) == 1
    # bad applications name their field
    for over, field in (
        ({"fields": ["license_no", "nonsense"]}, "fields"),
        (
            {"methods": ["subscription"], "resource": "330100-SCJ-0002", "fields": ["name"]},
            "methods",
        ),
        ({"row_filter": "region_code = "}, "filter"),
        ({"row_filter": "secret_field = 1"}, "row_filter"),
        ({"valid_until": "2020-01-01T00:00:00+08:00"}, "valid_until"),
        ({"records_per_day": 10**8}, "records_per_day"),
        ({"purpose": ""}, "purpose"),
        ({"resource": "NOPE"}, "code"),
    ):
        st, doc, _ = await s.call("POST", "/v1/applications", "requester", application(**over))
        assert st in (400, 404) and doc["field"] == field, (over, doc)
    st, doc, _ = await s.call("POST", "/v1/applications", "reviewer", application())
    assert st == 403 and doc["code"] == "E_FORBIDDEN"


async def test_reject_withdraw_and_concurrent_decisions(s: Sharing) -> None:
    st, app, _ = await s.call("POST", "/v1/applications", "requester", application())
    aid = app["id"]
    # another department's reviewer may not touch it (it does not even see it)
    st, doc, _ = await s.call("POST", f"/v1/applications/{aid}/accept", "other_reviewer", {})
    assert st == 404
    st, doc, _ = await s.call("POST", f"/v1/applications/{aid}/reject", "reviewer", {})
    assert st == 400 and doc["field"] == "reason"
    st, doc, _ = await s.call(
        "POST", f"/v1/applications/{aid}/reject", "reviewer", {"reason": "用途不明确"}
    )
    assert st == 200 and doc["state"] == "rejected" and doc["due_at"] is None
    st, doc, _ = await s.call(
        "POST", f"/v1/applications/{aid}/withdraw", "requester", {"reason": "x"}
    )
    assert st == 409 and doc["code"] == "E_APPLICATION_STATE"
    # renewal is a new application; this one is withdrawn by its requester
    st, app2, _ = await s.call("POST", "/v1/applications", "requester", application())
    st, doc, _ = await s.call(
        "POST", f"/v1/applications/{app2['id']}/withdraw", "requester", {"reason": "重复申请"}
    )
    assert st == 200 and doc["state"] == "withdrawn"
    # two decisions at once: exactly one wins, the other is told the state changed
    st, app3, _ = await s.call("POST", "/v1/applications", "requester", application())
    results = await asyncio.gather(
        s.call("POST", f"/v1/applications/{app3['id']}/accept", "reviewer", {}),
        s.call("POST", f"/v1/applications/{app3['id']}/accept", "reviewer", {}),
    )
    assert sorted(st for st, _, _ in results) == [200, 409]
    loser = next(doc for st, doc, _ in results if st == 409)
    assert loser["code"] == "E_APPLICATION_STATE"
    st, doc, _ = await s.call("GET", f"/v1/applications/{app3['id']}", "reviewer")
    assert [e["action"] for e in doc["events"]] == ["application.create", "application.accept"]
    # admins do not review applications (role policy), so they do not see them either
    st, doc, _ = await s.call("POST", f"/v1/applications/{app3['id']}/reject", "admin", {})
    assert st == 404


async def test_overdue_applications_are_listed_and_measured(s: Sharing) -> None:
    st, app, _ = await s.call("POST", "/v1/applications", "requester", application())
    st, app2, _ = await s.call("POST", "/v1/applications", "requester", application())
    await s.call("POST", f"/v1/applications/{app2['id']}/reject", "reviewer", {"reason": "r"})
    st, doc, _ = await s.call("GET", "/v1/applications/overdue", "ops")
    assert st == 200 and doc["items"] == []
    s.clock.advance(20 * 86400)  # past 10 working days
    st, doc, _ = await s.call("GET", "/v1/applications/overdue", "ops")
    assert st == 200 and [a["id"] for a in doc["items"]] == [app["id"]]
    st, doc, _ = await s.call("GET", "/v1/applications/overdue", "requester")
    assert st == 403 and doc["code"] == "E_FORBIDDEN"
    r = await s.client.get("/metrics", headers=s.auth("ops"))
    text = await r.text()
    assert f'jghub_sharing_applications_overdue{{department="{PROVIDER}"}} 1.0' in text
    assert OTHER not in text
